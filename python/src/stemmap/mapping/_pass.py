"""The sparse readout's pass over all cells (:mod:`._sparse`): each cell's kept and tail entries.

One pass per round reads every cell's row of the balanced logits over all bins and keeps its
``kept`` largest entries and ``sample`` uniformly drawn bins of its tail (see :mod:`._sparse`).

Where the CPU multiplies bfloat16 natively (AVX512-BF16, AMX), the pass's product over all
bins is made in bfloat16 (twice as fast as float32 on such a CPU) and serves only to *choose*
each cell's candidates (``kept + margin`` of them); every entry's value is then the float32
logit of that cell and bin (:func:`logits_at`, a product at the chosen entries only), and the
kept entries are the ``kept`` largest of those. Rounding can only change which bins near a
row's ``kept``-th largest entry are kept, never a value, and the tail stays unbiased (a draw is
weighted 0 exactly when it is a kept bin).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch

from ._balance import non_finite

#: ``logits_of(a, b)``: the (b - a) × N readout logits of cells a:b (float32, may be modified)
RowsFn = Callable[[int, int], torch.Tensor]
#: ``values_of(a, b, cols)``: float32 logits of cells a:b at the bins ``cols`` ((b - a) × k)
ValuesFn = Callable[[int, int, torch.Tensor], torch.Tensor]


def logits_at(cells: torch.Tensor, side: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(m × k) logits ``cells[i] · side[cols[i, j]]`` (float32): a product at these entries only.

    A sampled product (``torch.sparse.sampled_addmm``: one inner product per entry, no
    m × N row and no gathered m × k × width copy of ``side``); ``cols`` need not be sorted
    and may repeat a bin.
    """
    m, k = cols.shape
    crow = torch.arange(0, m * k + 1, k, dtype=torch.int64)
    with warnings.catch_warnings():  # torch calls its sparse CSR tensors beta
        warnings.simplefilter("ignore", UserWarning)
        pattern = torch.sparse_csr_tensor(
            crow,
            cols.reshape(-1).long(),
            torch.zeros(m * k, dtype=cells.dtype),
            size=(m, side.shape[0]),
            check_invariants=False,
        )
        out = torch.sparse.sampled_addmm(pattern, cells, side.T)
    return out.values().reshape(m, k)


def profile_axes(est: torch.Tensor, rank: int) -> torch.Tensor:
    """(G × rank) main axes of the spots' expression profiles (float32, orthonormal columns).

    The expression term's product ``E_SC E_STᵀ`` over G genes becomes ``(E_SC V)(E_ST V)ᵀ``
    over the ``rank`` axes that hold most of the spots' profile variance: the pass's logits
    product shrinks from h + G to h + ``rank`` columns (G: hundreds to thousands of genes).
    The eigenvectors of the G × G Gram matrix (float64, deterministic).
    """
    gram = torch.zeros((est.shape[1], est.shape[1]), dtype=torch.float64)
    for a in range(0, est.shape[0], 65536):
        x = est[a : a + 65536].double()
        gram += x.T @ x
    _, vecs = torch.linalg.eigh(gram)  # ascending eigenvalues
    return vecs[:, -rank:].flip(1).float().contiguous()


def pass_functions(
    cells: torch.Tensor, side: torch.Tensor, select: torch.dtype
) -> tuple[RowsFn, ValuesFn | None]:
    """Return a pass's ``logits_of`` and ``values_of`` (:func:`read_entries`) for two sides.

    ``select`` float32 (or a device other than the CPU): the float32 product, no
    ``values_of``. Else the product in ``select`` (bfloat16: the sides are cast once a
    round) chooses the candidates and :func:`logits_at` gives their float32 values.
    """
    if select == torch.float32 or cells.device.type != "cpu":
        return (lambda a, b: cells[a:b] @ side.T), None
    low_cells, low_side = cells.to(select), side.to(select)
    return (
        (lambda a, b: low_cells[a:b] @ low_side.T),
        (lambda a, b, cols: logits_at(cells[a:b], side, cols)),
    )


def read_entries(
    logits_of: RowsFn,
    g0: torch.Tensor,
    n_cells: int,
    chunk: int,
    entries: tuple[int, int, int],
    seed: int,
    values_of: ValuesFn | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over the cells: each row's kept and tail entries of the balanced logits.

    Parameters
    ----------
    logits_of
        Readout logits of a chunk of cells (float32; with ``values_of``: any precision,
        they only choose the candidates).
    g0
        (N,) potentials the pass reads under (from a sample fit; zeros without balancing).
    n_cells, chunk
        M and cells per chunk.
    entries
        (kept, sample, margin): largest entries kept per cell, bins drawn for each cell's
        tail, and extra candidates chosen with ``values_of`` (the kept ones are the largest
        float32 values among ``kept + margin``).
    seed
        Seed of the tail's bins (a fixed generator: the same inputs give the same entries).
    values_of
        Float32 logits of a chunk of cells at given bins (:func:`logits_at`); None: the
        values are ``logits_of``'s.

    Returns
    -------
    tuple
        (M × (kept + sample)) float32 log-kernel ``L + g0 + log w - max`` (``-inf``: no
        entry) and int32 bin indices; the first ``kept`` columns are the kept entries in
        decreasing order.
    """
    kept, sample, margin = entries
    n = len(g0)
    width = kept + sample
    cand = kept if values_of is None else min(kept + margin, n)
    logk = torch.empty((n_cells, width), dtype=torch.float32)
    cols = torch.empty((n_cells, width), dtype=torch.int32)
    gen = torch.Generator().manual_seed(int(seed))
    gf = g0.float()
    for a in range(0, n_cells, chunk):
        b = min(a + chunk, n_cells)
        L = logits_of(a, b)
        L += gf.to(L.dtype)
        v, i = torch.topk(L, cand, dim=1)
        if not bool(torch.isfinite(v[:, 0]).all()):
            raise non_finite("the readout logits", None)
        # each cell its own uniform draws of bins (with replacement) for its tail
        s = torch.randint(n, (b - a, sample), generator=gen) if sample else None
        if values_of is None:
            t = L.gather(1, s) if s is not None else None
            tail = None if t is None else t < v[:, -1:]  # a drawn kept bin is no tail entry
        else:  # float32 values at the candidates and draws; keep the largest candidates
            at = i if s is None else torch.cat([i, s], dim=1)
            x = values_of(a, b, at) + gf[at]
            if not bool(torch.isfinite(x).all()):
                raise non_finite("the readout logits", None)
            v, pos = torch.topk(x[:, :cand], kept, dim=1)
            i = i.gather(1, pos)
            t = x[:, cand:] if s is not None else None
            tail = None if s is None else ~(s[:, :, None] == i[:, None, :]).any(dim=2)
        logk[a:b, :kept] = v
        cols[a:b, :kept] = i.int()
        if s is not None:
            logk[a:b, kept:] = torch.where(tail, t + math.log(n / sample), -math.inf)
            cols[a:b, kept:] = s.int()
        logk[a:b] -= v[:, :1]
        del L
    return logk, cols
