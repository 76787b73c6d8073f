"""Label neighbourhood enrichment on a kNN graph of positions (permutation z-scores)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial import cKDTree

from .._defaults import ANALYSIS
from ._common import _coords


@dataclass
class NhoodEnrichment:
    """Result of :func:`neighbourhood_enrichment`.

    Attributes
    ----------
    zscore
        (labels × labels) ``(observed − mean_perm) / sd_perm`` of kNN edge counts.
    count
        (labels × labels) observed edge counts.
    """

    zscore: pd.DataFrame
    count: pd.DataFrame


def neighbourhood_enrichment(
    coords: Any,
    labels: Any,
    n_neighbors: int = ANALYSIS["neighbourhood_enrichment"]["n_neighbors"],
    n_perms: int = ANALYSIS["neighbourhood_enrichment"]["n_perms"],
    seed: int = ANALYSIS["neighbourhood_enrichment"]["seed"],
) -> NhoodEnrichment:
    """Label neighbourhood enrichment on a kNN graph: permutation z-scores (as squidpy).

    Builds the symmetric kNN graph of the (e.g. reconstructed) positions, counts edges
    between each pair of labels, and compares the counts with those after ``n_perms``
    random permutations of the labels: ``z = (observed − mean) / sd``. Positive z: the two
    labels are neighbours more often than chance (same-label z > 0 means clustering).
    Counting uses ``numpy.bincount`` over the edge list per permutation (O(edges)).

    Parameters
    ----------
    coords
        (cells × 2) coordinates or a :class:`~stemmap.StemMapping` (pseudo-coordinates).
    labels
        One label per cell.
    n_neighbors
        k of the kNN graph (the cell itself excluded), made symmetric (i~j if either is a
        neighbour of the other).
    n_perms
        Label permutations.
    seed
        Seed of the permutations.

    Returns
    -------
    NhoodEnrichment
        ``zscore`` and ``count`` DataFrames (labels × labels).
    """
    lab = np.asarray(labels)
    xy = _coords(coords, None)
    n = xy.shape[0]
    if lab.shape != (n,):
        raise ValueError(f"`labels` must have one entry per cell ({n}); found shape {lab.shape}.")
    for v, nm in ((n_neighbors, "n_neighbors"), (n_perms, "n_perms")):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"`{nm}` must be a positive integer; found {v!r}.")
    if n_neighbors >= n:
        raise ValueError(
            f"`n_neighbors` must be below the number of cells ({n}); found {n_neighbors}."
        )
    cat = pd.Categorical(lab)
    codes = cat.codes.astype(np.int64)
    L = len(cat.categories)
    _, nb = cKDTree(xy).query(xy, k=n_neighbors + 1)
    rows = np.repeat(np.arange(n), n_neighbors)
    cols = nb[:, 1:].ravel()
    A = sp.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n)).tocsr()
    A = ((A + A.T) > 0).tocoo()
    r, c = A.row, A.col

    def counts(cd: np.ndarray) -> np.ndarray:
        return np.bincount(cd[r] * L + cd[c], minlength=L * L).reshape(L, L)

    obs = counts(codes)
    rng = np.random.default_rng(seed)
    s1 = np.zeros((L, L))
    s2 = np.zeros((L, L))
    for _ in range(n_perms):
        cp = counts(rng.permutation(codes)).astype(np.float64)
        s1 += cp
        s2 += cp * cp
    mean = s1 / n_perms
    sd = np.sqrt(np.clip(s2 / n_perms - mean**2, 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(sd > 0, (obs - mean) / np.where(sd > 0, sd, 1.0), np.nan)
    names = [str(x) for x in cat.categories]
    return NhoodEnrichment(
        zscore=pd.DataFrame(z, index=names, columns=names),
        count=pd.DataFrame(obs, index=names, columns=names),
    )
