#!/usr/bin/env python
"""Training speed: stemmap (paper schedule and the "fast" preset) vs the reference STEM.

On the embryo semi-simulation (7,661 cells × 495 pseudo spots; or any ``--datasets``), runs
in one go on the same machine, one after the other so that they do not share the CPU:

- ``stemmap`` at the paper's settings for ``--epochs`` epochs (default 400), read out with
  the default hybrid readout and with the paper's (same trained model);
- ``stemmap`` with ``preset="fast"`` (see :data:`stemmap.PRESETS`), both readouts;
- the reference implementation (PyPI ``scSTEM==0.0.2``, unmodified, in its own virtual
  environment created by ``run_benchmark.py``'s machinery) for ``--epochs`` epochs.

Each run is a subprocess (the drivers in ``drivers/``) and is scored with the same metrics
as ``run_benchmark.py``. Writes ``results/speed.md`` and ``results/speed.csv`` with wall time,
seconds per epoch, speed-up over the reference, accuracy and peak memory.

Usage::

    .venv/bin/python benchmarks/bench_speed.py                  # 400 epochs, CPU
    .venv/bin/python benchmarks/bench_speed.py --device cuda    # on a GPU
    .venv/bin/python benchmarks/bench_speed.py --skip-reference # stemmap only
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "python" / "src"))

import run_benchmark as rb  # noqa: E402

logger = logging.getLogger("bench_speed")

# the fast preset runs through the stemmap driver with --preset fast
rb.METHODS.setdefault(
    "stemmap_fast",
    {
        "driver": "stemmap_driver.py",
        "env": None,
        "label": "stemmap, preset fast",
        "stem": True,
        "extra": ["--preset", "fast"],
        "readouts": ["paper"],
    },
)
rb.METHODS.setdefault(
    "stemmap_fast_paper",
    {
        "from": "stemmap_fast",
        "suffix": "paper",
        "env": None,
        "label": "stemmap, preset fast, paper readout",
        "stem": True,
    },
)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", type=Path, default=None)
    p.add_argument("--epochs", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--timeout", type=int, default=3600)
    p.add_argument("--skip-reference", action="store_true")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--cache", type=Path, default=HERE / "cache")
    p.add_argument(
        "--busy",
        action="store_true",
        help="time each of --methods quiet and then beside one competing single-threaded "
        "process that this script starts and stops (writes busy.md / busy.csv)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=["stemmap", "stemmap_1thread", "stem_ref", "tangram", "tacco"],
        help="methods of the --busy mode (run_benchmark.py names)",
    )
    a = p.parse_args(argv)
    if a.datasets is None:
        a.datasets = [rb.default_data_dir() / "embryo2_z2.h5ad"]
    # run_benchmark's data preparation and runner expect its own argument names
    a.grid, a.window, a.min_cells, a.label_key, a.noise = [30, 40], 0.55, 3, "celltype", 0.0
    a.reuse, a.cached_only, a.reread, a.split_seed = False, [], False, 0
    if a.busy:
        return busy_mode(a)
    methods = ["stemmap", "stemmap_paper", "stemmap_fast", "stemmap_fast_paper"]
    methods += [] if a.skip_reference else ["stem_ref"]
    machine = rb.machine_description(a.device)
    rows = []
    for path in a.datasets:
        data = rb.prepare_dataset(path, a, a.cache / path.stem)
        for method in methods:
            load0 = os.getloadavg()[0]
            row, res = rb.run_method(method, data, a.seed, a, a.cache / path.stem)
            row["load_before"] = load0
            row["load_after"] = os.getloadavg()[0]
            if res is not None:
                rb.score(row, res, data)
            rows.append(row)
            logger.info("%s", {k: row.get(k) for k in ("method", "status", "train_s", "mae_steps")})
    df = pd.DataFrame(rows)
    a.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(a.out / "speed.csv", index=False)
    ep = {
        "stemmap": a.epochs,
        "stemmap_paper": a.epochs,
        "stemmap_fast": None,
        "stemmap_fast_paper": None,
        "stem_ref": a.epochs,
    }
    lines = [
        "# Training speed: stemmap vs the reference STEM",
        "",
        f"Generated {dt.datetime.now().isoformat(timespec='seconds')} by "
        f"`benchmarks/bench_speed.py` ({a.epochs} epochs, seed {a.seed}, device {a.device}).",
        f"Machine: {machine}. Runs one after the other; the 1-minute load average before and "
        "after each run is listed (2 cores: a load above ~2 means other work shared the CPU).",
        "",
        "| data | method | status | epochs | train s | s/epoch | speed-up vs reference | "
        "MAE (steps) | hit@10 | hit@25 | hit@50 | hit@200 | hit@50 emb | PCC | peak MB | load |",
        "|" + "---|" * 16,
    ]
    for name, sub in df.groupby("dataset", sort=False):
        ref = sub[(sub["method"] == "stem_ref") & (sub["status"] == "ok")]
        ref_s = float(ref["train_s"].iloc[0]) if len(ref) else None
        for _, r in sub.iterrows():
            if r["status"] != "ok":
                lines.append(f"| {name} | {r['method']} | {r['status']} |" + " |" * 13)
                continue
            n_ep = ep[r["method"]] or __import__("stemmap").PRESETS["fast"]["epochs"]
            sp = f"{ref_s / r['train_s']:.1f}×" if ref_s else "–"
            lines.append(
                f"| {name} | {rb.METHODS[r['method']]['label']} | ok | {n_ep} | "
                f"{r['train_s']:.1f} | {r['train_s'] / n_ep:.3f} | {sp} | {r['mae_steps']:.2f} | "
                + " | ".join(f"{r[f'hit{k}_coords']:.2f}" for k in rb.KS)
                + f" | {r.get('hit50_embedding', float('nan')):.2f} | {r['pcc_mean']:.3f} | "
                f"{r['peak_rss_mb']:.0f} | {r['load_before']:.1f}→{r['load_after']:.1f} |"
            )
    (a.out / "speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


rb.METHODS.setdefault(
    "stemmap_1thread",
    {
        "driver": "stemmap_driver.py",
        "env": None,
        "label": "stemmap, threads=1",
        "stem": True,
        "extra": ["--threads", "1"],
    },
)


@contextlib.contextmanager
def competing_process(seconds: float):
    """One single-threaded busy loop beside the block (bounded in time, stopped after)."""
    from bench_threads import busy_loops

    (proc,) = busy_loops(1, seconds)
    try:
        time.sleep(1.0)  # let it take its core
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def busy_mode(a: argparse.Namespace) -> int:
    """Quiet vs busy wall time of each method, in the same run; writes busy.md and busy.csv."""
    machine = rb.machine_description(a.device)
    rows = []
    for path in a.datasets:
        data = rb.prepare_dataset(path, a, a.cache / path.stem)
        for method in a.methods:
            if method not in rb.METHODS:
                rows.append({"dataset": data["name"], "method": method, "status": "unknown"})
                continue
            for load in ("quiet", "busy"):
                ctx = competing_process(a.timeout) if load == "busy" else contextlib.nullcontext()
                with ctx:
                    load0 = os.getloadavg()[0]
                    row, _ = rb.run_method(method, data, a.seed, a, a.cache / path.stem)
                row.update(load=load, load_before=load0, load_after=os.getloadavg()[0])
                rows.append(row)
                logger.info("%s", {k: row.get(k) for k in ("method", "load", "status", "train_s")})
    df = pd.DataFrame(rows)
    a.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(a.out / "busy.csv", index=False)
    lines = [
        "# Quiet vs busy: wall time with one competing single-threaded process",
        "",
        f"Generated {dt.datetime.now().isoformat(timespec='seconds')} by "
        f"`benchmarks/bench_speed.py --busy` ({a.epochs} epochs, seed {a.seed}, device "
        f"{a.device}). Machine: {machine}. Each method runs quiet, then beside one busy-loop "
        "process that the script starts and stops (on 2 cores it takes half the CPU: the "
        "physical limit of busy / quiet is then 2×). Load = 1-minute load average before → after.",
        "",
        "| data | method | quiet train s | busy train s | busy / quiet | quiet s/epoch | "
        "busy s/epoch | load quiet | load busy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (name, method), sub in df.groupby(["dataset", "method"], sort=False):
        q = sub[(sub.get("load") == "quiet") & (sub["status"] == "ok")]
        b = sub[(sub.get("load") == "busy") & (sub["status"] == "ok")]
        if q.empty or b.empty:
            lines.append(
                f"| {name} | {method} | {'; '.join(sub['status'].astype(str))} |" + " |" * 6
            )
            continue
        tq, tb = float(q["train_s"].iloc[0]), float(b["train_s"].iloc[0])
        lines.append(
            f"| {name} | {rb.METHODS[method]['label']} | {tq:.1f} | {tb:.1f} | {tb / tq:.2f}× | "
            f"{tq / a.epochs:.3f} | {tb / a.epochs:.3f} | "
            f"{q['load_before'].iloc[0]:.1f}→{q['load_after'].iloc[0]:.1f} | "
            f"{b['load_before'].iloc[0]:.1f}→{b['load_after'].iloc[0]:.1f} |"
        )
    ok = df[df["status"] == "ok"]
    for load in ("quiet", "busy"):
        ours = ok[(ok["method"] == "stemmap") & (ok["load"] == load)]
        ref = ok[(ok["method"] == "stem_ref") & (ok["load"] == load)]
        if len(ours) and len(ref):
            r = float(ref["train_s"].iloc[0]) / float(ours["train_s"].iloc[0])
            lines.append(
                f"\nstemmap vs the reference STEM, equal epochs, {load}: **{r:.1f}×** less time."
            )
    (a.out / "busy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
