#!/usr/bin/env python
r"""Held-out-gene benchmark on a real cross-platform pair (no true cell positions).

A separate scRNA-seq reference is mapped onto real spots, as users do, and each mapping is
judged by the spatial pattern it predicts for genes the method did not see
(``../shared/docs/heldout-genes.md``; Tangram's validation):

1. Shared genes G: genes of both files with counts in >= 1 cell and >= 5 spots.
2. G is split into k folds (``--folds`` 5, ``--fold-seed`` 0). For each fold F every method
   gets the SC data with all its genes and the ST data restricted to G \\ F, and returns a
   cells × spots mapping (the drivers of ``run_benchmark.py``, same subprocess protocol and
   environments).
3. Prediction: A = the mapping as spots × cells with rows normalised to sum 1;
   P = A · X_sc[:, F], X_sc = log1p(10,000 · counts / the cell's total).
4. Truth: log1p(10,000 · counts / the spot's total) of the genes of F.
   Totals are ``obs["nUMI"]`` (genome-wide UMI) where the file has it, else the row sums.
5. Per held-out gene: Spearman and Pearson correlation of P and the truth across spots;
   median and mean over all genes of all folds, fraction with Spearman > 0.3.
6. Controls: a correlation baseline (each spot's 50 most correlated cells on the training
   genes, weights ∝ exp(r / 0.05)) and a spatial-signal control (each gene vs the mean of
   its 6 nearest spots, no method involved).

All methods run on the same folds in one run. Usage::

    .venv/bin/python benchmarks/bench_heldout.py                      # all methods, seed 0
    .venv/bin/python benchmarks/bench_heldout.py --seeds 0 1 2 --methods stemmap tacco

Results: ``results/heldout.md`` (summary), ``results/heldout.csv`` (one row per method ×
seed), ``results/heldout_genes.csv`` (one row per method × seed × gene); driver inputs,
outputs and logs under ``cache/heldout_<name>/fold<i>/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib import report
from lib.data import fold_inputs, heldout_data, heldout_pair
from lib.environments import CACHE, RESULTS
from lib.methods import METHODS, label
from lib.runner import RunOptions, load_average, run_method
from lib.scoring import corr_baseline, gene_corr, predict, spatial_control, summarise_heldout

logger = logging.getLogger("heldout")

#: methods that run through a driver (the controls are computed here)
DRIVER_METHODS = [
    "stemmap",
    "stemmap_fp32",
    "stemmap_log",
    "stemmap_paper_readout",
    "stemmap_paper",
    "stemmap_sigma05",
    "stemmap_quick",
    "tacco",
    "moscot",
    "tangram",
    "novosparc",
    "baseline",
    "stem_ref",
]
CONTROLS = {
    "corr_top50": "correlation baseline (top-50 cells per spot, exp(r / 0.05))",
    "spatial_control": "spatial-signal control (mean of the 6 nearest spots)",
}


def write_markdown(
    summary: pd.DataFrame, data: dict[str, Any], args: argparse.Namespace, path: Path
) -> None:
    """Write the summary table with the data, the folds and the machine."""

    def fmt(v: pd.Series, d: int = 3) -> str:
        return report.mean_sd(v, f".{d}f")

    lines = [
        "# Held-out-gene benchmark (real Visium hippocampus + scRNA-seq reference)",
        "",
        report.generated("bench_heldout.py") + ".",
        "",
        f"- Data: `{Path(args.st).name}` ({data['st'].n_obs} spots) and `{Path(args.sc).name}` "
        f"({data['sc'].n_obs} cells); {data['n_shared']} shared genes, {len(data['genes'])} "
        f"with counts in >= 1 cell and >= {args.min_spots} spots; {args.folds} folds "
        f"(fold seed {args.fold_seed})"
        + (f", scored on folds {args.only_folds} only" if args.only_folds is not None else "")
        + "; every method sees all SC genes and the other folds' ST genes.",
        f"- Machine: {report.machine_description(args.device)}; load average (1 min) at start / "
        f"end {args.load_start:.1f} / {load_average():.1f} (shared machine: times are "
        f"comparable within this run only). Epochs {args.epochs}; method seeds {args.seeds}.",
        "- Scores over all held-out genes of all folds (per-gene correlation across spots of "
        "the predicted and the measured log-normalised expression); values are mean ± sd over "
        "seeds. `fit s`: the method's fitting time summed over the folds.",
        "",
        "| method | median Spearman | mean Spearman | median Pearson | mean Pearson | "
        "frac. Spearman > 0.3 | genes (NaN) | fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = summary.groupby("method", sort=False)["spearman_median"].mean()
    for method in order.sort_values(ascending=False).index:
        r = summary[summary["method"] == method]
        lines.append(
            "| "
            + " | ".join(
                [
                    CONTROLS.get(method) or label(method),
                    fmt(r["spearman_median"]),
                    fmt(r["spearman_mean"]),
                    fmt(r["pearson_median"]),
                    fmt(r["pearson_mean"]),
                    fmt(r["frac_spearman_gt_0_3"]),
                    f"{int(r['n_genes'].iloc[0])} ({int(r['n_nan'].max())})",
                    fmt(r["fit_s"], 1),
                ]
            )
            + " |"
        )
    if args.failures:
        lines += ["", "Failed runs:", ""] + [f"- {f}" for f in args.failures]
    lines.append("")
    path.write_text("\n".join(lines))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sc, st = heldout_pair()
    p.add_argument("--st", type=Path, default=st)
    p.add_argument("--sc", type=Path, default=sc)
    p.add_argument(
        "--methods",
        nargs="+",
        default=["stemmap", "stemmap_sigma05", "stemmap_paper", "tacco", "moscot", "tangram"]
        + ["novosparc", "baseline"],
        choices=DRIVER_METHODS,
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--epochs", type=int, default=400)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--fold-seed", type=int, default=0)
    p.add_argument(
        "--only-folds",
        nargs="+",
        type=int,
        default=None,
        help="score only these folds (e.g. a partial run); the table says which",
    )
    p.add_argument("--min-spots", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per method run")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--cache", type=Path, default=CACHE)
    p.add_argument("--reuse", action="store_true", help="reuse cached driver outputs")
    p.add_argument(
        "--reread", action="store_true", help="read saved stemmap models out again (no training)"
    )
    p.add_argument(
        "--cached-only",
        nargs="*",
        default=[],
        metavar="METHOD",
        help="methods taken only from cached outputs; folds without one are left out for that "
        "method (the table's gene count shows it)",
    )
    args = p.parse_args(argv)
    for f in (args.st, args.sc):
        if not f.exists():
            p.error(f"{f} not found; pass --st/--sc or set STEMMAP_SHARED_DATA")
    if args.folds < 2:
        p.error(f"--folds must be >= 2; found {args.folds}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every method on every fold; write the per-gene scores and the summary."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    args.load_start = load_average()
    args.failures = []
    opts = RunOptions(
        args.epochs, args.device, args.timeout, args.reuse, args.reread, args.cached_only
    )
    data = heldout_data(args.sc, args.st, args.folds, args.fold_seed, args.min_spots)
    logger.info(
        "%d genes in %d folds; %d cells, %d spots",
        len(data["genes"]),
        args.folds,
        data["sc"].n_obs,
        data["st"].n_obs,
    )
    genes = np.asarray(data["genes"])
    rows: list[pd.DataFrame] = []

    def record(method: str, seed: int, held: np.ndarray, pred: np.ndarray, fit_s: float) -> None:
        pe, spr = gene_corr(pred, data["x_st"][:, held])
        rows.append(
            pd.DataFrame(
                {
                    "method": method,
                    "seed": seed,
                    "gene": genes[held],
                    "fold": data["fold_of"][held],
                    "spearman": spr,
                    "pearson": pe,
                    "fit_s": [fit_s] + [0.0] * (int(held.sum()) - 1),
                }
            )
        )

    for fold in args.only_folds if args.only_folds is not None else range(args.folds):
        held = data["fold_of"] == fold
        fd = fold_inputs(data, fold, args.cache / f"heldout_{args.st.stem}" / f"fold{fold}")
        x_held = data["x_sc"][:, held]
        # controls: no driver, no seed
        t0 = time.perf_counter()
        w = corr_baseline(data["x_sc"][:, ~held], data["x_st"][:, ~held])
        record("corr_top50", 0, held, predict(w, x_held), time.perf_counter() - t0)
        truth = data["x_st"][:, held]
        record("spatial_control", 0, held, spatial_control(data["coords"], truth), 0.0)
        for method in args.methods:
            for seed in args.seeds:
                fcache = Path(fd["sc_path"]).parent
                src = (METHODS[method].source or (method,))[0]
                if method in args.cached_only and not (fcache / f"{src}_seed{seed}.npz").exists():
                    args.failures.append(f"{method} seed {seed} fold {fold}: not run (no cache)")
                    continue
                row, res = run_method(method, fd, seed, opts, fcache)
                if res is None:
                    args.failures.append(f"{method} seed {seed} fold {fold}: {row['status']}")
                    continue
                record(method, seed, held, predict(res["sc_to_st"], x_held), row["train_s"])
                logger.info(
                    "fold %d / %s / seed %d: done (%.1f s)", fold, method, seed, row["train_s"]
                )
    per_gene = pd.concat(rows, ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_csv(per_gene, args.out / "heldout_genes.csv")
    summary = summarise_heldout(per_gene)
    report.write_csv(summary, args.out / "heldout.csv")
    write_markdown(summary, data, args, args.out / "heldout.md")
    logger.info("wrote %s", args.out / "heldout.md")
    print(summary.to_string())
    return 0 if not args.failures else 1


if __name__ == "__main__":
    sys.exit(main())
