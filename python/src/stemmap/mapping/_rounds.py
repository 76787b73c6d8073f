"""The residual rounds of the hybrid readout (methods of :class:`stemmap.StemMapping`).

Round r > 1 reads out the spots' residual proportions ``max(P_ST - Σ share · Ĉ_r P_SC, 0)``
through the same embeddings: :func:`spot_side` builds its spot side of the logits from the
earlier rounds' :func:`explained` (Ĉ_r P_SC), which :class:`Explained` accumulates from rows
of C, either in a pass of its own or inside round 1's balancing pass at scale.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import torch

from .._runtime import compute
from . import _readout

if TYPE_CHECKING:
    from ._mapping import StemMapping

logger = logging.getLogger(__name__)


def spot_side(self: StemMapping, r: int) -> torch.Tensor:
    """Round ``r``'s spot side of the logits; a residual round is built on first use.

    Round r reads out the residual left by rounds 0..r-1: each earlier round's mapped
    cells (Ĉ_r P_SC, :meth:`_explained`) are taken out, ``share`` each.
    """
    while len(self._sides) <= r:
        k = len(self._sides)
        self._resid = np.clip(self._resid - self._share * self._explained(k - 1), 0.0, None)
        est = _readout.profiles(_readout.residual_expression(self._resid), self.expression_profile)
        ratio = _readout.spread_ratio(
            self._zsc, self._zst, self._cells[:, self._zsc.shape[1] :], est
        )
        scale = self.expression_weight * ratio
        self._sides.append(_readout.spot_side(self._zst, est, scale, self.temperature))
        logger.debug("readout round %d: expression scale %.4g", k + 1, scale)
    return self._sides[r]


@compute
def explained(self: StemMapping, r: int) -> np.ndarray:
    """(N × G) Ĉ_r P_SC: each spot's expected expression proportions under round ``r``.

    With balancing Ĉ_r is C_r normalised per spot, so one pass over the rows of C_r
    gives it (column sums and C_rᵀ P_SC together). When round r's potentials were
    refined by a pass over all cells, that pass collected it already (under the
    potentials the pass started from).
    """
    self._potentials(r)
    if r in self._collected:
        return self._collected.pop(r).result()
    acc = Explained(self)
    for a, b in self._chunks():
        acc(a, self._round_rows(r, a, b))
    return acc.result()


class Explained:
    """Accumulates Ĉ P_SC from chunks of rows of C (column sums and Cᵀ P_SC).

    ``low``: the float type of the products (bfloat16 in the balancing pass at scale, where
    the CPU multiplies it natively), else float32.
    """

    def __init__(self, mapping: StemMapping, low: torch.dtype | None = None) -> None:
        self._m = mapping
        self._low = low
        self._n = 0
        self._acc: torch.Tensor | None = None
        self._col: torch.Tensor | None = None

    def __call__(self, start: int | None, rows_of_c: torch.Tensor | None) -> None:
        """Add a chunk of rows of C starting at cell ``start``; ``None``: start over."""
        if start is None or rows_of_c is None:
            self._n, self._acc, self._col = 0, None, None
            return
        m = self._m
        stop = start + rows_of_c.shape[0]
        p = torch.from_numpy(_readout.proportions(m._sc_expr[start:stop]))
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
        return self._n == self._m.n_cells

    def result(self) -> np.ndarray:
        """(N × G) Ĉ P_SC."""
        if self._acc is None or self._col is None:
            raise RuntimeError("no rows of C were collected")
        return (self._acc / self._col.clamp_min(1e-300)[:, None]).numpy()
