"""The sparse readout at bin scale: each round's C kept as a few hundred entries per cell.

At 10⁵ cells × 10⁵ bins the exact readout makes ~7 passes over the cells × bins logits
(balancing passes, the outputs, Ĉ, the residual rounds); each pass costs minutes. The sparse
readout makes **one** pass per round, under potentials fitted on a sample of cells
(:func:`._balance.sinkhorn_sample`), and keeps of every cell's row of the balanced logits

* its ``kept`` largest entries (the bins that hold almost all of its mass), and
* an importance sample of the rest, the *tail*: ``sample`` bins drawn uniformly for each cell
  (with replacement), each weighted by ``N / sample``, a draw among the cell's kept bins
  weighted 0, so that a row's sum over its tail entries estimates the sum over all of its
  other bins without bias (and every bin is drawn by about ``M · sample / N`` cells, so the
  balancing sees every bin's tail share).

:class:`SparseRound` then balances C on these entries exactly (Sinkhorn on a sparse kernel,
every row of length ``kept + sample``: seconds, where a pass over all bins costs minutes), and
every output reads the entries: coordinates, column sums, Ĉ and the residual rounds' Ĉ P_SC
read all of them (linear in C, the tail's estimate is unbiased); best bins, confidences and
top-k read the kept entries only (a tail entry stands for many bins and is no single bin's
value). A dense chunk of rows (:meth:`SparseRound.dense`) puts the tail at its sampled bins. The pass itself is :mod:`._pass`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ._balance import non_finite
from ._pass import RowsFn, ValuesFn, read_entries

logger = logging.getLogger(__name__)

#: the sparse balancing's column scalings stay within e^±SCALING_BOUND of the sample fit's
SCALING_BOUND = 30.0

#: a round reads its entries again (another pass over the cells) under the potentials its
#: balancing reached while the column error stays above RESELECT_ERROR, MAX_PASSES in all
RESELECT_ERROR = 0.1
MAX_PASSES = 2
#: the sparse balancing's column tolerance (the exact readout's passes at scale stop at 0.1)
#: and most iterations (one is two sweeps over the entries: ~1 s at 3·10⁵ cells)
BALANCE_TOL = 1e-2
BALANCE_ITERATIONS = 100


class SparseRound:
    """One readout round's C as kept and tail entries per cell, balanced on the entries.

    Parameters
    ----------
    logk, cols
        From :func:`read_entries` (taken over, not copied).
    kept
        How many of each row's entries are kept ones (the rest are tail).
    g0
        (N,) potentials the entries were read under.
    """

    def __init__(self, logk: torch.Tensor, cols: torch.Tensor, kept: int, g0: torch.Tensor):
        self.n_cells, self.width = logk.shape
        self.n_spots = len(g0)
        self.kept = int(kept)
        self.cols = cols  # int32; int64 per chunk where torch indexes with it
        self.kernel = logk.exp_()  # in place: K_ij = exp(L + g0 + log w - max_j)
        self.g0 = g0
        self.v = torch.ones(self.n_spots, dtype=torch.float64)  # g = g0 + log v
        self._norm: torch.Tensor | None = None  # 1 / row sums of K v
        self.info: dict[str, Any] = {}

    # -------------------------------------------------------------- balancing
    def _row_inverse(self, vf: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Return 1 / Σ_j K_ij v_j for every row (float32)."""
        out = torch.empty(self.n_cells, dtype=torch.float32)
        for a in range(0, self.n_cells, 65536):
            b = min(a + 65536, self.n_cells)
            i = self.cols[a:b] if idx is None else idx[a:b]
            out[a:b] = 1.0 / (self.kernel[a:b] * vf[i]).sum(dim=1)
        return out

    def _idx(self, a: int, b: int) -> torch.Tensor:
        """Bins of the entries of cells a:b (int64)."""
        return self.cols[a:b].long()

    def _kernel_column_sums(
        self, u: torch.Tensor, idx: torch.Tensor | None = None, chunk: int = 65536
    ) -> torch.Tensor:
        """Σ_i K_ij u_i for every bin j (float64)."""
        out = torch.zeros(self.n_spots, dtype=torch.float32)  # ~ M·width / N terms a bin
        for a in range(0, self.n_cells, chunk):
            w = (self.kernel[a : a + chunk] * u[a : a + chunk, None]).flatten()
            i = self.cols[a : a + chunk] if idx is None else idx[a : a + chunk]
            out.index_add_(0, i.flatten(), w)
        return out.double()

    def balance(self, target: torch.Tensor, tol: float, max_iter: int) -> dict[str, Any]:
        """Sinkhorn on the entries: rows sum to 1, every reached bin's column to ``target``.

        A bin in no row's entries (no cell's kept or sampled bin) cannot be balanced and keeps
        its potential (``unreached`` counts them). On a sparse support the marginals may have
        no exact solution (a few bins that only a few cells reach, those cells also wanted
        elsewhere): the scalings would grow without bound, so each stays within e^±
        :data:`SCALING_BOUND` of the sample fit's potentials (``capped`` counts the bins held
        there) and the iterations stop once the column error has not fallen by 1 % in 25
        iterations. Returns ``{"iterations", "max_column_error", "unreached", "capped"}``.
        """
        err, it, best, since = float("inf"), 0, float("inf"), 0
        reached = None
        lo, hi = math.exp(-SCALING_BOUND), math.exp(SCALING_BOUND)
        idx = self.cols.long()  # int64 while iterating: its gathers are twice as fast
        while it < max_iter:
            it += 1
            u = self._row_inverse(self.v.float(), idx)
            col = self._kernel_column_sums(u, idx)
            if reached is None:
                reached = col > 0
            if not bool(torch.isfinite(col).all()):
                raise non_finite("the column sums of the sparse balancing", it)
            err = (self.v * col / target - 1)[reached].abs().max().item() if reached.any() else 0.0
            if err < tol:
                break
            best, since = (err, 0) if err < 0.99 * best else (best, since + 1)
            if since >= 25:
                break
            ratio = (target / col.clamp_min(1e-300)).clamp_(lo, hi)
            self.v = torch.where(reached, ratio, self.v)
        self._norm = None
        unreached = int((~reached).sum()) if reached is not None else 0
        capped = int(((self.v <= lo * 1.0001) | (self.v >= hi * 0.9999)).sum())
        self.info = {
            "iterations": it,
            "max_column_error": err,
            "unreached": unreached,
            "capped": capped,
        }
        return self.info

    @property
    def potentials(self) -> torch.Tensor:
        """(N,) float64 potentials g of the balanced entries."""
        return self.g0 + self.v.log()

    # ----------------------------------------------------------------- rows
    def _row_norm(self) -> torch.Tensor:
        if self._norm is None:
            self._norm = self._row_inverse(self.v.float())
        return self._norm

    def values(self, a: int, b: int) -> torch.Tensor:
        """(b - a) × width entries of C for cells a:b (rows sum to 1 over kept and tail)."""
        vf = self.v.float()
        return self.kernel[a:b] * vf[self.cols[a:b]] * self._row_norm()[a:b, None]

    def dense(self, a: int, b: int) -> torch.Tensor:
        """(b - a) × N rows of C: the entries at their bins, zeros elsewhere (float32)."""
        out = torch.zeros((b - a, self.n_spots), dtype=torch.float32)
        return out.scatter_add_(1, self._idx(a, b), self.values(a, b))

    def kept_values(self, a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the kept entries of cells a:b (values and bins), without the tail."""
        return self.values(a, b)[:, : self.kept], self.cols[a:b, : self.kept].long()

    def tail_mass(self) -> float:
        """Mean share of a row of C in its tail (what the kept entries do not hold)."""
        if self.width == self.kept:
            return 0.0
        tot = 0.0
        for a in range(0, self.n_cells, 65536):
            tot += float(self.values(a, min(a + 65536, self.n_cells))[:, self.kept :].sum())
        return tot / max(self.n_cells, 1)

    def column_sums(self) -> torch.Tensor:
        """(N,) float64 column sums of C (kept and tail entries)."""
        return self._kernel_column_sums(self._row_norm()) * self.v

    def transposed_product(self, V: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        """(N × k) Cᵀ V of an (M × k) array (all entries; ``dtype``)."""
        out = np.zeros((self.n_spots, V.shape[1]), dtype=dtype)
        step = max(1, 2**22 // self.width)
        for a in range(0, self.n_cells, step):
            b = min(a + step, self.n_cells)
            m = sp.csr_matrix(
                (
                    self.values(a, b).flatten().numpy(),
                    self.cols[a:b].flatten().numpy(),
                    np.arange(0, (b - a) * self.width + 1, self.width),
                ),
                shape=(b - a, self.n_spots),
            )
            out += m.T @ np.asarray(V[a:b], dtype=dtype)
        return out

    def explained(self, sc_props: np.ndarray) -> np.ndarray:
        """(N × G) Ĉ P_SC: each bin's expected expression proportions (all entries; float32)."""
        col = self.column_sums().numpy()
        out = self.transposed_product(sc_props, np.float32)  # N × G: float32 halves it
        out /= np.maximum(col, 1e-30).astype(np.float32)[:, None]
        return out


def build_round(
    logits_of: RowsFn,
    fit: Callable[[], torch.Tensor] | None,
    sizes: tuple[int, int, int],
    entries: tuple[int, int, int],
    target: torch.Tensor,
    r: int,
    values_of: ValuesFn | None = None,
) -> SparseRound:
    """Round ``r``'s sparse C: potentials ``fit()`` on a sample, one pass, balanced on the entries.

    ``fit`` None: no balancing (zero potentials). ``sizes``: (cells, spots, cells per chunk);
    ``entries``: (kept, sample, margin) and ``values_of`` as :func:`read_entries`; ``target``: (N,) column sums. ``info["seconds"]``: the sample
    fit, the pass and the balancing.
    """
    m, n, chunk = sizes
    t0 = time.perf_counter()
    g = fit() if fit is not None else torch.zeros(n, dtype=torch.float64)
    secs = [time.perf_counter() - t0, 0.0, 0.0]
    rnd: SparseRound | None = None
    passes = 0
    while rnd is None or (fit is not None and passes < MAX_PASSES and _off(rnd)):
        if rnd is not None:  # the entries were chosen under potentials too far off (a sample
            # of cells at about one cell per bin): read them again under the balanced ones
            g, rnd = rnd.potentials, None
        passes += 1
        t1 = time.perf_counter()
        logk, cols = read_entries(logits_of, g, m, chunk, entries, r, values_of)
        rnd = SparseRound(logk, cols, entries[0], g)
        t2 = time.perf_counter()
        secs[1] += t2 - t1
        if fit is not None:
            rnd.balance(target, BALANCE_TOL, BALANCE_ITERATIONS)
        secs[2] += time.perf_counter() - t2
    rnd.info["passes"] = passes
    rnd.info["seconds"] = tuple(round(x, 2) for x in secs)
    logger.info(
        "round %d: sparse readout (sample fit, %d pass(es), balancing: %s s), largest "
        "relative column error %.2g after %d iterations (%d bins in no cell's entries, %d "
        "held at the scaling bound)",
        r + 1,
        passes,
        rnd.info["seconds"],
        rnd.info.get("max_column_error", 0.0),
        rnd.info.get("iterations", 0),
        rnd.info.get("unreached", 0),
        rnd.info.get("capped", 0),
    )
    return rnd


def _off(rnd: SparseRound) -> bool:
    return rnd.info["max_column_error"] > RESELECT_ERROR


def kept_rows(rounds: list[SparseRound], a: int, b: int, placement: bool) -> torch.Tensor:
    """(b - a) × N kept entries of C₁ (``placement``) or of C, the rounds' mean (zeros elsewhere)."""
    use = rounds[:1] if placement else rounds
    out = torch.zeros((b - a, rounds[0].n_spots), dtype=torch.float32)
    for rnd in use:
        v, i = rnd.kept_values(a, b)
        out.scatter_add_(1, i, v if len(use) == 1 else v / len(use))
    return out


def kept_topk(
    rounds: list[SparseRound], a: int, b: int, k: int, placement: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the ``k`` largest kept entries of C₁ (``placement``) or of C for cells a:b.

    From the rounds' kept entries alone (a bin kept by several rounds is one entry, their
    mean): no row over all bins. As ``torch.topk`` of :func:`kept_rows` (to float rounding).
    """
    use = rounds[:1] if placement else rounds
    parts = [r.kept_values(a, b) for r in use]
    v = torch.cat([p[0] for p in parts], dim=1).double() / len(use)
    c = torch.cat([p[1] for p in parts], dim=1)
    if k > v.shape[1]:
        return torch.topk(kept_rows(rounds, a, b, placement), k, dim=1)
    if len(use) > 1:  # sum each bin's entries: sorted by bin, a run's total at its end
        c, order = torch.sort(c, dim=1)
        csum = v.gather(1, order).cumsum(dim=1)
        last = torch.ones_like(c, dtype=torch.bool)
        last[:, :-1] = c[:, 1:] != c[:, :-1]
        ends = torch.cummax(torch.where(last, csum, torch.zeros_like(csum)), dim=1).values
        before = torch.cat([torch.zeros_like(ends[:, :1]), ends[:, :-1]], dim=1)
        v = torch.where(last, csum - before, torch.full_like(csum, -math.inf))
    top, pos = torch.topk(v, k, dim=1)
    return top.float(), c.gather(1, pos)


def read_outputs(
    rounds: list[SparseRound], Y: np.ndarray | None, kept: int, chunks: list[tuple[int, int]]
) -> dict[str, Any]:
    """Read the one pass's outputs (:meth:`._engine.ReadoutEngine.read_once`) off the entries.

    Best bins, confidences and the placement's top ``kept`` from C₁'s kept entries;
    coordinates ``C₁ · Y`` from all of them (the tail's estimate included); the top ``kept``
    of C from the rounds' kept entries; column sums of C from all entries.
    """
    first = rounds[0]
    Yt = None if Y is None else torch.from_numpy(np.asarray(Y, dtype=np.float32))
    best, conf, coords, ptv, pti, tv, ti = [], [], [], [], [], [], []
    for a, b in chunks:
        v, i = first.kept_values(a, b)
        pv, pj = torch.topk(v, kept, dim=1)
        pi = i.gather(1, pj)
        best.append(pi[:, 0].numpy().astype(np.int64))
        conf.append(pv[:, 0].numpy())
        ptv.append(pv)
        pti.append(pi.int())
        if Yt is not None:
            w = first.values(a, b)
            coords.append((w[..., None] * Yt[first.cols[a:b].long()]).sum(dim=1).double().numpy())
        if len(rounds) > 1:
            cv, ci = kept_topk(rounds, a, b, kept, placement=False)
            tv.append(cv)
            ti.append(ci.int())
    col = sum(r.column_sums() for r in rounds) / len(rounds)
    out: dict[str, Any] = {"best": np.concatenate(best), "conf": np.concatenate(conf)}
    out["place_topk"] = (torch.cat(ptv), torch.cat(pti))
    out["topk"] = (torch.cat(tv), torch.cat(ti)) if len(rounds) > 1 else out["place_topk"]
    if Yt is not None:
        out["coords"] = np.concatenate(coords)
    out["column_sums"] = col
    return out
