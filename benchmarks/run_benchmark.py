#!/usr/bin/env python
"""Semi-simulation benchmark: stemmap vs the reference STEM, Tangram and a baseline.

For every single-cell-resolution data set (``.h5ad`` with counts in ``X``, coordinates in
``obsm["spatial"]`` and labels in ``obs["celltype"]``) the script builds pseudo spots
(:func:`stemmap.simulate.pseudo_spots`, the paper's 30 × 40 grid), hides the cell
positions, runs every method in its own subprocess (with a timeout) and scores the
mapping against the truth with :mod:`stemmap.metrics`:

- hit number at K = 10, 25, 50, 200 from the predicted coordinates and, for the STEM
  family, from the SC embedding's inner-product adjacency;
- MAE in units of the grid step (geometric mean of the x and y steps);
- cell-type PCC (mean ± sd over cell types) and the spots' composition JSD (mean
  Jensen–Shannon distance of each spot's predicted and true cell-type composition);
- training wall time and peak memory (peak RSS of the method's process, including the
  interpreter and its libraries; CUDA peak allocation when on a GPU).

Methods
-------
``stemmap``  this project (``stemmap.STEM``), run with the interpreter running this script.
``stem_ref`` the authors' reference, PyPI ``scSTEM==0.0.2``, installed unmodified into
             ``benchmarks/.envs/scstem`` by this script on first use.
``tangram``  PyPI ``tangram-sc`` in ``benchmarks/.envs/tangram``.
``tacco``    PyPI ``tacco==0.5.0`` in ``benchmarks/.envs/tacco``: ``tacco.tl.annotate(spots,
             reference, "cell", method="OT", multi_center=None)``, every cell its own category.
``moscot``   PyPI ``moscot==0.5.2`` in ``benchmarks/.envs/moscot``: its spatial mapping
             tutorial (``MappingProblem``, SC PCA, ``xy_callback="local-pca"``, defaults).
``baseline`` each cell placed at its most expression-correlated spot.

Each method environment gets ``torch==2.13.0`` first (the CPU wheel; an unpinned torch
would pull a multi-GB CUDA build). Every method gets the same seeds and epochs; the STEM
implementations get the same σ (half the mean nearest-neighbour spot distance).

Usage::

    .venv/bin/python benchmarks/run_benchmark.py                 # all data, 400 epochs
    .venv/bin/python benchmarks/run_benchmark.py --epochs 50 --methods stemmap baseline
    .venv/bin/python benchmarks/run_benchmark.py --datasets my.h5ad --device cuda

The methods are the table in ``lib/methods.py``; the data, runner, scoring and report code
is in ``lib/``. Results go to ``benchmarks/results/results.{md,csv}`` and
``benchmarks/results/<dataset>_positions.png``; inputs, outputs and logs of each run to
``benchmarks/cache/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib import report
from lib.data import SimSettings, case_name, data_dir, prepare_dataset
from lib.environments import CACHE, RESULTS, check_stemmap
from lib.methods import DEFAULT_METHODS, METHODS, label
from lib.runner import RunOptions, load_average, run_method
from lib.scoring import KS, score

logger = logging.getLogger("benchmark")


def write_markdown(
    df: pd.DataFrame, datasets: list[dict[str, Any]], args: argparse.Namespace, path: Path
) -> None:
    """Write the results table of each data set, with the settings and the machine."""
    lines = [
        "# Semi-simulation benchmark",
        "",
        report.generated("run_benchmark.py") + ".",
        "",
        f"- Machine: {args.machine}; device `{args.device}`. Load average (1 min) at the start "
        f"and end of the run: {args.load_start:.1f} / {load_average():.1f} (times measured "
        "on a shared machine are only comparable within one run).",
        f"- Settings: {args.epochs} epochs for every method; seeds {args.seeds}; pseudo spots "
        f"on a {args.grid[0]} × {args.grid[1]} grid, window {args.window} of the grid step, "
        f"spots with < {args.min_cells} cells dropped"
        + (f"; Gaussian noise R = {args.noise} on the SC counts" if args.noise > 0 else "")
        + ".",
        "- Hit number(K): mean over cells of |true K-NN ∩ predicted K-NN|, the cell itself "
        "excluded, ties broken at random; `coords` = from predicted coordinates; `adj` = from "
        "the SC–SC adjacency the method outputs (stemmap: `sc_adjacency()`'s default, the "
        "spatial basis for the hybrid readout; the STEM reference and the paper preset: "
        "embedding inner products); `emb` = from the SC embedding's inner products (STEM "
        "family). Random level: K²/(M−1).",
        "- MAE in grid steps (geometric mean of the x/y steps); `MAE outside spots`: over "
        "the cells that are in no pseudo spot (the others' own counts are part of a spot "
        "profile, which favours expression matching; real SC cells are never in the ST "
        "spots). PCC: mean ± sd over cell "
        "types of corr(Σ of the type's mapping rows, true proportion), types present in a "
        "spot only. JSD: mean over spots of the Jensen–Shannon distance (base 2, 0–1; lower "
        "is better) between the spot's cell-type composition in the mapping (its column's "
        "mass per type) and the true one.",
        "- Train s: wall time of training alone; peak MB: peak RSS of the method's process "
        "(interpreter, libraries and data included). Values are mean ± sd over seeds.",
        "",
    ]
    header = ["method", "status"]
    header += [f"hit@{k} coords" for k in KS] + [f"hit@{k} adj" for k in KS]
    header += ["hit@50 emb", "MAE (steps)", "MAE outside spots", "cell-type PCC", "JSD"]
    header += ["train s"]
    header += ["peak MB"]
    for data in datasets:
        sub = df[df["dataset"] == data["name"]]
        m = data["n_cells"]
        if data["split"] == "disjoint":
            about = (
                f"Disjoint cells (split seed {args.split_seed}): {m} SC cells (half B) × "
                f"{data['n_genes']} genes mapped onto {data['n_spots']} pseudo spots made from "
                f"the other half (A; {data['n_in_spots']} of its cells in spots); no mapped "
                "cell is in a spot (MAE outside spots = MAE)"
            )
        else:
            about = (
                f"{m} cells × {data['n_genes']} genes, {data['n_spots']} pseudo spots holding "
                f"{data['n_in_spots']} cells ({100 * data['n_in_spots'] / m:.0f}%)"
            )
        rows = []
        for method in args.methods:
            r = sub[sub["method"] == method]
            if not r.empty:
                rows.append(table_row(method, r))
        lines += [
            f"## {data['name']}",
            "",
            about
            + f"; grid step {data['step']:.4g}; σ = {data['sigma']:.4g}. Random hit number: "
            + ", ".join(f"K={k}: {k * k / (m - 1):.2f}" for k in KS)
            + ".",
            "",
            *report.table(header, rows),
            "",
            f"![{data['name']}]({data['name']}_positions.png)",
            "",
        ]
    path.write_text("\n".join(lines))


def table_row(method: str, r: pd.DataFrame) -> list[str]:
    """Format one method's cells: mean ± sd over its seeds that ran."""
    ok = r[r["status"] == "ok"]
    status = "ok" if len(ok) == len(r) else "; ".join(sorted(set(r["status"])))

    def col(name: str, spec: str = ".2f") -> str:
        return report.mean_sd(ok[name], spec) if name in ok else "–"

    cells = [label(method), status]
    cells += [col(f"hit{k}_{kind}") for kind in ("coords", "adjacency") for k in KS]
    cells += [col("hit50_embedding"), col("mae_steps"), col("mae_outside_steps")]
    if "pcc_mean" in ok and ok["pcc_mean"].notna().any():
        cells.append(f"{ok['pcc_mean'].mean():.3f} ± {ok['pcc_sd'].mean():.3f}")
    else:
        cells.append("–")
    cells.append(col("jsd_mean", ".3f"))
    return cells + [col("train_s", ".1f"), col("peak_rss_mb", ".0f")]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--datasets",
        nargs="+",
        type=Path,
        default=None,
        help="single-cell-resolution .h5ad files (default: every .h5ad in "
        "$STEMMAP_SHARED_DATA or ../shared/data)",
    )
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=list(METHODS))
    p.add_argument("--epochs", type=int, default=400)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per method run")
    p.add_argument("--grid", nargs=2, type=int, default=[30, 40])
    p.add_argument("--window", type=float, default=0.55)
    p.add_argument("--min-cells", type=int, default=3)
    p.add_argument("--label-key", default="celltype")
    p.add_argument(
        "--splits",
        nargs="+",
        default=["standard", "disjoint"],
        choices=["standard", "disjoint"],
        help="standard: pseudo spots from all cells, every cell mapped (the paper's); "
        "disjoint: spots from a random half of the cells, the other half mapped (no mapped "
        "cell is in a spot)",
    )
    p.add_argument("--split-seed", type=int, default=0, help="seed of the disjoint split")
    p.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="Gaussian noise level R on the SC counts (paper: 0.2-0.8)",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--cache", type=Path, default=CACHE)
    p.add_argument(
        "--cached-only",
        nargs="*",
        default=[],
        metavar="METHOD",
        help="methods to take only from cached outputs (e.g. a slow reference run for one "
        "seed); seeds without a cached output are left out of the tables",
    )
    p.add_argument(
        "--reread",
        action="store_true",
        help="stemmap methods: read saved models (cache/.../<method>_seed<s>.model.pt) out "
        "again with the current code instead of training or reusing their outputs",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="reuse a method's cached output (.npz) instead of running it again; the same "
        "settings are assumed (use it to rebuild the tables or add methods or seeds)",
    )
    args = p.parse_args(argv)
    if args.datasets is None:
        d = data_dir()
        args.datasets = sorted(d.glob("*.h5ad"))
        if not args.datasets:
            p.error(f"no .h5ad files in {d}; pass --datasets or set STEMMAP_SHARED_DATA")
    for f in args.datasets:
        if not f.exists():
            p.error(f"--datasets: {f} not found")
    if args.epochs < 1:
        p.error(f"--epochs must be >= 1; found {args.epochs}")
    if "stem_ref" in args.methods and args.epochs <= 50:
        # The reference's loss ramp is (epoch - 50) / (epochs - 50): a division by zero at 50
        # and a weight above 1 below it. stemmap clips it; use > 50 epochs to compare.
        logger.warning(
            "--epochs %d <= 50: the reference STEM's beta ramp is ill-defined there "
            "(division by zero at 50); use more than 50 epochs",
            args.epochs,
        )
        if args.epochs == 50:
            p.error("--epochs 50 crashes the reference STEM (division by zero); use 51 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every method on every data set × split and seed; write the tables and plots."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.machine = report.machine_description(args.device)
    args.load_start = load_average()
    logger.info("machine: %s; %s", args.machine, check_stemmap())
    sim = SimSettings(
        tuple(args.grid), args.window, args.min_cells, args.label_key, args.split_seed, args.noise
    )
    opts = RunOptions(
        args.epochs, args.device, args.timeout, args.reuse, args.reread, args.cached_only
    )
    rows: list[dict[str, Any]] = []
    datasets = []
    for path, split in [(p, s) for p in args.datasets for s in args.splits]:
        cache = args.cache / case_name(path, split)
        data = prepare_dataset(path, sim, cache, split)
        datasets.append(data)
        logger.info(
            "%s: %d cells, %d spots, %d genes",
            data["name"],
            data["n_cells"],
            data["n_spots"],
            data["n_genes"],
        )
        preds: dict[str, np.ndarray] = {}
        notes: dict[str, str] = {}
        for method in args.methods:
            for seed in args.seeds:
                if method in args.cached_only and not (cache / f"{method}_seed{seed}.npz").exists():
                    logger.info("%s / %s / seed %d: no cached output", data["name"], method, seed)
                    continue
                row, res = run_method(method, data, seed, opts, cache)
                if res is not None:
                    score(row, res, data)
                    if method not in preds:
                        preds[method] = res["coords"]
                        notes[method] = (
                            f"MAE {row['mae_steps']:.2f} steps, hit@25 {row['hit25_coords']:.1f}"
                        )
                    logger.info(
                        "%s / %s / seed %d: hit@25 %.2f, MAE %.2f steps, PCC %.3f, %.1f s",
                        data["name"],
                        method,
                        seed,
                        row["hit25_coords"],
                        row["mae_steps"],
                        row["pcc_mean"],
                        row["train_s"],
                    )
                rows.append(row)
                report.write_csv(pd.DataFrame(rows), args.out / "results.csv")
        labels = {m: label(m) for m in preds}
        png = args.out / f"{data['name']}_positions.png"
        report.plot_positions(data, preds, notes, labels, png)
    df = pd.DataFrame(rows)
    df.insert(0, "machine", args.machine)
    df.insert(1, "device", args.device)
    df.insert(2, "epochs", args.epochs)
    report.write_csv(df, args.out / "results.csv")
    write_markdown(df, datasets, args, args.out / "results.md")
    logger.info("wrote %s and %s", args.out / "results.md", args.out / "results.csv")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
