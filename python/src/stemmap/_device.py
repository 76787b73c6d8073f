"""Device choice and memory estimates."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import numpy as np
import torch

from ._defaults import MAPPING, MODEL, TRAIN

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


#: the readout on CPU: seconds per cell × spot entry × logits dimension (h + G) / thread of one
#: pass over C, quiet 2-core machine (results/scaling_outputs.md: 28.5 s per pass at 100,000 ×
#: 19,612, 2 threads; results/issue28 ran 3-6× slower under load); passes; other memory.
READOUT_ENTRY_SECONDS = 6.1e-11
READOUT_BALANCE_PASSES = 3
READOUT_BASE_BYTES = 1.0 * 2**30


def readout_resources(
    m: int,
    n: int,
    n_genes: int,
    hidden: tuple[int, ...],
    rounds: int = MAPPING["rounds"],
    threads: int | None = None,
) -> dict[str, Any]:
    """Rough seconds and peak bytes of the default outputs of a mapping (CPU).

    The default outputs (coordinates, best spots, top-k, deconvolution) read every round's
    rows of C twice (the one output pass, the deconvolution); at scale (the float64 kernel
    of all cells over 1 GiB) the balancing fits on a sample and refines with
    :data:`READOUT_BALANCE_PASSES` passes over all cells, else it iterates on the kernel of
    all cells (about one pass). Memory: the cell and spot sides, the expression proportions,
    five chunks of rows of C (at most 2²⁷ entries each) or the sample kernel (≤ 2 GiB).
    """
    dim = hidden[-1] + n_genes
    sampled = 8 * m * n > 2**30
    passes = 2 * rounds + (READOUT_BALANCE_PASSES if sampled else 1)
    secs = passes * m * n * dim * READOUT_ENTRY_SECONDS / max(threads or torch.get_num_threads(), 1)
    chunk = min(8192, max(1, 2**27 // n), m)
    kernel = min(4 * m * n, max(20000 * n, 2**29), 2**31) if sampled else 8 * m * n
    # the sides and proportions, the inputs with the model's copy, the profiles' float64 temporaries
    side = 4 * (m + n) * (dim + 4 * n_genes) + 8 * 3 * (m + (n if rounds > 1 else 0)) * n_genes
    # five chunks: the deconvolution holds C_r, the rounds' mean and a float64 copy
    peak = READOUT_BASE_BYTES + side + max(kernel, 5 * 4 * chunk * n)
    return {"seconds": secs, "bytes": int(peak), "passes": passes, "sampled": sampled}


def readout_advice(
    m: int, n: int, n_genes: int, hidden: tuple[int, ...], rounds: int, free: int
) -> str:
    """Empty when the readout fits ``free`` bytes, else what is short and the setting that fits."""
    if (need := readout_resources(m, n, n_genes, hidden, rounds)["bytes"]) <= 0.8 * free:
        return ""
    msg = f"reading out the mapping needs about {fmt_bytes(need)} but {fmt_bytes(free)} is free"
    if rounds > 1 and readout_resources(m, n, n_genes, hidden, 1)["bytes"] <= 0.8 * free:
        return msg + "; `mapping(rounds=1)` would fit (one readout round)"
    for k in range(2, 65):  # coarser bins: fewer spots
        if readout_resources(m, -(-n // k), n_genes, hidden, 1)["bytes"] <= 0.8 * free:
            return msg + f"; bins {k}× larger ({-(-n // k)} spots), `mapping(rounds=1)` would fit"
    return msg + "; use a machine with more memory"


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


def choose_batches(
    m: int,
    n: int,
    h_in: int,
    hidden: tuple[int, ...],
    device: torch.device,
    cell_batch_size: int | None,
    spot_batch_size: int | None,
) -> tuple[int | None, int | None]:
    """Check that a training step fits in memory; pick batch sizes when none were given.

    :func:`plan_batches` with the memory free now (:func:`estimate_resources` explains the
    rule); a warning says when full batches were replaced by batches.

    Parameters
    ----------
    m, n, h_in, hidden
        Cells, spots (of the largest slice), genes and encoder layer sizes.
    device
        The training device.
    cell_batch_size, spot_batch_size
        The caller's batch sizes (``None``: all cells / spots, or chosen here).

    Returns
    -------
    tuple
        ``(cell_batch_size, spot_batch_size)`` to train with.

    Raises
    ------
    MemoryError
        Even the smallest batches would not fit.
    """
    plan = plan_batches(
        m,
        n,
        h_in,
        hidden,
        device,
        cell_batch_size,
        spot_batch_size,
        free=available_memory(device),
    )
    advice = readout_advice(m, n, h_in, hidden, MAPPING["rounds"], plan["free_bytes"])
    if advice:
        logger.warning("after training, %s.", advice)
    if plan["reason"]:
        logger.warning(
            "a full-batch step (%d cells x %d spots) %s; training on batches of %d cells "
            "and %d-spot patches instead (about %s per step). Pass cell_batch_size=%d and "
            "spot_batch_size=%d to force full batches.",
            m,
            n,
            plan["reason"],
            plan["cell_batch_size"] or m,
            plan["spot_batch_size"] or n,
            fmt_seconds(plan["step_seconds"]),
            m,
            n,
        )
    return plan["cell_batch_size"], plan["spot_batch_size"]


def estimate_resources(
    n_cells: int,
    n_spots: int,
    n_genes: int,
    hidden: tuple[int, ...] = MODEL["hidden"],
    device: str | torch.device = MODEL["device"],
    cell_batch_size: int | None = None,
    spot_batch_size: int | None = None,
    epochs: int = TRAIN["epochs"],
    memory_bytes: int | None = None,
    rounds: int = MAPPING["rounds"],
) -> dict[str, Any]:
    """Memory and time of training before anything is allocated, and the batches chosen.

    With no batch sizes given, training uses full batches (the paper) unless one full-batch
    step would need more than 60% of the free memory of ``device`` or is estimated to take
    longer than 1 s; then it uses the largest cell batches and spatial spot patches
    (halving from 16,384 cells and 4,096 spots, at least 4 cells per spot, not below 256)
    that fit and are estimated under 1 s per step. Times are rough (a flop count at a
    nominal device speed), memory is the float32 working set of one step.

    Parameters
    ----------
    n_cells, n_spots, n_genes
        Data size (spots: the largest slice).
    hidden
        Encoder layer sizes.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    cell_batch_size, spot_batch_size
        Batch sizes to check instead of choosing them.
    epochs
        Epochs for the total time.
    memory_bytes
        Free memory to plan for (default: what ``device`` has free now). With it, a device
        that is not present can be planned for, e.g. ``device="cuda",
        memory_bytes=80 * 2**30`` for an 80 GB GPU on a machine without one.
    rounds
        Readout rounds of the mapping (``STEM.mapping(rounds=)``), for the readout's time.

    Returns
    -------
    dict
        ``cell_batch_size`` / ``spot_batch_size`` (None = all), ``step_bytes``,
        ``step_seconds``, ``total_seconds``, ``full_batch_bytes``,
        ``full_batch_step_seconds``, ``free_bytes``, ``device`` and ``reason`` (why batches
        were chosen; empty for full batches); for the whole run on CPU (:func:`readout_resources`:
        the default outputs, coordinates, best spots, top-k and deconvolution):
        ``readout_seconds``, ``readout_bytes``, ``end_to_end_seconds``, ``peak_bytes`` and
        ``advice`` (empty when the readout fits the free memory, else the setting that
        would). Raises ``MemoryError`` when even the smallest batches do not fit.

    Examples
    --------
    >>> import stemmap
    >>> est = stemmap.estimate_resources(100_000, 5_000, 2_000, device="cpu")
    >>> est["cell_batch_size"] is not None
    True
    """
    for v, name in ((n_cells, "n_cells"), (n_spots, "n_spots"), (n_genes, "n_genes")):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"`{name}` must be a positive integer; found {v!r}.")
    if memory_bytes is not None:
        if isinstance(memory_bytes, bool) or not isinstance(memory_bytes, (int, np.integer, float)):
            raise ValueError(f"`memory_bytes` must be a positive number; found {memory_bytes!r}.")
        if not memory_bytes > 0:
            raise ValueError(f"`memory_bytes` must be a positive number; found {memory_bytes!r}.")
        try:
            dev = torch.device("cuda" if device == "auto" else device)
        except (RuntimeError, TypeError):
            raise ValueError(
                f"`device` must be 'auto', 'cpu', 'cuda' or 'cuda:N'; found {device!r}."
            ) from None
    else:
        dev = resolve_device(device)
    plan = plan_batches(
        int(n_cells),
        int(n_spots),
        int(n_genes),
        tuple(int(h) for h in hidden),
        dev,
        cell_batch_size,
        spot_batch_size,
        free=None if memory_bytes is None else int(memory_bytes),
    )
    plan["total_seconds"] = plan["step_seconds"] * int(epochs)
    plan["device"] = str(dev)
    out = readout_resources(int(n_cells), int(n_spots), int(n_genes), tuple(hidden), rounds)
    plan["readout_seconds"], plan["readout_bytes"] = out["seconds"], out["bytes"]
    plan["end_to_end_seconds"] = plan["total_seconds"] + out["seconds"]
    plan["peak_bytes"] = max(out["bytes"], plan["step_bytes"] + READOUT_BASE_BYTES)
    plan["advice"] = readout_advice(
        int(n_cells), int(n_spots), int(n_genes), tuple(hidden), rounds, plan["free_bytes"]
    )
    return plan
