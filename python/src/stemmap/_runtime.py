"""CPU floating-point state for training and readout: denormals flushed to zero.

Once β > 0, the backward pass of the transfer loss and the readout's exponentials go
through very small probabilities; on many x86 CPUs arithmetic on denormal (subnormal)
floats is one to two orders of magnitude slower than on normal ones (the speed issue
measured 2.46 → 0.265 s/epoch on the embryo). Values that small do not change any result
beyond float noise, so stemmap flushes them to zero while it computes and restores the
caller's setting afterwards.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def denormals_flushed_now() -> bool:
    """Whether the calling thread flushes denormal floats to zero (probed, torch has no getter)."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a float32 denormal
    return bool((tiny * 1.0).item() == 0.0)


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormal floats to zero inside the block; restore the previous setting after."""
    before = denormals_flushed_now()
    changed = not before and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if changed:
            torch.set_flush_denormal(False)


_state = threading.local()


def compute(fn: F) -> F:
    """Run the decorated method under :func:`flush_denormals` and :func:`torch_threads`.

    The thread count is the instance's ``threads`` attribute (None: :func:`choose_threads`).
    Nested calls (a decorated method calling another) keep the outer settings.
    """

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_state, "depth", 0):
            return fn(self, *args, **kwargs)
        _state.depth = 1
        try:
            with flush_denormals(), torch_threads(getattr(self, "threads", None)):
                return fn(self, *args, **kwargs)
        finally:
            _state.depth = 0

    return wrapper  # type: ignore[return-value]


# --------------------------------------------------------------------------- threads
#: what ``threads=None`` means: see :func:`choose_threads`
THREADS_AUTO = None


def usable_cpus() -> int:
    """CPUs this process may use: its CPU affinity, capped by a cgroup CPU quota if any."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    return max(1, n)


def _cgroup_quota() -> float | None:
    """CPU quota of this process's cgroup in CPUs (v2 ``cpu.max`` or v1 CFS), or None."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return q / p if q > 0 and p > 0 else None
    except (OSError, ValueError):
        return None


def omp_waits_passively() -> bool:
    """Whether torch's OpenMP worker threads sleep (not spin) when idle.

    ``OMP_WAIT_POLICY`` is read once, when the OpenMP runtime starts (at ``import torch``);
    ``import stemmap`` sets it to ``PASSIVE`` when torch is not imported yet and the variable
    is unset (``stemmap/__init__.py``), and so does the R bridge before it imports torch.
    """
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"


def _other_runnable(samples: int = 5, pause: float = 0.02) -> int:
    """Runnable tasks of other processes right now (median of a few /proc/loadavg reads)."""
    counts = []
    for i in range(samples):
        try:
            running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return 0
        counts.append(max(0, running - 1))  # the reading process itself is running
        if i < samples - 1:
            time.sleep(pause)
    return int(sorted(counts)[len(counts) // 2])


def choose_threads(threads: int | None) -> tuple[int, str]:
    """Choose the torch thread count to compute with, and say why.

    ``threads`` an integer: that many. ``None`` (default): every CPU the process may use
    (affinity and cgroup quota) when OpenMP threads wait passively (the default after
    ``import stemmap``); when torch was imported before stemmap with spinning threads, one
    thread fewer per other runnable job (at least one), as spinning threads collapse on a
    busy machine. The count does not depend on the load in the default case, so that the same
    machine gives the same thread count and the same mapping.
    """
    if threads is not None:
        return int(threads), "requested"
    n = usable_cpus()
    if omp_waits_passively() or n == 1:
        return n, f"{n} usable CPUs"
    busy = _other_runnable()
    k = max(1, n - busy)
    return k, f"{n} usable CPUs, {busy} other runnable jobs, OpenMP threads spin"


#: a training step of at most this many rows (cells + spots) and ...
SMALL_STEP_ROWS = 800
#: ... at most this many input values (rows × genes) runs on one thread by default
SMALL_STEP_VALUES = 400_000


def step_threads(threads: int | None, device: torch.device, rows: int, genes: int) -> int | None:
    """Thread count for training steps of ``rows`` rows (cells + spots) × ``genes`` genes.

    ``None`` keeps the count of :func:`choose_threads`. With the default (``threads=None``)
    on a CPU, a small step (at most :data:`SMALL_STEP_ROWS` rows and
    :data:`SMALL_STEP_VALUES` input values) runs on one thread: its operations are too short
    for sleeping OpenMP threads to pay back their wake-up. Measured on 2 cores, quiet
    (``benchmarks/results/threads_small.md``), ms per step with one vs two threads: 356 rows
    × 33 genes 10.4 vs 20.7, 539 × 33 16.3 vs 28.8, 751 × 351 33.6 vs 41.3; 1,124 × 33 50.6
    vs 49.4 and 2,764 × 33 77.1 vs 72.3 (there two pay). One thread was also the faster
    beside a busy job. The choice depends only on the shapes: the same call, the same count.
    """
    if threads is not None or device.type != "cpu":
        return None
    if rows <= SMALL_STEP_ROWS and rows * genes <= SMALL_STEP_VALUES:
        return 1
    return None


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Set torch's intra-op thread count inside the block; restore the caller's after."""
    before = torch.get_num_threads()
    n, why = choose_threads(threads)
    if n != before:
        torch.set_num_threads(n)
    logger.debug("torch threads: %d (%s)", n, why)
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
