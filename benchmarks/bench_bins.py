#!/usr/bin/env python
r"""Accuracy at bin resolution (issue 28): Visium-HD-like bins from the single-cell sets.

For every shared single-cell-resolution data set (osmFISH cortex, seqFISH embryo) the cells
are split at random in half (split seed 0, as the yardstick's ``disjoint`` split): half A is
captured in square bins by :func:`stemmap.simulate.bin_capture`, half B is the SC reference
that is mapped (no mapped cell's counts are in any bin). Two bin sizes of one capture:

- ``bins8``, "8 µm-like": side ``s = sqrt(convex-hull area of A / number of A cells)``,
  about one cell per bin; counts thinned binomially per cell to 100 counts per occupied bin
  on average (the capture rate is recorded), bins within one bin of a cell kept, so many
  bins are empty or near-empty;
- ``bins16``, "16 µm-like": side ``2 s`` over the same thinned cells (same capture rate and
  seed: each bin is the sum of 2 × 2 ``bins8`` bins), about four cells per bin.

Bins without any count carry no expression: the methods are given the bins with at least
one count (stemmap drops all-zero spots itself; TACCO's transport and the correlation
baselines cannot normalise them), the near-empty ones included. Scores as in
``bench_yardstick.py`` (its ``run_one``): hit@50 and MAE of the SC cells' positions (MAE in
``bins8`` sides for both sizes), cell-type PCC and composition JSD over the bins given
(every such bin holds cells; JSD is undefined for a bin without cells, which are not
given), held-out genes by the yardstick's protocol (5 folds, fold seed 0, genes with counts
in >= 1 cell and >= 5 bins).

Usage::

    .venv/bin/python benchmarks/bench_bins.py --seeds 0 --deadline 01:00
    .venv/bin/python benchmarks/bench_bins.py --tables-only
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import ConvexHull, cKDTree

import bench_yardstick as ys
from lib import report
from lib.data import (
    add_data_args,
    dense,
    lognorm,
    read_h5ad,
    semisim_fold_inputs,
    semisim_folds,
    write_inputs,
)
from lib.environments import CACHE, RESULTS, check_stemmap
from lib.runner import RunOptions, next_time

logger = logging.getLogger("bins")

#: bin sizes: name → (side in units of the ~1-cell side, label)
SIZES = {"bins8": (1, "8 µm-like (~1 cell per bin)"), "bins16": (2, "16 µm-like (~4 cells)")}
DEFAULT_METHODS = ["stemmap_y", "stemmap_quick_y", "tacco", "baseline", "corr_top50"]


def prepare_bins(path: Path, size: str, args: argparse.Namespace) -> dict[str, Any]:
    """Build one bin table: capture half the cells in bins, the other half is the SC input.

    Returns
    -------
    dict
        What ``bench_yardstick.run_one`` needs (as :func:`lib.data.prepare_dataset`), plus
        the capture's numbers (``bins``).
    """
    from stemmap import simulate

    adata = read_h5ad(path)
    rng = np.random.default_rng(args.split_seed)
    perm = rng.permutation(adata.n_obs)
    half = adata.n_obs // 2
    part_a, part_b = np.sort(perm[:half]), np.sort(perm[half:])
    a = adata[part_a].copy()
    xy_a = np.asarray(a.obsm["spatial"], dtype=np.float64)[:, :2]
    side = float(np.sqrt(ConvexHull(xy_a).volume / a.n_obs))
    # the 8 µm-like capture fixes the capture rate; the 16 µm-like bins are the same molecules
    _, st8 = simulate.bin_capture(a, side, umis_per_bin=args.umis, seed=args.split_seed)
    rate = float(st8.uns["simulation"]["capture_rate"])
    factor = SIZES[size][0]
    if factor == 1:
        st = st8
    else:
        _, st = simulate.bin_capture(a, factor * side, capture_rate=rate, seed=args.split_seed)
    sim = dict(st.uns["simulation"])
    given = st.obs["total_counts"].to_numpy() > 0
    st_in = st[given].copy()
    sc = adata[part_b].copy()
    sc.obsm["spatial_true"] = np.asarray(sc.obsm["spatial"], dtype=np.float64)[:, :2]
    del sc.obsm["spatial"]
    labels = sc.obs["celltype"].astype(str).to_numpy()
    coords = np.asarray(st_in.obsm["spatial"])
    n_per = float(st_in.obs["n_cells"].mean())
    name = f"{path.stem}_{size}"
    paths = write_inputs(
        sc.X,
        sc.obs_names,
        sc.var_names,
        st_in.X,
        st_in.obs_names,
        coords,
        args.cache / name,
        sc_obs=pd.DataFrame({"celltype": labels}, index=sc.obs_names),
        st_uns={"mean_cells_per_spot": n_per},
    )
    d, _ = cKDTree(coords).query(coords, k=2)
    totals = st_in.obs["total_counts"].to_numpy()
    return {
        "name": name,
        "dataset": path.stem,
        "split": size,
        **paths,
        "true_coords": sc.obsm["spatial_true"],
        "outside": np.ones(sc.n_obs, dtype=bool),
        "labels": labels,
        "label_key": "celltype",
        "proportions": st_in.obsm["proportions"],
        "spot_coords": coords,
        "step": side,  # MAE in 8 µm-like bin sides for both sizes
        "sigma": 0.5 * float(d[:, 1].mean()),
        "sc_names": np.asarray(sc.obs_names.astype(str)),
        "n_cells": sc.n_obs,
        "n_spots": st_in.n_obs,
        "n_genes": st_in.n_vars,
        "n_in_spots": int(a.n_obs),
        "mean_cells_per_spot": n_per,
        "positions": True,
        "simulation": sim,
        "bins": {
            "side": factor * side,
            "capture_rate": rate,
            "n_bins": int(st.n_obs),
            "n_no_cell": int(sim["n_bins_no_cell"]),
            "n_no_counts": int(sim["n_bins_no_counts"]),
            "n_given": int(st_in.n_obs),
            "cells_per_occupied": float(sim["mean_cells_per_occupied_bin"]),
            "counts_median": float(np.median(totals)),
            "frac_le5": float((totals <= 5).mean()),
            "cells_a": int(a.n_obs),
        },
        "sc": sc,
        "st": st_in,
    }


def prepare(path: Path, size: str, args: argparse.Namespace) -> tuple:
    """Build a table's data, its held-out folds and the folds' driver inputs."""
    data = prepare_bins(path, size, args)
    folds = semisim_folds(data, args.folds, args.fold_seed, args.min_spots)
    c_sc, c_st = dense(data["sc"].X), dense(data["st"].X)
    folds["x_sc_all"] = lognorm(c_sc, c_sc.sum(axis=1))
    folds["x_st_all"] = lognorm(c_st, c_st.sum(axis=1))
    cache = args.cache / data["name"]
    fold_data = [semisim_fold_inputs(data, folds, f, cache / f"fold{f}") for f in range(args.folds)]
    data["n_heldout"] = len(folds["genes"])
    return data, folds, fold_data


def _cell(row: pd.Series, c: str, spec: str) -> str:
    m = row.get(f"{c}_mean")
    return "–" if m is None or pd.isna(m) else format(m, spec)


def write_markdown(df: pd.DataFrame, summ: pd.DataFrame, cases: list, args: Any) -> None:
    """Write bins.md: settings, machine and load, one table per data set × bin size."""
    loads = pd.concat([df.get("load_start", pd.Series()), df.get("load_end", pd.Series())])
    loads = loads.dropna()
    load = (
        f"{loads.min():.1f}–{loads.max():.1f} (median {loads.median():.1f}) on {args.cores} cores"
        if not loads.empty
        else "–"
    )
    lines = report.heading(
        "Accuracy at bin resolution (issue 28): Visium-HD-like bins, stemmap vs TACCO and "
        "the baselines",
        report.generated("bench_bins.py", args.argv) + ".",
    )
    lines += [
        f"- Machine: {args.machine}; device cpu; torch threads 1 per run, one run at a time. "
        f"Load average (1 min) during the runs: {load} (the machine was shared with other "
        "work: times are not comparable with other tables).",
        f"- Data: each shared set split at random in half (split seed {args.split_seed}); one "
        "half captured in square bins (`stemmap.simulate.bin_capture`), the other half is the "
        "SC reference that is mapped (no mapped cell is in any bin). 8 µm-like side "
        "s = sqrt(hull area / cells), 16 µm-like 2 s over the same thinned molecules; counts "
        f"thinned binomially per cell to {args.umis:g} counts per occupied 8 µm-like bin; bins "
        "within 1 bin of a cell kept. Methods get the bins with >= 1 count.",
        f"- stemmap default {args.epochs} epochs, preset quick its own schedule; method seeds "
        f"{args.seeds} (TACCO, baseline and the correlation baseline are deterministic: first "
        "seed only).",
        "- hit@50: mean over cells of |true 50-NN ∩ predicted 50-NN| (random level 2,500 / "
        "(M − 1)); MAE in 8 µm-like bin sides (both sizes); PCC: mean over cell types of "
        "corr(mapped mass of the type per bin, true proportion); JSD: mean over bins of the "
        "Jensen–Shannon distance (base 2) of the mapped and true composition (bins without "
        "cells are not given, so none is excluded); held-out genes: the yardstick's protocol "
        f"({args.folds} folds, median per-gene Spearman across bins); `spatial control`: "
        "each gene vs the mean of its 6 nearest bins.",
        "",
    ]
    header = ["method", "seeds", "hit@50", "MAE (8 µm bins)", "cell-type PCC", "JSD"]
    header += ["held-out median Spearman", "s (full map)", "s (folds)", "mean rank (n)", "status"]
    for data in cases:
        b = data["bins"]
        if summ.empty:
            sub = summ
        else:
            sub = summ[(summ["dataset"] == data["dataset"]) & (summ["split"] == data["split"])]
        ctrl = df[
            (df["method"] == "spatial_control")
            & (df["dataset"] == data["dataset"])
            & (df["split"] == data["split"])
        ]
        lines += [
            f"## {data['dataset']}, {SIZES[data['split']][1]}",
            "",
            f"{data['n_cells']} SC cells × {data['n_genes']} genes mapped onto {b['n_given']} "
            f"bins with counts of {b['n_bins']} kept ({b['n_no_cell']} without a cell, "
            f"{b['n_no_counts']} without counts); side {b['side']:.4g}; "
            f"{b['cells_per_occupied']:.2f} cells per occupied bin ({b['cells_a']} cells "
            f"captured); capture rate {b['capture_rate']:.3f}; median {b['counts_median']:.0f} "
            f"counts per given bin, {100 * b['frac_le5']:.0f}% with <= 5; "
            f"{data['n_heldout']} held-out genes"
            + (f"; spatial control {ctrl['spearman_median'].iloc[0]:.3f}" if not ctrl.empty else "")
            + ".",
            "",
        ]
        rows = []
        for _, r in sub.sort_values("mean_rank").iterrows():
            status = r["status"] if r["status"] == "ok" else str(r["status"])[:100]
            if r["heldout_status"] != "ok":
                status += f"; held-out: {str(r['heldout_status'])[:100]}"
            rows.append(
                [
                    ys.method_label(r["method"]),
                    r["seeds"],
                    _cell(r, "hit50", ".2f"),
                    _cell(r, "mae", ".2f"),
                    _cell(r, "pcc", ".3f"),
                    _cell(r, "jsd", ".3f"),
                    _cell(r, "spearman_median", ".3f"),
                    f"{r['train_s_mean']:.1f}" if pd.notna(r["train_s_mean"]) else "–",
                    f"{r['heldout_fit_s_mean']:.1f}" if pd.notna(r["heldout_fit_s_mean"]) else "–",
                    f"{r['mean_rank']:.2f} ({int(r['n_ranked'])})"
                    if pd.notna(r["mean_rank"])
                    else "–",
                    status,
                ]
            )
        lines += [*report.table(header, rows), ""]
    for note in args.notes:
        lines += [note, ""]
    report.write_report(args.out / f"{args.stem}.md", lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_args(p, list(SIZES), [0], split_choices=list(SIZES))
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    p.add_argument("--epochs", type=int, default=400, help="stemmap default's epochs")
    p.add_argument(
        "--heldout-last",
        nargs="*",
        default=["stemmap_y"],
        help="methods whose held-out folds run after every other method's",
    )
    p.add_argument("--umis", type=float, default=100.0, help="counts per occupied 8 µm bin")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--fold-seed", type=int, default=0)
    p.add_argument("--min-spots", type=int, default=5)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--timeout", type=int, default=1800, help="seconds per driver run")
    p.add_argument("--deadline", default=None, help="HH:MM (UTC): start no run after this")
    p.add_argument("--reuse", action="store_true", help="reuse cached driver outputs")
    p.add_argument("--tables-only", action="store_true", help="tables from <out>/<stem>.csv")
    p.add_argument("--note", action="append", default=[], dest="notes", help="a note line")
    p.add_argument("--stem", default="bins")
    p.add_argument("--out", type=Path, default=RESULTS / "issue28")
    p.add_argument("--cache", type=Path, default=CACHE / "issue28_bins")
    args = p.parse_args(argv)
    raw = sys.argv[1:] if argv is None else argv
    # the command line as the report shows it: the notes are printed in the report itself
    args.argv = [
        a for i, a in enumerate(raw) if a != "--note" and (i == 0 or raw[i - 1] != "--note")
    ]
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every method on every table (first seed first), score, rank, write the tables."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    args.machine = report.machine_description("cpu")
    args.cores = os.cpu_count()
    logger.info("machine: %s; %s", args.machine, check_stemmap())
    opts = RunOptions(args.epochs, "cpu", args.timeout, args.reuse)
    deadline = next_time(args.deadline)
    cases = [prepare(path, size, args) for size in args.splits for path in args.datasets]
    for data, _, _ in cases:
        logger.info("%s: %s", data["name"], data["bins"])
    csv = args.out / f"{args.stem}.csv"
    if args.tables_only:
        df = pd.read_csv(csv)
    else:
        rows = [ys.spatial_control_row(d, f) for d, f, _ in cases]
        skipped = []
        # phase 1: every table's full mapping (placement, compositions) first; phase 2: the
        # held-out folds, reusing phase 1's outputs, the slow methods (--heldout-last) after
        # every other method's folds on every table (a partial run has the most tables)
        slow = [m for m in args.methods if m in args.heldout_last]
        fast = [m for m in args.methods if m not in args.heldout_last]
        plan = [
            ("mapping", seed_i, seed, case, m)
            for seed_i, seed in enumerate(args.seeds)
            for case in cases
            for m in args.methods
        ]
        by_size = sorted(cases, key=lambda c: c[0]["n_spots"])  # slow methods: small first
        plan += [
            ("heldout", seed_i, seed, case, m)
            for seed_i, seed in enumerate(args.seeds)
            for group, order in ((fast, cases), (slow, by_size))
            for m in group
            for case in order
        ]
        for phase, seed_i, seed, (data, folds, fold_data), m in plan:
            key = (data["dataset"], data["split"], m, seed)

            if seed_i > 0 and ys.deterministic(m):
                continue
            if deadline is not None and dt.datetime.now(dt.timezone.utc) >= deadline:
                skipped.append(f"{data['name']} / {m} / seed {seed} ({phase})")
                continue
            if phase == "heldout" and deadline is not None:  # folds ≈ folds × the full map
                full = [
                    r for r in rows if (r["dataset"], r["split"], r["method"], r["seed"]) == key
                ]
                need = args.folds * float(full[0].get("train_s") or 0.0) if full else 0.0
                if dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=need) > deadline:
                    skipped.append(f"{data['name']} / {m} / seed {seed} ({phase}: ~{need:.0f} s)")
                    continue
            run_opts = opts if phase == "mapping" else replace(opts, reuse=True)
            fd = fold_data if phase == "heldout" else []
            row, _ = ys.run_one(m, data, folds, fd, seed, run_opts, args.cache / data["name"])
            if phase == "mapping":
                row["heldout_status"] = "not run"
            row.update({f"bins_{k}": v for k, v in data["bins"].items()})
            rows = [r for r in rows if (r["dataset"], r["split"], r["method"], r["seed"]) != key]
            report.record(rows, row, data["name"])
            report.write_csv(pd.DataFrame(rows), csv)
        df = pd.DataFrame(rows)
        df.insert(0, "machine", args.machine)
        report.write_csv(df, csv)
        if skipped:
            args.notes = [
                *args.notes,
                f"Not run (would end after --deadline {args.deadline} UTC; estimated time): "
                + "; ".join(skipped)
                + ".",
            ]
    summ = ys.summarise(df)
    write_markdown(df, summ, [c[0] for c in cases], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
