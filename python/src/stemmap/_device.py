"""Device choice and memory estimates."""

from __future__ import annotations

import logging
import os

import torch

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; an explicit device is honoured."""
    if device is None or (isinstance(device, str) and device == "auto"):
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
