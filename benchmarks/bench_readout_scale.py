#!/usr/bin/env python
"""Balancing passes of the hybrid readout at scale: the old passes vs fewer float32 passes.

When the balancing kernel of all cells does not fit (about 8 · cells · spots bytes > 1 GiB),
the spot potentials are fitted on an evenly spread sample of cells, then refined by passes
over all cells; each pass costs one cells × spots product, as much as the outputs themselves.
This script reads the mapping out of one trained model with several pass settings, in the
same process, and reports the time of the potentials and of the outputs (coordinates, best
spot, top-10 mapping), the largest relative column error, the MAE against the true positions
and the distance of the coordinates to the old setting's.

``--save FILE --cells M --spots N --epochs E`` first trains a model on
``bench_scaling.make_data`` data (automatic batches) and saves what the readout needs.

Usage::

    .venv/bin/python benchmarks/bench_readout_scale.py --save /tmp/scale.npz --cells 100000 --spots 20000 --epochs 60
    .venv/bin/python benchmarks/bench_readout_scale.py /tmp/scale.npz --subsample 25000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent

#: name → (max passes, float type of the passes, their tolerance, top-k kept from the per-cell pass)
SETTINGS = {
    "old: ≤10 float64 passes to 1e-4, separate top-k pass": (10, torch.float64, 1e-4, 0),
    "≤10 float32 passes to 1e-4": (10, torch.float32, 1e-4, 16),
    "default: float32 passes to 1% (≤10)": (10, torch.float32, 1e-2, 16),
    "1 float32 pass": (1, torch.float32, 1e-4, 16),
    "no pass (sample fit only)": (0, torch.float32, 1e-4, 16),
}


def save(path: Path, cells: int, spots: int, epochs: int) -> None:
    """Train on synthetic data and save embeddings, expression, coordinates and the truth."""
    sys.path.insert(0, str(HERE))
    import stemmap

    from bench_scaling import make_data

    stemmap.settings.progress = False
    sc, st = make_data(cells, spots, 351)
    model = stemmap.STEM(sc, st, seed=0)
    cbs, sbs = model._plan_batches(None, None)
    model.train(epochs=epochs, cell_batch_size=cbs, spot_batch_size=sbs)
    s = model.data.slices[0]
    true = sc.obsm["spatial_true"][[sc.obs_names.get_loc(n) for n in model.data.sc_names]]
    np.savez(
        path,
        zsc=model.embed(model.data.sc_x),
        zst=model.embed(s.x),
        esc=model.data.sc_x,
        est=s.x,
        coords=s.coords,
        true=true,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", type=Path, nargs="?")
    p.add_argument("--subsample", type=int, default=None, help="evenly spread cells to use")
    p.add_argument("--save", type=Path, default=None)
    p.add_argument("--cells", type=int, default=100_000)
    p.add_argument("--spots", type=int, default=20_000)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--out", type=Path, default=HERE / "results" / "readout_scale.md")
    a = p.parse_args(argv)
    if a.save:
        save(a.save, a.cells, a.spots, a.epochs)
        return 0
    from stemmap import StemMapping

    d = np.load(a.data)
    m_all = d["zsc"].shape[0]
    rows = np.linspace(0, m_all - 1, a.subsample or m_all).astype(int)
    n = d["zst"].shape[0]
    step = float(np.min(np.diff(np.unique(d["coords"][:, 0]))))
    lines = [
        "# Balancing passes at scale",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `benchmarks/bench_readout_scale.py`: "
        f"{len(rows):,} cells × {n:,} spots (hybrid readout, one trained model), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start.",
        "",
        "| setting | passes | column error | potentials s | outputs s | total s | MAE (grid "
        "steps) | distance to old (grid steps) | same best spot |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ref = None
    for name, (passes, dtype, tol, kept) in SETTINGS.items():
        StemMapping._balance_passes, StemMapping._pass_dtype = passes, dtype
        StemMapping._balance_pass_tol, StemMapping._topk_kept = tol, kept
        t0 = time.perf_counter()
        m = StemMapping(
            d["zsc"][rows],
            d["zst"],
            d["coords"],
            [str(i) for i in rows],
            [str(j) for j in range(n)],
            ["a"] * n,
            sc_expr=d["esc"][rows],
            st_expr=d["est"],
            readout="hybrid",
        )
        t1 = time.perf_counter()
        m._potentials()
        t2 = time.perf_counter()
        coords, best, _ = m.coords, m.best_spot, m.topk_mapping(10)
        t3 = time.perf_counter()
        ref = ref or (coords, best)
        mae = np.linalg.norm(coords - d["true"][rows], axis=1).mean() / step
        dist = np.linalg.norm(coords - ref[0], axis=1).mean() / step
        lines.append(
            f"| {name} | {m.balance_info.get('iterations', 0) if passes else 0} | "
            f"{m.balance_info.get('max_column_error', float('nan')):.2g} | {t2 - t1:.1f} | "
            f"{t3 - t2:.1f} | {t3 - t0:.1f} | {mae:.3f} | {dist:.4f} | "
            f"{(best == ref[1]).mean():.4f} |"
        )
        print(lines[-1], flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
