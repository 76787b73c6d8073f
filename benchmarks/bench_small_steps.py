#!/usr/bin/env python
"""Small training steps: one thread vs every CPU, and what ``threads=None`` picks.

With idle OpenMP threads sleeping (stemmap's default), every parallel region of a step wakes
them; a small step (few cells and spots) is made of short operations for which that costs
more than it gains. :func:`stemmap._runtime.step_threads` therefore trains small steps on
one thread by default. This script measures the rule's cases on the shared data (the pseudo
spots of ``run_benchmark.py``): for each case it alternates ``threads=1`` and
``threads=<all usable CPUs>`` (``--reps`` times each, fresh model, ``--epochs`` epochs) in
one process, quiet, and optionally again beside ``--busy-jobs`` busy loops. Writes
``results/threads_small.md`` and ``.csv``.

Usage::

    .venv/bin/python benchmarks/bench_small_steps.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lib import report
from lib.data import SimSettings, case_name, data_dir, prepare_dataset, read_h5ad
from lib.environments import CACHE, RESULTS
from lib.runner import competing, load_average

#: (data set, split, cell batch size) cases; None = all cells
CASES = [
    ("osmfish_cortex", "disjoint", 256),
    ("osmfish_cortex", "standard", 256),
    ("embryo2_z2", "standard", 256),
    ("osmfish_cortex", "disjoint", 1024),
    ("osmfish_cortex", "disjoint", None),
]


def time_case(sc, st, cb: int | None, threads: int, epochs: int) -> float:
    """Return ms per step of ``epochs`` epochs of a fresh model with ``threads`` threads."""
    from stemmap import STEM

    m = STEM(sc, st, spatial_key="spatial", seed=0, threads=threads)
    t = time.perf_counter()
    m.train(epochs=epochs, cell_batch_size=cb, progress=False)
    return (time.perf_counter() - t) / epochs * 1e3


def main(argv: list[str] | None = None) -> int:
    from stemmap import STEM

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--reps", type=int, default=4)
    p.add_argument("--busy-jobs", type=int, default=0, help="also time beside busy loops")
    p.add_argument("--cache", type=Path, default=CACHE / "fast_setting")
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    n_all = len(os.sched_getaffinity(0))
    rows = []
    for ds, split, cb in CASES:
        path = data_dir() / f"{ds}.h5ad"
        data = prepare_dataset(path, SimSettings(), a.cache / case_name(path, split), split)
        sc, st = read_h5ad(data["sc_path"]), read_h5ad(data["st_path"])
        # one epoch with the default threads: torch's one-time imports, and the count it picks
        probe = STEM(sc, st, spatial_key="spatial").train(
            epochs=1, cell_batch_size=cb, progress=False
        )
        picks = probe.train_settings["threads"]
        bc, bn, g = min(cb or sc.n_obs, sc.n_obs), st.n_obs, probe.data.sc_x.shape[1]
        for mode in ["quiet", "busy"] if a.busy_jobs else ["quiet"]:
            jobs = competing(a.busy_jobs, 3600) if mode == "busy" else contextlib.nullcontext()
            with jobs:
                load = load_average()
                t = {1: [], n_all: []}
                for _ in range(a.reps):
                    for th in t:
                        t[th].append(time_case(sc, st, cb, th, a.epochs))
            rows.append(
                {
                    "case": f"{case_name(path, split)}, cell batch {cb or 'all'}",
                    "rows per step": bc + bn,
                    "genes": g,
                    "mode": mode,
                    "ms/step, 1 thread": float(np.median(t[1])),
                    f"ms/step, {n_all} threads": float(np.median(t[n_all])),
                    "default picks": picks,
                    "load": load,
                }
            )
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    a.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(a.out / "threads_small.csv", index=False)
    lines = [
        "# Small training steps: one thread vs every CPU",
        "",
        report.generated("bench_small_steps.py")
        + f": median over {a.reps} fresh models of {a.epochs} epochs each, the two thread "
        f"counts alternating in one process; machine: {report.machine_description('cpu')}. "
        "`default picks`: the count `threads=None` trains with "
        '(`train_settings["threads"]`; `stemmap._runtime.step_threads`: one thread for '
        "small steps).",
        "",
        *report.table(
            list(df.columns),
            [[f"{v:.1f}" if isinstance(v, float) else v for v in r] for r in df.itertuples(False)],
        ),
        "",
    ]
    (a.out / "threads_small.md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
