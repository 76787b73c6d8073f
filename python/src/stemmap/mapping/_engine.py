"""The readout engine: the one owner of the rounds, the balancing and the rows of C.

:class:`ReadoutEngine` is fed the embeddings and the expression once (turned into expression
proportions once, on entry), and holds everything that reading C needs: the logits' cell side
and one spot side per round (:mod:`._readout`), each round's column potentials (:mod:`._balance`)
and the residual rounds (:mod:`._rounds`). It hands out chunks of rows of the matrices that
:class:`stemmap.StemMapping`'s outputs read:

* C_r, round r's mapping (:meth:`ReadoutEngine.round_rows`); C₁, round 1's, is the
  *placement* that coordinates, best spots and confidences read;
* C, the rounds' mean (:meth:`ReadoutEngine.rows_of_c`), and Ĉ, the rounds' mean of the
  per-spot distributions over cells (:meth:`ReadoutEngine.chat_block`).

Nothing outside the engine changes its state; its caches (potentials, residual rounds) fill on
first use. A NaN or Inf in its inputs, logits or potentials is a :class:`FloatingPointError`
naming the cause, never a non-finite C.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from .._device import native_bf16
from .._runtime import compute
from .._topk import chunked_topk
from . import _balance, _pass, _readout, _rounds, _sparse, _values
from ._balance import Tuning

logger = logging.getLogger(__name__)


#: most entries of a chunk of rows of C (float32: 512 MB); fewer cells per chunk at 10⁵ spots
CHUNK_ENTRIES = 2**27


class ReadoutEngine:
    """Rows of C_r, C and Ĉ of a mapping, read off the embeddings in chunks of cells.

    Parameters
    ----------
    zsc, zst
        (M × h) and (N × h) float32 cell and spot embeddings.
    sc_expr, st_expr
        (M × G) and (N × G) log1p-normalised expression (needed with an expression term).
    expression_weight, expression_profile, balance, temperature, rounds
        As :class:`stemmap.StemMapping` (``expression_weight`` 0: the embeddings alone;
        ``rounds`` is reduced to 1 without an expression term or without balancing).
    spot_w
        (N,) target share of each spot (sums to 1).
    chunk_size
        Cells per chunk.
    tuning
        How the balancing scales (:class:`Tuning`).
    threads
        Torch threads of the computations.
    """

    def __init__(
        self,
        zsc: torch.Tensor,
        zst: torch.Tensor,
        sc_expr: np.ndarray | None,
        st_expr: np.ndarray | None,
        *,
        expression_weight: float,
        expression_profile: str,
        balance: bool,
        temperature: float,
        rounds: int,
        spot_w: np.ndarray,
        chunk_size: int,
        tuning: Tuning,
        threads: int | None = None,
    ) -> None:
        _values.check_finite(zsc, "sc_embedding", "cells")
        _values.check_finite(zst, "st_embedding", "spots")
        self.n_cells, self.n_spots = zsc.shape[0], zst.shape[0]
        self._zsc, self._zst = zsc, zst
        self.balance, self.temperature = bool(balance), float(temperature)
        self.expression_weight, self.expression_profile = expression_weight, expression_profile
        # at 10⁵ spots a chunk of rows of C is capped at CHUNK_ENTRIES (512 MB of float32)
        self.chunk_size = max(1, min(int(chunk_size), CHUNK_ENTRIES // max(self.n_spots, 1)))
        self.tuning, self.threads = tuning, threads
        self.spot_w = spot_w
        self.expression_scale = 0.0
        #: the sparse readout (:mod:`._sparse`): above ``tuning.sparse_entries`` cells × spots,
        #: when a cell's kept and tail entries are far fewer than the spots
        t = tuning
        width = t.sparse_kept + t.sparse_sample
        self.sparse = self.n_cells * self.n_spots > t.sparse_entries and self.n_spots > 2 * width
        self._basis: torch.Tensor | None = None  # the sparse readout's profile axes
        esc = est = None
        psc = pst = None
        if expression_weight > 0:
            # the proportions, once: the expression term's profiles and the residual rounds
            esc, est, psc, pst = _readout.expression_term(
                sc_expr,
                st_expr,
                expression_profile,
                self.n_cells,
                self.n_spots,
                keep=rounds > 1 and self.balance,
            )
            if self.sparse and 0 < t.sparse_rank < est.shape[1]:
                self._basis = _pass.profile_axes(est, t.sparse_rank)
                esc, est = esc @ self._basis, est @ self._basis
            ratio = _readout.spread_ratio(zsc, zst, esc, est)
            self.expression_scale = _values.check_scale(expression_weight * ratio)
        self.rounds = rounds if esc is not None and self.balance else 1
        # the logits' cell side [Z_SC | E_SC] and one spot side per round (_spot_side)
        self._cells = _readout.cell_side(zsc, esc)
        self._sides = [_readout.spot_side(zst, est, self.expression_scale, temperature)]
        self._cell_norm = _readout.max_row_norm(self._cells)
        _readout.check_logit_bound(self._cell_norm, self._sides[0])
        if self.rounds > 1:  # what the residual rounds read: P_SC and the spots' residual
            self._sc_props, self._resid = psc, pst
        self._g: list[torch.Tensor | None] = [None] * self.rounds  # each round's potentials
        self._lse: list[torch.Tensor | None] = [None] * self.rounds  # normalisers of Ĉ_r
        self._collected: dict[int, _rounds.Explained] = {}  # Ĉ_r P_SC read by a balancing pass
        self._sums: list[torch.Tensor] | None = None  # each round's column sums of C_r
        #: the sparse readout (:mod:`._sparse`): above ``tuning.sparse_entries`` cells × spots,
        #: when a cell's kept and tail entries are far fewer than the spots
        self._sparse: list[_sparse.SparseRound | None] = [None] * self.rounds
        #: how round 1's balancing went (``iterations``, ``max_column_error``, ``cells``, ...)
        self.balance_info: dict[str, Any] = {}

    def chunks(self) -> Iterator[tuple[int, int]]:
        """Yield the (first, end) cells of every chunk."""
        for a in range(0, self.n_cells, self.chunk_size):
            yield a, min(a + self.chunk_size, self.n_cells)

    @property
    def share(self) -> float:
        """Each round's share of C and Ĉ."""
        return 1.0 / self.rounds

    # ------------------------------------------------------------------ logits
    def logits(self, rows: slice | torch.Tensor, r: int = 0) -> torch.Tensor:
        """Round ``r``'s readout logits of the given cells (a slice or an index tensor)."""
        return _readout.logits(self._cells, self._spot_side(r), rows)

    def _spot_side(self, r: int) -> torch.Tensor:
        """Round ``r``'s spot side of the logits; a residual round is built on first use.

        Round r reads out the residual left by rounds 0..r-1: each earlier round's mapped
        cells (Ĉ_r P_SC, :meth:`explained`) are taken out, ``share`` each.
        """
        while len(self._sides) <= r:
            k = len(self._sides)
            expl = self.explained(k - 1)
            if self.sparse:  # in place, float32 (N × G at 5·10⁵ bins: 0.7 GB a copy)
                expl *= self.share
                self._resid = np.clip(np.subtract(self._resid, expl, out=expl), 0.0, None, out=expl)
            else:
                self._resid = np.clip(self._resid - self.share * expl, 0.0, None)
            est = _rounds.residual_profiles(self._resid, self.expression_profile)
            if self._basis is not None:
                est = est @ self._basis
            esc = self._cells[:, self._zsc.shape[1] :]
            scale = self.expression_weight * _readout.spread_ratio(self._zsc, self._zst, esc, est)
            scale = _values.check_scale(scale, f"round {k + 1}'s expression scale")
            self._sides.append(_readout.spot_side(self._zst, est, scale, self.temperature))
            _readout.check_logit_bound(self._cell_norm, self._sides[-1])
            logger.debug("readout round %d: expression scale %.4g", k + 1, scale)
        return self._sides[r]

    # --------------------------------------------------------------- balancing
    @compute
    def potentials(self, r: int = 0, tol: float = 1e-4, max_iter: int = 5000) -> torch.Tensor:
        """Column potentials g of round ``r``'s balanced C (zeros without balancing).

        Fitted once (:func:`._balance.fit_potentials`); the float64 kernel of all cells may
        take 1 GiB or a quarter of the free memory, else g is fitted on a sample of cells
        (``balance_info["cells"]``, round 1's) and refined by passes over all cells.
        """
        if not self.balance:
            return torch.zeros(self.n_spots, dtype=torch.float64)
        if self.sparse:
            return self.sparse_round(r).potentials
        return self._fit(r, tol, max_iter)

    def _fit(self, r: int, tol: float = 1e-4, max_iter: int = 5000) -> torch.Tensor:
        """Fit round ``r``'s potentials once (:func:`._balance.fit_potentials`; cached).

        The sparse readout keeps the sample fit (no passes over all cells): its one pass
        reads the entries under them and balances on the entries.
        """
        if self._g[r] is None:
            # the residual rounds keep the potentials of their sample fit at scale (one
            # pass less each); round 1's pass also collects Ĉ₁ P_SC for round 2
            low = torch.bfloat16 if native_bf16(torch.device("cpu")) else None
            collect = _rounds.Explained(self._sc_props, low) if r == 0 and self.rounds > 1 else None
            t = self.tuning
            g, info = _balance.fit_potentials(
                lambda rows: self.logits(rows, r),
                self.n_cells,
                self.spot_w,
                self.chunk_size,
                min(2**30, 0.25 * _values.free_cpu()),
                tol=tol,
                max_iter=max_iter,
                min_cells=t.min_cells,
                passes=t.passes if r == 0 and not self.sparse else 0,
                pass_tol=t.pass_tol,
                pass_dtype=t.pass_dtype,
                collect=collect,
            )
            self._g[r] = g
            if collect is not None and collect.complete:
                self._collected[0] = collect
            if r == 0:
                self.balance_info.update(info)
        return self._g[r]

    @compute
    def explained(self, r: int) -> np.ndarray:
        """(N × G) Ĉ_r P_SC: each spot's expected expression proportions under round ``r``.

        With balancing Ĉ_r is C_r normalised per spot, so one pass over the rows of C_r
        gives it (column sums and C_rᵀ P_SC together). When round r's potentials were
        refined by a pass over all cells, that pass collected it already (under the
        potentials the pass started from).
        """
        if self.sparse:
            return self.sparse_round(r).explained(self._sc_props)
        self.potentials(r)
        if r in self._collected:
            return self._collected.pop(r).result()
        acc = _rounds.Explained(self._sc_props)
        for a, b in self.chunks():
            acc(a, self.round_rows(r, a, b))
        return acc.result()

    @compute
    def sparse_round(self, r: int) -> _sparse.SparseRound:
        """Round ``r``'s sparse C (:mod:`._sparse`): one pass, then balanced on its entries."""
        if self._sparse[r] is None:
            t = self.tuning
            rows, values = _pass.pass_functions(self._cells, self._spot_side(r), t.sparse_select)
            rnd = _sparse.build_round(
                rows,
                (lambda: self._fit(r)) if self.balance else None,
                (self.n_cells, self.n_spots, self.chunk_size),
                (t.sparse_kept, t.sparse_sample, t.sparse_margin),
                torch.from_numpy(self.n_cells * self.spot_w),
                r,
                values,
            )
            self._sparse[r] = rnd
            if r == 0:
                self.balance_info.update(rnd.info)
                self.balance_info["sparse"] = {
                    "kept": t.sparse_kept,
                    "sample": t.sparse_sample,
                    "tail_mass": round(rnd.tail_mass(), 6),
                }
        return self._sparse[r]

    def topk_rows(self, k: int, placement: bool) -> Iterator[Any]:
        """Yield (a, b, values, spots): each chunk's ``k`` largest entries of C (C₁: ``placement``).

        Sparse: of the kept entries (a tail entry stands for many bins, not one).
        """
        if self.sparse:
            rounds = [self.sparse_round(r) for r in range(self.rounds)]
            for a, b in self.chunks():
                v, i = _sparse.kept_topk(rounds, a, b, k, placement)
                yield a, b, v, i
            return
        rows = self.rows_of_c
        if placement and self.rounds > 1:
            rows = lambda a, b: self.round_rows(0, a, b)  # noqa: E731
        yield from chunked_topk(rows, self.n_cells, k, self.chunk_size)

    # ------------------------------------------------------------ rows of C, Ĉ
    def round_rows(self, r: int, a: int, b: int) -> torch.Tensor:
        """Rows a:b of round ``r``'s C_r (float32; softmax over spots of the balanced logits).

        ``r`` counts from 0: ``round_rows(0, a, b)`` are rows of the placement C₁. Sparse:
        the kept and tail entries at their bins (:meth:`._sparse.SparseRound.dense`).
        """
        if self.sparse:
            return self.sparse_round(r).dense(a, b)
        L = self.logits(slice(a, b), r)
        if self.balance:
            L += self.potentials(r).float()
        return torch.softmax(L, dim=1)

    def _mean_of_rounds(
        self, block: Callable[[int], torch.Tensor], first: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the rounds' mean of ``block(r)`` (a fresh float32 tensor per round), in place.

        ``first``: round 1's block when the caller has it already (not modified).
        """
        out = block(0) if first is None else first.clone()
        if self.rounds > 1:
            out *= self.share
            for r in range(1, self.rounds):
                out.add_(block(r), alpha=self.share)
        return out

    def rows_of_c(self, a: int, b: int, first: torch.Tensor | None = None) -> torch.Tensor:
        """Rows a:b of C (float32): the rounds' mean (``first``: round 1's rows, if read)."""
        if first is not None and self.rounds == 1:
            return first
        return self._mean_of_rounds(lambda r: self.round_rows(r, a, b), first)

    def _col_logits(self, r: int, a: int, b: int) -> torch.Tensor:
        """Logits whose softmax over cells is round ``r``'s Ĉ (cells a:b)."""
        L = self.logits(slice(a, b), r)
        if self.balance:
            L = L - torch.logsumexp(L + self.potentials(r).float(), dim=1, keepdim=True)
        return L

    def _cell_lse(self, r: int) -> torch.Tensor:
        """Compute log Σ_cells exp(B_ij) for every spot j (round ``r``'s normaliser of Ĉ)."""
        if self._lse[r] is None:
            parts = [torch.logsumexp(self._col_logits(r, a, b), dim=0) for a, b in self.chunks()]
            self._lse[r] = torch.logsumexp(torch.stack(parts), dim=0)
        return self._lse[r]

    @property
    def sampled(self) -> bool:
        """Whether round 1's potentials were fitted on a sample of cells (the problem is large)."""
        return self.balance and self.balance_info.get("cells", self.n_cells) < self.n_cells

    def _round_sums(self) -> list[torch.Tensor]:
        """Each round's column sums of C_r (float64; read by :meth:`read_once`, else a pass)."""
        if self._sums is None and self.sparse:
            self._sums = [self.sparse_round(r).column_sums() for r in range(self.rounds)]
        if self._sums is None:
            sums = [torch.zeros(self.n_spots, dtype=torch.float64) for _ in range(self.rounds)]
            for a, b in self.chunks():
                for r in range(self.rounds):
                    sums[r] += self.round_rows(r, a, b).sum(dim=0).double()
            self._sums = sums
        return self._sums

    def chat_block(self, a: int, b: int) -> torch.Tensor:
        """Columns a:b of Ĉ, transposed ((b - a) × N, float32): the rounds' mean.

        Balanced, Ĉ_r is C_r with each column divided by its sum. At scale (potentials
        fitted on a sample) it is read so, from the column sums the output pass collected:
        one pass over the cells per round instead of two (a column ``logsumexp`` pass and
        the rows); the same values to float32 rounding.
        """
        self.potentials(0)
        if self.sampled or (self.sparse and self.balance):
            inv = [(1.0 / s).float() for s in self._round_sums()]
            return self._mean_of_rounds(lambda r: self.round_rows(r, a, b).mul_(inv[r]))
        return self._mean_of_rounds(
            lambda r: torch.exp(self._col_logits(r, a, b) - self._cell_lse(r))
        )

    @compute
    def aggregate(self, V: torch.Tensor) -> torch.Tensor:
        """(N × k) Ĉ V of an (M × k) float64 tensor (Ĉ: the rounds' mean; chunks of cells).

        Sparse and balanced: from the entries (each round's Cᵀ V over its column sums; a bin
        in no cell's entries of a round, ``balance_info["unreached"]``, has no column there:
        its Ĉ column is uniform over the cells, V's mean).
        """
        if self.sparse and self.balance:
            acc, mean = np.zeros((self.n_spots, V.shape[1])), V.numpy().mean(axis=0)
            for r, s in enumerate(self._round_sums()):
                s, part = s.numpy(), self.sparse_round(r).transposed_product(V.numpy())
                acc += np.where(s[:, None] > 0, part / np.maximum(s, 1e-300)[:, None], mean)
            return torch.from_numpy(acc * self.share)
        acc = torch.zeros((self.n_spots, V.shape[1]), dtype=torch.float64)
        for a, b in self.chunks():
            acc += self.chat_block(a, b).double().T @ V[a:b]
        return acc

    # ------------------------------------------------------------- one pass
    @compute
    def read_once(self, Y: np.ndarray | None, kept: int) -> dict[str, Any]:
        """Read C once: the placement outputs from C₁, top-k and column sums from C.

        Best spots, confidences, coordinates ``C₁ · Y`` (``Y``: the spot coordinates, None
        for several slices) and the ``kept`` largest entries of each row of the placement C₁
        (round 1's rows, read first), then those of C (the rounds' mean, which reuses round
        1's rows) and its column sums. FloatingPointError if any of them is not finite.

        Returns
        -------
        dict
            ``best``, ``conf``, ``coords`` (with ``Y``), ``topk``, ``place_topk`` (values
            and spot indices) and ``column_sums`` (float64 tensor).
        """
        if self.sparse:
            rounds = [self.sparse_round(r) for r in range(self.rounds)]
            out = _sparse.read_outputs(rounds, Y, kept, list(self.chunks()))
            for key in ("conf", "coords"):
                if key in out:
                    _values.check_finite_output(out[key], key)
            _values.check_finite_output(out["column_sums"].numpy(), "sc_to_st")
            self._sums = [r.column_sums() for r in rounds]
            return out
        best, conf, coords, ptv, pti, tv, ti = [], [], [], [], [], [], []
        Yt = None if Y is None else torch.from_numpy(Y)
        col = torch.zeros(self.n_spots, dtype=torch.float64)
        sums = [torch.zeros(self.n_spots, dtype=torch.float64) for _ in range(self.rounds)]

        def rows_of_c(a: int, b: int) -> torch.Tensor:
            P = self.round_rows(0, a, b)
            v, i = P.max(dim=1)  # the first of tied maxima, as numpy's argmax
            best.append(i.numpy())
            conf.append(v.numpy())
            if Yt is not None:
                coords.append((P @ Yt).double().numpy())
            if self.rounds > 1:
                pv, pi = torch.topk(P, kept, dim=1)
                ptv.append(pv)
                pti.append(pi.int())
            sums[0].add_(P.sum(dim=0).double())
            C = P
            if self.rounds > 1:  # as rows_of_c(a, b, first=P), each round's sums on the way
                C = P.clone()
                C *= self.share
                for r in range(1, self.rounds):
                    B = self.round_rows(r, a, b)
                    sums[r].add_(B.sum(dim=0).double())
                    C.add_(B, alpha=self.share)
            col.add_(C.sum(dim=0).double())
            return C

        for _, _, v, i in chunked_topk(rows_of_c, self.n_cells, kept, self.chunk_size):
            tv.append(v)
            ti.append(i.int())
        out = {"best": np.concatenate(best).astype(np.int64), "conf": np.concatenate(conf)}
        _values.check_finite_output(out["conf"], "confidence")
        _values.check_finite_output(col.numpy(), "sc_to_st")
        out["topk"] = (torch.cat(tv), torch.cat(ti))
        out["place_topk"] = (torch.cat(ptv), torch.cat(pti)) if self.rounds > 1 else out["topk"]
        if Yt is not None:
            out["coords"] = np.concatenate(coords)
            _values.check_finite_output(out["coords"], "coords")
        out["column_sums"] = col
        self._sums = sums
        return out
