#!/usr/bin/env python
"""Readout variants on saved stemmap models: semi-simulations and the held-out-gene pair.

Trains nothing: it loads the models that ``run_benchmark.py`` and ``bench_heldout.py``
saved beside their stemmap outputs (``cache/<dataset>[_disjoint]/stemmap_seed<s>.model.pt``,
``cache/heldout_<st>/fold<i>/stemmap_seed<s>.model.pt``) and reads each out through the
public API, ``model.mapping(readout=..., expression_weight=..., temperature=...,
spot_weights=...)``, in every variant of ``VARIANTS``. Each variant is scored like the
benchmarks score methods: hit number / MAE / cell-type PCC (``lib.scoring.score``) on both
semi-simulations and both splits, median held-out-gene Spearman (``lib.scoring``) on the
real pair. Spot capacities ("cap") are the spots' total counts in the ST input the model saw.

Usage (after the benchmark runs that saved the models)::

    .venv/bin/python benchmarks/bench_readout_study.py --seeds 0 1 2

Writes ``results/readout_study.md`` and ``results/readout_study.csv``.
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
from lib.data import (
    SimSettings,
    case_name,
    data_dir,
    heldout_data,
    heldout_pair,
    prepare_dataset,
    spot_totals,
)
from lib.environments import CACHE, RESULTS
from lib.runner import align, load_average
from lib.scoring import gene_corr, predict, score

logger = logging.getLogger("readout_study")

#: name → mapping() arguments; "cap" = spot weights ∝ the spot's total ST counts
VARIANTS: dict[str, dict[str, Any]] = {
    "log profile w=1 (0.1 default)": {"expression_profile": "log"},
    "hellinger w=1 (default)": {},
    "paper": {"readout": "paper"},
    "w=0 (embeddings, balanced)": {"expression_weight": 0.0},
    "log profile w=2": {"expression_profile": "log", "expression_weight": 2.0},
    "log profile w=1, T=0.5": {"expression_profile": "log", "temperature": 0.5},
    "log profile w=1, cap": {"expression_profile": "log", "cap": True},
    "log profile w=1, unbalanced": {"expression_profile": "log", "balance": False},
    "hellinger w=0.5": {"expression_weight": 0.5},
    "hellinger w=1.5": {"expression_weight": 1.5},
    "hellinger w=2": {"expression_weight": 2.0},
    "hellinger w=1, T=0.7": {"temperature": 0.7},
    "hellinger w=1, cap": {"cap": True},
    "hellinger w=1, unbalanced": {"balance": False},
}


def read_out(model: Any, spec: dict[str, Any], totals: pd.Series) -> Any:
    kw = {k: v for k, v in spec.items() if k != "cap"}
    if spec.get("cap"):
        names = [n for s in model.data.slices for n in s.spot_names]
        w = totals.reindex(names).to_numpy(dtype=np.float64)
        kw["spot_weights"] = np.maximum(w, 1e-9)
    return model.mapping(**kw)


def semi_sim(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    from stemmap import STEM

    for path in args.datasets:
        for split in args.splits:
            name = case_name(path, split)
            cache = args.cache / name
            data = prepare_dataset(path, SimSettings(), args.tmp / name, split)
            totals = spot_totals(cache / "st.h5ad")
            for seed in args.seeds:
                mpath = cache / f"stemmap_seed{seed}.model.pt"
                if not mpath.exists():
                    logger.info("%s seed %d: no saved model", name, seed)
                    continue
                model = STEM.load(mpath, device="cpu")
                for vname, spec in VARIANTS.items():
                    m = read_out(model, spec, totals)
                    res = align(
                        {
                            "sc_names": np.asarray(m.sc_names),
                            "sc_to_st": m.sc_to_st,
                            "coords": m.coords,
                        },
                        data,
                    )
                    row = {"data": path.stem, "split": split, "seed": seed, "variant": vname}
                    score(row, res, data)
                    rows.append(row)
                    logger.info(
                        "%s seed %d %-32s hit@50 %.2f hit@200 %.1f MAE %.2f PCC %.3f",
                        name,
                        seed,
                        vname,
                        row["hit50_coords"],
                        row["hit200_coords"],
                        row["mae_steps"],
                        row["pcc_mean"],
                    )


def heldout(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    from stemmap import STEM

    sc_path, st_path = heldout_pair()
    data = heldout_data(sc_path, st_path, args.folds, fold_seed=0, min_spots=5)
    genes_rows: dict[tuple[int, str], list[np.ndarray]] = {}
    for fold in range(args.folds):
        held = data["fold_of"] == fold
        fdir = args.cache / f"heldout_{st_path.stem}" / f"fold{fold}"
        if not (fdir / "st.h5ad").exists():  # a fold bench_heldout did not run
            continue
        totals = spot_totals(fdir / "st.h5ad")
        for seed in args.seeds:
            mpath = fdir / f"stemmap_seed{seed}.model.pt"
            if not mpath.exists():
                continue
            model = STEM.load(mpath, device="cpu")
            sc_order = pd.Index(model.data.sc_names).get_indexer(data["sc"].obs_names)
            for vname, spec in VARIANTS.items():
                m = read_out(model, spec, totals)
                c = m.sc_to_st[sc_order]  # cells in the data's order
                c[sc_order < 0] = 1.0 / c.shape[1]  # cells the model dropped: uniform
                spot_order = pd.Index(m.spot_names).get_indexer(data["st"].obs_names)
                pred = predict(c[:, spot_order], data["x_sc"][:, held])
                _, spr = gene_corr(pred, data["x_st"][:, held])
                genes_rows.setdefault((seed, vname), []).append(spr)
    for (seed, vname), parts in genes_rows.items():
        s = np.concatenate(parts)
        rows.append(
            {
                "data": "hippocampus_visium",
                "split": "heldout",
                "seed": seed,
                "variant": vname,
                "heldout_spearman_median": float(np.nanmedian(s)),
                "heldout_spearman_mean": float(np.nanmean(s)),
                "heldout_frac_gt_0_3": float(np.mean(s > 0.3)),
                "n_folds": len(parts),
            }
        )
        logger.info("heldout seed %d %-32s median Spearman %.3f", seed, vname, np.nanmedian(s))


def write(df: pd.DataFrame, path: Path, args: argparse.Namespace) -> None:
    cols = {
        "hit50_coords": "hit@50",
        "hit200_coords": "hit@200",
        "mae_steps": "MAE",
        "mae_outside_steps": "MAE out",
        "pcc_mean": "PCC",
        "heldout_spearman_median": "held-out median Spearman",
    }
    lines = [
        "# Readout variants on saved stemmap models",
        "",
        f"`benchmarks/bench_readout_study.py {' '.join(sys.argv[1:])}`; seeds {args.seeds} "
        "(mean over the seeds present; n = number of seeds). Load average at the end "
        f"{load_average():.1f}. No training: every row reads the same models out.",
        "",
    ]
    for (d, split), sub in df.groupby(["data", "split"], sort=False):
        use = [c for c in cols if c in sub and sub[c].notna().any()]
        g = sub.groupby("variant", sort=False)
        mean = g[use].mean()
        n = g.size()
        lines += [
            f"## {d}, {split}",
            "",
            "| variant | n | " + " | ".join(cols[c] for c in use) + " |",
            "|---|---|" + "---|" * len(use),
        ]
        for v in mean.index:
            lines.append(
                f"| {v} | {n[v]} | " + " | ".join(f"{mean.loc[v, c]:.3f}" for c in use) + " |"
            )
        lines.append("")
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    d = data_dir()
    p.add_argument(
        "--datasets",
        nargs="+",
        type=Path,
        default=[d / "osmfish_cortex.h5ad", d / "embryo2_z2.h5ad"],
    )
    p.add_argument("--splits", nargs="+", default=["standard", "disjoint"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--no-heldout", action="store_true")
    p.add_argument("--no-semi", action="store_true")
    p.add_argument("--cache", type=Path, default=CACHE)
    p.add_argument("--tmp", type=Path, default=CACHE / "readout_study")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    rows: list[dict[str, Any]] = []
    if not args.no_semi:
        semi_sim(args, rows)
    if not args.no_heldout:
        heldout(args, rows)
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_csv(df, args.out / "readout_study.csv")
    write(df, args.out / "readout_study.md", args)
    logger.info("wrote %s", args.out / "readout_study.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
