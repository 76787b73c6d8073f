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
from lib.data import add_data_args, spot_totals
from lib.environments import CACHE, RESULTS
from lib.readouts import COLUMNS, Reader, study_rows
from lib.runner import load_average

#: name → mapping() arguments; "cap" = spot weights ∝ the spot's total ST counts. The rows
#: before the two-round default (issue 17) pin ``rounds=1`` and their weight, so that they
#: read as they did.
ONE = {"rounds": 1, "expression_weight": 1.0}
VARIANTS: dict[str, dict[str, Any]] = {
    "log profile w=1 (0.1 default)": {**ONE, "expression_profile": "log"},
    "hellinger w=1, 1 round (default before 2 rounds)": ONE,
    "paper": {"readout": "paper"},
    "w=0 (embeddings, balanced)": {"expression_weight": 0.0},
    "log profile w=2": {**ONE, "expression_profile": "log", "expression_weight": 2.0},
    "log profile w=1, T=0.5": {**ONE, "expression_profile": "log", "temperature": 0.5},
    "log profile w=1, cap": {**ONE, "expression_profile": "log", "cap": True},
    "log profile w=1, unbalanced": {**ONE, "expression_profile": "log", "balance": False},
    "hellinger w=0.5": {**ONE, "expression_weight": 0.5},
    "hellinger w=1.5": {**ONE, "expression_weight": 1.5},
    "hellinger w=2": {**ONE, "expression_weight": 2.0},
    "hellinger w=1, T=0.7": {**ONE, "temperature": 0.7},
    "hellinger w=1, cap": {**ONE, "cap": True},
    "hellinger w=1, unbalanced": {**ONE, "balance": False},
    # the residual rounds (the default: 2 rounds, w 1.5)
    "2 rounds, w=1.5 (default)": {},
    "2 rounds, w=1": {"expression_weight": 1.0},
    "2 rounds, w=2": {"expression_weight": 2.0},
    "3 rounds, w=1.5": {"rounds": 3},
    "2 rounds, w=1.5, T=0.8": {"temperature": 0.8},
    "2 rounds, w=1.5, T=1.25": {"temperature": 1.25},
    "2 rounds, w=2, T=1.25": {"expression_weight": 2.0, "temperature": 1.25},
    "2 rounds, w=1.5, T=1.5": {"temperature": 1.5},
    "2 rounds, w=2, T=1.5": {"expression_weight": 2.0, "temperature": 1.5},
    "2 rounds, w=2.5, T=1.5": {"expression_weight": 2.5, "temperature": 1.5},
}


def read_out(model: Any, spec: dict[str, Any], totals: pd.Series) -> Any:
    kw = {k: v for k, v in spec.items() if k != "cap"}
    if spec.get("cap"):
        names = [n for s in model.data.slices for n in s.spot_names]
        w = totals.reindex(names).to_numpy(dtype=np.float64)
        kw["spot_weights"] = np.maximum(w, 1e-9)
    return model.mapping(**kw)


def readers(folder: Path) -> dict[str, Reader]:
    """Return the variants for the models saved in ``folder`` (cap: its ``st.h5ad`` totals)."""
    totals = spot_totals(folder / "st.h5ad")

    def reader(spec: dict[str, Any]) -> Reader:
        def read(model: Any) -> tuple[np.ndarray, np.ndarray]:
            m = read_out(model, spec, totals)
            return m.sc_to_st, m.coords

        return read

    return {vname: reader(spec) for vname, spec in VARIANTS.items()}


def write(df: pd.DataFrame, path: Path, args: argparse.Namespace) -> None:
    cols = {k: v for k, v in COLUMNS.items() if k != "heldout_frac_gt_0_3"}
    lines = [
        "# Readout variants on saved stemmap models",
        "",
        f"`benchmarks/bench_readout_study.py {' '.join(sys.argv[1:])}`; seeds {args.seeds} "
        "(mean over the seeds present; n = number of seeds). Load average at the end "
        f"{load_average():.1f}. No training: every row reads the same models out.",
        "",
    ]
    path.write_text("\n".join(lines + report.means_tables(df, "variant", cols)))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_args(p, ["standard", "disjoint"], [0, 1, 2])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--no-heldout", action="store_true")
    p.add_argument("--no-semi", action="store_true")
    p.add_argument("--cache", type=Path, default=CACHE)
    p.add_argument("--tmp", type=Path, default=CACHE / "readout_study")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--name", default="readout_study", help="file name of the tables")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None)
    args = p.parse_args(argv)
    if args.variants:
        for k in set(VARIANTS) - set(args.variants):
            del VARIANTS[k]
    folds = 0 if args.no_heldout else args.folds
    df = pd.DataFrame(study_rows(args, readers, folds, semi=not args.no_semi))
    report.write_tables(df, args.out, args.name, lambda path: write(df, path, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
