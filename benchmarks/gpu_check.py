#!/usr/bin/env python
"""One-command device check: what a lent GPU machine should run, in about 8 minutes.

Writes one results file (``--out``, default ``benchmarks/results/gpu_check.md`` plus a
``.json`` beside it) with:

1. the device: torch and CUDA versions, GPU name and memory, CPU cores;
2. the shared embryo (7,661 cells × 495 pseudo spots) trained with the defaults for
   ``--epochs`` (400) on the device: training seconds, s/epoch, outputs seconds, hit@50 and
   MAE against the true positions;
3. training steps at 100,000 cells × 5,000 spots and 1,000,000 × 20,000 with the automatic
   batch plan, mixed precision off and on (``STEM.train(mixed_precision=...)``): seconds per
   step, peak device memory (each size in its own subprocess of ``bench_scaling.py``, with a
   time limit; a size that runs out of time or memory is reported as such).

``--quick`` shrinks everything (20 epochs; 10,000 × 500 and 20,000 × 2,000) so that CI can run
the same code on a CPU: ``gpu_check.py --device cpu --quick``.

Usage::

    .venv/bin/python benchmarks/gpu_check.py                      # on the GPU machine
    .venv/bin/python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gpu_check.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from lib.data import data_dir
from lib.environments import BENCH, RESULTS
from lib.runner import run_child


def device_info(device: str) -> dict:
    """torch/CUDA versions, device name and memory, CPU cores."""
    import torch

    info = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": device,
        "cpu_cores": os.cpu_count(),
        "machine": f"{platform.system()} {platform.machine()}",
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(torch.device(device))
        info.update(gpu=p.name, gpu_memory_gb=round(p.total_memory / 2**30, 1))
        info["bf16"] = bool(torch.cuda.is_bf16_supported())
    return info


def embryo_run(device: str, epochs: int) -> dict:
    """Train the shared embryo with the defaults; time and score it."""
    import anndata as ad
    import stemmap
    import torch

    path = data_dir() / "embryo2_z2.h5ad"
    if not path.exists():
        return {"status": f"skipped: {path} not found (set STEMMAP_SHARED_DATA)"}
    stemmap.settings.progress = False
    sc, st = stemmap.simulate.pseudo_spots(ad.read_h5ad(path))
    model = stemmap.STEM(sc, st, seed=0, device=device)
    t0 = time.perf_counter()
    model.train(epochs=epochs)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    coords = model.mapping().coords
    out_s = time.perf_counter() - t0
    true = sc.obsm["spatial_true"][: coords.shape[0]]
    step = float(min(st.uns["simulation"]["step_xy"]))
    return {
        "status": "ok",
        "epochs": epochs,
        "train_s": round(train_s, 2),
        "s_per_epoch": round(train_s / epochs, 4),
        "outputs_s": round(out_s, 2),
        "hit50": round(stemmap.metrics.hit_number(true, coords, ks=50)[50], 3),
        "mae_grid_steps": round(stemmap.metrics.mae(true, coords, unit=step), 3),
    }


def scaling_run(size: str, device: str, mixed: bool, steps: int, timeout: int) -> dict:
    """Training steps at one size through ``bench_scaling.py --child`` (own process)."""
    cmd = [sys.executable, str(BENCH / "bench_scaling.py"), "--child", size, "--steps", str(steps)]
    cmd += ["--device", device, "--readout", "none", "--mixed-precision", "on" if mixed else "off"]
    return {"size": size, "mixed_precision": mixed, **run_child(cmd, timeout)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="small sizes (CI on a CPU)")
    p.add_argument("--epochs", type=int, default=None, help="embryo epochs (400; quick 20)")
    p.add_argument("--timeout", type=int, default=150, help="seconds per scaling run")
    p.add_argument("--out", type=Path, default=RESULTS / "gpu_check.md")
    a = p.parse_args(argv)
    sizes = ["10000x500", "20000x2000"] if a.quick else ["100000x5000", "1000000x20000"]
    epochs = a.epochs or (20 if a.quick else 400)
    t_all = time.perf_counter()
    res: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "info": device_info(a.device)}
    print("device:", res["info"], flush=True)
    res["embryo"] = embryo_run(a.device, epochs)
    print("embryo:", res["embryo"], flush=True)
    res["scaling"] = []
    for size in sizes:
        for mixed in (False, True):
            r = scaling_run(size, a.device, mixed, 3 if a.quick else 5, a.timeout)
            res["scaling"].append(r)
            print(
                "scaling:", {k: r.get(k) for k in ("size", "mixed_precision", "status")}, flush=True
            )
    res["total_s"] = round(time.perf_counter() - t_all, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    e = res["embryo"]
    lines = [
        "# stemmap device check",
        "",
        f"{res['date']}; {json.dumps(res['info'])}; total {res['total_s']} s"
        + (" (--quick)" if a.quick else ""),
        "",
        "## Shared embryo, defaults",
        "",
        "| epochs | train s | s/epoch | outputs s | hit@50 | MAE (grid steps) |",
        "|---|---|---|---|---|---|",
        f"| {e.get('epochs', '')} | {e.get('train_s', '')} | {e.get('s_per_epoch', '')} | "
        f"{e.get('outputs_s', '')} | {e.get('hit50', '')} | {e.get('mae_grid_steps', '')} |"
        if e["status"] == "ok"
        else f"| {e['status']} | | | | | |",
        "",
        "## Training steps with the automatic batch plan",
        "",
        "| cells × spots | mixed precision | batches (cells / spots) | s per step | "
        "peak device memory GB | peak RSS GB | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["scaling"]:
        if r["status"] != "ok":
            lines.append(f"| {r['size']} | {r['mixed_precision']} | | | | | {r['status']} |")
            continue
        b = f"{r['cell_batch_size'] or 'all'} / {r['spot_batch_size'] or 'all'}"
        gpu = r.get("cuda_peak_gb")
        lines.append(
            f"| {r['size']} | {r['mixed_precision']} | {b} | {r['s_per_step']:.3f} | "
            f"{'' if gpu is None else f'{gpu:.2f}'} | {r['peak_rss_gb']:.2f} | ok |"
        )
    a.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if e["status"] != "failed" else 1


if __name__ == "__main__":
    sys.exit(main())
