#!/usr/bin/env python
"""Thread policy: s/epoch on the shared embryo, quiet and beside competing processes.

Each setting runs in a fresh subprocess (OpenMP reads its wait policy once, when torch is
imported), trains the embryo (7,661 cells × 495 pseudo spots, defaults, full batch) for
``--warm`` epochs, then times ``--epochs`` epochs with β > 0. Settings:

- ``spinning, torch default``: torch imported before stemmap with no ``OMP_WAIT_POLICY``
  (OpenMP threads spin between parallel regions), the thread count torch picks;
- ``spinning, 1 thread``;
- ``spinning, load-aware``: ``threads=None`` when the threads spin: stemmap picks one thread
  fewer per other runnable job;
- ``passive, all CPUs``: stemmap's default (``import stemmap`` first sets
  ``OMP_WAIT_POLICY=PASSIVE``; every usable CPU);
- ``passive, 1 thread``.

Each setting is timed quiet and beside ``--busy-jobs`` single-threaded busy loops that the
script starts and stops itself. Writes ``results/threads.md`` and ``threads.csv``.

Usage::

    .venv/bin/python benchmarks/bench_threads.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lib import report
from lib.data import data_dir
from lib.environments import RESULTS
from lib.runner import competing, load_average, run_child

SETTINGS = {
    "spinning, torch default": {"passive": False, "threads": "torch"},
    "spinning, 1 thread": {"passive": False, "threads": 1},
    "spinning, load-aware": {"passive": False, "threads": None},
    "passive, all CPUs (default)": {"passive": True, "threads": None},
    "passive, 1 thread": {"passive": True, "threads": 1},
}

CHILD = """
import json, sys, time
import torch  # first: the wait policy is fixed now
import anndata as ad
import stemmap
cfg = json.loads(sys.argv[1])
stemmap.settings.progress = False
stemmap.settings.verbosity = "WARNING"
sc, st = stemmap.simulate.pseudo_spots(ad.read_h5ad(cfg["data"]))
threads = torch.get_num_threads() if cfg["threads"] == "torch" else cfg["threads"]
model = stemmap.STEM(sc, st, seed=0, threads=threads)
model.train(epochs=cfg["warm"])
from stemmap import choose_threads
n = choose_threads(threads)[0]
t0 = time.perf_counter()
model.train(epochs=cfg["epochs"], warmup=0)
print("RESULT " + json.dumps({"s_per_epoch": (time.perf_counter() - t0) / cfg["epochs"], "threads": n}))
"""


def run(name: str, cfg: dict, warm: int, epochs: int) -> dict:
    """Time one setting in a fresh process (its own OpenMP wait policy)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if cfg["passive"]:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    data = str(data_dir() / "embryo2_z2.h5ad")
    arg = json.dumps({**cfg, "warm": warm, "epochs": epochs, "data": data})
    load0 = load_average()
    res = run_child([sys.executable, "-c", CHILD, arg], timeout=1800, env=env)
    return {"setting": name, **res, "load_before": load0, "load_after": load_average()}


def main(argv: list[str] | None = None) -> int:
    """Time every setting quiet and busy; write the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warm", type=int, default=15)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--busy-jobs", type=int, default=1, help="competing busy loops when busy")
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    rows = []
    for load in ("quiet", "busy"):
        with competing(a.busy_jobs if load == "busy" else 0, 3600):
            for name, cfg in SETTINGS.items():
                rows.append({**run(name, cfg, a.warm, a.epochs), "load": load})
                print(rows[-1], flush=True)
    df = report.frame(rows, a.out / "threads.csv")
    lines = report.heading(
        "Thread policy on a quiet and a busy machine",
        report.generated("bench_threads.py") + f": the shared embryo, defaults, {a.warm} "
        f"epochs then {a.epochs} timed epochs with β > 0; {os.cpu_count()} CPUs; busy = "
        f"{a.busy_jobs} single-threaded busy loop(s) started by the script. Load = 1-minute "
        "load average before → after each run.",
    )
    header = ["setting", "threads used", "quiet s/epoch", "busy s/epoch", "busy / quiet"]
    cells = []
    for name in SETTINGS:
        q = df[(df["setting"] == name) & (df["load"] == "quiet")].iloc[0]
        b = df[(df["setting"] == name) & (df["load"] == "busy")].iloc[0]
        if q["status"] != "ok" or b["status"] != "ok":
            cells.append([name, "", q["status"], b["status"], "", "", ""])
            continue
        cells.append(
            [name, f"{q['threads']:.0f} / {b['threads']:.0f}"]
            + report.quiet_busy(q["s_per_epoch"], b["s_per_epoch"])
            + [report.load_span(r["load_before"], r["load_after"]) for r in (q, b)]
        )
    report.write_report(
        a.out / "threads.md", lines + report.table(header + ["load quiet", "load busy"], cells)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
