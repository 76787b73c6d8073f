#!/usr/bin/env python
r"""Calibration of :meth:`stemmap.StemMapping.placement_uncertainty` on the semi-simulations.

For every shared single-cell-resolution data set (osmFISH cortex, seqFISH embryo), every split
of ``lib.data.prepare_dataset`` asked for and every seed, a ``preset="quick"`` model is trained
(threads 1) and its mapping's regions are scored against the cells' true positions:

- ``coverage``: share of cells whose true position lies within their radius of their
  pseudo-coordinate (:attr:`~stemmap.StemMapping.coords`), at each level (target at 0.9:
  0.85-0.95 on every table, issue 27);
- ``uncalibrated``: the same for the untempered placement C₁ (the radius holding ``level`` of
  C₁, plus half the median spot spacing: τ = 1 of ``NOTES.md``);
- ``median_radius``: median radius in grid steps (smaller is better at equal coverage);
  ``oracle_radius``: the ``level`` quantile of the placement errors (grid steps), the one
  constant radius that would cover exactly ``level`` (it needs the truth);
- ``spearman``: Spearman correlation of the radius with the placement error (how well the
  radius ranks the cells).

On ``cross_region`` the mapped cells lie in a half of the section that no spot covers: the
placement cannot be right there, and the coverage says how much the regions miss it.

Usage::

    .venv/bin/python benchmarks/bench_uncertainty.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.spatial import cKDTree
from scipy.stats import spearmanr

from lib import report
from lib.data import SimSettings, add_data_args, prepare_dataset
from lib.environments import RESULTS

SPLITS = ["disjoint", "standard", "cross_region", "disjoint_platform"]
LEVELS = [0.5, 0.8, 0.9]


def uncalibrated(C1: np.ndarray, xy: np.ndarray, Y: np.ndarray, level: float) -> np.ndarray:
    """Radius holding ``level`` of each row of C₁ around ``xy``, plus half the spot spacing."""
    d = np.sqrt(((xy[:, None, :] - Y[None]) ** 2).sum(-1))
    order = np.argsort(d, axis=1)
    cs = np.cumsum(np.take_along_axis(C1, order, axis=1), axis=1)
    k = np.minimum((cs < level * cs[:, -1:]).sum(axis=1), Y.shape[0] - 1)
    nn, _ = cKDTree(Y).query(Y, k=2)
    return np.take_along_axis(np.sort(d, axis=1), k[:, None], axis=1)[:, 0] + 0.5 * np.median(
        nn[:, 1]
    )


def run_one(path: Path, split: str, seed: int, levels: list[float]) -> list[dict]:
    import stemmap

    with tempfile.TemporaryDirectory() as tmp:
        data = prepare_dataset(path, SimSettings(), Path(tmp), split)
    model = stemmap.STEM(
        data["sc"], data["st"], spatial_key="spatial", alpha=0.5, seed=seed, threads=1
    )
    model.train(preset="quick", progress=False)
    m = model.mapping()
    keep = pd.Index(data["sc_names"]).get_indexer(m.sc_names)
    err = np.linalg.norm(data["true_coords"][keep] - m.coords, axis=1)
    step = data["step"]
    C1 = m.placement
    rows = []
    for level in levels:
        t0 = time.perf_counter()
        r = m.placement_uncertainty(level)
        sec = time.perf_counter() - t0
        rows.append(
            {
                "table": data["name"],
                "dataset": data["dataset"],
                "split": split,
                "seed": seed,
                "level": level,
                "coverage": float(np.mean(err <= r)),
                "uncalibrated": float(
                    np.mean(err <= uncalibrated(C1, m.coords, m.spot_coords, level))
                ),
                "median_radius": float(np.median(r) / step),
                "oracle_radius": float(np.quantile(err, level) / step),
                "spearman": float(spearmanr(r, err)[0]),
                "cells": m.n_cells,
                "spots": m.n_spots,
                "seconds": sec,
            }
        )
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()})
    return rows


def span(v: pd.Series, spec: str = ".3f") -> str:
    """Mean (min-max) over seeds."""
    if len(v) == 1:
        return format(v.iloc[0], spec)
    return f"{format(v.mean(), spec)} ({format(v.min(), spec)}-{format(v.max(), spec)})"


def write_md(df: pd.DataFrame, path: Path, load: tuple[float, float]) -> None:
    seeds = sorted(df["seed"].unique())
    lines = report.heading(
        "Calibrated placement uncertainty (issue 27)",
        report.generated("bench_uncertainty.py"),
        f". Machine: {report.machine_description()}; torch threads 1; load average "
        f'{report.load_span(*load)}; seeds {", ".join(map(str, seeds))}; `preset="quick"`. ',
        "Cells: mean (min-max) over seeds. Coverage = share of cells whose true position is "
        "within the radius (target at level 0.9: 0.85-0.95); radii in grid steps; oracle = the "
        "constant radius that covers exactly `level` (needs the truth). `cross_region`: the "
        "cells lie where no spot is (placement cannot be right; not a placement table).",
    )
    for level in sorted(df["level"].unique(), reverse=True):
        sub = df[df["level"] == level]
        lines += [f"## Level {level:g}", ""]
        body = []
        for table, g in sub.groupby("table", sort=False):
            body.append(
                [
                    table,
                    span(g["coverage"]),
                    span(g["uncalibrated"]),
                    span(g["median_radius"], ".2f"),
                    span(g["oracle_radius"], ".2f"),
                    span(g["spearman"], ".2f"),
                ]
            )
        lines += report.table(
            [
                "table",
                "coverage",
                "uncalibrated C₁",
                "median radius",
                "oracle constant",
                "Spearman(radius, error)",
            ],
            body,
        )
        lines.append("")
    report.write_report(path, lines, echo=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_args(p, SPLITS, [0])
    p.add_argument("--levels", nargs="+", type=float, default=LEVELS)
    p.add_argument("--out", type=Path, default=RESULTS / "issue27")
    args = p.parse_args()
    torch.set_num_threads(1)
    load0 = os.getloadavg()[0]
    rows = []
    for seed in args.seeds:
        for path in args.datasets:
            for split in args.splits:
                rows += run_one(path, split, seed, args.levels)
    df = pd.DataFrame(rows)
    report.write_csv(df, args.out / "uncertainty.csv")
    write_md(df, args.out / "uncertainty.md", (load0, os.getloadavg()[0]))


if __name__ == "__main__":
    main()
