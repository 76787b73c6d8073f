"""Device choice and memory estimates."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import numpy as np
import torch

from ._defaults import TRAIN

logger = logging.getLogger(__name__)

# Automatic batches (see plan_batches): a full-batch step estimated slower than
# MAX_STEP_SECONDS switches to batches estimated under TARGET_STEP_SECONDS.
MAX_STEP_SECONDS = 1.0
TARGET_STEP_SECONDS = 1.0


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; an explicit device is honoured."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(
            f"`device` must be 'auto', 'cpu', 'cuda' or 'cuda:N' (a string); found {device!r}."
        )
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"`device` must be 'auto', 'cpu', 'cuda' or 'cuda:N'; found {device!r}."
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "`device='cuda'` was requested but CUDA is not available here; use 'cpu' or 'auto'."
        )
    return dev


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """Return the CPU's feature flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively (mixed precision is faster).

    CPUs with AVX512-BF16 or AMX-BF16 (oneDNN's bfloat16 kernels; without them bfloat16 is
    emulated and slower than float32) and CUDA GPUs of compute capability 8 or more (A100,
    H100/H200).
    """
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})
    return False


def resolve_mixed_precision(value: Any, device: torch.device) -> bool:
    """``mixed_precision`` as a bool: ``"auto"`` → :func:`native_bf16`; True/False as given."""
    if isinstance(value, str) and value == "auto":
        return native_bf16(device)
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`mixed_precision` must be True, False or 'auto'; found {value!r}.")
    return bool(value)


def available_memory(device: torch.device) -> int:
    """Bytes free for new allocations on ``device`` (best effort)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 1 << 40


def full_batch_bytes(m: int, n: int, h_in: int, hidden: tuple[int, ...]) -> int:
    """Rough peak bytes of one full-batch training step (float32).

    The M × N terms (B, C, Ĉ and their gradients) and N × N terms dominate for large data.
    """
    mn = 8 * m * n
    nn_ = 10 * n * n
    act = 4 * (m + n) * (h_in + 3 * sum(hidden))
    return 4 * (mn + nn_) + 2 * act


def training_bytes(
    m: int,
    n: int,
    h_in: int,
    hidden: tuple[int, ...],
    cell_batch_size: int | None = None,
    spot_batch_size: int | None = None,
) -> int:
    """Rough peak bytes of training M cells × N spots with the given batches (float32).

    One step's working set (:func:`full_batch_bytes` of the batch) plus, with batches, all
    inputs, which stay on the device between steps.
    """
    c, s = min(cell_batch_size or m, m), min(spot_batch_size or n, n)
    resident = 4 * (m + n) * h_in if (c < m or s < n) else 0
    return full_batch_bytes(c, s, h_in, hidden) + resident


def step_flops(m: int, n: int, h_in: int, hidden: tuple[int, ...]) -> float:
    """Rough floating-point operations of one training step (forward + backward).

    Encoder layers on M + N rows, the M × N logits, and the N × N predicted adjacency
    Ŝ = Ĉ · C (N² · M, the dominant term once N is in the thousands); backward ≈ 2 × forward.
    """
    dims = (h_in, *hidden)
    mlp = sum(a * b for a, b in zip(dims[:-1], dims[1:]))
    fwd = 2.0 * ((m + n) * mlp + m * n * hidden[-1] + n * n * m)
    return 3.0 * fwd


def device_flops(device: torch.device) -> float:
    """Rough sustained float32 throughput of ``device`` for the step estimate (flop/s).

    CPU: about 4.5e10 flop/s per torch thread (measured on the 2-core development machine:
    10,000 cells × 3,962 spots, 10.3 s per full-batch step); CUDA: a conservative 1e13.
    """
    if device.type == "cuda":
        return 1e13
    return 4.5e10 * max(torch.get_num_threads(), 1)


def step_seconds(m: int, n: int, h_in: int, hidden: tuple[int, ...], device: torch.device) -> float:
    """Estimated wall time of one training step on ``device`` (seconds)."""
    return step_flops(m, n, h_in, hidden) / device_flops(device)


def fmt_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def fmt_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(b) < 1024:
            return f"{b:.1f} {unit}"
        b /= 1024
    return f"{b:.1f} PiB"


def plan_batches(
    m: int,
    n: int,
    h_in: int,
    hidden: tuple[int, ...],
    device: torch.device,
    cell_batch_size: int | None = None,
    spot_batch_size: int | None = None,
    free: int | None = None,
) -> dict[str, Any]:
    """Batch sizes for training M cells × N spots on ``device`` (see estimate_resources)."""
    free = available_memory(device) if free is None else int(free)
    budget = 0.6 * free

    def mem(c: int | None, s: int | None) -> int:
        return training_bytes(m, n, h_in, hidden, c, s)

    def secs(c: int | None, s: int | None) -> float:
        return step_seconds(min(c or m, m), min(s or n, n), h_in, hidden, device)

    need, t_full = mem(cell_batch_size, spot_batch_size), secs(cell_batch_size, spot_batch_size)
    out = {
        "cell_batch_size": cell_batch_size,
        "spot_batch_size": spot_batch_size,
        "step_bytes": need,
        "step_seconds": t_full,
        "full_batch_bytes": mem(None, None),
        "full_batch_step_seconds": secs(None, None),
        "free_bytes": free,
        "reason": "",
    }
    auto = cell_batch_size is None and spot_batch_size is None
    if need <= budget and (not auto or t_full <= MAX_STEP_SECONDS):
        return out
    if auto:
        bc, bn = min(m, 16384), min(n, 4096)
        floor_c, floor_n = min(m, 256), min(n, 256)
        while not (mem(bc, bn) <= budget and secs(bc, bn) <= TARGET_STEP_SECONDS) and (
            bc > floor_c or bn > floor_n
        ):
            # keep at least 4 cells per spot in a batch (Ĉ spreads each spot over the
            # batch's cells); otherwise halve the cells
            if bn > floor_n and (4 * bn > bc or bc <= floor_c):
                bn = max(floor_n, bn // 2)
            else:
                bc = max(floor_c, bc // 2)
        if mem(bc, bn) <= budget:
            out.update(
                cell_batch_size=None if bc >= m else bc,
                spot_batch_size=None if bn >= n else bn,
                step_bytes=mem(bc, bn),
                step_seconds=secs(bc, bn),
                reason=(
                    f"needs about {fmt_bytes(need)} but {fmt_bytes(free)} is free on {device}"
                    if need > budget
                    else f"would take about {fmt_seconds(t_full)} on {device} "
                    f"({fmt_seconds(TRAIN['epochs'] * t_full)} for {TRAIN['epochs']} epochs)"
                ),
            )
            return out
    raise MemoryError(
        f"one training step with {cell_batch_size or m} cells x {spot_batch_size or n} "
        f"spots needs about {fmt_bytes(need)}, but only {fmt_bytes(free)} is free on "
        f"{device}. Use smaller batches (`cell_batch_size=`, `spot_batch_size=`) "
        "or a larger device."
    )
