"""Input validation: clear errors that say what was expected, what was found, and how to fix it."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)


class StemInputWarning(UserWarning):
    """Warning about suspicious but usable input."""


def check_anndata(obj: Any, name: str) -> None:
    """Raise ``TypeError`` unless ``obj`` is an AnnData object."""
    try:
        from anndata import AnnData
    except ImportError as e:  # pragma: no cover - anndata is a dependency
        raise ImportError("stemmap needs the 'anndata' package: pip install anndata") from e
    if not isinstance(obj, AnnData):
        raise TypeError(
            f"`{name}` must be an AnnData object (cells/spots × genes); found {type(obj).__name__}."
        )


def check_unique(names: Sequence[str], what: str, name: str) -> None:
    """Raise ``ValueError`` if ``names`` has duplicates."""
    idx = np.asarray(names, dtype=object)
    uniq, counts = np.unique(idx.astype(str), return_counts=True)
    dup = uniq[counts > 1]
    if dup.size:
        shown = ", ".join(repr(str(d)) for d in dup[:5]) + (" ..." if dup.size > 5 else "")
        fix = "var_names_make_unique()" if what == "gene" else "obs_names_make_unique()"
        raise ValueError(
            f"`{name}` has {dup.size} duplicated {what} name(s): {shown}. "
            f"Make them unique first (e.g. `{name}.{fix}`)."
        )


def get_matrix(adata: Any, layer: str | None, name: str) -> np.ndarray | sp.csr_matrix:
    """Expression matrix of ``adata`` (``X`` or a layer), checked for NaN/Inf and negatives."""
    if layer is None:
        X = adata.X
        where = f"{name}.X"
    else:
        if layer not in adata.layers:
            raise KeyError(
                f"`layer={layer!r}` not found in `{name}.layers`; "
                f"available: {list(adata.layers.keys()) or 'none'}."
            )
        X = adata.layers[layer]
        where = f"{name}.layers[{layer!r}]"
    if X is None:
        raise ValueError(f"`{where}` is empty; expected a cells × genes count matrix.")
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        data = X.data
    else:
        X = np.asarray(X)
        data = X
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise TypeError(f"`{where}` must be numeric; found dtype {data.dtype}.")
    if data.size and not np.all(np.isfinite(data)):
        n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise ValueError(
            f"`{where}` has {n_bad} NaN/Inf value(s); expected finite counts. "
            "Remove or impute them first."
        )
    if data.size and data.min() < 0:
        raise ValueError(
            f"`{where}` has negative values (min {float(data.min()):.3g}); expected raw counts "
            "or normalised non-negative expression (not scaled / z-scored data)."
        )
    return X


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


def get_coords(adata: Any, spatial_key: str, name: str) -> np.ndarray:
    """Spot coordinates ``adata.obsm[spatial_key]`` as a float (N × 2) array."""
    if spatial_key not in adata.obsm:
        raise KeyError(
            f"`{name}.obsm[{spatial_key!r}]` not found: spatial coordinates are required. "
            f"Available obsm keys: {list(adata.obsm.keys()) or 'none'}. "
            "Set `spatial_key=` to the key holding the spot x/y coordinates."
        )
    Y = adata.obsm[spatial_key]
    if hasattr(Y, "to_numpy"):
        Y = Y.to_numpy()
    Y = np.asarray(Y)
    if not np.issubdtype(Y.dtype, np.number):
        try:
            Y = Y.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"`{name}.obsm[{spatial_key!r}]` must be numeric coordinates; found dtype "
                f"{Y.dtype}."
            ) from None
    if Y.ndim != 2 or Y.shape[1] < 2:
        raise ValueError(
            f"`{name}.obsm[{spatial_key!r}]` must be a (spots × 2) array; found shape {Y.shape}."
        )
    if Y.shape[0] != adata.n_obs:
        raise ValueError(
            f"`{name}.obsm[{spatial_key!r}]` has {Y.shape[0]} rows but `{name}` has "
            f"{adata.n_obs} spots; coordinates must have one row per spot."
        )
    Y = Y[:, :2].astype(np.float64)
    if not np.all(np.isfinite(Y)):
        raise ValueError(f"`{name}.obsm[{spatial_key!r}]` has NaN/Inf coordinates.")
    return Y


def check_choice(value: Any, choices: Sequence[Any], name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}; found {value!r}.")


def check_positive(value: Any, name: str, allow_none: bool = False, integer: bool = False) -> None:
    """Raise unless ``value`` is a positive number (or None when allowed)."""
    if value is None and allow_none:
        return
    kind = "integer" if integer else "number"
    ok_type = (
        isinstance(value, (int, np.integer))
        if integer
        else isinstance(value, (int, float, np.integer, np.floating))
    )
    if isinstance(value, bool) or not ok_type:
        raise TypeError(f"`{name}` must be a positive {kind}; found {value!r}.")
    if not value > 0:
        raise ValueError(f"`{name}` must be a positive {kind}; found {value!r}.")
