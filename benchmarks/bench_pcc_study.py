#!/usr/bin/env python
"""Cell-type PCC study (issue #17): spot-side readouts of saved stemmap models vs TACCO.

Trains nothing. Loads the models ``run_benchmark.py`` saved
(``cache/<dataset>[_disjoint]/stemmap_seed<s>.model.pt``) and reads each out in the variants
of ``VARIANTS``, built only from stemmap's public API (``STEM.mapping``, ``STEM.embed``,
``StemMapping``): the default readout; spot-side readouts, where each spot's distribution
over cells Ĉ is formed first and C is its transpose normalised per cell (TACCO's direction:
its OT result is each spot's composition); and TACCO-style "bisection" rounds, where a
share of each spot's expression profile is explained by the current Ĉ, subtracted, and the
remainder read out again (the expression term, and optionally the spot embedding, see the
residual profile; ``lib.readouts``, shared with ``bench_fast_setting.py``). Every variant is
scored like ``run_benchmark.py`` scores a method (hit number, MAE, MAE outside spots,
cell-type PCC); TACCO's cached output is scored beside it.

Usage (after ``run_benchmark.py`` saved the models and TACCO's outputs)::

    .venv/bin/python benchmarks/bench_pcc_study.py --seeds 0 1 2

Writes ``results/issue17/pcc_study.{md,csv}``.
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
from lib.data import add_data_args
from lib.environments import CACHE, RESULTS
from lib.readouts import (
    COLUMNS,
    Reader,
    bisection,
    from_spot_side,
    semi_balanced,
    study_rows,
)
from lib.runner import load_average


def default(model: Any, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    m = model.mapping(**kw)
    return m.sc_to_st, m.coords


def spot_side(model: Any, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    m = model.mapping(**kw)
    return from_spot_side(m.st_to_sc, m.spot_coords)


def mix(a: Reader, b: Reader, wa: float = 0.5) -> Reader:
    def f(model: Any) -> tuple[np.ndarray, np.ndarray]:
        ca, ya = a(model)
        cb, yb = b(model)
        return (wa * ca + (1 - wa) * cb).astype(np.float32), wa * ya + (1 - wa) * yb

    return f


VARIANTS: dict[str, Reader] = {
    "default (hybrid, Hellinger, balanced)": default,
    "spot side: Ĉ balanced (= default plan)": spot_side,
    "spot side: Ĉ unbalanced": lambda m: spot_side(m, balance=False),
    "spot side: Ĉ unbalanced, T 0.5": lambda m: spot_side(m, balance=False, temperature=0.5),
    "spot side: Ĉ unbalanced, T 2": lambda m: spot_side(m, balance=False, temperature=2.0),
    "bisection (expression term only)": bisection,
    "bisection, spots re-embedded": lambda m: bisection(m, reembed=True),
    "bisection, C from the rounds' C": lambda m: bisection(m, spot_side_c=False),
    "bisection, re-embedded, C from rounds' C": lambda m: bisection(
        m, reembed=True, spot_side_c=False
    ),
    "bisection 2 rounds (½, ½), re-embedded": lambda m: bisection(
        m, reembed=True, schedule=(0.5, 0.5)
    ),
    "½ default + ½ bisection re-embedded": mix(default, lambda m: bisection(m, reembed=True)),
    "bisection 2 rounds (½, ½)": lambda m: bisection(m, schedule=(0.5, 0.5)),
    "bisection 2 rounds (⅔, ⅓)": lambda m: bisection(m, schedule=(2 / 3, 1 / 3)),
    "bisection 3 rounds (½, ¼, ¼)": lambda m: bisection(m, schedule=(0.5, 0.25, 0.25)),
    "bisection 4 rounds (¼ each)": lambda m: bisection(m, schedule=(0.25,) * 4),
    "bisection, w 1.5": lambda m: bisection(m, expression_weight=1.5),
    "bisection 2 rounds (½, ½), w 1.5": lambda m: bisection(
        m, schedule=(0.5, 0.5), expression_weight=1.5
    ),
    "default, w 1.5": lambda m: default(m, expression_weight=1.5),
    "bisection 2 rounds (½, ½), w 2": lambda m: bisection(
        m, schedule=(0.5, 0.5), expression_weight=2.0
    ),
    "bisection 2 rounds (⅔, ⅓), w 1.5": lambda m: bisection(
        m, schedule=(2 / 3, 1 / 3), expression_weight=1.5
    ),
    "bisection 2 rounds (½, ½), w 1.5 then 1": lambda m: bisection(
        m, schedule=(0.5, 0.5), expression_weight=1.5, w_late=1.0
    ),
    "bisection 2 rounds (½, ½), w 1 then 2": lambda m: bisection(
        m, schedule=(0.5, 0.5), w_late=2.0
    ),
    "bisection, w 1.5 then 1": lambda m: bisection(m, expression_weight=1.5, w_late=1.0),
    "bisection, later rounds ρ 0.5": lambda m: bisection(m, rho_late=0.5),
    "bisection, later rounds ρ 0.2": lambda m: bisection(m, rho_late=0.2),
    "bisection, later rounds ρ 0 (spot side)": lambda m: bisection(m, rho_late=0.0),
    "bisection, later rounds ρ 0.5, w 1.5": lambda m: bisection(
        m, rho_late=0.5, expression_weight=1.5
    ),
    "semi-balanced ρ 0.5 (one round)": lambda m: from_spot_side(
        semi_balanced(m.mapping(balance=False), 0.5), m.mapping().spot_coords
    ),
}


def write(df: pd.DataFrame, path: Path, argv: list[str]) -> None:
    lines = [
        "# Cell-type PCC study: spot-side readouts of saved stemmap models",
        "",
        f"`benchmarks/bench_pcc_study.py {' '.join(argv)}`; mean over the seeds present "
        f"(n); load average at the end {load_average():.1f}. No training: every stemmap "
        "row reads the same saved models out; peers are their cached seed-0 outputs "
        "(deterministic).",
        "",
    ]
    path.write_text("\n".join(lines + report.means_tables(df, "variant", COLUMNS)))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_args(p, ["standard", "disjoint"], [0, 1, 2])
    p.add_argument("--folds", type=int, default=0, help="held-out-gene folds (0: none)")
    p.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=None)
    p.add_argument("--peers", nargs="*", default=["tacco", "baseline"])
    p.add_argument("--cache", type=Path, default=CACHE)
    p.add_argument("--tmp", type=Path, default=CACHE / "pcc_study")
    p.add_argument("--out", type=Path, default=RESULTS / "issue17")
    args = p.parse_args(argv)
    readers = {k: VARIANTS[k] for k in args.variants or VARIANTS}
    df = pd.DataFrame(study_rows(args, readers, args.folds, peers=args.peers))
    report.write_tables(df, args.out, "pcc_study", lambda path: write(df, path, argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
