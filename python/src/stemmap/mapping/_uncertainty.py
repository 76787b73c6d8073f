"""Calibrated placement uncertainty: :func:`placement_uncertainty`, a method of the mapping.

A cell's region is the disc around its pseudo-coordinate (:attr:`stemmap.StemMapping.coords`)
that holds ``level`` of a *tempered* placement ``q ∝ C₁^(1/τ)``, widened by half the median
spacing of the spots (a spot's footprint). The untempered C₁ is overconfident (its 90 % regions
hold 33-76 % of the cells' true positions on the shared semi-simulations) and no single τ fits
every data set, so τ is fitted on the data at hand, without ground truth, by hiding spots:

* a sample of cells is taken (evenly spaced, at most :data:`PROBES`); each one's most
  probable spot is hidden (its entry of C₁ set to 0, the rest renormalised and centred on its
  mean position);
* the hidden spot's centre stands in for the cell's true position: τ is the smallest
  temperature at which ``level`` of these cells have it inside the disc holding ``level`` of
  the tempered rest (no footprint added: the stand-in is a spot centre, not a cell somewhere
  in a spot);
* every cell's region is then read at that τ, plus the footprint.

Hiding the best spot asks how far the rest of a cell's mass reaches once the answer it is
most sure of is taken away. It is read from cells, not from spots mapped as if they were cells
(tried: their mixed profiles are easier to place than single cells, and the τ they gave left
the osmFISH disjoint regions at 85 % and the embryo standard ones at 96 %). Evidence
(``preset="quick"``, seeds 0-2, ``benchmarks/results/issue27/uncertainty.md``): at 0.9 the
regions hold 88-90 % of the cells' true positions on the disjoint splits of osmFISH and the
embryo, 92 % and 95 % on their standard splits (where every mapped cell is also in a spot,
which makes cells easier to place than the stand-ins: conservative there).

C₁ is read in chunks of cells (:meth:`._engine.ReadoutEngine.round_rows`), never as the
dense M × N matrix.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.spatial import cKDTree

from .._runtime import compute
from .._validate import check_positive
from ._values import check_single_slice

if TYPE_CHECKING:
    from ._view import MappingView

logger = logging.getLogger(__name__)

#: most cells whose best spot is hidden to fit τ (fewer when spots are many: ENTRIES)
PROBES = 2000
#: most entries (probes × spots) of the probes' rows kept for the fit (about 20 bytes each)
ENTRIES = 2**24
#: most entries of one block of rows binned by distance when the regions are read
BLOCK = 2**22
#: most distance bins: radii are read to 1/8 of the median spot spacing, or to 1/BINS of the
#: diagonal of the spots' bounding box if that is coarser
BINS = 4096
#: the temperatures τ searched (bisection in log τ between these)
TAU_RANGE = (0.25, 64.0)
_STEPS = 24


def check_level(level: object) -> float:
    """Return ``level`` as a float; TypeError / ValueError unless it is in (0, 1)."""
    check_positive(level, "level")
    if not level < 1:
        raise ValueError(
            f"`level` must be a probability above 0 and below 1 (e.g. 0.9); found {level!r}."
        )
    return float(level)


@compute
def placement_uncertainty(self: MappingView, level: float = 0.9) -> np.ndarray:
    """(M,) radius of each cell's ``level`` region around its coordinate, calibrated on the data.

    The region of a cell is the disc around :attr:`coords` that holds ``level`` of its
    tempered placement ``q ∝ C₁^(1/τ)`` (:attr:`placement`), plus half the median
    nearest-neighbour spacing of the spots. τ is fitted without ground truth: for a sample of
    cells the most probable spot is hidden, and τ is the smallest temperature at which
    ``level`` of them find it inside the region of the rest of their mass (see
    :mod:`stemmap.mapping._uncertainty`).

    Parameters
    ----------
    level
        Share of cells whose true position the regions should hold, in (0, 1). Calibrated
        at 0.9: on the shared semi-simulations (osmFISH, embryo; ``preset="quick"``, 3
        seeds) 88-90 % of the cells' true positions were inside their 90 % regions on the
        disjoint splits (with or without a platform effect), 92 % and 95 % on the standard
        splits (cells that are also in the spots are easier to place: conservative). Other
        levels follow on the disjoint splits (0.8: 79-81 %; 0.5: 49-58 %) and are
        conservative on the standard ones. Cells from a part of the tissue that no spot
        covers cannot be placed, and their regions do not hold them (cross-region split:
        27-44 %). Evidence: ``benchmarks/results/issue27/uncertainty.md``.

    Returns
    -------
    numpy.ndarray
        (M,) float64 radii in the units of the spot coordinates; larger = less certain.
        Zeros with a single spot (or all spots at one position).

    Raises
    ------
    ValueError
        ``level`` not in (0, 1), or the mapping spans several slices (one coordinate frame
        is needed).
    """
    level = check_level(level)
    check_single_slice(self.slices, "placement_uncertainty")
    Y = np.asarray(self.spot_coords, dtype=np.float64)
    if self.n_spots < 2 or np.ptp(Y, axis=0).max() == 0:
        return np.zeros(self.n_cells)
    spacing, _ = cKDTree(Y).query(Y, k=2)
    pad = 0.5 * float(np.median(spacing[:, 1]))
    Yc = torch.from_numpy(Y - Y.mean(axis=0)).float()  # centred: float32 distances suffice
    edges = _edges(Yc, 2 * pad)
    tau = _fit_temperature(self, Yc, edges, level)
    logger.debug("placement uncertainty: level %.3g, tau %.3g, pad %.3g", level, tau, pad)
    out = np.empty(self.n_cells)
    if self.engine.sparse:  # each cell's kept and tail entries (never a row over all bins)
        for a, b in self.engine.chunks():
            logs, logw, cols = _entries(self, a, b)
            p = torch.exp(logs + logw)
            centre = (p[..., None] * Yc[cols]).sum(dim=1) / p.sum(dim=1, keepdim=True)
            bins = _entry_bins(centre, Yc[cols], edges)
            r = _radii(logs, bins, edges, level, tau, logw)
            out[a:b] = r.double().numpy() + pad
        return out
    step = max(1, BLOCK // self.n_spots)
    for a, b in self.engine.chunks():
        rows = self.engine.round_rows(0, a, b)
        for s in range(0, b - a, step):  # blocks of at most BLOCK entries
            block = rows[s : s + step]
            bins = _binned(block @ Yc, Yc, edges)
            r = _radii(_log_rows(block), bins, edges, level, tau)
            out[a + s : a + s + block.shape[0]] = r.double().numpy() + pad
    return out


def _log_rows(rows: torch.Tensor) -> torch.Tensor:
    """Return log C₁; an entry that underflowed to 0 gets the smallest float32's log."""
    return torch.log(rows.clamp_min(torch.finfo(torch.float32).tiny))


def _edges(Y: torch.Tensor, spacing: float) -> torch.Tensor:
    """Upper edges of the distance bins: 0 to the diagonal of the spots' bounding box.

    A centre is a mean of spot positions, so no distance from it to a spot exceeds the
    diagonal; a radius is read as the upper edge of its bin (at most a bin too wide). Bins
    are an eighth of the median spot spacing wide, fewer than :data:`BINS` (then wider).
    """
    extent = float(torch.linalg.vector_norm(Y.max(dim=0).values - Y.min(dim=0).values))
    n = int(min(BINS, max(1, np.ceil(8 * extent / spacing)) if spacing > 0 else BINS))
    return torch.linspace(extent / n, extent, n, dtype=torch.float32)


def _binned(centre: torch.Tensor, Y: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Bin of the distance from each centre to every spot (rows × N, int64).

    Bin i holds the distances in (edges[i - 1], edges[i]]; the edges are evenly spaced, so
    the bin is a division, not a search.
    """
    k = torch.ceil(torch.cdist(centre, Y) / edges[0]).sub_(1)
    return k.clamp_(0, len(edges) - 1).long()


def _radii(
    logs: torch.Tensor,
    bins: torch.Tensor,
    edges: torch.Tensor,
    level: float,
    tau: float,
    logw: torch.Tensor | None = None,
) -> torch.Tensor:
    """Radius of each row's disc holding ``level`` of ``softmax(logs / τ)`` (bins: ``_binned``).

    ``logw``: log weights of the entries (the sparse readout's tail entries stand for many
    bins each: ``w · p^(1/τ)``).
    """
    q = torch.softmax(logs / tau if logw is None else logs / tau + logw, dim=1)
    mass = torch.zeros(q.shape[0], len(edges), dtype=q.dtype).scatter_add_(1, bins, q)
    cs = torch.cumsum(mass, dim=1)
    k = torch.searchsorted(cs, torch.full((cs.shape[0], 1), level, dtype=cs.dtype))
    return edges[k.squeeze(1).clamp_max(len(edges) - 1)]


def _fit_temperature(
    self: MappingView, Y: torch.Tensor, edges: torch.Tensor, level: float
) -> float:
    """Return the smallest τ at which ``level`` of the probe cells hold their hidden best spot."""
    if self.engine.sparse:
        return _fit_temperature_sparse(self, Y, edges, level)
    n = min(self.n_cells, PROBES, max(100, ENTRIES // self.n_spots))
    idx = np.unique(np.linspace(0, self.n_cells - 1, n).round().astype(np.int64))
    rows = []
    for a, b in self.engine.chunks():
        sel = idx[(idx >= a) & (idx < b)]
        if sel.size:
            rows.append(self.engine.round_rows(0, a, b)[torch.from_numpy(sel - a)])
    C = torch.cat(rows)
    best = C.argmax(dim=1)
    hit = torch.arange(C.shape[0])
    logs = _log_rows(C)
    logs[hit, best] = -torch.inf  # the best spot hidden
    C[hit, best] = 0.0
    C /= C.sum(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    centre = C @ Y
    err = torch.linalg.vector_norm(Y[best] - centre, dim=1)
    bins = _binned(centre, Y, edges)

    return _bisect_tau(lambda tau: _radii(logs, bins, edges, level, tau), err, level)


def _bisect_tau(radii: Any, err: torch.Tensor, level: float) -> float:
    """Return the smallest τ in :data:`TAU_RANGE` whose ``radii(τ)`` hold ``level`` of ``err``."""

    def covered(tau: float) -> bool:
        return bool((err <= radii(tau)).double().mean() >= level)

    lo, hi = np.log(TAU_RANGE[0]), np.log(TAU_RANGE[1])
    if covered(float(np.exp(lo))):
        return float(np.exp(lo))
    if not covered(float(np.exp(hi))):
        return float(np.exp(hi))
    for _ in range(_STEPS):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if covered(float(np.exp(mid))) else (mid, hi)
    return float(np.exp(hi))


# ------------------------------------------------------------------ the sparse readout
def _entries(self: MappingView, a: int, b: int) -> tuple[torch.Tensor, ...]:
    """Cells a:b's entries of C₁ (sparse readout): log p, log weight and bins.

    A kept entry is one bin (weight 1); a tail entry stands for ``N / sample`` bins, its
    value the weighted mass, so ``p`` = value / weight; an empty entry has weight 0.
    """
    rnd = self.engine.sparse_round(0)
    v = rnd.values(a, b)
    w = torch.ones_like(v)
    w[:, rnd.kept :] = self.n_spots / max(rnd.width - rnd.kept, 1)
    w[v <= 0] = 0.0
    logs = _log_rows(v / w.clamp_min(1.0))
    return logs, torch.log(w), rnd.cols[a:b].long()


def _entry_bins(centre: torch.Tensor, Ye: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Bin of the distance from each row's centre to each of its entries' bins (``_binned``)."""
    d = torch.linalg.vector_norm(Ye - centre[:, None, :], dim=2)
    return torch.ceil(d / edges[0]).sub_(1).clamp_(0, len(edges) - 1).long()


def _fit_temperature_sparse(
    self: MappingView, Y: torch.Tensor, edges: torch.Tensor, level: float
) -> float:
    """:func:`_fit_temperature` on the probe cells' entries (their best kept bin hidden)."""
    n = min(self.n_cells, PROBES)
    idx = torch.from_numpy(np.unique(np.linspace(0, self.n_cells - 1, n).round().astype(np.int64)))
    parts = [_entries(self, int(i), int(i) + 1) for i in idx]
    logs, logw, cols = (torch.cat([p[j] for p in parts]) for j in range(3))
    kept = self.engine.sparse_round(0).kept
    hit = torch.arange(len(idx))
    best = logs[:, :kept].argmax(dim=1)
    truth = Y[cols[hit, best]]
    logw[hit, best] = -torch.inf  # the best bin hidden
    p = torch.exp(logs + logw)
    centre = (p[..., None] * Y[cols]).sum(dim=1) / p.sum(dim=1, keepdim=True)
    err = torch.linalg.vector_norm(truth - centre, dim=1)
    bins = _entry_bins(centre, Y[cols], edges)
    return _bisect_tau(lambda tau: _radii(logs, bins, edges, level, tau, logw), err, level)
