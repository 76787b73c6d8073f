"""Expression values: the one normalisation the core uses, and checks of what they are.

Every value the model trains on and reads out is made here: counts (dense or sparse) are
copied once into float32, each row scaled to :data:`TARGET` (10,000) over the genes used,
then ``log1p``; with ``normalized=True`` the values are used as they are, after
:func:`check_normalized`. :func:`normalize_counts` is this normalisation for any matrix
(what R's analyses call for the core's values).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._validate import StemInputWarning

#: each row (cell or spot) is scaled to this total over the genes used, then log1p'd
TARGET = 1e4


def normalize_log1p(X: np.ndarray | sp.csr_matrix, target: float = TARGET) -> np.ndarray:
    """Scale each row to ``target`` total counts, then ``log1p``; returns dense float32."""
    return _normalize_log1p_inplace(dense_float32(X), target)


def normalize_counts(
    x: Any,
    var_names: Sequence[str],
    genes: Sequence[str],
    *,
    normalized: bool = False,
    where: str = "x",
) -> np.ndarray:
    """Return the values the model uses for rows of ``x``: the core's one normalisation.

    The columns ``genes`` (in that order) of ``x`` are copied into float32 and each row is
    scaled to :data:`TARGET` (10,000) over those genes, then ``log1p``'d, exactly as
    :func:`stemmap._data.prepare` does (bit for bit): with ``genes`` the genes a model used
    (``model.data.genes``, ``settings``' genes), the rows equal what it trained on. With
    ``normalized=True`` the values are taken as they are (checked by
    :func:`check_normalized`). An all-zero row stays zero (the model drops such cells).

    Parameters
    ----------
    x
        Cells (or spots) × genes, counts (or log1p values with ``normalized=True``); dense or
        sparse. Not modified.
    var_names
        The gene name of each column of ``x``.
    genes
        The genes to normalise over, in the order of the result's columns.
    normalized
        Whether ``x`` holds log1p-normalised values already.
    where
        How errors name ``x``.

    Returns
    -------
    numpy.ndarray
        float32, ``x.shape[0]`` × ``len(genes)``.
    """
    if len(getattr(x, "shape", ())) != 2:
        raise ValueError(f"`{where}` must be a cells × genes matrix; found {type(x).__name__}.")
    names = [str(g) for g in var_names]
    if len(names) != x.shape[1]:
        raise ValueError(
            f"`var_names` must name the {x.shape[1]} columns of `{where}`; found {len(names)}."
        )
    have = set(names)
    genes = [str(g) for g in genes]
    missing = [g for g in genes if g not in have]
    if missing:
        raise ValueError(
            f"`{where}` lacks {len(missing)} of the {len(genes)} genes in `genes` "
            f"(e.g. {missing[:3]})."
        )
    X = sp.csr_matrix(x) if sp.issparse(x) else np.asarray(x)
    out = dense_float32(_subset_genes(X, names, genes))
    if normalized:
        check_normalized(out, where)
        return out
    return _normalize_log1p_inplace(out)


def _subset_genes(X: Any, var_names: Sequence[str], genes: Sequence[str]) -> Any:
    pos = {g: i for i, g in enumerate(var_names)}
    idx = np.fromiter((pos[g] for g in genes), dtype=np.int64, count=len(genes))
    if len(idx) == X.shape[1] and np.array_equal(idx, np.arange(len(idx))):
        return X  # every gene, in order (what R sends): no copy
    return X[:, idx]


def dense_float32(X: Any) -> np.ndarray:
    """Return a new dense float32 array holding ``X`` (one copy, whatever the input).

    A sparse matrix is written straight into the float32 array (no dense float64 detour);
    a dense one is cast while copied. The caller's matrix is never modified.
    """
    if not sp.issparse(X):
        return np.array(X, dtype=np.float32)
    X = sp.csr_matrix(X)
    if not X.has_canonical_format:  # repeated entries are summed, as toarray() does
        X = X.copy()
        X.sum_duplicates()
    out = np.zeros(X.shape, dtype=np.float32)
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    out[rows, X.indices] = X.data
    return out


def _normalize_log1p_inplace(x: np.ndarray, target: float = TARGET) -> np.ndarray:
    """:func:`normalize_log1p` of a float32 array that may be overwritten (no temporaries)."""
    totals = x.sum(axis=1, keepdims=True)
    totals[totals == 0] = 1.0
    x /= totals
    x *= np.float32(target)
    np.log1p(x, out=x)
    return x


def warn_if_not_counts(X: np.ndarray | sp.csr_matrix, where: str) -> None:
    """Warn when data said to be counts look log-normalised (non-integers, small maxima)."""
    data = X.data if sp.issparse(X) else np.asarray(X).ravel()
    if data.size == 0:
        return
    sample = data[:200_000]
    nonint = np.mean(np.abs(sample - np.round(sample)) > 1e-6)
    if nonint > 0.01:
        warnings.warn(
            f"`{where}` does not look like raw counts ({nonint:.0%} of the values checked are "
            f"non-integer, max {float(sample.max()):.3g}); it may already be log-normalised. "
            "stemmap normalises internally (total 10,000 + log1p): pass `normalized=True` if the "
            "data are already normalised, or point `layer=` at the counts.",
            StemInputWarning,
            stacklevel=3,
        )


#: log1p-normalised expression stays far below this: log1p(10,000 × counts / total) ≤ 9.2,
#: log1p of counts per million ≤ 13.8. Larger values are not log1p values, and the readout,
#: which undoes the log1p (``expm1``), would overflow float32 on them (NaN coordinates).
LOG1P_MAX = 30.0
#: integer-valued data above this are raw counts, not log1p values
COUNTS_MAX = 20.0


def check_normalized(x: np.ndarray, where: str) -> None:
    """Check data said to be log1p-normalised (``normalized=True``) before any training.

    Raises ``ValueError`` naming ``normalized`` when the values cannot be log1p-normalised
    expression: any value above :data:`LOG1P_MAX`, or integer values above
    :data:`COUNTS_MAX` (raw counts). Warns (:class:`StemInputWarning`) when the values are
    integers of at most :data:`COUNTS_MAX` (small counts that would be used as they are).
    ``x`` is the dense array the model will use (cells or spots × the genes used).
    """
    if x.size == 0:
        return
    top = float(x.max())
    sample = x.ravel()[:2_000_000]
    sample = sample[sample != 0][:200_000]  # zeros are integers in any normalisation
    integer = bool(sample.size) and float(np.mean(np.abs(sample - np.round(sample)) <= 1e-6)) > 0.99
    fix = (
        "Drop `normalized=True` to let stemmap normalise raw counts (total 10,000 + log1p), "
        "or pass log1p-normalised values (scanpy's normalize_total + log1p, Seurat's "
        '"data" layer).'
    )
    if top > LOG1P_MAX or (integer and top > COUNTS_MAX):
        found = f"integers up to {top:.6g} (raw counts?)" if integer else f"values up to {top:.6g}"
        raise ValueError(
            f"`normalized=True` says `{where}` is log1p-normalised, but it has {found}; "
            f"expected log1p-normalised expression (log1p(10,000 × counts / total) stays below "
            f"9.2, any log1p normalisation below {LOG1P_MAX:g}). {fix}"
        )
    if integer and top >= 2:
        warnings.warn(
            f"`{where}` looks like raw counts (integers up to {top:.3g}) but `normalized=True` "
            f"says it is log1p-normalised; stemmap will use the values as they are. {fix}",
            StemInputWarning,
            stacklevel=4,
        )
