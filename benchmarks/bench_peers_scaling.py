#!/usr/bin/env python
"""Where the reference STEM and Tangram stop scaling: time per epoch and peak memory.

For each size the script builds the same synthetic data as ``bench_scaling.py``
(``lib.data.synthetic``), writes it as ``.h5ad`` to a temporary folder and runs each
peer's benchmark driver (``benchmarks/drivers``, in its own virtual environment) for a few
epochs under a memory limit (``RLIMIT_AS``) and a time limit. It reports seconds per epoch,
the projected time of the method's usual schedule (reference STEM: 400 epochs; Tangram: 1,000)
and the driver process's peak RSS, or how the run failed. A method that fails at one size is
not run at larger ones. stemmap's own numbers at the same sizes come from ``bench_scaling.py``.

Usage::

    .venv/bin/python benchmarks/bench_peers_scaling.py --sizes 10000x500 100000x5000
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lib import report
from lib.data import synthetic
from lib.environments import RESULTS
from lib.runner import driver_command, read_output, run_child

SCHEDULE = {"stem_ref": 400, "tangram": 1000}
SHORT = {"stem_ref": 1, "tangram": 5}  # epochs of the short run (cheap Tangram epochs: more)


def run_peer(method: str, sc_path: Path, st_path: Path, sigma: float, a) -> dict:
    """Time a peer by two runs (``SHORT`` epochs and 3 × that).

    The difference gives seconds per epoch without the set-up inside the training call; peak
    memory and status come from the longer run.
    """
    e = SHORT[method]
    lo = _run_once(method, sc_path, st_path, sigma, a, e)
    if lo["status"] != "ok":
        return lo
    hi = _run_once(method, sc_path, st_path, sigma, a, 3 * e)
    if hi["status"] != "ok":
        return hi
    s_ep = (hi["train_s"] - lo["train_s"]) / (2 * e)
    return {
        "status": "ok",
        "s_per_epoch": s_ep,
        "overhead_s": lo["train_s"] - e * s_ep,
        "projected_s": lo["train_s"] + (SCHEDULE[method] - e) * s_ep,
        "peak_rss_gb": hi["peak_rss_gb"],
    }


def _run_once(method: str, sc_path: Path, st_path: Path, sigma: float, a, epochs: int) -> dict:
    out = sc_path.parent / f"{method}.npz"
    cmd = driver_command(method, sc_path, st_path, out, epochs, 0, a.device, sigma)
    limit = int(a.mem_gb * 2**30)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    t0 = time.perf_counter()
    r = run_child([*cmd, "--timing-only"], a.timeout, preexec_fn=cap)
    wall = time.perf_counter() - t0
    if r["status"].startswith("timeout"):
        return {"status": f"timeout: {epochs} epochs not done in {a.timeout} s"}
    if r.get("exit") not in (0, None) or not out.exists():  # no RESULT line: exit 0
        oom = ("memoryerror", "out of memory", "can't allocate memory", "cannot allocate memory")
        mem = any(t in r["status"].lower() for t in oom)
        what = f"out of memory (limit {a.mem_gb:g} GB)" if mem else r["status"]
        return {"status": what, "wall_s": wall}
    meta, _ = read_output(out)
    out.unlink()
    return {
        "status": "ok",
        "train_s": meta["train_s"],
        "peak_rss_gb": meta["peak_rss_mb"] / 1024,
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", default=["10000x500", "10000x5000", "100000x5000"])
    p.add_argument("--methods", nargs="+", default=["stem_ref", "tangram"], choices=SCHEDULE)
    p.add_argument("--genes", type=int, default=351)
    p.add_argument("--device", default="cpu")
    p.add_argument("--mem-gb", type=float, default=20.0, help="address-space limit per run")
    p.add_argument("--timeout", type=int, default=900, help="seconds per run")
    p.add_argument("--out", type=Path, default=RESULTS / "scaling_peers.md")
    a = p.parse_args(argv)
    from stemmap.metrics import mean_nn_distance

    rows, failed = [], {}
    for size in a.sizes:
        c, s = (int(v) for v in size.split("x"))
        with tempfile.TemporaryDirectory(prefix="stemmap_peers_") as tmp:
            sc, st = synthetic(c, s, a.genes)
            sc_path, st_path = Path(tmp) / "sc.h5ad", Path(tmp) / "st.h5ad"
            sc.write_h5ad(sc_path)
            st.write_h5ad(st_path)
            sigma = 0.5 * mean_nn_distance(np.asarray(st.obsm["spatial"]))
            for method in a.methods:
                row = {"size": size, "cells": sc.n_obs, "spots": st.n_obs, "method": method}
                if method in failed:
                    row["status"] = f"not run (failed at {failed[method]})"
                else:
                    print(f"[{time.strftime('%H:%M:%S')}] {size} {method} ...", flush=True)
                    row.update(run_peer(method, sc_path, st_path, sigma, a))
                    if row["status"] != "ok":
                        failed[method] = size
                print("   ", row, flush=True)
                rows.append(row)
    lines = [
        "# Peers at scale: reference STEM and Tangram",
        "",
        f"`benchmarks/bench_peers_scaling.py {' '.join(argv or sys.argv[1:])}`; "
        f"{report.machine_description(a.device)}, device {a.device}; "
        f"{a.genes} genes; seconds per epoch from two runs (reference STEM 1 and 3 epochs, "
        "Tangram 5 and 15: their difference, free of set-up); address space limited to "
        f"{a.mem_gb:g} GB, {a.timeout} s per run; {time.strftime('%Y-%m-%d')}. Projected: "
        "reference STEM 400 epochs (the paper's), Tangram 1,000 (its default).",
        "",
        "| cells × spots | method | s per epoch | set-up s | projected schedule | peak RSS GB "
        "| status |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["status"] == "ok":
            lines.append(
                f"| {r['cells']} × {r['spots']} | {r['method']} | {r['s_per_epoch']:.3f} | "
                f"{r['overhead_s']:.1f} | {r['projected_s'] / 60:.1f} min | "
                f"{r['peak_rss_gb']:.2f} | ok |"
            )
        else:
            lines.append(f"| {r['cells']} × {r['spots']} | {r['method']} | | | | | {r['status']} |")
    report.write_report(a.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
