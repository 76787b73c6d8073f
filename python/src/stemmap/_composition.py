"""Composition metrics of :mod:`stemmap.metrics`: expected coordinates, cell-type PCC and JSD.

Split from :mod:`stemmap.metrics` (which re-exports every public name here, so
``stemmap.metrics.celltype_pcc`` etc. are unchanged); also holds the coordinate check both use.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

logger = logging.getLogger("stemmap.metrics")


def _as_coords(x: Any, name: str, n: int | None = None) -> np.ndarray:
    if hasattr(x, "to_numpy"):
        x = x.to_numpy()
    if sp.issparse(x):
        raise TypeError(f"`{name}` must be a dense (cells × 2) array; found a sparse matrix.")
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"`{name}` must be a numeric (cells × 2) array; found {type(x).__name__}."
        ) from None
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"`{name}` must be a 2-D (cells × dims) array; found shape {arr.shape}.")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"`{name}` must have one row per cell ({n}); found {arr.shape[0]} rows.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` has NaN/Inf values; expected finite numbers.")
    return arr


def expected_coords(mapping: Any, spot_coords: Any) -> np.ndarray:
    """Cell coordinates as the mapping-weighted mean of spot coordinates.

    ``Ŷ = C^m · Y_ST`` with ``C^m`` the mapping with rows normalised to sum 1 (the paper's
    unification of all methods' outputs). Rows summing to 0 get the mean spot position.

    Parameters
    ----------
    mapping
        (M, N) non-negative cell → spot weights (dense or sparse).
    spot_coords
        (N, 2) spot coordinates.

    Returns
    -------
    numpy.ndarray
        (M, 2) coordinates.
    """
    y = _as_coords(spot_coords, "spot_coords")
    c = _as_matrix(mapping, "mapping")
    if c.shape[1] != y.shape[0]:
        raise ValueError(
            f"`mapping` has {c.shape[1]} columns but `spot_coords` has {y.shape[0]} spots."
        )
    rs = np.asarray(c.sum(axis=1)).ravel()
    num = np.asarray(c @ y)  # dense: y is dense
    out = np.empty_like(num)
    ok = rs > 0
    out[ok] = num[ok] / rs[ok, None]
    out[~ok] = y.mean(axis=0)
    return out


def _as_matrix(x: Any, name: str) -> np.ndarray | sp.csr_matrix:
    if hasattr(x, "sc_to_st"):
        x = x.sc_to_st
    if sp.issparse(x):
        return sp.csr_matrix(x, dtype=np.float64)
    if hasattr(x, "to_numpy"):
        x = x.to_numpy()
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D (cells × spots) matrix; found shape {arr.shape}.")
    return arr


def _type_distributions(
    mapping: Any, labels: Any, true_proportions: Any
) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Predicted (types × spots) sums of the mapping rows per label, true (spots × types)."""
    c = _as_matrix(mapping, "mapping")
    m, n = c.shape
    lab = np.asarray(labels.to_numpy() if hasattr(labels, "to_numpy") else labels).astype(str)
    if lab.ndim != 1 or lab.shape[0] != m:
        raise ValueError(
            f"`labels` must have one entry per mapping row ({m}); found shape {lab.shape}."
        )
    if isinstance(true_proportions, pd.DataFrame):
        types = true_proportions.columns.astype(str)
        p = true_proportions.to_numpy(dtype=np.float64)
    else:
        p = np.asarray(true_proportions, dtype=np.float64)
        types = pd.Index(np.unique(lab))
        if p.ndim != 2 or p.shape[1] != len(types):
            raise ValueError(
                "`true_proportions` as an array must have one column per unique label "
                f"({len(types)}); found shape {p.shape}. Pass a DataFrame to name the columns."
            )
    if p.shape[0] != n:
        raise ValueError(
            f"`true_proportions` must have one row per spot ({n} mapping columns); "
            f"found {p.shape[0]} rows."
        )
    codes = pd.Index(types).get_indexer(lab)
    keep = codes >= 0
    onehot = sp.csr_matrix(
        (np.ones(int(keep.sum())), (codes[keep], np.flatnonzero(keep))), shape=(len(types), m)
    )
    pred = onehot @ c  # (A, N)
    pred = pred.toarray() if sp.issparse(pred) else np.asarray(pred)
    return pred, p, pd.Index(types)


def celltype_pcc(mapping: Any, labels: Any, true_proportions: Any) -> pd.Series:
    """Per-cell-type Pearson correlation of predicted and true spatial distributions.

    For cell type t, the predicted distribution over spots is the sum of the mapping rows
    of the cells labelled t (``P̂_t = Σ_{i: label_i = t} C[i, :]``); it is correlated with
    the true proportion of t across spots (the paper's definition; PCC ignores scale, so
    proportions and cell counts give the same value).

    Parameters
    ----------
    mapping
        (M, N) SC → ST mapping C (dense, sparse, DataFrame, or an object with a
        ``sc_to_st`` attribute such as a stemmap mapping result).
    labels
        Length-M cell labels.
    true_proportions
        (N, A) DataFrame of true proportions, columns named by cell type (e.g.
        ``st.obsm["proportions"]``), or an array whose columns follow the sorted unique
        labels.

    Returns
    -------
    pandas.Series
        PCC per cell type (index: the proportion columns). NaN where either distribution is
        constant across spots (e.g. a type present in no spot, or no cell of that type).
        Summarise with ``s.mean()`` and ``s.std()`` (NaNs skipped).
    """
    pred, p, types = _type_distributions(mapping, labels, true_proportions)
    truth = p.T
    pc = pred - pred.mean(axis=1, keepdims=True)
    tc = truth - truth.mean(axis=1, keepdims=True)
    den = np.sqrt((pc**2).sum(axis=1) * (tc**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (pc * tc).sum(axis=1) / den
    r[den <= 0] = np.nan
    n_nan = int(np.isnan(r).sum())
    if n_nan:
        logger.debug("celltype_pcc: %d type(s) with a constant distribution -> NaN", n_nan)
    return pd.Series(np.clip(r, -1.0, 1.0), index=pd.Index(types, name="celltype"), name="pcc")


def composition_jsd(mapping: Any, labels: Any, true_proportions: Any) -> pd.Series:
    """Jensen–Shannon distance between each spot's predicted and true cell-type composition.

    The predicted composition of spot j is the share of each cell type in the mapping's
    column j (``Σ_{i: label_i = t} C[i, j]``, normalised over types); the distance is
    ``sqrt(JS divergence)`` with base-2 logarithms, 0 (same composition) to 1 (disjoint).
    Complements :func:`celltype_pcc`, which compares each type across spots: this compares
    the types within each spot, as deconvolution benchmarks do.

    Parameters
    ----------
    mapping, labels, true_proportions
        As :func:`celltype_pcc` (true proportions over the same cell types).

    Returns
    -------
    pandas.Series
        Distance per spot (NaN where the mapping puts no mass of a labelled cell, or the
        true composition is empty). Summarise with ``s.mean()``.
    """
    pred, p, _ = _type_distributions(mapping, labels, true_proportions)
    q = pred.T  # (N, A)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = q / q.sum(axis=1, keepdims=True)
        t = p / p.sum(axis=1, keepdims=True)
        mid = 0.5 * (q + t)

        def kl(a: np.ndarray) -> np.ndarray:
            return np.where(a > 0, a * np.log2(np.where(a > 0, a, 1.0) / mid), 0.0).sum(axis=1)

        js = 0.5 * kl(q) + 0.5 * kl(t)
    d = np.sqrt(np.clip(js, 0.0, 1.0))
    d[~(np.isfinite(q).all(axis=1) & np.isfinite(t).all(axis=1))] = np.nan
    index = true_proportions.index if isinstance(true_proportions, pd.DataFrame) else None
    return pd.Series(d, index=index, name="jsd")
