"""Checks of what callers pass to a mapping (per-cell and per-spot values, k) and of memory."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from .._device import available_memory, fmt_bytes
from .._validate import StemInputWarning


def free_cpu() -> int:
    """Bytes of memory free for the chunked computations."""
    return available_memory(torch.device("cpu"))


def check_dense(what: str, n_bytes: int) -> None:
    """MemoryError when a dense ``what`` of ``n_bytes`` would take over half the free memory."""
    free = available_memory(torch.device("cpu"))
    if n_bytes > 0.5 * free:
        raise MemoryError(
            f"`{what}` would need {fmt_bytes(n_bytes)} as a dense matrix but only "
            f"{fmt_bytes(free)} of memory is available. Use the chunked outputs instead: "
            "`topk_mapping(k)`, `coords`, `deconvolve()`, `transfer()`."
        )


def check_k(k: Any, upper: int, name: str) -> int:
    """``k`` as an int in [1, upper], else ValueError naming ``name``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= upper:
        raise ValueError(f"`{name}` must be an integer in [1, {upper}]; found {k!r}.")
    return int(k)


def spot_weights(weights: Any, n_spots: int) -> np.ndarray:
    """Relative cells per spot (None: equal) as shares that sum to 1."""
    if weights is None:
        w = np.ones(n_spots)
    else:
        w = np.asarray(weights, dtype=np.float64).ravel()
        if w.shape != (n_spots,) or not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError(
                f"`spot_weights` must be {n_spots} positive finite numbers; found shape {w.shape}."
            )
    return w / w.sum()


def check_single_slice(slices: Sequence[str], what: str) -> None:
    """ValueError when ``what`` needs one coordinate frame but the mapping spans several."""
    if len(slices) > 1:
        raise ValueError(
            f"`{what}` needs one coordinate frame, but this mapping spans {len(slices)} "
            f"slices {slices}; use `model.mapping(slice=...)` for one slice."
        )


def align_cells(values: Any, cell_names: Sequence[str], name: str) -> np.ndarray:
    """One value per mapped cell: a pandas Series aligned by cell name, else by position."""
    n_cells = len(cell_names)
    if isinstance(values, pd.Series):
        idx = values.index.map(str)
        missing = set(cell_names) - set(idx)
        if missing:
            raise ValueError(
                f"`{name}` lacks {len(missing)} mapped cells (e.g. {sorted(missing)[:3]})."
            )
        return values.set_axis(idx).loc[cell_names].to_numpy()
    arr = np.asarray(values)
    if arr.ndim == 0:
        raise TypeError(
            f"`{name}` must be one value per mapped cell ({n_cells}); found {values!r}."
        )
    if arr.shape[0] != n_cells:
        raise ValueError(
            f"`{name}` must have one entry per mapped cell ({n_cells}); found "
            f"{arr.shape[0]}. Pass a pandas Series indexed by cell name to align by name."
        )
    return arr


def spot_values_matrix(
    spot_values: Any, spot_names: Sequence[str]
) -> tuple[np.ndarray, list[Any] | None]:
    """Values per spot as a float64 array in the mapping's spot order, for ``transfer``.

    A pandas object is aligned by spot name; a Series of categories (object or categorical)
    is one-hot encoded, a missing category giving a row of NaN.

    Returns
    -------
    tuple
        (N,) or (N × k) float64 values (NaN: missing, with a warning; never infinite nor
        a column missing for every spot), and the column names of a pandas input (None
        otherwise).
    """
    n_spots = len(spot_names)
    columns = None
    if isinstance(spot_values, pd.Series):
        if spot_values.dtype == object or isinstance(spot_values.dtype, pd.CategoricalDtype):
            miss = spot_values.isna().to_numpy()
            cats = (
                spot_values.astype(object)
                .where(~miss, None)
                .map(lambda v: None if v is None else str(v))
            )
            spot_values = pd.get_dummies(cats, dtype=float)  # missing: all-zero rows
            spot_values.iloc[np.flatnonzero(miss)] = np.nan  # ... skipped below
        else:
            spot_values = spot_values.to_frame()
    if isinstance(spot_values, pd.DataFrame):
        missing = set(spot_names) - set(map(str, spot_values.index))
        if missing:
            raise ValueError(
                f"`spot_values` lacks {len(missing)} of the mapping's spots (e.g. "
                f"{sorted(missing)[:3]}); index it by spot name."
            )
        spot_values = spot_values.set_axis(spot_values.index.map(str))  # not the caller's
        columns = list(spot_values.columns)
        spot_values = spot_values.loc[spot_names]
    try:
        v = np.asarray(spot_values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            "`spot_values` must be numbers (or a pandas Series of categories); found "
            f"{type(spot_values).__name__} with non-numeric values."
        ) from None
    if v.ndim == 0 or v.ndim > 2 or v.shape[0] != n_spots:
        raise ValueError(
            f"`spot_values` must have one row per spot ({n_spots}); found shape {v.shape}."
        )
    if np.isinf(v).any():
        raise ValueError(f"`spot_values` has {int(np.isinf(v).sum())} infinite value(s).")
    miss = np.isnan(v if v.ndim > 1 else v[:, None])
    if miss.any():
        empty = miss.all(axis=0)
        if empty.any():
            raise ValueError(
                f"`spot_values` column {int(np.flatnonzero(empty)[0])} is missing (NaN) for "
                "every spot."
            )
        warnings.warn(
            f"{int(miss.any(axis=1).sum())} of {n_spots} spots have missing (NaN) values in "
            "`spot_values`; they are skipped: each cell's value is the mapping-weighted mean "
            "over the spots with a value.",
            StemInputWarning,
            stacklevel=4,
        )
    return v, columns


#: what the readout's inputs are to a user of :class:`stemmap.STEM` (who passed ``sc``, ``st``)
INPUTS = {
    "sc_expr": "`sc_expr` (the expression of `sc`)",
    "st_expr": "`st_expr` (the expression of `st`)",
    "sc_embedding": "`sc_embedding` (the cells' embeddings)",
    "st_embedding": "`st_embedding` (the spots' embeddings)",
}


def check_finite(x: Any, what: str, rows: str) -> None:
    """FloatingPointError when the (rows × k) ``x`` (``what``) has a NaN or Inf."""
    t = torch.as_tensor(x)
    bad = ~torch.isfinite(t).reshape(t.shape[0], -1).all(dim=1)
    if bool(bad.any()):
        raise FloatingPointError(
            f"{INPUTS.get(what, what)} has non-finite values (NaN or Inf) in {int(bad.sum())} of {t.shape[0]} "
            f"{rows} (e.g. row {int(torch.nonzero(bad)[0, 0])}); a mapping of them would be "
            "NaN. Check the input expression for NaN, Inf or extreme values."
        )


def check_scale(scale: float, what: str = "the expression scale") -> float:
    """``scale`` (λ of the hybrid readout), or FloatingPointError when it is not finite."""
    if not np.isfinite(scale):
        raise FloatingPointError(
            f"{what} λ = w · sd(Z_SC Z_STᵀ) / sd(R) is {scale}: the spread of the embedding "
            "logits or of the expression term overflows or is not finite. Check the input for "
            "extreme values."
        )
    return float(scale)


def check_finite_output(x: Any, what: str) -> None:
    """FloatingPointError when an output ``what`` of a mapping has a NaN or Inf (never returned)."""
    if not bool(np.isfinite(np.asarray(x)).all()):
        raise FloatingPointError(
            f"`{what}` would have non-finite values (NaN or Inf): the readout logits overflow. "
            "Check the input for extreme values."
        )
