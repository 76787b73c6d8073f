#!/usr/bin/env python
"""A fast setting vs TACCO, timed in one run (issue #17: TACCO's accuracy in ≤ ⅓ of its time).

For every data set and split (``run_benchmark.py``'s pseudo spots), TACCO runs first through
its driver (``lib.runner.run_method``, own cache, so it is timed in this run), then stemmap
trains in this process in each setting of ``SETTINGS`` (the ``"fast"`` preset and shorter
schedules on cell batches), one after the other, after a one-epoch toy run that takes torch's
one-time imports out of the timing (TACCO's imports are not timed either). Each row is scored like
``run_benchmark.py`` scores a method. Times: ``fit s`` = TACCO's ``annotate`` call,
stemmap's set-up + training + readout (``sc_to_st`` and ``coords``): what a user waits for;
the 1-minute load average is recorded before each row (the machine is shared: times compare
only within one run).

Usage::

    .venv/bin/python benchmarks/bench_fast_setting.py --seeds 0

Writes ``results/issue17/fast_setting.{md,csv}``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib import report
from lib.data import SimSettings, add_data_args, case_name, prepare_dataset, read_h5ad
from lib.environments import CACHE, RESULTS
from lib.readouts import COLUMNS, bisection
from lib.runner import RunOptions, align, load_average, run_method
from lib.scoring import score

logger = logging.getLogger("fast_setting")


def _schedule(epochs: int, lr: float = 0.004) -> dict[str, Any]:
    """Return the fast preset's shape at another length: lr halved at half-time, 1/8 warm-up."""
    return {
        "epochs": epochs,
        "lr": lr,
        "lr_step": max(1, epochs // 2),
        "lr_gamma": 0.5,
        "warmup": max(1, epochs // 8),
        "cell_batch_size": 2048,
    }


#: the keys of a setting's STEM.mapping() and STEM() arguments (the others go to STEM.train())
MAPPING_KW = "mapping"
MODEL_KW = "model"

#: name → STEM.train() arguments (and STEM.mapping()'s under MAPPING_KW, STEM()'s under
#: MODEL_KW)
SETTINGS: dict[str, dict[str, Any]] = {
    "defaults (400 epochs)": {},
    'preset="fast" (200 epochs, cell batches 2048)': {"preset": "fast"},
    'preset="quick"': {"preset": "quick"},
    'preset="quick" with the default encoder (512-256-128)': {
        "preset": "quick",
        MODEL_KW: {"hidden": (512, 256, 128)},
    },
    'preset="quick" with the default readout (expression weight 1.5, 2 rounds)': {
        "preset": "quick",
        MAPPING_KW: {"expression_weight": 1.5, "rounds": 2},
    },
    "fast schedule, 100 epochs": _schedule(100),
    "fast schedule, 75 epochs": _schedule(75),
    "fast schedule, 50 epochs": _schedule(50),
    "fast schedule, 25 epochs": _schedule(25),
    "fast schedule, 25 epochs, lr 0.008": _schedule(25, lr=0.008),
    "fast schedule, 100 epochs, full batch": {**_schedule(100), "cell_batch_size": None},
    "fast schedule, 150 epochs, full batch": {**_schedule(150), "cell_batch_size": None},
    "fast schedule, 100 epochs, cell batches 1024": {**_schedule(100), "cell_batch_size": 1024},
    # small steps train on one thread (stemmap._runtime.step_threads); a short-trained
    # embedding carries less, so the readout's expression term may weigh more
    "cell batches 256, 75 epochs": {**_schedule(75), "cell_batch_size": 256},
    # the "quick" preset of the eighth session
    "cell batches 256, 100 epochs": {**_schedule(100), "cell_batch_size": 256},
    "cell batches 256, 75 epochs, expression weight 3": {
        **_schedule(75),
        "cell_batch_size": 256,
        MAPPING_KW: {"expression_weight": 3.0},
    },
    "cell batches 256, 100 epochs, expression weight 3": {
        **_schedule(100),
        "cell_batch_size": 256,
        MAPPING_KW: {"expression_weight": 3.0},
    },
}


def _bisection_readout(model: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    c, xy = bisection(model, schedule=(0.5, 0.5), expression_weight=1.5)
    return c, xy, list(model.data.sc_names)


def _warm_up() -> None:
    """Train a toy model for one epoch, so that torch's one-time imports are not timed.

    They take about 1 s, on the first optimiser of a process; TACCO's imports are not timed
    either.
    """
    import stemmap

    sc, st = stemmap.datasets.toy_data(seed=0)
    stemmap.STEM(sc, st).train(epochs=1, progress=False)


def run_stemmap(
    data: dict[str, Any], seed: int, train_kw: dict[str, Any], readouts: list[str]
) -> list[tuple[str, dict, dict]]:
    """Train once; per readout: (readout, times, aligned outputs); fit s counts one readout."""
    from stemmap import STEM

    sc, st = read_h5ad(data["sc_path"]), read_h5ad(data["st_path"])
    train_kw = dict(train_kw)
    map_kw = train_kw.pop(MAPPING_KW, {})
    model_kw = train_kw.pop(MODEL_KW, {})
    t0 = time.perf_counter()
    model = STEM(sc, st, spatial_key="spatial", alpha=0.5, seed=seed, **model_kw)
    t1 = time.perf_counter()
    model.train(progress=False, **train_kw)
    t2 = time.perf_counter()
    out = []
    for readout in readouts:
        t2a = time.perf_counter()
        if readout == "bisection":
            c, xy, names = _bisection_readout(model)
        else:
            m = model.mapping(**map_kw)
            c, xy, names = m.sc_to_st, m.coords, m.sc_names
        t3 = time.perf_counter()
        times = {"setup_s": t1 - t0, "train_s": t2 - t1, "readout_s": t3 - t2a}
        times["fit_s"] = times["setup_s"] + times["train_s"] + times["readout_s"]
        res = align({"sc_names": np.asarray(names), "sc_to_st": c, "coords": xy}, data)
        out.append((readout, times, res))
    return out


def run(args: argparse.Namespace) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    _warm_up()
    for path in args.datasets:
        for split in args.splits:
            name = case_name(path, split)
            cache = args.cache / name
            data = prepare_dataset(path, SimSettings(), cache, split)
            base = {"data": path.stem, "split": split}
            load = load_average()
            r0, res = run_method("tacco", data, 0, RunOptions(), cache)
            row = {**base, "seed": 0, "setting": "TACCO 0.5.0", "load": load}
            row.update(status=r0["status"], fit_s=r0.get("train_s"), train_s=r0.get("train_s"))
            if res is not None:
                score(row, res, data)
            rows.append(row)
            logger.info("%s TACCO: %.1f s (load %.1f)", name, row.get("fit_s", np.nan), load)
            for (sname, kw), seed in itertools.product(SETTINGS.items(), args.seeds):
                load = load_average()
                for readout, times, res in run_stemmap(data, seed, kw, args.readouts):
                    label = sname if readout == "default" else f"{sname}, {readout} readout"
                    row = {**base, "seed": seed, "setting": label, "load": load, **times}
                    score(row, res, data)
                    rows.append(row)
                    logger.info(
                        "%s s%d %-46s %.1f s (load %.1f) hit@50 %.2f MAE %.2f PCC %.3f",
                        name,
                        seed,
                        label,
                        times["fit_s"],
                        load,
                        row["hit50_coords"],
                        row["mae_steps"],
                        row["pcc_mean"],
                    )
            pd.DataFrame(rows).to_csv(args.out / "fast_setting.csv", index=False)
    return pd.DataFrame(rows)


def write(df: pd.DataFrame, path: Path, argv: list[str]) -> None:
    cols = {
        **{k: v for k, v in COLUMNS.items() if not k.startswith("heldout")},
        "fit_s": "fit s",
        "train_s": "of it training s",
        "load": "load",
    }

    def vs_tacco(mean: pd.DataFrame) -> pd.Series:
        ref = mean["fit_s"].get("TACCO 0.5.0", np.nan)
        return (mean["fit_s"] / ref).rename("× TACCO")

    lines = [
        "# A fast setting vs TACCO, timed in one run",
        "",
        f"`benchmarks/bench_fast_setting.py {' '.join(argv)}`; mean over seeds (n). Rows ran "
        "one after the other on a 2-core machine shared with other work: `load` is the "
        "1-minute load average before the row; times compare only within this run. "
        "`fit s`: TACCO's annotate call; stemmap's set-up + training + readout. `× TACCO`: "
        "fit s / TACCO's fit s in the same block (target ≤ 0.33).",
        "",
    ]
    path.write_text("\n".join(lines + report.means_tables(df, "setting", cols, vs_tacco)))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_args(p, ["disjoint", "standard"], [0])
    p.add_argument("--settings", nargs="*", choices=list(SETTINGS), default=None)
    p.add_argument(
        "--readouts",
        nargs="+",
        choices=["default", "bisection"],
        default=["default"],
        help="bisection: the 2-round (½, ½), w 1.5 readout of bench_pcc_study.py "
        "(lib.readouts.bisection)",
    )
    p.add_argument("--cache", type=Path, default=CACHE / "fast_setting")
    p.add_argument("--out", type=Path, default=RESULTS / "issue17")
    args = p.parse_args(argv)
    if args.settings:
        for k in set(SETTINGS) - set(args.settings):
            del SETTINGS[k]
    args.out.mkdir(parents=True, exist_ok=True)
    df = run(args)
    report.write_tables(df, args.out, "fast_setting", lambda path: write(df, path, argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
