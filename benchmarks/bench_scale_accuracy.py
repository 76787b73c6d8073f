#!/usr/bin/env python
"""Accuracy at scale: does the automatic batch plan learn the layout of a large tissue.

Builds the synthetic data of ``bench_scaling.py`` (``lib.data.synthetic``) (default 100,000 cells × 5,000 spots; the
generator knows every cell's true position), trains stemmap with the automatic batch plan
for each number of steps in ``--steps`` (a fresh model each, same seed) and scores the
pseudo-coordinates against the truth (MAE in grid steps, hit number@50) for the default
hybrid and the paper readout, next to the most-correlated-spot baseline. Every run keeps the
shape of the paper's schedule (learning rate halved half-way, β rising from 1/8 of the steps).

Usage::

    .venv/bin/python benchmarks/bench_scale_accuracy.py --size 100000x5000 --steps 400 1600
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from lib import report
from lib.data import synthetic
from lib.environments import RESULTS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="100000x5000")
    p.add_argument("--steps", nargs="+", type=int, default=[400, 1600])
    p.add_argument("--genes", type=int, default=351)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=RESULTS / "scale_accuracy.md")
    a = p.parse_args(argv)
    import stemmap
    from stemmap import metrics
    from stemmap.baselines import best_correlated_spot

    stemmap.settings.progress = False
    c, s = (int(v) for v in a.size.split("x"))
    sc, st = synthetic(c, s, a.genes)
    step = float(st.uns["simulation"]["step"])
    rows = []

    def score(name: str, steps, xy, names, secs) -> None:
        keep = sc.obs_names.get_indexer(names)
        true = np.asarray(sc.obsm["spatial_true"])[keep]
        out = sc.obs["spot"].isna().to_numpy()[keep]
        rows.append(
            {
                "readout": name,
                "steps": steps,
                "mae": metrics.mae(true, xy, unit=step),
                "mae_outside": metrics.mae(true[out], xy[out], unit=step),
                "hit50": metrics.hit_number(true, xy, ks=(50,))[50],
                "seconds": secs,
            }
        )
        print(rows[-1], flush=True)

    for n in a.steps:
        model = stemmap.STEM(sc, st, seed=a.seed, device=a.device)
        t0 = time.perf_counter()
        # the paper's schedule shape at any length: lr halved at half-way, β from 1/8
        model.train(epochs=n, lr_step=max(1, n // 2), warmup=n // 8)
        train_s = time.perf_counter() - t0
        plan = model.train_settings
        for readout in ("hybrid", "paper"):
            t0 = time.perf_counter()
            m = model.mapping(readout=readout)
            xy = m.coords
            score(readout, n, xy, m.sc_names, train_s + time.perf_counter() - t0)
        rows[-1]["plan"] = rows[-2]["plan"] = (
            f"{plan.get('cell_batch_size') or 'all'} / {plan.get('spot_batch_size') or 'all'}"
        )
    best = best_correlated_spot(model.data.sc_x, model.data.slices[0].x)
    score("baseline: most correlated spot", "–", m.spot_coords[best], m.sc_names, 0.0)
    lines = report.heading(
        "Accuracy at scale",
        f"`benchmarks/bench_scale_accuracy.py --size {a.size} --steps "
        f"{' '.join(map(str, a.steps))}`: synthetic tissue ({sc.n_obs} cells, {st.n_obs} "
        f"spots, {a.genes} genes), automatic batches, seed {a.seed}, device {a.device}, "
        f"{time.strftime('%Y-%m-%d')}. MAE in grid steps; seconds = training + readout.",
    )
    header = ["readout", "steps", "batches (cells / spots)", "MAE", "MAE outside spots"]
    cells = [
        [r["readout"], r["steps"], r.get("plan", "–"), f"{r['mae']:.2f}"]
        + [f"{r['mae_outside']:.2f}", f"{r['hit50']:.2f}", f"{r['seconds']:.0f}"]
        for r in rows
    ]
    report.write_report(a.out, lines + report.table([*header, "hit@50", "seconds"], cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
