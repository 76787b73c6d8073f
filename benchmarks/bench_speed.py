#!/usr/bin/env python
"""Training speed: stemmap (paper schedule and the "fast" preset) vs the reference STEM.

On the embryo semi-simulation (7,661 cells × 495 pseudo spots; or any ``--datasets``), runs
in one go on the same machine, one after the other so that they do not share the CPU:

- ``stemmap`` at its defaults (the paper's schedule, σ = 1 × NN) for ``--epochs`` epochs
  (default 400), read out with the default hybrid readout and with the paper's
  (``stemmap_paper_readout``: the same trained model);
- ``stemmap`` with ``preset="fast"`` (see :data:`stemmap.PRESETS`), both readouts;
- the reference implementation (PyPI ``scSTEM==0.0.2``, unmodified, in its own virtual
  environment, ``lib/environments.py``) for ``--epochs`` epochs.

Each run is a subprocess (the drivers in ``drivers/``, ``lib/runner.py``) and is scored with
the same metrics as ``run_benchmark.py`` (``lib/scoring.py``). Writes ``results/speed.md`` and ``results/speed.csv`` with wall time,
seconds per epoch, speed-up over the reference, accuracy and peak memory.

Usage::

    .venv/bin/python benchmarks/bench_speed.py                  # 400 epochs, CPU
    .venv/bin/python benchmarks/bench_speed.py --device cuda    # on a GPU
    .venv/bin/python benchmarks/bench_speed.py --skip-reference # stemmap only
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from lib import report
from lib.data import SimSettings, data_dir, prepare_dataset
from lib.environments import CACHE, RESULTS
from lib.methods import METHODS, label
from lib.runner import RunOptions, competing, load_average, run_method
from lib.scoring import KS, score

logger = logging.getLogger("bench_speed")

#: the runs of the speed table (methods of ``lib/methods.py``); the fast preset sets its epochs
SPEED_METHODS = ["stemmap", "stemmap_paper_readout", "stemmap_fast", "stemmap_fast_paper"]


def timed_run(method: str, data: dict, seed: int, opts: RunOptions, cache: Path) -> dict:
    """Run one method with the load average before and after; score it when it ran."""
    load0 = load_average()
    row, res = run_method(method, data, seed, opts, cache)
    row.update(load_before=load0, load_after=load_average())
    if res is not None:
        score(row, res, data)
    return row


def main(argv: list[str] | None = None) -> int:
    """Time stemmap's runs and the reference's (or quiet vs busy); write the table."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", type=Path, default=None)
    p.add_argument("--epochs", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--timeout", type=int, default=3600)
    p.add_argument("--skip-reference", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--cache", type=Path, default=CACHE)
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
        choices=list(METHODS),
        help="methods of the --busy mode (lib/methods.py names)",
    )
    a = p.parse_args(argv)
    if a.datasets is None:
        a.datasets = [data_dir() / "embryo2_z2.h5ad"]
    a.machine = report.machine_description(a.device)
    opts = RunOptions(a.epochs, a.device, a.timeout)
    if a.busy:
        return busy_mode(a, opts)
    methods = SPEED_METHODS + ([] if a.skip_reference else ["stem_ref"])
    rows = []
    for path in a.datasets:
        data = prepare_dataset(path, SimSettings(), a.cache / path.stem)
        for method in methods:
            rows.append(timed_run(method, data, a.seed, opts, a.cache / path.stem))
            logger.info("%s", {k: rows[-1].get(k) for k in ("method", "status", "train_s")})
    df = report.frame(rows, a.out / "speed.csv")
    import stemmap

    fast_epochs = stemmap.PRESETS["fast"]["epochs"]
    lines = [
        "# Training speed: stemmap vs the reference STEM",
        "",
        report.generated("bench_speed.py") + f": {a.epochs} epochs, seed {a.seed}, device "
        f"{a.device}.",
        f"Machine: {a.machine}. Runs one after the other; the 1-minute load average before and "
        "after each run is listed (2 cores: a load above ~2 means other work shared the CPU).",
        "",
    ]
    header = ["data", "method", "status", "epochs", "train s", "s/epoch"]
    header += ["speed-up vs reference", "MAE (steps)", *(f"hit@{k}" for k in KS)]
    header += ["hit@50 emb", "PCC", "peak MB", "load"]
    cells = []
    for name, sub in df.groupby("dataset", sort=False):
        ref = sub[(sub["method"] == "stem_ref") & (sub["status"] == "ok")]
        ref_s = float(ref["train_s"].iloc[0]) if len(ref) else None
        for _, r in sub.iterrows():
            if r["status"] != "ok":
                cells.append([name, r["method"], r["status"]] + [""] * 13)
                continue
            n_ep = fast_epochs if r["method"].startswith("stemmap_fast") else a.epochs
            cells.append(
                [name, label(r["method"]), "ok", n_ep, f"{r['train_s']:.1f}"]
                + [f"{r['train_s'] / n_ep:.3f}", f"{ref_s / r['train_s']:.1f}×" if ref_s else "–"]
                + [f"{r['mae_steps']:.2f}", *(f"{r[f'hit{k}_coords']:.2f}" for k in KS)]
                + [f"{r.get('hit50_embedding', float('nan')):.2f}", f"{r['pcc_mean']:.3f}"]
                + [f"{r['peak_rss_mb']:.0f}", report.load_span(r["load_before"], r["load_after"])]
            )
    report.write_report(a.out / "speed.md", lines + report.table(header, cells))
    return 0


def busy_mode(a: argparse.Namespace, opts: RunOptions) -> int:
    """Quiet vs busy wall time of each method, in the same run; writes busy.md and busy.csv."""
    rows = []
    for path in a.datasets:
        data = prepare_dataset(path, SimSettings(), a.cache / path.stem)
        for method in a.methods:
            for load in ("quiet", "busy"):
                n_busy = 1 if load == "busy" else 0
                with competing(n_busy, a.timeout) if n_busy else contextlib.nullcontext():
                    rows.append(timed_run(method, data, a.seed, opts, a.cache / path.stem))
                rows[-1]["load"] = load
                logger.info("%s", {k: rows[-1].get(k) for k in ("method", "load", "status")})
    df = report.frame(rows, a.out / "busy.csv")
    lines = report.heading(
        "Quiet vs busy: wall time with one competing single-threaded process",
        report.generated("bench_speed.py") + f": {a.epochs} epochs, seed {a.seed}, device "
        f"{a.device}. Machine: {a.machine}. Each method runs quiet, then beside one busy-loop "
        "process that the script starts and stops (on 2 cores it takes half the CPU: the "
        "physical limit of busy / quiet is then 2×). Load = 1-minute load average before → after.",
    )
    header = ["data", "method", "quiet train s", "busy train s", "busy / quiet"]
    header += ["quiet s/epoch", "busy s/epoch", "load quiet", "load busy"]
    cells = []
    for (name, method), sub in df.groupby(["dataset", "method"], sort=False):
        ok = sub[sub["status"] == "ok"].set_index("load")
        if not {"quiet", "busy"} <= set(ok.index):
            cells.append([name, method, "; ".join(sub["status"].astype(str))] + [""] * 6)
            continue
        q, b = ok.loc["quiet"], ok.loc["busy"]
        cells.append(
            [name, label(method), *report.quiet_busy(q["train_s"], b["train_s"], ".1f")]
            + [f"{q['train_s'] / a.epochs:.3f}", f"{b['train_s'] / a.epochs:.3f}"]
            + [report.load_span(r["load_before"], r["load_after"]) for r in (q, b)]
        )
    lines += report.table(header, cells)
    ok = df[df["status"] == "ok"]
    for load in ("quiet", "busy"):
        ours = ok[(ok["method"] == "stemmap") & (ok["load"] == load)]
        ref = ok[(ok["method"] == "stem_ref") & (ok["load"] == load)]
        if len(ours) and len(ref):
            r = float(ref["train_s"].iloc[0]) / float(ours["train_s"].iloc[0])
            lines.append(
                f"\nstemmap vs the reference STEM, equal epochs, {load}: **{r:.1f}×** less time."
            )
    report.write_report(a.out / "busy.md", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
