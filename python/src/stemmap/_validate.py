"""Input validation: clear errors that say what was expected, what was found, and how to fix it."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)


#: Fewest genes shared by SC and ST (after ``genes=``) that a model is trained on: with fewer,
#: the total-count normalisation leaves (almost) no signal and training diverges.
MIN_SHARED_GENES = 5

#: Largest seed accepted (seeds are offset per epoch block and rank inside ``train()``).
MAX_SEED = 2**32 - 1

#: Float labels with more distinct values than this are refused as continuous.
MAX_FLOAT_LABEL_LEVELS = 50


class StemInputWarning(UserWarning):
    """Warning about suspicious but usable input."""


class StemModelFileError(ValueError):
    """A file that is not a readable stemmap model (wrong format, truncated, unsafe)."""


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
    if data.size and np.abs(data).max() > np.finfo(np.float32).max:
        raise ValueError(
            f"`{where}` has values beyond the float32 range (max {float(np.abs(data).max()):.3g}); "
            "expected counts or normalised expression."
        )
    if data.size and data.min() < 0:
        raise ValueError(
            f"`{where}` has negative values (min {float(data.min()):.3g}); expected raw counts "
            "or normalised non-negative expression (not scaled / z-scored data)."
        )
    return X


def get_coords(adata: Any, spatial_key: str, name: str) -> np.ndarray:
    """Spot coordinates ``adata.obsm[spatial_key]`` as a float (N × 2) array."""
    if not isinstance(spatial_key, str):
        raise TypeError(
            f"`spatial_key` must be the name (a string) of an obsm entry; found {spatial_key!r}."
        )
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
    if Y.shape[1] > 2:
        raise ValueError(
            f"`{name}.obsm[{spatial_key!r}]` has {Y.shape[1]} columns; stemmap maps onto 2-D "
            "sections and does not drop the extra (z) coordinates silently. Keep the x/y "
            f"columns (`{name}.obsm[{spatial_key!r}] = {name}.obsm[{spatial_key!r}][:, :2]`), "
            "or pass each z-section as its own slice (a list of AnnData)."
        )
    if Y.shape[0] != adata.n_obs:
        raise ValueError(
            f"`{name}.obsm[{spatial_key!r}]` has {Y.shape[0]} rows but `{name}` has "
            f"{adata.n_obs} spots; coordinates must have one row per spot."
        )
    Y = Y.astype(np.float64)
    if not np.all(np.isfinite(Y)):
        raise ValueError(f"`{name}.obsm[{spatial_key!r}]` has NaN/Inf coordinates.")
    if Y.shape[0] > 1 and np.all(Y == Y[0]):
        raise ValueError(
            f"`{name}.obsm[{spatial_key!r}]`: all spots have the same coordinates; STEM needs "
            "the spots' positions."
        )
    return Y


def check_choice(value: Any, choices: Sequence[Any], name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}; found {value!r}.")


def check_positive(
    value: Any, name: str, allow_none: bool = False, integer: bool = False, minimum: int = 1
) -> None:
    """Raise unless ``value`` is a finite positive number (or None when allowed).

    Integers must be at least ``minimum`` (default 1).
    """
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
    if integer and value < minimum:
        at_least = "" if minimum == 1 else f" >= {minimum}"
        raise ValueError(f"`{name}` must be a positive integer{at_least}; found {value!r}.")
    if not value > 0 or not np.isfinite(value):
        raise ValueError(f"`{name}` must be a finite positive {kind}; found {value!r}.")


def check_nonnegative(value: Any, name: str) -> None:
    """Raise unless ``value`` is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a non-negative number; found {value!r}.")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative finite number; found {value!r}.")


def check_seed(seed: Any, name: str = "seed") -> int:
    """Check a seed: an integer in ``[0, MAX_SEED]``; return it as an ``int``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer; found {seed!r}.")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"`{name}` must be an integer in [0, 2**32 - 1]; found {seed!r}.")
    return int(seed)


def check_path(path: Any, name: str = "path") -> None:
    """Raise ``TypeError`` unless ``path`` is a str or ``os.PathLike``."""
    import os

    if not isinstance(path, (str, os.PathLike)) or (isinstance(path, str) and not path):
        raise TypeError(f"`{name}` must be a file path (str or Path); found {path!r}.")


def check_flag(value: Any, name: str) -> bool:
    """``value`` as a bool; only True/False (numpy bools too) are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False; found {value!r}.")
    return bool(value)


def check_names(values: Any, name: str, what: str = "gene") -> list[str] | None:
    """Check a list of names (or None); a single string is refused, not split into letters."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)):
        raise TypeError(
            f"`{name}` must be a list of {what} names; found the string {values!r} "
            f"(wrap a single name in a list: [{values!r}])."
        )
    try:
        out = [str(v) for v in values]
    except TypeError:
        raise TypeError(f"`{name}` must be a list of {what} names; found {values!r}.") from None
    if not out:
        raise ValueError(f"`{name}` is empty; give at least one {what} name or None.")
    return out


def check_train_args(**kwargs: Any) -> None:
    """Validate arguments of :meth:`stemmap.STEM.train` by name (only those given).

    ``train()`` checks all of them; the CLI checks its own before reading any data.
    """
    rules: dict[str, Any] = {
        "epochs": lambda v: check_positive(v, "epochs", integer=True),
        "lr": lambda v: check_positive(v, "lr"),
        "weight_decay": lambda v: check_nonnegative(v, "weight_decay"),
        "lr_step": lambda v: check_positive(v, "lr_step", integer=True),
        "lr_gamma": lambda v: check_positive(v, "lr_gamma"),
        "cell_batch_size": lambda v: check_positive(
            v, "cell_batch_size", allow_none=True, integer=True, minimum=2
        ),
        "spot_batch_size": lambda v: check_positive(
            v, "spot_batch_size", allow_none=True, integer=True, minimum=2
        ),
    }
    for name, value in kwargs.items():
        if name == "warmup":
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"`warmup` must be a non-negative integer; found {value!r}.")
        else:
            rules[name](value)


def check_integers(values: Any, name: str, minimum: int, below: str) -> list[int]:
    """Each of ``values`` as an ``int``, each at least ``minimum``.

    Parameters
    ----------
    values
        An iterable of integers.
    name
        Argument name for errors.
    minimum
        Smallest value accepted.
    below
        What the ``ValueError`` says of a smaller value (``"must hold positive integers"``).

    Returns
    -------
    list of int
        The values, in order.
    """
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"`{name}` must hold integers; found {v!r} in {values!r}.")
        if v < minimum:
            raise ValueError(f"`{name}` {below}; found {v!r} in {values!r}.")
        out.append(int(v))
    return out


def check_hidden(hidden: Any) -> tuple[int, ...]:
    """Check encoder layer sizes: a non-empty sequence of positive whole numbers.

    Parameters
    ----------
    hidden
        The layer sizes given (list, tuple or array).

    Returns
    -------
    tuple of int
        The sizes as integers.
    """
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, (Sequence, np.ndarray)):
        raise TypeError(f"`hidden` must be a list of positive layer sizes; found {hidden!r}.")
    vals = list(hidden)
    ok = all(
        not isinstance(h, bool)
        and isinstance(h, (int, float, np.number))
        and np.isfinite(h)
        and h >= 1
        and float(h) == int(h)
        for h in vals
    )
    if not vals or not ok:
        raise ValueError(f"`hidden` must be positive whole layer sizes; found {hidden!r}.")
    return tuple(int(h) for h in vals)


def check_dropout(dropout: Any) -> None:
    """Raise unless ``dropout`` is None or a number in [0, 1)."""
    if dropout is None:
        return
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.number)):
        raise TypeError(f"`dropout` must be a number in [0, 1) or None; found {dropout!r}.")
    if not (0 <= dropout < 1):
        raise ValueError(f"`dropout` must be in [0, 1); found {dropout!r}.")


def per_slice(value: Any, n: int, name: str) -> list[Any]:
    """One value per slice: ``value`` repeated (a number or None) or checked (a list).

    Parameters
    ----------
    value
        None, a positive number, or ``n`` positive numbers.
    n
        Slices.
    name
        Argument name for errors.

    Returns
    -------
    list
        ``n`` values (None where the default applies).
    """
    if value is None or isinstance(value, (int, float, np.number)):
        if value is not None:
            check_positive(value, name)
        return [value] * n
    vals = list(value)
    if len(vals) != n:
        raise ValueError(
            f"`{name}` must be a number or one value per slice ({n}); found {len(vals)}."
        )
    for v in vals:
        check_positive(v, name)
    return vals


def missing_mask(values: Any) -> np.ndarray:
    """Mark where a label / value is missing (None, NaN, pandas NA)."""
    import pandas as pd

    return np.asarray(pd.isna(pd.Series(np.asarray(values, dtype=object).ravel())), dtype=bool)


def check_labels(values: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Cell labels as strings plus a mask of the missing ones.

    Missing labels (None, NaN) are kept out of every category (the caller skips them with a
    warning); float labels with more than :data:`MAX_FLOAT_LABEL_LEVELS` distinct values are
    refused as continuous values, which would make one column per number.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be one label per cell (1-D); found shape {arr.shape}.")
    miss = missing_mask(arr)
    if np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.complexfloating):
        levels = np.unique(arr[~miss])
        if levels.size > MAX_FLOAT_LABEL_LEVELS:
            raise ValueError(
                f"`{name}` are floating-point numbers with {levels.size} distinct values; "
                "labels must be categories (cell types, clusters). Pass the category column, "
                "or use `transfer()` / `spot_aggregate()` for continuous values."
            )
    out = np.array(["" if m else str(v) for v, m in zip(arr, miss)], dtype=object)
    if miss.all():
        raise ValueError(f"`{name}` are all missing (None/NaN); nothing to deconvolve.")
    return out, miss


def check_threads(threads: Any) -> int | None:
    """Check a ``threads`` argument: None (stemmap's choice) or a positive integer.

    More threads than the CPUs the process may use are kept, with a
    :class:`StemInputWarning` (once per count; :func:`_warn_if_oversubscribed`).
    """
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"`threads` must be None or a positive integer; found {threads!r}.")
    if threads < 1:
        raise ValueError(f"`threads` must be None or a positive integer; found {threads!r}.")
    _warn_if_oversubscribed(int(threads))
    return int(threads)


#: (threads, usable CPUs) pairs already warned about (:func:`_warn_if_oversubscribed`)
_WARNED_THREADS: set[tuple[int, int]] = set()


def _warn_if_oversubscribed(threads: int) -> None:
    """Warn once when an explicit ``threads`` exceeds the CPUs this process may use.

    The count is kept (an explicit argument wins, and bit-identical results need the same
    thread count, recorded in ``train_settings["threads"]``): torch then runs more threads
    than CPUs, which only slows it down (1,000 threads on 2 CPUs were 3× slower, 10,000
    some 35×). One warning per (threads, CPUs) pair and process.
    """
    from ._runtime import usable_cpus

    n = usable_cpus()
    if threads <= n or (threads, n) in _WARNED_THREADS:
        return
    _WARNED_THREADS.add((threads, n))
    warnings.warn(
        f"`threads={threads}` is more than the {n} CPU(s) this process may use; stemmap runs "
        f"{threads} torch threads as asked, which is slower than {n}. Pass `threads={n}` (or "
        "None: every usable CPU) unless you need this thread count to reproduce a result.",
        StemInputWarning,
        stacklevel=4,
    )
