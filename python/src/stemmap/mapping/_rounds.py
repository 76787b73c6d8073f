"""The residual rounds of the hybrid readout: their spot profiles and Ĉ_r P_SC.

Round r > 1 reads out the spots' residual proportions ``max(P_ST - Σ share · Ĉ_r P_SC, 0)``
through the same embeddings (:class:`._engine.ReadoutEngine` runs the rounds):
:func:`residual_profiles` turns the residual into the spot rows of the expression term,
straight from the proportions (no log1p / expm1 round trip for ``"hellinger"``), and
:class:`Explained` accumulates Ĉ_r P_SC from rows of C_r, either in a pass of its own or
inside round 1's balancing pass at scale.
"""

from __future__ import annotations

import numpy as np
import torch

from . import _readout


def residual_profiles(resid: np.ndarray, profile: str) -> torch.Tensor:
    """(N × G) spot rows of a residual round's expression term (see :func:`._readout.profiles`).

    ``"hellinger"`` reads the residual's proportions; ``"log"`` its log1p-normalised form
    (:func:`._readout.residual_expression`), as it reads any spot expression.
    """
    if profile == "hellinger":
        return _readout.profiles(_readout.residual_proportions(resid), profile)
    return _readout.profiles(_readout.residual_expression(resid), profile)


class Explained:
    """Accumulates Ĉ P_SC from chunks of rows of C (column sums and Cᵀ P_SC).

    ``sc_props``: the (M × G) expression proportions P_SC of the cells. ``low``: the float
    type of the products (bfloat16 in the balancing pass at scale, where the CPU multiplies
    it natively), else float32.
    """

    def __init__(self, sc_props: np.ndarray, low: torch.dtype | None = None) -> None:
        self._p = sc_props
        self._low = low
        self._n = 0
        self._acc: torch.Tensor | None = None
        self._col: torch.Tensor | None = None

    def __call__(self, start: int | None, rows_of_c: torch.Tensor | None) -> None:
        """Add a chunk of rows of C starting at cell ``start``; ``None``: start over."""
        if start is None or rows_of_c is None:
            self._n, self._acc, self._col = 0, None, None
            return
        p = torch.from_numpy(self._p[start : start + rows_of_c.shape[0]])
        if self._low is None:
            acc = (rows_of_c.T @ p).double()
        else:  # bfloat16 products, float32 sums: a residual needs no more (and it is 2× faster)
            acc = (rows_of_c.T.to(self._low) @ p.to(self._low)).double()
        col = rows_of_c.sum(dim=0).double()
        self._acc = acc if self._acc is None else self._acc + acc
        self._col = col if self._col is None else self._col + col
        self._n += rows_of_c.shape[0]

    @property
    def complete(self) -> bool:
        """Whether every cell was added (a pass that fell back adds none)."""
        return self._n == self._p.shape[0]

    def result(self) -> np.ndarray:
        """(N × G) Ĉ P_SC."""
        if self._acc is None or self._col is None:
            raise RuntimeError("no rows of C were collected")
        return (self._acc / self._col.clamp_min(1e-300)[:, None]).numpy()
