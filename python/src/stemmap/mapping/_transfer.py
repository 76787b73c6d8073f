"""Values moved between cells and spots through a mapping: deconvolution, aggregates, transfer.

These are methods of :class:`stemmap.StemMapping` (bound there), kept apart from its state:
``Ĉ · V`` (spot aggregates, deconvolution) and ``C · v`` (transfer), both in chunks of cells.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from .._runtime import compute
from .._validate import StemInputWarning, check_labels
from ._values import align_cells, spot_values_matrix

if TYPE_CHECKING:
    from ._view import MappingView


def deconvolve(self: MappingView, labels: Sequence[Any] | pd.Series | np.ndarray) -> pd.DataFrame:
    """Spot cell-type deconvolution T̂ = Ĉ · T (rows sum to 1; Ĉ: :attr:`st_to_sc`).

    Parameters
    ----------
    labels
        One label per cell (length M, in the mapping's cell order; a pandas Series is
        aligned by cell name).

    Returns
    -------
    pandas.DataFrame
        (N × types) estimated proportions, indexed by spot name.
    """
    return deconvolve_as(self, labels, "labels")


def deconvolve_as(self: MappingView, labels: Any, name: str) -> pd.DataFrame:
    """:func:`deconvolve`, its messages naming the argument ``name`` instead of ``labels``."""
    lab, miss = check_labels(align_cells(labels, self.sc_names, name), name)
    codes, types = pd.factorize(pd.Series(lab[~miss], dtype="object"), sort=True)
    T = np.zeros((self.n_cells, len(types)), dtype=np.float64)
    T[np.flatnonzero(~miss), codes] = 1.0
    D = self.spot_aggregate(T)
    if miss.any():
        warnings.warn(
            f"{int(miss.sum())} of {self.n_cells} cells have no label (None/NaN) in "
            f"`{name}`; they are left out and each spot's proportions are over the labelled "
            "cells.",
            StemInputWarning,
            stacklevel=3,
        )
        D = D / D.sum(axis=1, keepdims=True)
    return pd.DataFrame(D, index=self.spot_names, columns=list(types))


@compute
def spot_aggregate(self: MappingView, values: np.ndarray) -> np.ndarray:
    """Ĉ · V for a (M × k) array of per-cell values: each spot's expected value over cells.

    Ĉ is :attr:`st_to_sc` (with several rounds, the rounds' mean).

    Parameters
    ----------
    values
        (M,) or (M × k) numbers, one row per mapped cell.

    Returns
    -------
    numpy.ndarray
        (N × k) float64.
    """
    V = torch.from_numpy(np.asarray(values, dtype=np.float64))
    if V.ndim == 1:
        V = V[:, None]
    if V.ndim != 2 or V.shape[0] != self.n_cells:
        raise ValueError(
            f"`values` must have one row per mapped cell ({self.n_cells}); found shape "
            f"{tuple(V.shape)}."
        )
    return self.engine.aggregate(V).numpy()


@compute
def transfer(self: MappingView, spot_values: Any) -> np.ndarray | pd.DataFrame:
    """Move a spot annotation to cells: ``C · v`` (C: :attr:`sc_to_st`, the rounds' mean).

    Parameters
    ----------
    spot_values
        (N,) or (N × k) values per spot (a pandas object is aligned by spot name;
        categorical values are one-hot encoded and return per-category probabilities).
        Spots with a missing (NaN) value are skipped, with a warning: each cell's value is
        then the mapping-weighted mean over the spots with a value.

    Returns
    -------
    numpy.ndarray or pandas.DataFrame
        (M,) or (M × k) per-cell values.
    """
    v, columns = spot_values_matrix(spot_values, self.spot_names)
    V = torch.from_numpy(v if v.ndim > 1 else v[:, None])
    miss = torch.isnan(V)
    if miss.any():
        seen = (~miss).double()
        V0 = torch.where(miss, torch.zeros_like(V), V)
        parts = []
        for a, b in self.engine.chunks():
            C = self.engine.rows_of_c(a, b).double()
            parts.append(((C @ V0) / (C @ seen)).numpy())
        out = np.concatenate(parts)
    else:
        out = np.concatenate(
            [(self.engine.rows_of_c(a, b).double() @ V).numpy() for a, b in self.engine.chunks()]
        )
    if columns is not None:
        return pd.DataFrame(out, index=self.sc_names, columns=columns)
    return out if v.ndim > 1 else out[:, 0]
