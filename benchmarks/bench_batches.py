#!/usr/bin/env python
"""Minibatch training vs full batch on the shared semi-simulations (large-data mode).

Trains ``stemmap.STEM`` on each dataset with full batches (the paper), with random cell
batches, and with cell batches plus spatially contiguous spot patches (the large-data
mode), same seeds and epochs, and scores both readouts (paper and hybrid) with the
benchmark metrics. Writes ``results/batches.md`` and ``results/batches.csv``.

Usage::

    .venv/bin/python benchmarks/bench_batches.py --epochs 400 --seeds 0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lib import report
from lib.data import semi_simulation, truth_for
from lib.environments import RESULTS
from lib.scoring import KS, evaluate

#: the table's columns
COLS = [f"hit{k}" for k in KS] + ["mae", "pcc", "train_s"]
# (label, cell batch as a fraction of the cells, spot patch as a fraction of the spots)
CONFIGS = [
    ("full batch", None, None),
    ("cells / 4", 0.25, None),
    ("cells / 4, spots / 2 (patches)", 0.25, 0.5),
    ("cells / 8, spots / 4 (patches)", 0.125, 0.25),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["embryo2_z2", "osmfish_cortex"])
    p.add_argument("--epochs", type=int, default=400)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    import stemmap

    stemmap.settings.progress = False
    rows = []
    for ds in a.datasets:
        sc, st = semi_simulation(ds)
        for label, fc, fs in CONFIGS:
            cbs = None if fc is None else max(256, int(fc * sc.n_obs))
            sbs = None if fs is None else max(16, int(fs * st.n_obs))
            for seed in a.seeds:
                model = stemmap.STEM(sc, st, seed=seed, device=a.device)
                t0 = time.perf_counter()
                model.train(epochs=a.epochs, cell_batch_size=cbs, spot_batch_size=sbs)
                secs = time.perf_counter() - t0
                truth = truth_for(model, sc, st)
                for readout in ("paper", "hybrid"):
                    m = model.mapping(readout=readout)
                    r = evaluate(readout, m.coords, m.sc_to_st, None, truth)
                    r.update(
                        dataset=ds,
                        config=label,
                        cells=cbs or sc.n_obs,
                        spots=sbs or st.n_obs,
                        seed=seed,
                        train_s=secs,
                    )
                    report.record(rows, r)
    df = report.frame(rows, a.out / "batches.csv")
    lines = report.heading(
        "Minibatch training vs full batch",
        f"`benchmarks/bench_batches.py`: {a.epochs} epochs (one step each), seeds {a.seeds}, "
        f"device {a.device}, default σ (1 × NN). Batches: random cells per step; spot "
        "batches ('patches'): steps alternate a contiguous patch (a random anchor spot and its "
        "nearest spots) and a random spread subset with σ widened by √(N / size), S "
        "renormalised over the chosen spots. Mean over seeds.",
    )
    for ds in a.datasets:
        cells = [
            [cfg, f"{int(g.cells.iloc[0])} / {int(g.spots.iloc[0])}", readout]
            + [f"{g[c].mean():.3g}" for c in COLS]
            for (cfg, readout), g in df[df.dataset == ds].groupby(["config", "readout"], sort=False)
        ]
        header = ["batches", "cells / spots per step", "readout", *COLS]
        lines += [f"## {ds}", "", *report.table(header, cells), ""]
    (a.out / "batches.md").write_text("\n".join(lines))
    print("wrote", a.out / "batches.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
