#!/usr/bin/env python
"""Scaling of stemmap training and outputs with the number of cells and spots.

For each (cells, spots) size the script generates a tissue with
:func:`stemmap.datasets.synthetic_tissue` (351 genes by default, like the embryo data),
builds pseudo spots on a grid sized to give about the requested number of spots, and in a
fresh subprocess (so peak memory is per run) trains stemmap with the automatic batch plan
(full batch where it fits in memory, else cell batches and spot patches) and computes the
chunked outputs (pseudo-coordinates, best spot, top-k mapping). It reports seconds per
training step, the projected time of 400 epochs, the output time and the peak resident
memory of the subprocess.

With batches, an "epoch" is one optimisation step per slice on ``cell_batch_size`` cells and
a ``spot_batch_size``-spot patch; the table also gives the passes over all cells.

Usage::

    .venv/bin/python benchmarks/bench_scaling.py                          # default grid
    .venv/bin/python benchmarks/bench_scaling.py --sizes 10000x500 100000x5000 --device cuda
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lib import report
from lib.data import synthetic
from lib.environments import RESULTS
from lib.runner import batch_plan, load_average, peak_rss_gb, print_result, run_child


def child(
    cells: int,
    spots: int,
    genes: int,
    steps: int,
    device: str,
    cbs: int | None,
    sbs: int | None,
    readout: str = "hybrid",
    mixed_precision: bool | str = "auto",
    deconvolve: bool = False,
    progress: bool = False,
    tissue_cells: int | None = None,
    epochs: int | None = None,
) -> dict:
    """Time training steps and the outputs at one size (in a fresh process)."""
    import numpy as np
    import stemmap
    import torch

    stemmap.settings.progress = False
    if progress:  # phases and balancing passes on stderr as they happen (long runs)
        import logging

        logging.getLogger("stemmap.mapping").setLevel(logging.DEBUG)
        logging.basicConfig(format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)

    def note(what: str) -> None:
        if progress:
            print(f"{time.strftime('%H:%M:%S')} load {load_average():.2f} {what}", file=sys.stderr)
            sys.stderr.flush()

    t0 = time.perf_counter()
    sc, st = synthetic(max(cells, tissue_cells or 0), spots, genes)
    if tissue_cells and cells < sc.n_obs:  # bins of a larger tissue, a reference of `cells`
        keep = np.random.default_rng(0).choice(sc.n_obs, cells, replace=False)
        sc = sc[np.sort(keep)].copy()
    gen_s = time.perf_counter() - t0
    note(f"generated {sc.n_obs} cells x {st.n_obs} spots in {gen_s:.1f} s")
    data_peak_gb = peak_rss_gb()
    load = [load_average()]
    t0 = time.perf_counter()
    model = stemmap.STEM(sc, st, seed=0, device=device)
    prepare_s = time.perf_counter() - t0
    note(f"prepared in {prepare_s:.1f} s")
    est = stemmap.estimate_resources(
        sc.n_obs, st.n_obs, genes, device=device, cell_batch_size=cbs, spot_batch_size=sbs
    )
    cbs_, sbs_ = batch_plan(model, cbs, sbs)
    kw = {"cell_batch_size": cbs_, "spot_batch_size": sbs_, "mixed_precision": mixed_precision}
    model.train(epochs=1, **kw)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model.train(epochs=steps, **kw)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    step_s = (time.perf_counter() - t0) / steps
    note(f"{steps} steps: {step_s:.3f} s per step, peak RSS {peak_rss_gb():.2f} GB")
    train_s = None
    if epochs:  # train the whole run (measured, not projected from the timed steps)
        t0 = time.perf_counter()
        model.train(epochs=epochs, **kw)
        train_s = time.perf_counter() - t0
        note(f"trained {epochs} more epochs in {train_s:.1f} s")
    t0 = time.perf_counter()
    load.append(load_average())
    phases: dict[str, float] = {}
    if readout == "none":  # training only (e.g. to measure the memory of a batch plan)
        m, topk, out_s = None, None, float("nan")
    else:
        m = model.mapping(readout=readout)
        phases["embed_s"] = time.perf_counter() - t0
        note(f"embedded in {phases['embed_s']:.1f} s")
        _ = m.balance_info, m.coords  # the balancing, then the one pass over C
        phases["balance_and_pass_s"] = time.perf_counter() - t0 - phases["embed_s"]
        note(f"balanced + output pass in {phases['balance_and_pass_s']:.1f} s: {m.balance_info}")
        _ = m.best_spot
        topk = m.topk_mapping(10)
        out_s = time.perf_counter() - t0
        if deconvolve:
            t1 = time.perf_counter()
            dec = m.deconvolve(sc.obs.loc[m.sc_names, "celltype"])
            phases["deconvolve_s"] = time.perf_counter() - t1
            phases["deconvolution_finite"] = bool(np.isfinite(dec.to_numpy()).all())
            out_s += phases["deconvolve_s"]
            note(f"deconvolved in {phases['deconvolve_s']:.1f} s, peak RSS {peak_rss_gb():.2f} GB")
    load.append(load_average())
    res = {
        "cells": sc.n_obs,
        "spots": st.n_obs,
        "genes": genes,
        "device": device,
        "cell_batch_size": cbs_,
        "spot_batch_size": sbs_,
        "s_per_step": step_s,
        "projected_400_epochs_s": 400 * step_s,
        "passes_over_cells_in_400": 400 * (cbs_ or sc.n_obs) / sc.n_obs,
        "outputs_s": out_s,
        "threads": torch.get_num_threads(),
        "prepare_s": prepare_s,
        "end_to_end_s": prepare_s + (train_s if train_s else 400 * step_s) + out_s,
        "train_s": train_s,
        "epochs_trained": 1 + steps + (epochs or 0),
        "load": load,
        "estimate": {
            k: est[k]
            for k in (
                "total_seconds",
                "step_seconds",
                "step_bytes",
                "readout_seconds",
                "readout_bytes",
                "end_to_end_seconds",
                "peak_bytes",
            )
        },
        **phases,
        "readout": readout,
        "mixed_precision": model.train_settings["mixed_precision"],
        "balance": None if m is None else m.balance_info,
        "topk_nnz": None if topk is None else int(topk.nnz),
        "generate_s": gen_s,
        "peak_rss_gb": peak_rss_gb(),
        "finite": None if m is None else bool(np.isfinite(m.coords).all()),
        "estimated_step_gb": model.memory_estimate(cbs_, sbs_) / 2**30,
        "data_peak_gb": data_peak_gb,
    }
    if device.startswith("cuda"):
        res["cuda_peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return res


def table_row(r: dict) -> list:
    """Format one size's cells (only the size and the status when it failed)."""
    if r["status"] != "ok":
        return [r["size"]] + [""] * 8 + [r["status"]]
    return [
        r["size"],
        r["cells"],
        r["spots"],
        f"{r['cell_batch_size'] or 'all'} / {r['spot_batch_size'] or 'all'}",
        f"{r['s_per_step']:.3f}",
        f"{r['projected_400_epochs_s'] / 60:.1f} min",
        f"{r['passes_over_cells_in_400']:.1f}",
        f"{r['outputs_s']:.1f} ({r['readout']})",
        f"{r['peak_rss_gb']:.2f}",
        "ok",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--sizes",
        nargs="+",
        default=["10000x500", "10000x5000", "100000x500", "100000x5000", "100000x20000"],
    )
    p.add_argument("--genes", type=int, default=351)
    p.add_argument("--steps", type=int, default=5, help="timed steps per size")
    p.add_argument("--device", default="cpu")
    p.add_argument("--cell-batch-size", type=int, default=None)
    p.add_argument("--spot-batch-size", type=int, default=None)
    p.add_argument("--timeout", type=int, default=1200)
    p.add_argument(
        "--readout", default="hybrid", help="readout of the timed outputs (none: no outputs)"
    )
    p.add_argument("--out", type=Path, default=RESULTS / "scaling.md")
    p.add_argument(
        "--mixed-precision",
        choices=("auto", "on", "off"),
        default="auto",
        help="bfloat16 autocast in training (default: stemmap's, auto)",
    )
    p.add_argument(
        "--deconvolve",
        action="store_true",
        help="also time deconvolution (the issue-28 default outputs) and report end to end",
    )
    p.add_argument("--progress", action="store_true", help="with --child: log the phases to stderr")
    p.add_argument(
        "--tissue-cells",
        type=int,
        default=None,
        help="with --child: bins from a tissue of this many cells, the reference a sample of "
        "CELLS of them (more bins than reference cells, e.g. 100000x500000)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="with --child: train this many more epochs after the timed steps (measured end to "
        "end instead of projected)",
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        c, s = (int(v) for v in a.child.split("x"))
        mixed = {"auto": "auto", "on": True, "off": False}[a.mixed_precision]
        kw = {"readout": a.readout, "mixed_precision": mixed, "deconvolve": a.deconvolve}
        kw["progress"] = a.progress
        kw["tissue_cells"], kw["epochs"] = a.tissue_cells, a.epochs
        cbs, sbs = a.cell_batch_size, a.spot_batch_size
        print_result(child(c, s, a.genes, a.steps, a.device, cbs, sbs, **kw))
        return 0
    rows = []
    for size in a.sizes:
        cmd = [sys.executable, __file__, "--child", size, "--genes", str(a.genes)]
        cmd += ["--steps", str(a.steps), "--device", a.device, "--readout", a.readout]
        cmd += ["--mixed-precision", a.mixed_precision]
        if a.deconvolve:
            cmd += ["--deconvolve"]
        if a.cell_batch_size:
            cmd += ["--cell-batch-size", str(a.cell_batch_size)]
        if a.spot_batch_size:
            cmd += ["--spot-batch-size", str(a.spot_batch_size)]
        print(f"[{time.strftime('%H:%M:%S')}] {size} ...", flush=True)
        rows.append({"size": size, **run_child(cmd, a.timeout)})
        print("   ", rows[-1], flush=True)
    lines = report.heading(
        "stemmap scaling",
        f"Machine: {report.machine_description(a.device)}; device {a.device}; {a.genes} "
        f"genes; {a.steps} timed steps after one warm-up; {time.strftime('%Y-%m-%d')}.",
    )
    header = ["cells × spots (requested)", "cells", "spots", "batches (cells / spots)"]
    header += ["s per step", "400 epochs (projected)", "passes over cells"]
    header += ["outputs s (readout)", "peak RSS GB", "status"]
    report.write_report(a.out, lines + report.table(header, [table_row(r) for r in rows]))
    a.out.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
