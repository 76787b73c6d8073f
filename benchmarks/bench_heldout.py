#!/usr/bin/env python
"""Held-out-gene benchmark on a real cross-platform pair (no true cell positions).

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
import datetime as dt
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial import cKDTree
from scipy.stats import rankdata

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run_benchmark as rb  # noqa: E402  (the drivers, environments and caching)

logger = logging.getLogger("heldout")

#: methods that run through a driver (the controls are computed here)
DRIVER_METHODS = [
    "stemmap",
    "stemmap_log",
    "stemmap_paper_readout",
    "stemmap_paper",
    "stemmap_sigma05",
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


def _dense(x: Any) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def lognorm(counts: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """log1p(10,000 · counts / total) per row."""
    t = np.asarray(totals, dtype=np.float64).copy()
    t[t <= 0] = 1.0
    return np.log1p(counts.astype(np.float64) / t[:, None] * 1e4)


def _totals(adata: Any) -> np.ndarray:
    if "nUMI" in adata.obs:
        return adata.obs["nUMI"].to_numpy(dtype=np.float64)
    return _dense(adata.X).sum(axis=1)


def gene_corr(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column Pearson and Spearman correlation (NaN where a column is constant)."""

    def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = a - a.mean(axis=0)
        b = b - b.mean(axis=0)
        den = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, (a * b).sum(axis=0) / den, np.nan)

    return pearson(pred, truth), pearson(rankdata(pred, axis=0), rankdata(truth, axis=0))


def predict(mapping_cells_spots: np.ndarray, x_sc: np.ndarray) -> np.ndarray:
    """Spots × genes prediction: rows of the spots × cells mapping normalised to sum 1."""
    a = np.asarray(mapping_cells_spots, dtype=np.float64).T
    rs = a.sum(axis=1, keepdims=True)
    empty = rs[:, 0] <= 0
    a[empty] = 1.0  # a spot no cell was mapped to predicts the mean cell
    rs[empty] = a.shape[1]
    return (a / rs) @ x_sc


def corr_baseline(x_sc: np.ndarray, x_st: np.ndarray, k: int = 50, tau: float = 0.05) -> np.ndarray:
    """Cells × spots weights: each spot's k most correlated cells, ∝ exp(r / tau)."""
    z = [x - x.mean(axis=1, keepdims=True) for x in (x_sc, x_st)]
    z = [x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) for x in z]
    r = z[1] @ z[0].T  # spots × cells
    k = min(k, r.shape[1])
    top = np.argpartition(-r, k - 1, axis=1)[:, :k]
    w = np.zeros_like(r)
    rows = np.arange(r.shape[0])[:, None]
    rt = r[rows, top]
    w[rows, top] = np.exp((rt - rt.max(axis=1, keepdims=True)) / tau)
    return w.T


def spatial_control(coords: np.ndarray, truth: np.ndarray, k: int = 6) -> np.ndarray:
    """Each spot's value predicted by the mean of its k nearest other spots."""
    _, idx = cKDTree(coords).query(coords, k=k + 1)
    return truth[idx[:, 1:]].mean(axis=1)


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    import anndata as ad

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc = ad.read_h5ad(args.sc)
        st = ad.read_h5ad(args.st)
    shared = [g for g in st.var_names if g in set(sc.var_names)]
    c_sc = _dense(sc[:, shared].X)
    c_st = _dense(st[:, shared].X)
    ok = ((c_sc > 0).sum(axis=0) >= 1) & ((c_st > 0).sum(axis=0) >= args.min_spots)
    genes = [g for g, o in zip(shared, ok) if o]
    rng = np.random.default_rng(args.fold_seed)
    fold_of = np.empty(len(genes), dtype=np.int64)
    fold_of[rng.permutation(len(genes))] = np.arange(len(genes)) % args.folds
    x_sc = lognorm(_dense(sc[:, genes].X), _totals(sc))
    x_st = lognorm(_dense(st[:, genes].X), _totals(st))
    coords = np.asarray(st.obsm["spatial"], dtype=np.float64)[:, :2]
    d, _ = cKDTree(coords).query(coords, k=2)
    return {
        "sc": sc,
        "st": st,
        "genes": genes,
        "n_shared": len(shared),
        "fold_of": fold_of,
        "x_sc": x_sc,
        "x_st": x_st,
        "coords": coords,
        "sigma": 0.5 * float(d[:, 1].mean()),
    }


def fold_inputs(data: dict[str, Any], fold: int, cache: Path) -> dict[str, Any]:
    """Driver inputs of one fold: SC with all genes, ST with the training genes only."""
    import anndata as ad

    cache.mkdir(parents=True, exist_ok=True)
    sc, st = data["sc"], data["st"]
    train = [g for g, f in zip(data["genes"], data["fold_of"]) if f != fold]
    sc_in = ad.AnnData(sp.csr_matrix(_dense(sc.X)), obs=pd.DataFrame(index=sc.obs_names))
    sc_in.var_names = sc.var_names
    st_in = ad.AnnData(sp.csr_matrix(_dense(st[:, train].X)), obs=pd.DataFrame(index=st.obs_names))
    st_in.var_names = pd.Index(train)
    st_in.obsm["spatial"] = data["coords"]
    sc_in.write_h5ad(cache / "sc.h5ad")
    st_in.write_h5ad(cache / "st.h5ad")
    return {
        "name": f"heldout fold {fold}",
        "split": "heldout",
        "sc_path": cache / "sc.h5ad",
        "st_path": cache / "st.h5ad",
        "sigma": data["sigma"],
        "sc_names": np.asarray(sc.obs_names.astype(str)),
        "n_cells": sc.n_obs,
        "n_spots": st.n_obs,
        "spot_coords": data["coords"],
    }


def summarise(genes: pd.DataFrame) -> pd.DataFrame:
    g = genes.groupby(["method", "seed"], sort=False)
    out = g.agg(
        spearman_median=("spearman", "median"),
        spearman_mean=("spearman", "mean"),
        pearson_median=("pearson", "median"),
        pearson_mean=("pearson", "mean"),
        frac_spearman_gt_0_3=("spearman", lambda s: float((s > 0.3).mean())),
        n_genes=("spearman", "size"),
        n_nan=("spearman", lambda s: int(s.isna().sum())),
        fit_s=("fit_s", "sum"),
    )
    return out.reset_index()


def write_markdown(
    summary: pd.DataFrame, data: dict[str, Any], args: argparse.Namespace, path: Path
) -> None:
    def fmt(v: pd.Series, d: int = 3) -> str:
        v = v.dropna()
        if v.empty:
            return "–"
        return f"{v.mean():.{d}f}" + (f" ± {v.std():.{d}f}" if len(v) > 1 else "")

    labels = {m: rb.METHODS[m]["label"] for m in rb.METHODS} | CONTROLS
    lines = [
        "# Held-out-gene benchmark (real Visium hippocampus + scRNA-seq reference)",
        "",
        f"Generated {dt.datetime.now().isoformat(timespec='seconds')} by "
        f"`benchmarks/bench_heldout.py` (`{' '.join(sys.argv[1:]) or 'defaults'}`).",
        "",
        f"- Data: `{Path(args.st).name}` ({data['st'].n_obs} spots) and `{Path(args.sc).name}` "
        f"({data['sc'].n_obs} cells); {data['n_shared']} shared genes, {len(data['genes'])} "
        f"with counts in >= 1 cell and >= {args.min_spots} spots; {args.folds} folds "
        f"(fold seed {args.fold_seed})"
        + (f", scored on folds {args.only_folds} only" if args.only_folds is not None else "")
        + "; every method sees all SC genes and the other folds' ST genes.",
        f"- Machine: {rb.machine_description(args.device)}; load average (1 min) at start / "
        f"end {args.load_start:.1f} / {os.getloadavg()[0]:.1f} (shared machine: times are "
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
                    labels.get(method, method),
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
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    d = rb.default_data_dir()
    p.add_argument("--st", type=Path, default=d / "hippocampus_visium_st.h5ad")
    p.add_argument("--sc", type=Path, default=d / "hippocampus_visium_ref_sc.h5ad")
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
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--cache", type=Path, default=HERE / "cache")
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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    args.load_start = os.getloadavg()[0]
    args.failures = []
    data = prepare(args)
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
                src = rb.METHODS[method].get("from", method)
                if method in args.cached_only and not (fcache / f"{src}_seed{seed}.npz").exists():
                    args.failures.append(f"{method} seed {seed} fold {fold}: not run (no cache)")
                    continue
                row, res = rb.run_method(method, fd, seed, args, fcache)
                if res is None:
                    args.failures.append(f"{method} seed {seed} fold {fold}: {row['status']}")
                    continue
                record(method, seed, held, predict(res["sc_to_st"], x_held), row["train_s"])
                logger.info(
                    "fold %d / %s / seed %d: done (%.1f s)", fold, method, seed, row["train_s"]
                )
    per_gene = pd.concat(rows, ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    per_gene.to_csv(args.out / "heldout_genes.csv", index=False)
    summary = summarise(per_gene)
    summary.to_csv(args.out / "heldout.csv", index=False)
    write_markdown(summary, data, args, args.out / "heldout.md")
    logger.info("wrote %s", args.out / "heldout.md")
    print(summary.to_string())
    return 0 if not args.failures else 1


if __name__ == "__main__":
    sys.exit(main())
