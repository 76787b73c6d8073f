#!/usr/bin/env python
"""CI guard against step-time regressions: stemmap's training step vs plain torch, same shapes.

A ~9× slowdown (denormal floats once β > 0) once came in with a default change and nothing
noticed, because timings lived only in benchmarks. This script times training steps with
β > 0 on the shared embryo (7,661 cells × 495 pseudo spots, full batch, defaults, after
``--warm`` epochs of training) and, in the same process with the same thread count, a
plain-torch computation of the same shapes (the encoder forward and backward on cells and
spots, the cell × spot logits with both softmaxes, Ĉ·C, the MMD kernel, an AdamW update) on
well-scaled random data (float32). Machine speed cancels in the ratio; the script exits 1
when stemmap's step is more than ``--max-ratio`` (default 3) times the reference, with the
default ``mixed_precision="auto"`` or in float32 (the path of CPUs without bfloat16 units).

Usage::

    .venv/bin/python benchmarks/speed_guard.py            # ../shared/data/embryo2_z2.h5ad
    STEMMAP_SHARED_DATA=/path/to/data .venv/bin/python benchmarks/speed_guard.py
"""

from __future__ import annotations

import argparse
import sys
import time

import anndata as ad
import stemmap
import torch

from lib.data import data_dir


def reference_step(m: int, n: int, genes: int, hidden: tuple[int, ...], reps: int) -> float:
    """Seconds of one plain-torch step of the same shapes (best of ``reps``)."""
    gen = torch.Generator().manual_seed(0)
    x_sc = torch.rand(m, genes, generator=gen)
    x_st = torch.rand(n, genes, generator=gen)
    dims = (genes, *hidden)
    params = []
    for a, b in zip(dims[:-1], dims[1:]):
        params.append((torch.randn(a, b, generator=gen) / a**0.5).requires_grad_())
        params.append(torch.zeros(b, requires_grad=True))
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    target = torch.softmax(torch.randn(n, n, generator=gen), dim=1)

    def encode(x: torch.Tensor) -> torch.Tensor:
        for i in range(0, len(params), 2):
            x = x @ params[i] + params[i + 1]
            if i < len(params) - 2:
                x = torch.relu(torch.nn.functional.layer_norm(x, x.shape[1:]))
        return x

    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        z_sc, z_st = encode(x_sc), encode(x_st)
        z_sc = z_sc / z_sc.norm(dim=1, keepdim=True)  # unit-scale logits: no tiny numbers
        z_st = z_st / z_st.norm(dim=1, keepdim=True)
        spots = -(target * torch.log_softmax(z_st @ z_st.T, dim=1)).sum(1).mean()
        logits = z_sc @ z_st.T
        s_hat = torch.softmax(logits, dim=0).T @ torch.softmax(logits, dim=1)
        trans = -(target * torch.log(s_hat + 1e-7)).sum(1).mean()
        z = torch.cat([z_st, z_sc[:1000]])
        d2 = ((z * z).sum(1)[:, None] + (z * z).sum(1)[None, :] - 2 * z @ z.T).clamp_min(0)
        bw = d2.detach().mean()
        mmd = sum(torch.exp(-d2 / (bw * 2.0**k)) for k in range(-2, 3)).mean()
        loss = spots + trans + 0.5 * mmd
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g, (m1, m2) in zip(params, grads, moments):
                m1.mul_(0.9).add_(g, alpha=0.1)
                m2.mul_(0.999).addcmul_(g, g, value=0.001)
                p.mul_(1 - 0.002 * 0.01).addcdiv_(m1, m2.sqrt().add_(1e-8), value=-0.002)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warm", type=int, default=50, help="epochs trained before timing")
    p.add_argument("--steps", type=int, default=10, help="timed epochs with β > 0")
    p.add_argument("--max-ratio", type=float, default=3.0)
    a = p.parse_args(argv)
    path = data_dir() / "embryo2_z2.h5ad"
    if not path.exists():
        print(f"speed guard: {path} not found (set STEMMAP_SHARED_DATA)", file=sys.stderr)
        return 2
    stemmap.settings.progress = False
    stemmap.settings.verbosity = "WARNING"
    sc, st = stemmap.simulate.pseudo_spots(ad.read_h5ad(path))
    model = stemmap.STEM(sc, st, seed=0)
    model.train(epochs=a.warm)
    m, n = model.data.sc_x.shape[0], model.data.n_spots
    ref = reference_step(m, n, len(model.data.genes), tuple(model.config["hidden"]), reps=5)
    failed = False
    # the default ("auto": bfloat16 products on CPUs that have them) and float32, the path
    # of CPUs without bfloat16 units
    for mixed in ("auto", False):
        t0 = time.perf_counter()
        model.train(epochs=a.steps, warmup=0, mixed_precision=mixed)  # β > 0 from the start
        ours = (time.perf_counter() - t0) / a.steps
        ratio = ours / ref
        used = model.train_settings["mixed_precision"]
        print(
            f"speed guard (mixed_precision={mixed!r} -> {used}): stemmap {ours:.3f} s/step, "
            f"plain-torch float32 reference {ref:.3f} s/step ({m} cells x {n} spots, "
            f"{torch.get_num_threads()} threads): ratio {ratio:.2f} (limit {a.max_ratio:g})"
        )
        failed |= ratio > a.max_ratio
    if failed:
        print("speed guard: FAILED — stemmap's training step regressed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
