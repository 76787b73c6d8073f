#!/usr/bin/env python
r"""The yardstick of issue 27: placement, compositions and held-out genes, ranked together.

For every shared single-cell-resolution data set (osmFISH cortex, seqFISH embryo) and every
split (``lib.data.prepare_dataset``):

- ``disjoint``: spots from a random half of the cells (split seed 0), the other half mapped;
- ``cross_region``: spots from one half of the section (cut on the shorter axis, spots from
  the low side), the cells of the other half mapped
  (:func:`stemmap.simulate.cross_region_pseudo_spots`): no mapped cell lies in the spots'
  region, so placements are not scored there;
- ``standard``: the paper's pseudo spots, every cell mapped;
- ``disjoint_platform``: the disjoint split with gene-wise log-normal factors (σ 0.5, seed 0,
  Poisson-resampled) on the spot counts (:func:`stemmap.simulate.platform_effect`),

each method maps the cells onto the spots once with all genes (hit@50 and MAE where positions
are meaningful; cell-type PCC and composition JSD from :mod:`stemmap.metrics`) and once per
held-out fold (``../shared/docs/heldout-genes.md``: genes with counts in >= 1 cell and >= 5
spots, 5 folds, fold seed 0; the method sees all SC genes and the other folds' spot genes;
prediction = row-normalised spots × cells mapping × the cells' log-normalised expression;
truth = the spots' log-normalised expression, totals over all genes of the data set;
per-gene Spearman across spots, median over all genes of all folds).

Methods: the drivers of ``lib/methods.py`` (stemmap's default and preset quick, TACCO,
Tangram, novoSpaRc, moscot, the most-correlated-spot baseline, cell2location) and, in this
process, the held-out-gene protocol's correlation baseline (each spot's 50 most correlated
cells, weights ∝ exp(r / 0.05)) as a mapping. cell2location estimates abundances, not a cell
mapping: it is scored on compositions and held-out genes only (abundance-weighted type means).
Deterministic methods (TACCO, baseline, moscot, novoSpaRc, the correlation baseline) run
once, for the first seed.

Ranking: in each table every metric it has ranks the methods (1 = best; mean over seeds
first), and a method's score is its mean rank over the metrics it was scored on; the overall
ranks average those over the tables (primary: disjoint and cross-region).

Runs are ordered so that a partial run is useful: the first seed of every table (primary
tables first), then the other seeds. ``--deadline HH:MM`` (UTC) starts no run after that time;
the tables then say which runs are missing. Outputs are cached (``--cache``) and reused with
``--reuse``; ``--tables-only`` rebuilds the tables from the CSV.

Usage::

    .venv/bin/python benchmarks/bench_yardstick.py --seeds 0 1 2          # everything
    .venv/bin/python benchmarks/bench_yardstick.py --datasets $D/osmfish_cortex.h5ad \
        --splits disjoint --methods stemmap_quick_y baseline corr_top50 --seeds 0 \
        --out /tmp/ys --cache /tmp/ys/cache
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib import report
from lib.data import (
    SimSettings,
    add_data_args,
    case_name,
    prepare_dataset,
    semisim_fold_inputs,
    semisim_folds,
)
from lib.environments import CACHE, RESULTS, check_stemmap
from lib.methods import METHODS, label
from lib.runner import RunOptions, load_average, next_time, run_method
from lib.scoring import corr_baseline, gene_corr, predict, score, spatial_control

logger = logging.getLogger("yardstick")

#: in-process methods (no driver)
LOCAL = {"corr_top50": "correlation baseline (top-50 cells per spot, exp(r / 0.05))"}
DEFAULT_METHODS = [
    "stemmap_y",
    "stemmap_quick_y",
    "tacco",
    "baseline",
    "corr_top50",
    "tangram",
    "moscot",
    "novosparc",
    "cell2location",
]
PRIMARY = ("disjoint", "cross_region")
#: metric column → (header, higher is better)
METRICS = {
    "hit50": ("hit@50", True),
    "mae": ("MAE (steps)", False),
    "pcc": ("cell-type PCC", True),
    "jsd": ("JSD", False),
    "spearman_median": ("held-out genes, median Spearman", True),
}


def method_label(name: str) -> str:
    """Return a method's label in the tables."""
    return LOCAL.get(name) or label(name)


def deterministic(name: str) -> bool:
    """Whether a method gives the same output for every seed (run once)."""
    return name in LOCAL or (name in METHODS and METHODS[name].deterministic)


def abundance(name: str) -> bool:
    """Whether a method estimates abundances (no placement to score)."""
    return name in METHODS and METHODS[name].abundance


# ------------------------------------------------------------------------- running
def _cached(name: str, seed: int, cache: Path) -> bool:
    return (cache / f"{name}_seed{seed}.npz").exists()


def run_one(
    name: str,
    data: dict[str, Any],
    folds: dict[str, Any],
    fold_data: list[dict[str, Any]],
    seed: int,
    opts: RunOptions,
    cache: Path,
    cached_only: bool = False,
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Run a method on a table with all genes and on every held-out fold; score both.

    With ``cached_only`` nothing runs: cached driver outputs are scored again, missing ones
    are reported as not run.

    Returns
    -------
    tuple
        The result row and the per-gene held-out scores (None if no fold ran).
    """
    row: dict[str, Any] = {
        "dataset": data["dataset"],
        "split": data["split"],
        "method": name,
        "seed": seed,
        "load_start": np.nan if cached_only else load_average(),
    }
    t0 = time.perf_counter()
    # ---- all genes: placement and compositions
    if name in LOCAL:
        x = folds["x_sc_all"], folds["x_st_all"]
        t = time.perf_counter()
        res = _local_result(corr_baseline(*x), data)
        row.update(status="ok", train_s=time.perf_counter() - t)
    elif cached_only and not _cached(name, seed, cache):
        res = None
        row["status"] = "not run"
    else:
        r, res = run_method(name, data, seed, opts, cache)
        row.update(status=r["status"], train_s=r.get("train_s"), peak_rss_mb=r.get("peak_rss_mb"))
    if res is not None:
        score(row, res, data)
        row["hit50"] = row.pop("hit50_coords")
        row["mae"] = row.pop("mae_steps")
        row["pcc"] = row.pop("pcc_mean")
        row["jsd"] = row.pop("jsd_mean")
        row["pcc_comp"] = _pcc_compositions(res["sc_to_st"], data)
        if not data["positions"] or abundance(name) or name in LOCAL:
            row["hit50"] = row["mae"] = np.nan  # no placement to score
        for k in list(row):  # keep the yardstick's columns
            if k.startswith(("hit10", "hit25", "hit200", "hit50_", "mae_outside")):
                del row[k]
    # ---- held-out genes
    genes = np.asarray(folds["genes"])
    parts, fit_s, failed = [], 0.0, []
    for fold, fd in enumerate(fold_data):
        held = folds["fold_of"] == fold
        if not held.any():
            continue
        if name in LOCAL:
            t = time.perf_counter()
            w = corr_baseline(folds["x_sc"][:, ~held], folds["x_st"][:, ~held])
            fit_s += time.perf_counter() - t
            mapping = w
        elif cached_only and not _cached(name, seed, Path(fd["sc_path"]).parent):
            failed.append(f"fold {fold}: not run")
            continue
        else:
            r, res_f = run_method(name, fd, seed, opts, Path(fd["sc_path"]).parent)
            if res_f is None:
                failed.append(f"fold {fold}: {r['status']}")
                continue
            fit_s += float(r.get("train_s") or 0.0)
            mapping = res_f["sc_to_st"]
        pred = predict(mapping, folds["x_sc"][:, held])
        pe, spr = gene_corr(pred, folds["x_st"][:, held])
        parts.append(
            pd.DataFrame(
                {"gene": genes[held], "fold": fold, "spearman": spr, "pearson": pe},
            )
        )
    per_gene = None
    if parts and not failed:  # a median over some of the folds would not be comparable
        per_gene = pd.concat(parts, ignore_index=True)
        s = per_gene["spearman"]
        row.update(
            spearman_median=float(s.median()),
            spearman_mean=float(s.mean()),
            frac_spearman_gt_0_3=float((s > 0.3).mean()),
            heldout_genes=int(s.size),
            heldout_nan=int(s.isna().sum()),
            heldout_fit_s=fit_s,
        )
        per_gene.insert(0, "method", name)
        per_gene.insert(1, "seed", seed)
        per_gene.insert(0, "split", data["split"])
        per_gene.insert(0, "dataset", data["dataset"])
    row["heldout_status"] = "ok" if not failed else "; ".join(failed)[:300]
    row["wall_s"] = time.perf_counter() - t0
    row["load_end"] = np.nan if cached_only else load_average()
    return row, per_gene


def _pcc_compositions(mapping: np.ndarray, data: dict[str, Any]) -> float:
    """Return the cell-type PCC of the mapped compositions (each spot's mass scaled to 1).

    :func:`stemmap.metrics.celltype_pcc` correlates each type's mapped mass per spot with
    its true proportion, so a spot that gets more cells weighs in; scaling every spot's
    mass to 1 first compares the compositions themselves (as deconvolution benchmarks do).
    """
    from stemmap import metrics

    c = np.asarray(mapping, dtype=np.float64)
    cs = c.sum(axis=0, keepdims=True)
    c = c / np.where(cs > 0, cs, 1.0)
    return float(metrics.celltype_pcc(c, data["labels"], data["proportions"]).mean())


def _local_result(w_cells_spots: np.ndarray, data: dict[str, Any]) -> dict[str, np.ndarray]:
    """Return an in-process mapping as a driver output (cells × spots, coordinates)."""
    w = np.asarray(w_cells_spots, dtype=np.float64)
    rs = w.sum(axis=1, keepdims=True)
    n_sp = w.shape[1]
    c = np.where(rs > 0, w / np.where(rs > 0, rs, 1.0), 1.0 / n_sp)
    return {
        "sc_to_st": c.astype(np.float32),
        "coords": c @ data["spot_coords"],
        "n_missing": np.asarray(0),
    }


def prepare(path: Path, split: str, args: argparse.Namespace) -> tuple:
    """Build a table's data, its held-out folds and the folds' driver inputs."""
    sim = SimSettings(split_seed=args.split_seed, platform_sigma=args.platform_sigma)
    cache = args.cache / case_name(path, split)
    data = prepare_dataset(path, sim, cache, split)
    folds = semisim_folds(data, args.folds, args.fold_seed, args.min_spots)
    from lib.data import dense, lognorm

    c_sc, c_st = dense(data["sc"].X), dense(data["st"].X)
    folds["x_sc_all"] = lognorm(c_sc, c_sc.sum(axis=1))
    folds["x_st_all"] = lognorm(c_st, c_st.sum(axis=1))
    fold_data = [semisim_fold_inputs(data, folds, f, cache / f"fold{f}") for f in range(args.folds)]
    return data, folds, fold_data


def spatial_control_row(data: dict[str, Any], folds: dict[str, Any]) -> dict[str, Any]:
    """Score the protocol's spatial-signal control: each gene vs its 6 nearest spots."""
    pe, spr = gene_corr(spatial_control(data["spot_coords"], folds["x_st"]), folds["x_st"])
    s = pd.Series(spr)
    return {
        "dataset": data["dataset"],
        "split": data["split"],
        "method": "spatial_control",
        "seed": 0,
        "status": "ok",
        "heldout_status": "ok",
        "spearman_median": float(s.median()),
        "spearman_mean": float(s.mean()),
        "frac_spearman_gt_0_3": float((s > 0.3).mean()),
        "heldout_genes": int(s.size),
    }


# ------------------------------------------------------------------------- tables
def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds per table × method, the ranks and the mean rank."""
    runs = df[df["method"] != "spatial_control"]
    out = []
    for (d, split), sub in runs.groupby(["dataset", "split"], sort=False):
        g = sub.groupby("method", sort=False)
        cols = [c for c in [*METRICS, "frac_spearman_gt_0_3", "pcc_comp"] if c in sub]
        mean, sd = g[cols].mean(), g[cols].std()
        ranks = pd.DataFrame(index=mean.index)
        for c, (_, higher) in METRICS.items():
            if c in mean and mean[c].notna().sum() >= 2:
                ranks[c] = mean[c].rank(ascending=not higher, method="min")
        summ = mean.add_suffix("_mean").join(sd.add_suffix("_sd"))
        summ["n_seeds"] = g["status"].apply(lambda s: int((s == "ok").sum()))
        summ["seeds"] = g["seed"].apply(lambda s: " ".join(map(str, sorted(set(s)))))
        summ["status"] = g["status"].apply(
            lambda s: "ok" if (s == "ok").all() else "; ".join(sorted(set(s)))
        )
        summ["heldout_status"] = g["heldout_status"].apply(
            lambda s: "ok" if (s == "ok").all() else "; ".join(sorted(set(map(str, s))))
        )
        summ["train_s_mean"] = g["train_s"].mean()
        summ["heldout_fit_s_mean"] = g["heldout_fit_s"].mean() if "heldout_fit_s" in sub else np.nan
        summ["mean_rank"] = ranks.mean(axis=1)
        summ["n_ranked"] = ranks.notna().sum(axis=1)
        for c in ranks:
            summ[f"rank_{c}"] = ranks[c]
        summ.insert(0, "split", split)
        summ.insert(0, "dataset", d)
        out.append(summ.reset_index())
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def _cell(row: pd.Series, c: str, spec: str) -> str:
    m, s = row.get(f"{c}_mean"), row.get(f"{c}_sd")
    if m is None or pd.isna(m):
        return "–"
    return format(m, spec) + (f" ± {format(s, spec)}" if s is not None and pd.notna(s) else "")


def write_markdown(
    df: pd.DataFrame, summ: pd.DataFrame, cases: list[dict[str, Any]], args: Any, path: Path
) -> None:
    """Write the report: settings, machine, overall ranks, a table per data set × split."""
    lines = report.heading(
        "Yardstick (issue 27): placement, compositions and held-out genes, ranked together",
        report.generated("bench_yardstick.py", args.argv) + ".",
    )
    loads = pd.concat([df.get("load_start", pd.Series()), df.get("load_end", pd.Series())])
    loads = loads.dropna()
    lines += [
        f"- Machine: {args.machine}; device cpu. Load average (1 min) during the run: "
        + (
            f"{loads.min():.1f}–{loads.max():.1f} (median {loads.median():.1f}) on "
            f"{args.cores} cores"
            if not loads.empty
            else "–"
        )
        + " (times are comparable within this run only).",
        f"- Settings: stemmap default {args.epochs} epochs, preset quick its own schedule; "
        f"cell2location {METHODS['cell2location'].epochs} epochs of the spatial model "
        "(reference regression 250 epochs, batch 2,500; N cells per spot = the data's mean; "
        "detection_alpha 20; posterior means of 1,000 samples); method seeds "
        f"{args.seeds} (deterministic methods: the first seed only); split seed "
        f"{args.split_seed}; platform effect σ {args.platform_sigma}; pseudo spots on the "
        "30 × 40 grid (window 0.55, >= 3 cells).",
        "- Held-out genes (`../shared/docs/heldout-genes.md`): genes with counts in >= 1 SC cell "
        f"and >= {args.min_spots} spots, {args.folds} folds (fold seed {args.fold_seed}); each "
        "fold is hidden from the spots the method sees; prediction = row-normalised spots × "
        "cells mapping × the cells' log1p(10,000 · counts / total); truth = the spots' "
        "log-normalised expression (totals over all genes); median over all genes of all "
        "folds of the per-gene Spearman across spots. `spatial control`: each gene vs the "
        "mean of its 6 nearest spots (no method; how much spatial signal the genes carry).",
        "- hit@50: mean over cells of |true 50-NN ∩ predicted 50-NN| from the predicted "
        "coordinates (random level 2,500 / (M − 1)); MAE in grid steps. Not scored on the "
        "cross-region split (no mapped cell lies in the spots' region) nor for "
        "cell2location and the correlation baseline (abundances / spot weights, no placement). "
        "PCC: mean over cell types of corr(mapped mass of the type per spot, true proportion); "
        "JSD: mean over spots of the Jensen–Shannon distance (base 2) of the mapped and the true "
        "type composition (lower is better). `PCC (comp.)` (not ranked): the PCC of the "
        "compositions, each spot's mapped mass scaled to 1 first (for cell2location: its "
        "abundances as proportions).",
        "- **cell2location** estimates cell-type abundances per spot, not a cell mapping: its "
        "`sc_to_st` spreads each spot's abundance of a type evenly over that type's SC cells, "
        "so it is scored on PCC, JSD and held-out genes (abundance-weighted type means) only.",
        "- Rank: per table, each metric ranks the methods that have it (1 = best, on the mean "
        "over seeds); `mean rank` = the mean over the metrics the method was scored on "
        "(`n`). Values are mean ± sd over seeds. `s (full map)`: the method's fitting time "
        "on all genes (mean over seeds), `s (folds)`: summed over the 5 folds.",
        "",
    ]
    # overall ranking
    if not summ.empty:
        # only tables where every method ran: ranks among a few methods are not comparable
        full = summ.groupby(["dataset", "split"])["method"].transform(
            lambda m: set(args.methods) <= set(m)
        )
        done = summ[full.astype(bool)]
        prim = done[done["split"].isin(PRIMARY)]
        overall = pd.DataFrame(
            {
                "primary": prim.groupby("method")["mean_rank"].mean(),
                "tables_primary": prim.groupby("method")["mean_rank"].count(),
                "all": done.groupby("method")["mean_rank"].mean(),
                "tables_all": done.groupby("method")["mean_rank"].count(),
            }
        ).sort_values(["primary", "all"])
        lines += [
            "## Overall: mean rank over the tables",
            "",
            "Primary = the disjoint and cross-region tables of both data sets; a method's mean "
            "rank over the tables (their number in brackets); only tables where every method "
            "ran count. The other tables rank only the methods that ran in them.",
            "",
            *report.table(
                ["method", "primary tables", "all tables"],
                [
                    [
                        method_label(m),
                        f"{r['primary']:.2f} ({int(r['tables_primary'])})"
                        if pd.notna(r["primary"])
                        else "–",
                        f"{r['all']:.2f} ({int(r['tables_all'])})",
                    ]
                    for m, r in overall.iterrows()
                ],
            ),
            "",
        ]
    header = ["method", "seeds", "hit@50", "MAE (steps)", "cell-type PCC", "JSD", "PCC (comp.)"]
    header += ["held-out median Spearman", "frac. > 0.3", "s (full map)", "s (folds)"]
    header += ["mean rank (n)", "status"]
    for data in cases:
        sub = summ[(summ["dataset"] == data["dataset"]) & (summ["split"] == data["split"])]
        sim = data["simulation"]
        about = (
            f"{data['n_cells']} SC cells × {data['n_genes']} genes mapped onto "
            f"{data['n_spots']} pseudo spots ({data['mean_cells_per_spot']:.2f} cells per "
            f"spot on average); {data['n_heldout']} held-out genes in {args.folds} folds"
        )
        if data["split"].startswith("cross_region"):
            about += (
                f". Spots from the cells with the lowest {'xy'[sim['axis']]} (half of the "
                f"section), SC cells from beyond {'xy'[sim['axis']]} = {sim['sc_from']:.4g} "
                f"({sim['n_cells_between']} cells between left out); type composition of "
                f"the two parts: total-variation distance {sim['composition_tv']:.2f}"
                + (
                    f", types in the spots but not in the SC cells: "
                    f"{', '.join(sim['types_absent_from_sc'])}"
                    if sim["types_absent_from_sc"]
                    else ""
                )
            )
        if data["split"].endswith("platform"):
            about += f"; spot counts × gene-wise log-normal factors (σ {args.platform_sigma})"
        rows = []
        for _, r in sub.sort_values("mean_rank").iterrows():
            status = r["status"] if r["status"] == "ok" else r["status"][:120]
            if r["heldout_status"] != "ok":
                status += f"; held-out: {str(r['heldout_status'])[:120]}"
            rows.append(
                [
                    method_label(r["method"]),
                    r["seeds"],
                    _cell(r, "hit50", ".2f"),
                    _cell(r, "mae", ".2f"),
                    _cell(r, "pcc", ".3f"),
                    _cell(r, "jsd", ".3f"),
                    _cell(r, "pcc_comp", ".3f"),
                    _cell(r, "spearman_median", ".3f"),
                    _cell(r, "frac_spearman_gt_0_3", ".2f")
                    if "frac_spearman_gt_0_3_mean" in r
                    else "–",
                    f"{r['train_s_mean']:.1f}" if pd.notna(r["train_s_mean"]) else "–",
                    f"{r['heldout_fit_s_mean']:.1f}" if pd.notna(r["heldout_fit_s_mean"]) else "–",
                    f"{r['mean_rank']:.2f} ({int(r['n_ranked'])})"
                    if pd.notna(r["mean_rank"])
                    else "–",
                    status,
                ]
            )
        ctrl = df[
            (df["method"] == "spatial_control")
            & (df["dataset"] == data["dataset"])
            & (df["split"] == data["split"])
        ]
        if not ctrl.empty:
            c = ctrl.iloc[0]
            rows.append(
                ["spatial control (6 nearest spots)", "–", "–", "–", "–", "–", "–"]
                + [f"{c['spearman_median']:.3f}", f"{c['frac_spearman_gt_0_3']:.2f}"]
                + ["–", "–", "–", "control"]
            )
        missing = [
            method_label(m)
            for m in args.methods
            if m not in set(sub["method"]) and not (m == "cell2location" and not args.run_c2l(data))
        ]
        lines += [f"## {data['name']}", "", about + ".", "", *report.table(header, rows), ""]
        if missing:
            lines += [f"Not run (see the notes): {', '.join(missing)}.", ""]
    if args.notes:
        lines += ["## Notes", "", *args.notes, ""]
    report.write_report(path, lines, echo=False)


# ------------------------------------------------------------------------- c2l epochs
def res_abundance(path: Path) -> np.ndarray:
    """Return the spots × types abundances a cell2location output holds."""
    return np.load(path, allow_pickle=False)["abundance"].astype(np.float64)


def c2l_study(args: argparse.Namespace) -> int:
    """Score cell2location after several epoch counts of one run (its checkpoints).

    One run of the spatial model on one table (all genes, the first seed) saves its
    abundances at ``--c2l-checkpoints`` and at ``--c2l-study-epochs``; each is scored on PCC
    and JSD, with the ELBO and the time so far → ``<out>/c2l_epochs.{md,csv}``.
    """
    import subprocess

    from lib.runner import align, driver_command, read_output

    name, split = args.c2l_study.split(":")
    path = next(p for p in args.datasets if p.stem == name)
    data, _, _ = prepare(path, split, args)
    cache = args.cache / data["name"]
    out = cache / f"c2l_study_seed{args.seeds[0]}.npz"
    if not (args.reuse and out.exists()):
        cmd = driver_command(
            "cell2location",
            data["sc_path"],
            data["st_path"],
            out,
            args.c2l_study_epochs,
            args.seeds[0],
            "cpu",
            None,
        )
        cmd[cmd.index("--epochs") + 1] = str(args.c2l_study_epochs)
        cmd += ["--checkpoints", *map(str, args.c2l_checkpoints)]
        with open(out.with_suffix(".log"), "w") as fh:
            subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=True)
    runs = [("c2l_study", args.c2l_checkpoints, args.c2l_study_epochs)]
    if args.c2l_long:  # a longer run made separately (its driver output beside)
        runs.append(("c2l_long", args.c2l_long[1:], args.c2l_long[0]))
    rows = []
    for stem, checkpoints, epochs in runs:
        base = cache / f"{stem}_seed{args.seeds[0]}.npz"
        for e in [*sorted(checkpoints), epochs]:
            f = base if e == epochs else base.with_suffix(f".e{e}.npz")
            if not f.exists():
                continue
            meta, res = read_output(f)
            row = {"run": f"{epochs} epochs", "epochs": e, "spatial_s": meta["spatial_s"]}
            row["ref_s"] = meta["ref_s"]
            score(row, align(res, data), data)
            w = res_abundance(f)
            rows.append(
                {
                    **{k: row[k] for k in ("run", "epochs", "spatial_s", "ref_s")},
                    "pcc_mean": row["pcc_mean"],
                    "jsd_mean": row["jsd_mean"],
                    "pcc_comp": _pcc_compositions(align(res, data)["sc_to_st"], data),
                    "top_share": float((w / w.sum(axis=1, keepdims=True)).max(axis=1).mean()),
                    "cells_per_spot": float(np.median(w.sum(axis=1))),
                    "elbo_last": meta["elbo_last"][-1] if meta.get("elbo_last") else np.nan,
                }
            )
    df = pd.DataFrame(rows)
    report.write_csv(df, args.out / "c2l_epochs.csv")
    lines = report.heading(
        "cell2location on the CPU: how many epochs",
        report.generated("bench_yardstick.py", args.argv) + ".",
    )
    lines += [
        f"- Table {data['name']} ({data['n_cells']} SC cells, {data['n_spots']} spots, "
        f"{data['n_genes']} genes), seed {args.seeds[0]}; one run of the spatial model "
        "(detection_alpha 20, N cells per spot = the data's mean "
        f"{data['mean_cells_per_spot']:.2f}) whose abundances are exported after each "
        "number of epochs, training going on from there (the optimiser's state restarts "
        "at each checkpoint). Reference regression: 250 epochs "
        f"({df['ref_s'].iloc[0]:.0f} s, once).",
        f"- Machine: {report.machine_description('cpu')}; load average (1 min) now "
        f"{load_average():.1f} (shared machine). `spatial s`: cumulative wall time of the "
        "spatial model and its exports (1,000 posterior samples each), one torch thread.",
        "- ELBO: the last epoch's training loss (lower is better). `mean top share`: the "
        "largest type share of a spot's abundances, mean over spots (uniform over the "
        f"{data['proportions'].shape[1]} types: {1 / data['proportions'].shape[1]:.3f}); "
        "`median cells / spot`: of the abundances' totals (true mean "
        f"{data['mean_cells_per_spot']:.2f}).",
        "",
        *report.table(
            [
                "run",
                "epochs",
                "spatial s",
                "cell-type PCC",
                "JSD",
                "PCC (comp.)",
                "mean top share",
                "median cells / spot",
                "ELBO (last epoch)",
            ],
            [
                [
                    r["run"],
                    int(r["epochs"]),
                    f"{r['spatial_s']:.0f}",
                    f"{r['pcc_mean']:.3f}",
                    f"{r['jsd_mean']:.3f}",
                    f"{r['pcc_comp']:.3f}",
                    f"{r['top_share']:.3f}",
                    f"{r['cells_per_spot']:.1f}",
                    f"{r['elbo_last']:.4g}",
                ]
                for _, r in df.iterrows()
            ],
        ),
        "",
    ]
    if args.notes:
        lines += [*args.notes, ""]
    report.write_report(args.out / "c2l_epochs.md", lines)
    return 0


# ------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    splits = ["disjoint", "cross_region", "standard", "disjoint_platform"]
    add_data_args(p, splits, [0, 1, 2], split_choices=splits)
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=[*METHODS, *LOCAL])
    p.add_argument("--epochs", type=int, default=400, help="stemmap default's epochs")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--fold-seed", type=int, default=0)
    p.add_argument("--min-spots", type=int, default=5)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--platform-sigma", type=float, default=0.5)
    p.add_argument("--timeout", type=int, default=1800, help="seconds per driver run")
    p.add_argument(
        "--c2l-seeds",
        nargs="*",
        type=int,
        default=None,
        help="cell2location only for these seeds (default: --seeds)",
    )
    p.add_argument(
        "--c2l-splits",
        nargs="*",
        default=None,
        help="cell2location only on these splits (default: --splits)",
    )
    p.add_argument(
        "--deadline",
        default=None,
        help="HH:MM (UTC): start no run after this time; the tables say what is missing",
    )
    p.add_argument("--reuse", action="store_true", help="reuse cached driver outputs")
    p.add_argument(
        "--cached-only",
        action="store_true",
        help="run nothing: score the cached outputs again (tables of earlier or parallel "
        "runs; missing runs are listed as not run)",
    )
    p.add_argument(
        "--c2l-study",
        default=None,
        metavar="DATASET:SPLIT",
        help="only the cell2location epoch study on this table (e.g. osmfish_cortex:disjoint)",
    )
    p.add_argument("--c2l-study-epochs", type=int, default=3000)
    p.add_argument("--c2l-checkpoints", nargs="*", type=int, default=[500, 1000, 2000])
    p.add_argument(
        "--c2l-long",
        nargs="*",
        type=int,
        default=[],
        metavar="EPOCHS [CHECKPOINT ...]",
        help="also score a longer run's outputs (cache/<table>/c2l_long_seed<s>[.e<N>].npz, "
        "made by the driver with --checkpoints)",
    )
    p.add_argument(
        "--tables-only", action="store_true", help="rebuild the tables from <out>/<stem>.csv"
    )
    p.add_argument(
        "--merge",
        nargs="*",
        type=Path,
        default=[],
        help="with --tables-only: further result CSVs (e.g. a parallel run) to table with it",
    )
    p.add_argument("--note", action="append", default=[], dest="notes", help="a note line")
    p.add_argument("--stem", default="yardstick", help="file name of the tables")
    p.add_argument("--out", type=Path, default=RESULTS / "issue27")
    p.add_argument("--cache", type=Path, default=CACHE / "issue27")
    args = p.parse_args(argv)
    raw = sys.argv[1:] if argv is None else argv
    # the command line as the reports show it: the notes are printed in the report itself
    args.argv = [
        a for i, a in enumerate(raw) if a != "--note" and (i == 0 or raw[i - 1] != "--note")
    ]
    for f in args.datasets:
        if not f.exists():
            p.error(f"--datasets: {f} not found")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the methods on every table (first seed first), score, rank, write the tables."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    import os

    args.machine = report.machine_description("cpu")
    args.cores = os.cpu_count()
    deadline = next_time(args.deadline)
    logger.info("machine: %s; %s", args.machine, check_stemmap())
    os.environ.setdefault("STEMMAP_BENCH_C2L_REF_CACHE", str(args.cache / "c2l_reference"))
    if args.c2l_study:
        return c2l_study(args)
    c2l_seeds = args.seeds if args.c2l_seeds is None else args.c2l_seeds
    c2l_splits = args.splits if args.c2l_splits is None else args.c2l_splits
    args.run_c2l = lambda data: data["split"] in c2l_splits
    opts = RunOptions(args.epochs, "cpu", args.timeout, args.reuse or args.cached_only)
    # primary tables first
    order = sorted(args.splits, key=lambda s: (s not in PRIMARY, args.splits.index(s)))
    cases = []
    for split in order:
        for path in args.datasets:
            data, folds, fold_data = prepare(path, split, args)
            data["n_heldout"] = len(folds["genes"])
            cases.append((data, folds, fold_data))
            logger.info(
                "%s: %d cells, %d spots, %d genes, %d held-out genes",
                data["name"],
                data["n_cells"],
                data["n_spots"],
                data["n_genes"],
                len(folds["genes"]),
            )
    csv = args.out / f"{args.stem}.csv"
    genes_csv = args.out / f"{args.stem}_genes.csv"
    if args.tables_only:
        parts = [pd.read_csv(f) for f in [csv, *args.merge] if f.exists()]
        df = pd.concat(parts, ignore_index=True)
        df = df.drop_duplicates(["dataset", "split", "method", "seed"], keep="last")
        report.write_csv(df, csv)
    else:
        rows = [spatial_control_row(d, f) for d, f, _ in cases]
        gene_parts: list[pd.DataFrame] = []
        skipped: list[str] = []
        for i, seed in enumerate(args.seeds):
            for data, folds, fold_data in cases:
                for m in args.methods:
                    if i > 0 and deterministic(m):
                        continue
                    if m == "cell2location" and (
                        seed not in c2l_seeds or data["split"] not in c2l_splits
                    ):
                        continue
                    if deadline is not None and dt.datetime.now(dt.timezone.utc) >= deadline:
                        skipped.append(f"{data['name']} / {m} / seed {seed}")
                        continue
                    cache = args.cache / data["name"]
                    row, per_gene = run_one(
                        m, data, folds, fold_data, seed, opts, cache, args.cached_only
                    )
                    if args.cached_only and row["status"] == "not run":
                        skipped.append(f"{data['name']} / {m} / seed {seed}")
                        continue
                    report.record(rows, row, data["name"])
                    if per_gene is not None:
                        gene_parts.append(per_gene)
                    report.write_csv(pd.DataFrame(rows), csv)
                    if gene_parts:
                        report.write_csv(pd.concat(gene_parts, ignore_index=True), genes_csv)
        df = pd.DataFrame(rows)
        df.insert(0, "machine", args.machine)
        report.write_csv(df, csv)
        if skipped:
            why = "no cached output" if args.cached_only else f"past {args.deadline} UTC"
            args.notes = [
                *args.notes,
                f"Not run ({why}): {len(skipped)} method × seed runs: " + "; ".join(skipped) + ".",
            ]
    summ = summarise(df)
    report.write_csv(summ, args.out / f"{args.stem}_summary.csv")
    write_markdown(df, summ, [c[0] for c in cases], args, args.out / f"{args.stem}.md")
    logger.info("wrote %s", args.out / f"{args.stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
