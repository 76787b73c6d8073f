"""The SC–SC graph of a mapping: exact kNN, the spatial candidate search, the spot kernel.

:func:`sc_adjacency` and :func:`spot_kernel` are methods of :class:`stemmap.StemMapping`
(bound there); the top-k search over cells is :func:`stemmap._topk.chunked_topk`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

from .._defaults import MAPPING
from .._runtime import compute
from .._topk import chunked_topk, topk_csr
from .._validate import check_choice, check_positive
from . import _values
from ._values import check_k, check_single_slice

if TYPE_CHECKING:
    from ._view import MappingView

logger = logging.getLogger(__name__)

#: the bases of :meth:`stemmap.StemMapping.sc_adjacency`
BASES = ("auto", "spatial", "mapping", "embedding")


@compute
def sc_adjacency(
    self: MappingView,
    k: int = MAPPING["adjacency_k"],
    weighted: bool = False,
    basis: str = "auto",
    bandwidth: float | None = None,
    exact: bool | None = None,
) -> sp.csr_matrix:
    """Sparse (M × M) SC–SC spatial kNN graph.

    C below is :attr:`sc_to_st` (with several rounds, the rounds' mean); the candidate
    search (``exact=False``) picks candidates by :attr:`coords` (the placement C₁ · Y).

    Parameters
    ----------
    k
        Neighbours per cell (the cell itself excluded).
    weighted
        Store the similarities instead of 1 for each edge.
    basis
        ``"spatial"``: the expected spatial kernel between two cells placed
        independently by their mapping rows, ``A_ij = Σ_s Σ_t C_is K_st C_jt`` with the
        Gaussian kernel ``K_st = exp(-d_st² / 2b²)`` of the spot distances (bandwidth b;
        spots of different slices are never near). It is the probability-weighted
        closeness of the two cells' positions, so cells mapped to neighbouring spots are
        neighbours too; the most accurate basis on both shared datasets
        (``benchmarks/results/results.md``). ``"mapping"``: the Bhattacharyya affinity
        ``Σ_s √(C_is C_js)`` (cells on the same spots). ``"embedding"``: inner products
        of the cell embeddings (the paper's SC–SC adjacency). ``"auto"`` (default):
        ``"embedding"`` for the paper readout, else ``"spatial"`` (see ``exact``; for a
        mapping over several slices too large for the exact search: ``"embedding"``).
    bandwidth
        b of ``"spatial"``, in coordinate units (default: the mean nearest-neighbour
        spot distance of each slice).
    exact
        ``"spatial"`` only. True: all M × M affinities from the dense C (M² · N work).
        False: each cell's ``max(8k, 256)`` nearest cells by pseudo-coordinates are the
        candidates, ranked by the same affinity computed from each cell's 32 most
        probable spots (M · candidates · 32 work; single slice). Default: exact when
        2 M² N is under 2·10¹¹ (about a minute on 2 CPU cores), else the candidate search.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``k`` entries per row.
    """
    k = check_k(k, self.n_cells - 1, "k")
    check_choice(basis, BASES, "basis")
    if bandwidth is not None:
        check_positive(bandwidth, "bandwidth")
    m_, n_ = self.n_cells, self.n_spots
    dense_ok = 8 * m_ * n_ <= 0.25 * _values.free_cpu() and 2.0 * m_ * m_ * n_ <= 2e11
    if basis == "auto":
        if self.readout == "paper":
            basis = "embedding"
        elif dense_ok or len(self.slices) == 1:
            basis = "spatial"
        else:
            basis = "embedding"
            logger.info("sc_adjacency: several slices and too large for exact; embeddings")
    if basis == "spatial" and (exact is False or (exact is None and not dense_ok)):
        return _spatial_candidates(self, k, weighted, bandwidth)
    if basis == "spatial":
        C = self.sc_to_st
        left = torch.from_numpy(np.asarray(self.spot_kernel(bandwidth) @ C.T).T.copy())
        right = torch.from_numpy(C)
    elif basis == "mapping":
        left = right = torch.from_numpy(np.sqrt(self.sc_to_st))
    else:
        left = right = torch.from_numpy(self.sc_embedding)
    blocks = chunked_topk(
        lambda a, b: left[a:b] @ right.T, m_, k, self.chunk_size, exclude_self=True
    )
    return topk_csr(blocks, (m_, m_), values=weighted)


def _spatial_candidates(
    m: MappingView, k: int, weighted: bool, bandwidth: float | None, k_map: int = 32
) -> sp.csr_matrix:
    """Spatial-basis kNN graph for large M: candidates from pseudo-coordinates.

    Each cell's ``max(8k, 256)`` nearest cells by pseudo-coordinates are ranked by the
    spatial affinity computed from each cell's ``k_map`` most probable spots.
    """
    from scipy.spatial import cKDTree

    check_single_slice(m.slices, "sc_adjacency(exact=False)")
    n_cells = m.n_cells
    n_cand = min(max(8 * k, 256), n_cells - 1)
    k_map = min(k_map, m.n_spots)
    T = m.topk_mapping(k_map, renormalize=True)
    tidx = torch.from_numpy(T.indices.reshape(n_cells, k_map).astype(np.int64))
    tval = torch.from_numpy(T.data.reshape(n_cells, k_map).astype(np.float32))
    L = (T @ m.spot_kernel(bandwidth)).tocsr()  # rows: C_i K (sparse)
    _, cand = cKDTree(m.coords).query(m.coords, k=n_cand + 1, workers=-1)
    cand = torch.from_numpy(np.asarray(cand, dtype=np.int64))
    step = max(1, min(m.chunk_size, 30_000_000 // max(m.n_spots, n_cand * k_map)))

    def affinity(a: int, b: int) -> torch.Tensor:
        """Affinities of cells a:b to their candidates (the cell itself: -inf)."""
        Ld = torch.from_numpy(L[a:b].toarray().astype(np.float32))
        cj = cand[a:b]
        gi = tidx[cj].reshape(b - a, -1)
        aff = (torch.gather(Ld, 1, gi).reshape(b - a, -1, k_map) * tval[cj]).sum(-1)
        aff[cj == torch.arange(a, b)[:, None]] = -float("inf")  # the cell itself
        return aff

    blocks = (
        (a, b, v, torch.gather(cand[a:b], 1, i))  # candidate positions -> cells
        for a, b, v, i in chunked_topk(affinity, n_cells, k, step)
    )
    return topk_csr(blocks, (n_cells, n_cells), values=weighted)


def spot_kernel(
    self: MappingView, bandwidth: float | None = None, cutoff: float = 3.0
) -> sp.csr_matrix:
    """Sparse (N × N) Gaussian kernel of the spot distances, zero between slices.

    ``K_st = exp(-d_st² / 2b²)`` for spots of the same slice closer than ``cutoff · b``
    (else 0), with b = ``bandwidth`` or each slice's mean nearest-neighbour spot distance.

    Parameters
    ----------
    bandwidth
        b in coordinate units (default: per slice, as above).
    cutoff
        Pairs farther than ``cutoff · b`` get 0.

    Returns
    -------
    scipy.sparse.csr_matrix
        (N × N) float32, 1 on the diagonal.
    """
    from scipy.spatial import cKDTree

    from .._data import mean_nn_distance

    check_positive(cutoff, "cutoff")
    blocks_r, blocks_c, blocks_v = [], [], []
    for name in self.slices:
        idx = np.flatnonzero(self.spot_slice == name)
        xy = self.spot_coords[idx]
        b = float(bandwidth) if bandwidth is not None else mean_nn_distance(xy)
        pairs = cKDTree(xy).query_pairs(cutoff * b, output_type="ndarray")
        d2 = ((xy[pairs[:, 0]] - xy[pairs[:, 1]]) ** 2).sum(axis=1)
        diag = np.arange(len(idx))
        r = np.concatenate([pairs[:, 0], pairs[:, 1], diag])
        c = np.concatenate([pairs[:, 1], pairs[:, 0], diag])
        kv = np.exp(-d2 / (2 * b * b))
        v = np.concatenate([kv, kv, np.ones(len(idx))])
        blocks_r.append(idx[r])
        blocks_c.append(idx[c])
        blocks_v.append(v.astype(np.float32))
    return sp.csr_matrix(
        (np.concatenate(blocks_v), (np.concatenate(blocks_r), np.concatenate(blocks_c))),
        shape=(self.n_spots, self.n_spots),
    )
