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
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent

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
from speed_guard import data_dir
cfg = json.loads(sys.argv[1])
stemmap.settings.progress = False
stemmap.settings.verbosity = "WARNING"
sc, st = stemmap.simulate.pseudo_spots(ad.read_h5ad(data_dir() / "embryo2_z2.h5ad"))
threads = torch.get_num_threads() if cfg["threads"] == "torch" else cfg["threads"]
model = stemmap.STEM(sc, st, seed=0, threads=threads)
model.train(epochs=cfg["warm"])
from stemmap import choose_threads
n = choose_threads(threads)[0]
t0 = time.perf_counter()
model.train(epochs=cfg["epochs"], warmup=0)
print("RESULT " + json.dumps({"s_per_epoch": (time.perf_counter() - t0) / cfg["epochs"], "threads": n}))
"""


def busy_loops(n: int, seconds: float) -> list[subprocess.Popen]:
    """``n`` single-threaded busy loops, each ending by itself after ``seconds``."""
    code = f"import time\nend = time.time() + {seconds:.0f}\nwhile time.time() < end:\n    pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def run(name: str, cfg: dict, warm: int, epochs: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if cfg["passive"]:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent / "python" / "src")])
    arg = json.dumps({**cfg, "warm": warm, "epochs": epochs})
    r = subprocess.run(
        [sys.executable, "-c", CHILD, arg], env=env, capture_output=True, text=True, timeout=1800
    )
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    if r.returncode != 0 or not line:
        return {"setting": name, "status": (r.stderr.strip().splitlines() or ["?"])[-1][:160]}
    return {"setting": name, "status": "ok", **json.loads(line[0][7:])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warm", type=int, default=15)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--busy-jobs", type=int, default=1, help="competing busy loops when busy")
    p.add_argument("--out", type=Path, default=HERE / "results")
    a = p.parse_args(argv)
    rows = []
    for load in ("quiet", "busy"):
        procs = busy_loops(a.busy_jobs, 3600) if load == "busy" else []
        time.sleep(1.0 if procs else 0.0)
        try:
            for name, cfg in SETTINGS.items():
                load0 = os.getloadavg()[0]
                row = run(name, cfg, a.warm, a.epochs)
                row.update(load=load, load_avg=f"{load0:.1f}→{os.getloadavg()[0]:.1f}")
                rows.append(row)
                print(row, flush=True)
        finally:
            for pr in procs:
                pr.terminate()
                pr.wait(timeout=30)
    df = pd.DataFrame(rows)
    a.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(a.out / "threads.csv", index=False)
    lines = [
        "# Thread policy on a quiet and a busy machine",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `benchmarks/bench_threads.py`: the "
        f"shared embryo, defaults, {a.warm} epochs then {a.epochs} timed epochs with β > 0; "
        f"{os.cpu_count()} CPUs; busy = {a.busy_jobs} single-threaded busy loop(s) started by "
        "the script. Load = 1-minute load average before → after each run.",
        "",
        "| setting | threads used | quiet s/epoch | busy s/epoch | busy / quiet | load quiet | "
        "load busy |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in SETTINGS:
        q = df[(df["setting"] == name) & (df["load"] == "quiet")].iloc[0]
        b = df[(df["setting"] == name) & (df["load"] == "busy")].iloc[0]
        if q["status"] != "ok" or b["status"] != "ok":
            lines.append(f"| {name} | | {q['status']} | {b['status']} | | | |")
            continue
        lines.append(
            f"| {name} | {q['threads']} / {b['threads']} | {q['s_per_epoch']:.3f} | "
            f"{b['s_per_epoch']:.3f} | {b['s_per_epoch'] / q['s_per_epoch']:.2f}× | "
            f"{q['load_avg']} | {b['load_avg']} |"
        )
    (a.out / "threads.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
