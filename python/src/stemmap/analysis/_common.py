"""Shared pieces of the analyses: BH FDR, input coercion, axis scores and segments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats


def bh_fdr(pvals: Any) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (NaN kept as NaN, not counted as tests).

    Parameters
    ----------
    pvals
        Array of p-values in [0, 1] (any shape; adjusted jointly).

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, same shape: ``min_{k ≥ rank} p_(k) · n / k``, capped at 1.
    """
    p = np.asarray(pvals, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    flat = p.ravel()
    ok = ~np.isnan(flat)
    q = flat[ok]
    if q.size and (q.min() < 0 or q.max() > 1):
        raise ValueError("`pvals` must lie in [0, 1].")
    n = q.size
    if n:
        order = np.argsort(q, kind="mergesort")
        scaled = q[order] * n / np.arange(1, n + 1)
        adj = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
        res = np.empty(n)
        res[order] = adj
        o = out.ravel()
        o[ok] = res
        out = o.reshape(p.shape)
    return out


def _matrix(
    values: Any, genes: Sequence[str] | None, name: str
) -> tuple[np.ndarray, list[str], list[str] | None]:
    """(cells × genes) float64 array, gene names, cell names from a DataFrame/array/AnnData."""
    cells = None
    if hasattr(values, "obs_names") and hasattr(values, "var_names"):  # AnnData
        X = values.X
        cells = list(map(str, values.obs_names))
        g = list(map(str, values.var_names))
        X = X.toarray() if sp.issparse(X) else np.asarray(X)
    elif isinstance(values, pd.DataFrame):
        X = values.to_numpy()
        cells = list(map(str, values.index))
        g = list(map(str, values.columns))
    elif sp.issparse(values):
        X = values.toarray()
        g = None
    elif isinstance(values, np.ndarray):
        X = values
        g = None
    else:
        raise TypeError(
            f"`{name}` must be a DataFrame, numpy array, sparse matrix or AnnData (cells × "
            f"genes); found {type(values).__name__}."
        )
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (cells × genes); found shape {X.shape}.")
    if genes is not None:
        genes = [str(x) for x in genes]
        if len(genes) != X.shape[1]:
            raise ValueError(
                f"`genes` has {len(genes)} names but `{name}` has {X.shape[1]} columns."
            )
        g = genes
    if g is None:
        g = [f"gene{j}" for j in range(X.shape[1])]
    return X, g, cells


def _coords(coords: Any, n: int | None, name: str = "coords") -> np.ndarray:
    if hasattr(coords, "coords") and hasattr(coords, "sc_embedding"):  # StemMapping
        coords = coords.coords
    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise ValueError(f"`{name}` must be (cells × 2) coordinates; found shape {xy.shape}.")
    if n is not None and xy.shape[0] != n:
        raise ValueError(f"`{name}` must have one row per cell ({n}); found {xy.shape[0]}.")
    return xy[:, :2]


def axis_score(coords: Any, axis: Any = "x") -> np.ndarray:
    """Position of each cell along a spatial axis.

    Parameters
    ----------
    coords
        (cells × 2) coordinates, or a :class:`~stemmap.StemMapping` (its pseudo-coordinates).
    axis
        ``"x"``/``0``, ``"y"``/``1``, ``"pc1"`` (first principal axis of the coordinates,
        oriented so the score increases with x), or a length-2 direction vector (the
        score is the projection onto it).

    Returns
    -------
    numpy.ndarray
        (cells,) scores.
    """
    xy = _coords(coords, None)
    if isinstance(axis, str):
        key = axis.lower()
        if key in ("x", "y"):
            return xy[:, 0 if key == "x" else 1].copy()
        if key == "pc1":
            c = xy - xy.mean(axis=0)
            v = np.linalg.svd(c, full_matrices=False)[2][0]
            v = v if v[0] >= 0 else -v
            return c @ v
        raise ValueError(f"`axis` must be 'x', 'y', 'pc1', 0, 1 or a 2-vector; found {axis!r}.")
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        if axis not in (0, 1):
            raise ValueError(f"`axis` index must be 0 or 1; found {axis!r}.")
        return xy[:, int(axis)].copy()
    v = np.asarray(axis, dtype=np.float64)
    if v.shape != (2,) or not np.linalg.norm(v) > 0:
        raise ValueError(
            f"`axis` must be 'x', 'y', 'pc1', 0, 1 or a non-zero 2-vector; found {axis!r}."
        )
    return xy @ (v / np.linalg.norm(v))


def segment_along(score: Any, n_segments: int = 10) -> np.ndarray:
    """Quantile bins of a score: segment 0 holds the lowest scores (≈ equal-sized segments).

    Parameters
    ----------
    score
        (cells,) values, e.g. from :func:`axis_score` or :func:`transfer_score`.
    n_segments
        Number of segments.

    Returns
    -------
    numpy.ndarray
        (cells,) integer segment labels in ``0 .. n_segments - 1``.
    """
    if (
        isinstance(n_segments, bool)
        or not isinstance(n_segments, (int, np.integer))
        or n_segments < 2
    ):
        raise ValueError(f"`n_segments` must be an integer ≥ 2; found {n_segments!r}.")
    s = np.asarray(score, dtype=np.float64).ravel()
    if not np.isfinite(s).all():
        raise ValueError("`score` must be finite.")
    # rank-based so ties and skew still give equal-sized bins
    r = stats.rankdata(s, method="ordinal") - 1
    return (r * n_segments // len(s)).astype(np.int64)
