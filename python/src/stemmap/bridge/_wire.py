"""The wire protocol between R and the Python core: packed arrays and the call envelope.

Everything that crosses into R is a Python builtin: ``dict``, ``list``, ``str``,
``int``, ``float``, ``bool`` and ``bytearray``. Numeric arrays travel as *packed
arrays*, ``{"dtype": "float64" | "int32", "shape": [..], "data": bytearray}`` with the
values in column-major (Fortran, i.e. R) order and little-endian. R packs and unpacks
them with ``writeBin``/``readBin``; no numpy object is ever converted by reticulate
(older reticulate releases cannot convert NumPy 2 arrays, and a packed array is as fast
as a native conversion).

Sparse matrices travel as ``{"format": "csc", "shape": [..], "i": packed, "p": packed,
"x": packed}``, the pieces of R's ``dgCMatrix``; they stay sparse on both sides.

Every call from R goes through :func:`call`, which runs one verb of
:mod:`stemmap.bridge.verbs` (or :mod:`stemmap.bridge.interpret`) and wraps its outcome,
so that R sees the core's errors and input warnings as its own conditions (R side:
``R/bridge.R``, ``.stem_unwrap()``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["ERROR_KINDS", "call", "pack", "unpack", "register"]

_DTYPES = {"float64": "<f8", "int32": "<i4"}

#: The verbs R may call through :func:`call`, by name (filled by :func:`register`).
VERBS: dict[str, Callable[..., Any]] = {}


def register(fun: Callable[..., Any]) -> Callable[..., Any]:
    """Make ``fun`` a verb R may call through :func:`call` (a decorator).

    Parameters
    ----------
    fun
        A function taking and returning builtins and packed arrays.

    Returns
    -------
    Callable
        ``fun`` itself.
    """
    VERBS[fun.__name__] = fun
    return fun


#: Python exception → R condition kind: R signals ``stemmap_<kind>_error`` (a subclass of
#: ``stemmap_error``) with the same message. The first matching class wins.
ERROR_KINDS: list[tuple[type[BaseException], str]] = []


def _error_kinds() -> list[tuple[type[BaseException], str]]:
    if not ERROR_KINDS:
        from .._validate import StemModelFileError

        ERROR_KINDS.extend(
            [
                (StemModelFileError, "model_file"),
                (OSError, "file"),
                (MemoryError, "memory"),
                (ArithmeticError, "training"),
                (TypeError, "type"),
                (KeyError, "value"),
                (ValueError, "value"),
            ]
        )
    return ERROR_KINDS


def _error_message(e: BaseException) -> str:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    return str(msg) or type(e).__name__


def call(fun: str, kwargs: Any = None) -> dict:
    """Run the verb ``fun(**kwargs)`` for R and wrap its outcome.

    Parameters
    ----------
    fun
        Name of a registered verb (see :data:`VERBS`).
    kwargs
        Its keyword arguments (builtins and packed arrays).

    Returns
    -------
    dict
        ``stemmap_envelope`` (True), ``value`` (the verb's result, or None),
        ``warnings`` (messages of the :class:`stemmap.StemInputWarning` s raised, in order;
        R re-signals them as ``warning()`` s of class ``stemmap_input_warning``), ``error``
        (None, or ``{"kind", "message", "python_class"}`` for an exception: R signals
        ``stemmap_<kind>_error``; kinds are in :data:`ERROR_KINDS`, else ``"python"``).
    """
    from .._validate import StemInputWarning

    kwargs = dict(kwargs) if isinstance(kwargs, dict) else {}
    out: dict[str, Any] = {"stemmap_envelope": True, "value": None, "warnings": [], "error": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StemInputWarning)
        try:
            if fun not in VERBS:
                raise ValueError(f"unknown bridge function {fun!r}")
            out["value"] = VERBS[fun](**kwargs)
        except Exception as e:  # every error reaches R as a classed condition
            kind = next((k for cls, k in _error_kinds() if isinstance(e, cls)), "python")
            out["error"] = {
                "kind": kind,
                "message": _error_message(e),
                "python_class": type(e).__name__,
            }
    for w in caught:
        if issubclass(w.category, StemInputWarning):
            out["warnings"].append(str(w.message))
        else:  # other warnings print as before
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return out


def pack(arr: Any) -> dict:
    """Pack an array (numpy, or scipy sparse) into R-friendly builtins.

    Parameters
    ----------
    arr
        Dense array of any shape (integers become ``int32``, everything else
        ``float64``) or a scipy sparse matrix (becomes CSC).

    Returns
    -------
    dict
        A packed array, see the module docstring.
    """
    import scipy.sparse as sp

    if sp.issparse(arr):
        csc = sp.csc_matrix(arr)
        csc.sort_indices()
        return {
            "format": "csc",
            "shape": [int(s) for s in csc.shape],
            "i": pack(csc.indices.astype(np.int32)),
            "p": pack(csc.indptr.astype(np.int32)),
            "x": pack(csc.data.astype(np.float64)),
        }
    a = np.asarray(arr)
    dtype = "int32" if a.dtype.kind in "biu" else "float64"
    data = bytearray(np.asarray(a, dtype=_DTYPES[dtype]).tobytes(order="F"))
    return {"dtype": dtype, "shape": [int(s) for s in a.shape], "data": data}


def unpack(obj: Any) -> Any:
    """Inverse of :func:`pack`; also accepts plain lists/numbers (returned as arrays).

    A packed array from R is read in place (``numpy.frombuffer`` over the bytes
    reticulate made): no further copy of the data.

    Parameters
    ----------
    obj
        A packed array, a packed CSC matrix, or anything :func:`numpy.asarray` takes.

    Returns
    -------
    numpy.ndarray or scipy.sparse.csc_matrix
        The array (a sparse matrix stays sparse).
    """
    if isinstance(obj, dict) and obj.get("format") == "csc":
        import scipy.sparse as sp

        shape = _shape(obj["shape"])
        return sp.csc_matrix(
            (unpack(obj["x"]).ravel(), unpack(obj["i"]).ravel(), unpack(obj["p"]).ravel()),
            shape=shape,
        )
    if isinstance(obj, dict) and "data" in obj and "dtype" in obj:
        shape = _shape(obj["shape"])
        data = obj["data"]
        if not isinstance(data, (bytearray, memoryview)):
            data = bytearray(data)  # read-only bytes: a writable copy
        arr = np.frombuffer(data, dtype=_DTYPES[str(obj["dtype"])])
        return arr.reshape(shape, order="F")
    return np.asarray(obj)


def _shape(s: Any) -> tuple:
    """Shape from R: an int (length-1 vector) or a list of ints."""
    if isinstance(s, (int, float, np.integer)):
        return (int(s),)
    return tuple(int(v) for v in s)


def strs(x: Any) -> list[str]:
    """Character vector from R (str, list or None) as a list of str.

    Parameters
    ----------
    x
        ``None``, one string or a sequence.

    Returns
    -------
    list of str
        The values as strings (empty for ``None``).
    """
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    return [str(v) for v in x]


def given(**kwargs: Any) -> dict[str, Any]:
    """Return the keyword arguments R set; None (an R ``NULL``) leaves the core's default.

    Returns
    -------
    dict
        ``kwargs`` without the None values.
    """
    return {k: v for k, v in kwargs.items() if v is not None}


def as_int(v: Any) -> int | None:
    """Return an R number as ``int``; None stays None.

    Returns
    -------
    int or None
        The value.
    """
    return None if v is None else int(v)


def table(df: Any) -> dict:
    """Return a DataFrame as ``{columns, data}`` for R (numbers packed, the rest as str).

    Parameters
    ----------
    df
        A :class:`pandas.DataFrame`.

    Returns
    -------
    dict
        ``columns`` (the column order) and ``data`` ({column: packed or list of str}).
    """
    cols: dict[str, Any] = {}
    for c in df.columns:
        v = df[c]
        if v.dtype.kind in "biuf":
            cols[str(c)] = pack(v.to_numpy(dtype=np.float64))
        else:
            cols[str(c)] = [str(x) for x in v]
    return {"columns": [str(c) for c in df.columns], "data": cols}


def history(hist: Any) -> dict:
    """Loss history (a DataFrame) as ``{column: packed float vector}``.

    Returns
    -------
    dict
        One packed vector per numeric column.
    """
    import pandas as pd

    if hist is None:
        return {}
    df = pd.DataFrame(hist)
    out = {}
    for col in df.columns:
        try:
            out[str(col)] = pack(df[col].to_numpy(dtype=np.float64))
        except (TypeError, ValueError):
            continue
    return out
