"""Balancing of C (Sinkhorn): the column potentials g that give every spot its share of cells.

Balancing solves ``max_P Σ P_ij L_ij + H(P)`` with uniform row sums and the given column
sums; only the N column potentials g are kept, so C (the row softmax of ``L + g``) is still
computed in chunks of cells. :func:`fit_potentials` chooses between the kernel iterations
(all cells), a fit on a sample of cells and passes over all cells (log space).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .._device import native_bf16

logger = logging.getLogger(__name__)

#: ``logits_of(rows)``: readout logits of the cells ``rows`` (an index tensor) over all spots
LogitsFn = Callable[[torch.Tensor], torch.Tensor]
#: ``collect(start, rows_of_c)``: a pass's chunk of rows of C (``start`` = its first row)
Collect = Callable[[int | None, torch.Tensor | None], None]


class Tuning:
    """How the balancing scales (see :class:`stemmap.StemMapping`'s class attributes).

    ``sparse``: (entries, kept, sample, rank, margin): above ``entries`` cells × spots the
    readout is sparse (:mod:`._sparse`: each cell's ``kept`` largest entries and ``sample``
    tail bins; the expression term on the spots' ``rank`` main profile axes, 0: all genes;
    ``margin`` extra candidates where the pass chooses them in ``select``, a lower precision
    than float32, else float32 throughout).
    """

    def __init__(
        self,
        min_cells: int,
        passes: int,
        pass_tol: float,
        pass_dtype: torch.dtype,
        sparse: tuple[int, int, int, int, int] = (2**62, 256, 128, 0, 64),
        select: torch.dtype = torch.float32,
    ) -> None:
        self.min_cells, self.passes = int(min_cells), int(passes)
        self.pass_tol, self.pass_dtype = float(pass_tol), pass_dtype
        (
            self.sparse_entries,
            self.sparse_kept,
            self.sparse_sample,
            self.sparse_rank,
            self.sparse_margin,
        ) = (int(x) for x in sparse)
        self.sparse_select = select

    @classmethod
    def of(cls, mapping: Any) -> Tuning:
        """Return the tuning that a :class:`stemmap.StemMapping`'s class attributes set."""
        m = mapping
        return cls(
            m._balance_min_cells,
            m._balance_passes,
            m._balance_pass_tol,
            m._pass_dtype,
            (m._sparse_entries, m._sparse_kept, m._sparse_sample, m._sparse_rank, m._sparse_margin),
            select_dtype(m._sparse_select),
        )


def select_dtype(select: str) -> torch.dtype:
    """Return the sparse pass's candidate precision (``"auto"``, ``"bfloat16"``, ``"float32"``).

    ``"auto"``: bfloat16 where the CPU multiplies it natively (:func:`.native_bf16`), else
    float32.
    """
    if select == "auto":
        native = native_bf16(torch.device("cpu"))
        return torch.bfloat16 if native else torch.float32
    return {"bfloat16": torch.bfloat16, "float32": torch.float32}[select]


def fit_potentials(
    logits_of: LogitsFn,
    n_cells: int,
    spot_w: np.ndarray,
    chunk: int,
    cap: float,
    *,
    tol: float,
    max_iter: int,
    min_cells: int,
    passes: int,
    pass_tol: float,
    pass_dtype: torch.dtype,
    collect: Collect | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Column potentials g of the balanced C (Sinkhorn iterations).

    The iterations are matrix-vector products with the row-shifted kernel
    ``exp(L - max_j L)`` (float32, or float64 where float32 underflows:
    :data:`KERNEL_DTYPES`). When the kernel of all cells would take more than
    ``cap`` bytes, g is fitted on an evenly spread sample of cells whose kernel fits (at
    least ``min_cells``, at most ``2 cap`` bytes of float32): g has only N entries and the
    sample estimates it, while the M × N iterations would cost hours at 10⁵–10⁶ cells. The
    sample's kernel is the stabilised float32 one (:func:`sinkhorn_sample`, which cannot
    underflow; to a tenth of ``pass_tol``); then up to ``passes`` passes
    over all cells (``pass_dtype``), starting from the sample's g, until every column sum is
    within ``pass_tol`` of its target. If the kernel of all cells underflows in float32 and
    float64, the iterations run in log space. A NaN or Inf in the logits or the potentials is a FloatingPointError within one
    iteration (:func:`non_finite`), never an iteration to ``max_iter``.

    Parameters
    ----------
    logits_of
        Readout logits of the cells of an index tensor.
    n_cells
        M.
    spot_w
        (N,) target share of each spot (sums to 1).
    chunk
        Cells per chunk.
    cap
        Bytes the float64 kernel may take.
    tol, max_iter
        Relative column tolerance and most iterations of the fit.
    min_cells, passes, pass_tol, pass_dtype
        Fewest cells of a sample fit; passes over all cells after it, their tolerance and
        float type.
    collect
        Called in each pass over all cells with every chunk's rows of C (see
        :func:`sinkhorn_log`), so that a caller reads C once more for free.

    Returns
    -------
    tuple
        g (N,) float64, and ``{"iterations", "max_column_error", "cells", "passes",
        "seconds"}`` of the last iterations (``cells``: the cells g was fitted on;
        ``seconds``: of the fit and of the passes over all cells).
    """
    m, n = n_cells, len(spot_w)
    n_fit = m if 8 * m * n <= cap else min(m, max(min_cells, int(cap // (8 * n))))
    if n_fit < m:  # the sample's float32 kernel takes at most 2 × cap (fewer cells at 10⁵ spots)
        n_fit = max(1, min(n_fit, int(2 * cap // (4 * n))))
    rows = (
        torch.arange(m)
        if n_fit >= m
        else torch.from_numpy(np.unique(np.linspace(0, m - 1, n_fit).astype(np.int64)))
    )
    n_fit = len(rows)
    target = torch.from_numpy(n_fit * spot_w)
    g, info, t0 = None, {}, time.perf_counter()
    if n_fit < m:  # a sample: the stabilised float32 kernel, which cannot underflow; to a
        # tenth of pass_tol (a sample's potentials are an estimate: at 10⁵ spots a few
        # thousand cells give each spot a few hundredths of a cell, far noisier than 1e-4)
        g, info = sinkhorn_sample(
            logits_of, rows, target, max(tol, 0.1 * pass_tol), max_iter, chunk
        )
    elif 8 * n_fit * n <= 2 * cap:
        L = torch.cat([logits_of(rows[a : a + chunk]) for a in range(0, n_fit, chunk)])
        if not bool(torch.isfinite(L).all()):
            raise non_finite("the readout logits", 0)
        for dtype in KERNEL_DTYPES:  # float32 first; float64 where float32 underflows
            K = L.to(dtype)
            K = torch.exp(K - K.max(dim=1, keepdim=True).values)
            g, info = sinkhorn_kernel(K, target, tol, max_iter)
            del K
            if g is not None:
                break
        del L
    if g is None:
        g, info = sinkhorn_log(logits_of, rows, target.log(), tol, max_iter, chunk)
    info["passes"], fit_s = 0, time.perf_counter() - t0
    if n_fit < m:  # a few passes over all cells from the sample's potentials
        g = g + float(np.log(m / n_fit))
        if passes > 0:
            g, info = sinkhorn_log(
                logits_of,
                torch.arange(m),
                torch.from_numpy(m * spot_w).log(),
                max(tol, pass_tol),
                passes,
                chunk,
                g0=g,
                dtype=pass_dtype,
                refine=True,
                collect=collect,
            )
            info["passes"] = info["iterations"]
    info["cells"] = n_fit
    info["seconds"] = (round(fit_s, 3), round(time.perf_counter() - t0 - fit_s, 3))
    return g, info


#: float types of the kernel iterations, tried in turn until one does not underflow: the
#: iterations are matrix-vector products that read the whole kernel, so float32 halves the
#: memory traffic (7,661 × 495 on 2 cores: 1.5 vs 3.8 ms per iteration); its rounding
#: (≈1e-7 relative) is far below the balancing tolerance
KERNEL_DTYPES = (torch.float32, torch.float64)

#: the over-relaxation of slow column updates in :func:`sinkhorn_kernel` (1 = plain)
OVERRELAX = 1.8
#: plain iterations that estimate the convergence rate ρ before over-relaxing, and the ρ
#: from which on the iterations are over-relaxed (faster ones would overshoot)
_RATE_ITERATIONS = 20
_SLOW = 0.8


def sinkhorn_kernel(
    K: torch.Tensor,
    target: torch.Tensor,
    tol: float,
    max_iter: int,
    omega: float | None = None,
) -> tuple[torch.Tensor | None, dict[str, Any]]:
    """Sinkhorn iterations on the kernel K (rows sum to 1, columns to ``target``).

    :data:`_RATE_ITERATIONS` plain iterations estimate the rate ρ at which the column error
    falls. When it falls slowly (ρ ≥ :data:`_SLOW`, as on trained readouts) the column
    scaling is then over-relaxed, ``v ← v^(1-ω) (target / Kᵀu)^ω`` with ω = ``omega``
    (Thibault et al., "Overrelaxed Sinkhorn-Knopp", 2017): the same fixed point in fewer
    iterations. On the saved 400-epoch models (round 1, seed 0): embryo 637 → 362
    iterations (``mapping()`` 4.5 → 2.8 s), embryo disjoint 359 → 207, osmFISH 131 → 80,
    osmFISH disjoint 92 → 59, C within 2e-5 (``benchmarks/results/issue17/NOTES.md``).
    Faster problems stay plain (over-relaxing them overshoots). Should the column error
    grow for 10 iterations in a row, the rest runs plain. ``omega``: ω (default
    :data:`OVERRELAX`; 1 = plain Sinkhorn).

    Returns the log column scaling (the potentials) and ``{"iterations",
    "max_column_error"}``; None for the potentials when the kernel underflows.
    """
    top = OVERRELAX if omega is None else float(omega)
    w = 1.0
    target = target.to(K.dtype)
    v = torch.ones(K.shape[1], dtype=K.dtype)
    err, it, worse, ratios = float("inf"), 0, 0, []
    while it < max_iter:
        it += 1
        u = 1.0 / (K @ v)  # rows sum to 1
        col = K.T @ u
        if not torch.isfinite(u).all() or (col <= 0).any():
            return None, {}  # underflow: fall back to log space
        prev, err = err, (v * col / target - 1).abs().max().item()
        if not np.isfinite(err):
            raise non_finite("the column sums of the kernel iterations", it)
        if err < tol:
            v = target / col
            break
        if it > 1 and it <= _RATE_ITERATIONS and prev > 0:
            ratios.append(err / prev)
        if it == _RATE_ITERATIONS and top > 1.0:
            rho = float(np.exp(np.mean(np.log(np.maximum(ratios[-10:], 1e-12)))))
            w = top if _SLOW <= rho < 1.0 else 1.0
        worse = worse + 1 if err > prev else 0
        if worse >= 10:
            w = 1.0
        v = target / col if w == 1.0 else v * (target / (v * col)) ** w
    return v.double().log(), _log_balance(it, err, tol)


def sinkhorn_sample(
    logits_of: LogitsFn,
    rows: torch.Tensor,
    target: torch.Tensor,
    tol: float,
    max_iter: int,
    chunk: int,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Sinkhorn on the stabilised float32 kernel of the cells ``rows`` (a sample, in memory).

    The kernel is ``exp(L - max_j L - max_i(L - max_j L))``: shifted per row, then per column,
    so every row and every column holds an entry 1 and none underflows entirely, however
    wide the logits spread (at 10⁵ spots the plain row-shifted kernel of a sample underflows
    in float32 and the iterations went to log space, one logits pass per iteration). Its
    columns are then scaled to their targets (the first half-iteration, in log space, so
    the shifts are absorbed into the potentials), and :func:`sinkhorn_kernel` iterates on it
    in float32 with matrix-vector products only. One matrix, built in place: no float64
    copy, no second logits pass. Returns g (float64, on the logits) and the iterations' info.
    """
    n_fit = len(rows)
    K = torch.empty((n_fit, len(target)), dtype=torch.float32)
    for a in range(0, n_fit, chunk):
        L = logits_of(rows[a : a + chunk])
        top = L.max(dim=1, keepdim=True).values
        if not bool(torch.isfinite(top).all()):
            raise non_finite("the readout logits", 0)
        torch.sub(L, top, out=K[a : a + len(L)])
        del L
    shift = K.max(dim=0).values  # every column's largest entry becomes exp(0) = 1
    K -= shift
    K.exp_()
    scale = target / K.sum(dim=0, dtype=torch.float64)  # sums in [1, n_fit]
    K *= scale.float()
    g0 = scale.log() - shift.double()
    v, info = sinkhorn_kernel(K, target, tol, max_iter)
    del K
    if v is None:  # not expected: the scalings left float32's range
        return sinkhorn_log(logits_of, rows, target.log(), tol, max_iter, chunk, g0=g0)
    return g0 + v, info


def sinkhorn_log(
    logits_of: LogitsFn,
    rows: torch.Tensor,
    log_target: torch.Tensor,
    tol: float,
    max_iter: int,
    chunk: int,
    g0: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
    refine: bool = False,
    collect: Collect | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Sinkhorn iterations in log space over the cells ``rows``, in chunks.

    Parameters
    ----------
    logits_of
        Readout logits of the cells of an index tensor.
    rows
        Cells to balance (index tensor).
    log_target
        (N,) log column sums.
    tol, max_iter
        Relative column tolerance and most iterations.
    chunk
        Cells per chunk.
    g0
        Starting potentials (default zeros).
    dtype
        Float type of the logits in the passes: the passes over all cells at scale run in
        float32 (logsumexp is max-shifted, so float32 is ample for a 1e-4 column tolerance
        and halves the memory traffic); the small-data and sample fits keep float64.
    refine
        Passes over all cells after a sample fit (reported at info level).
    collect
        ``collect(start, rows_of_c)`` for every chunk of every pass, ``rows_of_c`` the
        chunk's rows of C under the pass's starting potentials; ``collect(None, None)``
        before each pass. Not called when a pass falls back to ``logsumexp``.

    Returns
    -------
    tuple
        g (N,) float64 and ``{"iterations", "max_column_error"}``.
    """
    g = torch.zeros(len(log_target), dtype=torch.float64) if g0 is None else g0.clone()
    if not bool(torch.isfinite(g).all()):
        raise non_finite("the starting potentials", 0)
    err, it = float("inf"), 0
    while it < max_iter:
        it += 1
        col = _log_column_sums(logits_of, rows, g, chunk, dtype, collect)
        if not bool(torch.isfinite(col).all()):
            raise non_finite("the log column sums", it)
        err = (torch.exp(g + col - log_target) - 1).abs().max().item()
        g = log_target - col
        logger.debug("log-space pass %d over %d cells: column error %.3g", it, len(rows), err)
        if err < tol:
            break
    return g, _log_balance(it, err, tol, refine)


def _log_column_sums(
    logits_of: LogitsFn,
    rows: torch.Tensor,
    g: torch.Tensor,
    chunk: int,
    dtype: torch.dtype,
    collect: Collect | None = None,
) -> torch.Tensor:
    """Log Σ_i exp(L_ij + f_i) per spot j, f_i = -log Σ_j exp(L_ij + g_j) (rows of the plan).

    One ``exp`` per entry: with ``E = exp(L + g - max_j)`` and its row sums r, the column
    sums are ``(Eᵀ (1/r)) · exp(-g)``. Where a column underflows in a chunk (all of its
    entries below the float range), that pass is redone with max-shifted ``logsumexp``.
    """
    gd = g.to(dtype)
    parts = []
    if collect is not None:
        collect(None, None)
    for a in range(0, len(rows), chunk):
        E = logits_of(rows[a : a + chunk]).to(dtype)
        E += gd
        top = E.max(dim=1, keepdim=True).values
        if not bool(torch.isfinite(top).all()):  # a NaN or +Inf (-Inf is exp(-Inf) = 0)
            raise non_finite("the readout logits", None)
        E -= top
        E.exp_()
        inv = 1.0 / E.sum(dim=1)
        parts.append((E.T @ inv).double().log())
        if collect is not None:
            collect(a, E.mul_(inv[:, None]))
    col = torch.logsumexp(torch.stack(parts), dim=0) - g
    if bool(torch.isnan(col).any()):  # -inf is an underflow (redone below), NaN is not
        raise non_finite("the readout logits", None)
    if bool(torch.isfinite(col).all()):
        return col
    parts = []
    for a in range(0, len(rows), chunk):
        L = logits_of(rows[a : a + chunk]).to(dtype)
        f = -torch.logsumexp(L + gd, dim=1, keepdim=True)
        parts.append(torch.logsumexp(L + f, dim=0).double())
    return torch.logsumexp(torch.stack(parts), dim=0)


def non_finite(what: str, iteration: int | None) -> FloatingPointError:
    """Return the error of a NaN or Inf in the balancing (R: a ``stemmap_training_error``)."""
    at = "" if iteration is None else f" (iteration {iteration})"
    return FloatingPointError(
        f"balancing C (Sinkhorn) stopped{at}: {what} are not finite (NaN or Inf), so C would "
        "be NaN. The embeddings or the expression term overflow: check the input for NaN, "
        "Inf or extreme values (raw counts passed with `normalized=True`?)."
    )


def _log_balance(it: int, err: float, tol: float, refine: bool = False) -> dict[str, Any]:
    if refine:
        logger.info(
            "balanced on a sample of cells, then %d passes over all cells (largest "
            "relative column error before the last pass's update %.2g)",
            it,
            err,
        )
    elif err >= tol:
        logger.warning(
            "balancing stopped after %d iterations with a largest relative column error "
            "of %.2g (tolerance %.0e)",
            it,
            err,
            tol,
        )
    else:
        logger.debug("balanced C in %d Sinkhorn iterations (error %.2g)", it, err)
    return {"iterations": it, "max_column_error": err}
