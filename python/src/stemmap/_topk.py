"""The one chunked top-k of stemmap: each row's ``k`` largest scores, a block of rows at a time.

Mappings, SC–SC graphs and neighbour searches all need each row's ``k`` best columns of a
matrix too large to hold (M × N or M × M). :func:`chunked_topk` computes the scores of a
block of rows, optionally masks each row's own column, and keeps the ``k`` largest;
:func:`topk_csr` assembles the blocks into a sparse matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import scipy.sparse as sp
import torch

#: ``score_fn(a, b)``: the (b - a) × n_cols scores of rows a:b (a float tensor)
ScoreFn = Callable[[int, int], torch.Tensor]
#: one block of :func:`chunked_topk`: first row, end row, (b - a) × k values and column indices
TopkBlock = tuple[int, int, torch.Tensor, torch.Tensor]


def chunked_topk(
    score_fn: ScoreFn, n_rows: int, k: int, chunk: int, *, exclude_self: bool = False
) -> Iterator[TopkBlock]:
    """Yield the ``k`` largest scores of every row, one block of ``chunk`` rows at a time.

    Parameters
    ----------
    score_fn
        ``score_fn(a, b)`` returns the (b - a) × n_cols scores of rows ``a:b`` as a torch
        tensor (it may be modified in place).
    n_rows
        Number of rows.
    k
        Entries kept per row (``1 <= k <= n_cols``).
    chunk
        Rows per block.
    exclude_self
        Square score matrices: set each row's own column (row ``i``, column ``i``) to
        ``-inf`` first, so that a row is never its own neighbour.

    Yields
    ------
    tuple
        ``(a, b, values, indices)``: rows ``a:b``, their (b - a) × k largest scores in
        decreasing order (``torch.topk``) and the column of each.
    """
    for a in range(0, n_rows, chunk):
        b = min(a + chunk, n_rows)
        scores = score_fn(a, b)
        if exclude_self:
            r = torch.arange(b - a)
            scores[r, r + a] = -float("inf")
        values, indices = torch.topk(scores, k, dim=1)
        yield a, b, values, indices


def topk_csr(
    blocks: Iterable[TopkBlock], shape: tuple[int, int], *, values: bool = True
) -> sp.csr_matrix:
    """Sparse matrix of top-k blocks (as :func:`chunked_topk` yields them).

    Parameters
    ----------
    blocks
        ``(a, b, values, indices)`` per block of rows.
    shape
        Shape of the matrix.
    values
        Store the scores; False stores 1 (float32) for every kept entry.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``k`` entries per row.
    """
    rows, cols, vals = [], [], []
    for a, b, v, i in blocks:
        k = i.shape[1]
        rows.append(np.repeat(np.arange(a, b), k))
        cols.append(i.numpy().ravel())
        vals.append(v.numpy().ravel() if values else np.ones((b - a) * k, dtype=np.float32))
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape
    )
