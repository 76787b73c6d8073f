"""What a run will cost before it starts: :func:`estimate_resources` and the readout's model.

Training's memory and step time come from :mod:`._device` (flop counts, batch plans); the
readout's time and memory (exact or sparse, :data:`._defaults.SPARSE_READOUT`) are modelled
here from measured per-entry costs (``benchmarks/results/issue28/scaling.md``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from . import _device
from ._defaults import MAPPING, MODEL, SPARSE_READOUT, TRAIN
from ._device import (
    fmt_bytes,
    fmt_seconds,
    plan_batches,
    resolve_device,
)

logger = logging.getLogger(__name__)


#: the readout on CPU: seconds per cell × spot entry × logits dimension (h + G) / thread of one
#: pass over C, quiet 2-core machine (results/scaling_outputs.md: 28.5 s per pass at 100,000 ×
#: 19,612, 2 threads; results/issue28 ran 3-6× slower under load); passes; other memory.
READOUT_ENTRY_SECONDS = 6.1e-11
READOUT_BALANCE_PASSES = 3
READOUT_BASE_BYTES = 1.0 * 2**30


#: the sparse readout (:data:`SPARSE_READOUT`) on CPU, fitted to quiet runs
#: (benchmarks/results/issue28/scaling.md): per thread, seconds per cell × bin entry × logits
#: width of a round's pass in float32 (the product; the sample fit's too) and in bfloat16
#: (the pass's product where the CPU has native bfloat16: :func:`._device.native_bf16`), per
#: cell × bin of its top-k, per cell × chosen entry × width of the float32 values at the
#: chosen entries (bfloat16 pass); one thread: per cell × gene and bin × gene of the setup
#: (profiles, sides), per cell × entry × gene and bin × gene × chunk of a residual round's
#: Ĉ P_SC, per cell × entry of the outputs
SPARSE_ENTRY_SECONDS = 5.4e-11
SPARSE_BF16_ENTRY_SECONDS = 1.25e-11
SPARSE_TOPK_SECONDS = 2.5e-9
SPARSE_VALUE_SECONDS = 1.0e-9
SPARSE_SETUP_SECONDS = (8.2e-8, 2.62e-7)
SPARSE_EXPLAINED_SECONDS = (6.6e-10, 3.67e-8)
SPARSE_OUTPUT_SECONDS = 1.0e-7


def sparse_readout(m: int, n: int) -> bool:
    """Whether a mapping of ``m`` cells × ``n`` spots reads out sparse (:data:`SPARSE_READOUT`)."""
    width = SPARSE_READOUT["kept"] + SPARSE_READOUT["sample"]
    return m * n > SPARSE_READOUT["entries"] and n > 2 * width


def readout_resources(
    m: int,
    n: int,
    n_genes: int,
    hidden: tuple[int, ...],
    rounds: int = MAPPING["rounds"],
    threads: int | None = None,
    rank: int = SPARSE_READOUT["rank"],
    bf16: bool | None = None,
) -> dict[str, Any]:
    """Rough seconds and peak bytes of the default outputs of a mapping (CPU).

    ``rank``: the sparse readout's profile axes (``SPARSE_READOUT["rank"]``; 0: every gene).
    ``bf16``: whether the sparse pass chooses its candidates in bfloat16 (None: where this
    CPU multiplies it natively, as ``StemMapping`` decides).

    The default outputs (coordinates, best spots, top-k, deconvolution). Exact readout: every
    round's rows of C are read twice (the one output pass, the deconvolution); at scale (the
    float64 kernel of all cells over 1 GiB) the balancing fits on a sample and refines with
    :data:`READOUT_BALANCE_PASSES` passes over all cells, else it iterates on the kernel of
    all cells (about one pass). Sparse readout (:func:`sparse_readout`, 10⁵ × 10⁵ bins): one
    pass per round (a product and a top-k), a sample fit per round, the dense chunks of the
    outputs. Memory: the cell and spot sides, the expression proportions, five chunks of
    rows of C (at most 2²⁷ entries each) or the sample kernel (≤ 2 GiB), and the sparse
    rounds' entries (8 bytes each).
    """
    dim = hidden[-1] + n_genes
    threads = max(threads or torch.get_num_threads(), 1)
    sampled = 8 * m * n > 2**30
    sparse = sparse_readout(m, n)
    chunk = min(8192, max(1, 2**27 // n), m)
    kernel = min(4 * m * n, max(20000 * n, 2**29), 2**31) if sampled else 8 * m * n
    if sparse:
        passes = rounds
        fit = min(m, kernel // (4 * n))  # the sample fit's cells, one product each round
        width = hidden[-1] + (min(rank, n_genes) if rank else n_genes)
        bf16 = _device.native_bf16(torch.device("cpu")) if bf16 is None else bf16
        entry = width * SPARSE_ENTRY_SECONDS + SPARSE_TOPK_SECONDS
        low = width * SPARSE_BF16_ENTRY_SECONDS + SPARSE_TOPK_SECONDS if bf16 else entry
        secs = rounds * (m * low + 2 * fit * entry) * n / threads
        w = SPARSE_READOUT["kept"] + SPARSE_READOUT["sample"]
        if bf16:  # the float32 values at the chosen candidates and draws
            chosen = w + SPARSE_READOUT["margin"]
            secs += rounds * m * chosen * width * SPARSE_VALUE_SECONDS / threads
        secs += SPARSE_SETUP_SECONDS[0] * m * n_genes + SPARSE_SETUP_SECONDS[1] * n * n_genes
        steps = -(-m * w // 2**22)  # the chunks of cells of a residual round's Ĉ P_SC
        c, d = SPARSE_EXPLAINED_SECONDS
        secs += (rounds - 1) * (c * m * w * n_genes + d * n * n_genes * steps)
        secs += SPARSE_OUTPUT_SECONDS * m * w
    else:
        passes = 2 * rounds + (READOUT_BALANCE_PASSES if sampled else 1)
        secs = passes * m * n * dim * READOUT_ENTRY_SECONDS / threads
    # the sides and proportions, the inputs with the model's copy, the profiles' float64 temporaries
    side = 4 * (m + n) * (dim + 4 * n_genes) + 8 * 3 * (m + (n if rounds > 1 else 0)) * n_genes
    entries = 8 * rounds * m * (SPARSE_READOUT["kept"] + SPARSE_READOUT["sample"]) if sparse else 0
    # the bfloat16 copies of the two sides (a round's pass)
    entries += 2 * (m + n) * dim if sparse else 0
    # five chunks: the deconvolution holds C_r, the rounds' mean and a float64 copy
    peak = READOUT_BASE_BYTES + side + entries + max(kernel, 5 * 4 * chunk * n)
    return {
        "seconds": secs,
        "bytes": int(peak),
        "passes": passes,
        "sampled": sampled,
        "sparse": sparse,
    }


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
        free=_device.available_memory(device),  # looked up at call time (tests patch it)
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
