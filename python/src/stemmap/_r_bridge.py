"""Bridge between the R package and the Python core.

Everything that crosses into R is a Python builtin: ``dict``, ``list``, ``str``,
``int``, ``float``, ``bool`` and ``bytearray``. Numeric arrays travel as *packed
arrays*, ``{"dtype": "float64" | "int32", "shape": [..], "data": bytearray}`` with the
values in column-major (Fortran, i.e. R) order and little-endian. R packs and unpacks
them with ``writeBin``/``readBin``; no numpy object is ever converted by reticulate
(older reticulate releases cannot convert NumPy 2 arrays, and a packed array is as fast
as a native conversion).

Sparse matrices travel as ``{"format": "csc", "shape": [..], "i": packed, "p": packed,
"x": packed}``, the layout of R's ``dgCMatrix``.

Orientation: R objects keep genes in rows and cells/spots in columns; AnnData keeps
observations in rows. :func:`run_stem` transposes on the way in.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from typing import Any

import numpy as np

__all__ = [
    "call",
    "pack",
    "unpack",
    "info",
    "defaults",
    "roundtrip",
    "run_stem",
    "write_h5ad",
    "read_h5ad",
]

_DTYPES = {"float64": "<f8", "int32": "<i4"}


# --------------------------------------------------------------------------- errors
#: Python exception → R condition kind: R signals ``stemmap_<kind>_error`` (a subclass of
#: ``stemmap_error``) with the same message. The first matching class wins.
ERROR_KINDS: list[tuple[type[BaseException], str]] = []


def _error_kinds() -> list[tuple[type[BaseException], str]]:
    if not ERROR_KINDS:
        from ._validate import StemModelFileError

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
    """Run the bridge function ``fun(**kwargs)`` for R and wrap its outcome.

    Every call from R goes through here, so that R sees the core's errors and input
    warnings as its own conditions (see ``R/python.R``, ``.stem_unwrap()``).

    Returns
    -------
    dict
        ``stemmap_envelope`` (True), ``value`` (the function's result, or None),
        ``warnings`` (messages of the :class:`stemmap.StemInputWarning` s raised, in order;
        R re-signals them as ``warning()`` s of class ``stemmap_input_warning``), ``error``
        (None, or ``{"kind", "message", "python_class"}`` for an exception: R signals
        ``stemmap_<kind>_error``; kinds are in :data:`ERROR_KINDS`, else ``"python"``).
    """
    import warnings

    from ._validate import StemInputWarning

    kwargs = dict(kwargs) if isinstance(kwargs, dict) else {}
    out: dict[str, Any] = {"stemmap_envelope": True, "value": None, "warnings": [], "error": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StemInputWarning)
        try:
            if fun not in __all__ and fun not in _EXTRA_ENTRY_POINTS:
                raise ValueError(f"unknown bridge function {fun!r}")
            out["value"] = globals()[fun](**kwargs)
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


# --------------------------------------------------------------------------- packing
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
    try:
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
    except ImportError:  # pragma: no cover - scipy is a core dependency
        pass
    a = np.asarray(arr)
    if a.dtype.kind in "biu":
        dtype = "int32"
        a = a.astype(np.int32)
    else:
        dtype = "float64"
        a = a.astype(np.float64)
    data = bytearray(np.asarray(a, dtype=_DTYPES[dtype]).tobytes(order="F"))
    return {"dtype": dtype, "shape": [int(s) for s in a.shape], "data": data}


def unpack(obj: Any):
    """Inverse of :func:`pack`; also accepts plain lists/numbers (returned as arrays).

    Returns
    -------
    numpy.ndarray or scipy.sparse.csc_matrix
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
        arr = np.frombuffer(bytes(obj["data"]), dtype=_DTYPES[str(obj["dtype"])])
        return arr.reshape(shape, order="F").copy()
    return np.asarray(obj)


def _shape(s: Any) -> tuple:
    """Shape from R: an int (length-1 vector) or a list of ints."""
    if isinstance(s, (int, float, np.integer)):
        return (int(s),)
    return tuple(int(v) for v in s)


def _strs(x: Any) -> list[str]:
    """Character vector from R (str, list or None) as a list of str."""
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    return [str(v) for v in x]


# --------------------------------------------------------------------------- info
def info() -> dict:
    """Versions and device of this Python, as builtins.

    Returns
    -------
    dict
        ``python`` (executable), ``python_version``, ``torch_version``, ``device``
        (``"cuda"``, ``"mps"`` or ``"cpu"``), ``device_name``, ``stemmap_version``,
        ``stemmap_path``, ``numpy_version``, ``anndata_version``.
    """
    out: dict[str, Any] = {
        "python": sys.executable,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        # set by the R launcher when it imported torch with RTLD_DEEPBIND (see R/python.R)
        "torch_deepbind": os.environ.get("STEMMAP_TORCH_DEEPBIND", "0") == "1",
    }
    try:
        import torch

        out["torch_version"] = str(torch.__version__)
        if torch.cuda.is_available():
            out["device"] = "cuda"
            out["device_name"] = str(torch.cuda.get_device_name(0))
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            out["device"] = "mps"
            out["device_name"] = "Apple MPS"
        else:
            out["device"] = "cpu"
            out["device_name"] = platform.processor() or platform.machine() or "cpu"
    except ImportError:
        out.update(torch_version="not installed", device="none", device_name="none")
    try:
        from importlib.metadata import PackageNotFoundError, version

        out["anndata_version"] = version("anndata")
    except PackageNotFoundError:
        out["anndata_version"] = "not installed"
    import stemmap

    out["stemmap_version"] = str(getattr(stemmap, "__version__", "unknown"))
    out["stemmap_path"] = str(getattr(stemmap, "__file__", ""))
    return out


def defaults() -> dict:
    """The core's table of defaults and presets (:mod:`stemmap._defaults`), for R.

    Returns
    -------
    dict
        :func:`stemmap._defaults.table` plus ``choices`` (``readout``: the readouts,
        ``preset``: the preset names): what R's arguments that default to ``NULL`` mean,
        and the choices R checks before anything runs.
    """
    from ._defaults import PRESETS, table
    from .mapping import READOUTS

    out = table()
    out["choices"] = {"readout": list(READOUTS), "preset": list(PRESETS)}
    return out


def roundtrip(x: dict, rownames: Any = None, colnames: Any = None) -> dict:
    """Unpack a matrix from R into numpy/pandas and pack it back (a bridge test).

    Parameters
    ----------
    x
        Packed array (or packed CSC matrix) from R.
    rownames, colnames
        Dimension names (may be ``None``).

    Returns
    -------
    dict
        ``x`` (packed), ``rownames``, ``colnames``, ``shape``, ``sum`` (computed in numpy)
        and ``type`` (class name on the Python side).
    """
    import pandas as pd

    arr = unpack(x)
    kind = type(arr).__name__
    dense = arr.toarray() if hasattr(arr, "toarray") else arr
    rn, cn = _strs(rownames), _strs(colnames)
    df = pd.DataFrame(dense, index=rn or None, columns=cn or None)
    return {
        "x": pack(arr) if kind != "ndarray" else pack(df.to_numpy()),
        "rownames": [str(v) for v in df.index] if rn else None,
        "colnames": [str(v) for v in df.columns] if cn else None,
        "shape": [int(s) for s in arr.shape],
        "sum": float(dense.sum()),
        "type": kind,
    }


# --------------------------------------------------------------------------- STEM
def _anndata(x: dict, genes: Any, obs_names: Any, coords: Any = None, spatial_key: str = "spatial"):
    """AnnData (observations × genes) from an R genes × observations matrix."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    mat = unpack(x)
    mat = mat.T.tocsr() if sp.issparse(mat) else np.ascontiguousarray(np.asarray(mat).T)
    obs = pd.DataFrame(index=pd.Index(_strs(obs_names), name=None))
    var = pd.DataFrame(index=pd.Index(_strs(genes), name=None))
    adata = ad.AnnData(X=mat, obs=obs, var=var)
    if coords is not None:
        adata.obsm[spatial_key] = np.asarray(unpack(coords), dtype=np.float64)
    return adata


def _builtin(v: Any) -> Any:
    """Settings values to builtins (numpy scalars, tuples, arrays...)."""
    if isinstance(v, dict):
        return {str(k): _builtin(w) for k, w in v.items()}
    if isinstance(v, (list, tuple)):
        return [_builtin(w) for w in v]
    if isinstance(v, np.ndarray):
        return [_builtin(w) for w in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def _history(hist: Any) -> dict:
    """Loss history (pandas DataFrame) as {column: packed float vector}."""
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


def _topk(mat: np.ndarray, k: int) -> dict:
    """Keep the k largest entries per row; packed CSC of the same shape."""
    import scipy.sparse as sp

    n_rows, n_cols = mat.shape
    k = int(max(1, min(k, n_cols)))
    idx = np.argpartition(-mat, kth=k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(n_rows), k)
    cols = idx.ravel()
    vals = mat[rows, cols]
    return pack(sp.csc_matrix((vals, (rows, cols)), shape=(n_rows, n_cols)))


def run_stem(
    sc: dict,
    st: list,
    params: dict,
    labels: Any = None,
    transfer: Any = None,
    mapping: str = "topk",
    mapping_k: int = 10,
) -> dict:
    """Train STEM on matrices sent by R and return every result as builtins.

    Parameters
    ----------
    sc
        ``{"x": packed genes × cells, "genes": [...], "cells": [...]}``.
    st
        List of slices, each ``{"x": packed genes × spots, "genes", "spots",
        "coords": packed spots × 2, "name": slice name}``, in slice order.
    params
        Only what the caller set: arguments of :class:`stemmap.STEM` (``genes``, ``sigma``,
        ``sigma_scale``, ``alpha``, ``hidden``, ``device``, ``seed``, ``normalized``...), of
        :meth:`stemmap.STEM.train` (``epochs``, ``lr``, ``preset``... ), of
        :meth:`stemmap.STEM.mapping` (``readout``...), ``adjacency_k``, and ``progress``
        and ``keep_model``. Absent or None keys take the core's defaults
        (:mod:`stemmap._defaults`); the bridge has none of its own.
    labels
        ``{name: [label per input cell]}``; each is deconvolved into spots × types.
    transfer
        ``{name: packed (input spots × features)}``; each is transferred to cells.
    mapping
        ``"topk"`` (sparse, ``mapping_k`` largest entries per cell), ``"dense"`` or ``"none"``.

    Returns
    -------
    dict
        ``cells``/``spots`` (names kept by the core: cells or spots that are all-zero on
        the shared genes are dropped), ``sc_embedding`` (M×d), ``st_embedding`` (N×d),
        ``coords`` (M×2; with several slices, in the frame of each cell's best slice),
        ``best_spot`` (names), ``best_slice``, ``confidence``, ``sc_to_st``,
        ``deconvolution`` ({name: {"x": packed N×T, "types"}}), ``transfer``
        ({name: packed M×F}), ``history`` ({term: packed}), ``settings``,
        ``adjacency`` (sparse M×M SC–SC kNN graph, when ``adjacency_k`` > 0); with
        ``params["keep_model"]`` also ``model`` (the :meth:`stemmap.STEM.save` file as bytes).
    """

    import stemmap

    from ._defaults import MAPPING, PRESETS, TRAIN
    from ._validate import check_choice
    from .mapping import READOUTS

    params = {k: v for k, v in dict(params or {}).items() if v is not None}
    progress = bool(params.pop("progress", False))
    keep_model = bool(params.pop("keep_model", False))
    train_kw = {k: params.pop(k) for k in (*TRAIN, "preset") if k in params}
    map_kw = {k: params.pop(k) for k in MAPPING if k in params and k != "adjacency_k"}
    adjacency_k = int(params.pop("adjacency_k", MAPPING["adjacency_k"]))
    # choices are checked before training, not after it
    if "preset" in train_kw:
        check_choice(train_kw["preset"], list(PRESETS), "preset")
    if "readout" in map_kw:
        check_choice(map_kw["readout"], READOUTS, "readout")
    for key in ("epochs", "lr_step", "warmup", "cell_batch_size", "spot_batch_size"):
        if key in train_kw:
            train_kw[key] = int(train_kw[key])
    if params.get("hidden") is not None:
        params["hidden"] = tuple(int(h) for h in _strs_or_nums(params["hidden"]))
    if params.get("genes") is not None:
        params["genes"] = _strs(params["genes"])
    if isinstance(params.get("sigma"), list) and len(params["sigma"]) == 1:
        params["sigma"] = params["sigma"][0]
    for key in ("seed", "threads"):
        if key in params and params[key] is not None:
            params[key] = int(params[key])
    params = {k: v for k, v in params.items() if v is not None}

    with _verbosity(stemmap, progress):
        import pandas as pd

        sc_ad = _anndata(sc["x"], sc["genes"], sc["cells"])
        slices = [_anndata(s["x"], s["genes"], s["spots"], s["coords"]) for s in st]
        names = [str(s.get("name", f"slice{i}")) for i, s in enumerate(st)]
        if len(slices) == 1:
            model = stemmap.STEM(sc_ad, slices[0], spatial_key="spatial", **params)
        else:
            model = stemmap.STEM(sc_ad, slices, spatial_key="spatial", slice_names=names, **params)
        model.train(progress=progress, **train_kw)
        m = model.mapping(**map_kw)
        map_kw["readout"] = m.readout  # the one the model chose (a preset's, or the default)

        best_slice = np.asarray(m.best_slice, dtype=object)
        if len(m.slices) == 1:
            coords = np.asarray(m.coords, dtype=np.float64)
        else:
            coords = np.full((m.n_cells, 2), np.nan)
            for name in m.slices:
                sel = best_slice == name
                if sel.any():
                    coords[sel] = np.asarray(model.mapping(slice=name, **map_kw).coords)[sel]

        out: dict[str, Any] = {
            "cells": list(m.sc_names),
            "spots": list(m.spot_names),
            "spot_slice": [str(v) for v in m.spot_slice],
            "sc_embedding": pack(np.asarray(m.sc_embedding)),
            "st_embedding": pack(np.asarray(m.st_embedding)),
            "coords": pack(coords),
            "best_spot": [str(v) for v in m.best_spot_name],
            "best_slice": [str(v) for v in best_slice],
            "confidence": pack(np.asarray(m.confidence, dtype=np.float64)),
            "history": _history(getattr(model, "history", None)),
            "settings": _builtin(m.settings),  # the model's, and the mapping's readout
        }
        if adjacency_k > 0 and m.n_cells > 1:
            out["adjacency"] = pack(m.sc_adjacency(min(adjacency_k, m.n_cells - 1), weighted=True))
        if mapping == "dense":
            out["sc_to_st"] = pack(np.asarray(m.sc_to_st, dtype=np.float64))
        elif mapping == "topk":
            out["sc_to_st"] = pack(m.topk_mapping(int(min(mapping_k, m.n_spots))))

        out["deconvolution"] = {}
        for name, lab in (labels or {}).items():
            series = pd.Series(_label_values(lab), index=_strs(sc["cells"]))
            df = m.deconvolve(series)
            out["deconvolution"][str(name)] = {
                "x": pack(df.to_numpy(dtype=np.float64)),
                "types": [str(c) for c in df.columns],
            }
        all_spots = [n for s in st for n in _strs(s["spots"])]
        out["transfer"] = {}
        for name, vals in (transfer or {}).items():
            v = np.asarray(unpack(vals), dtype=np.float64)
            v = v if v.ndim > 1 else v[:, None]
            df = pd.DataFrame(v, index=all_spots)
            res = m.transfer(df)
            out["transfer"][str(name)] = pack(np.asarray(res, dtype=np.float64))
        if keep_model:
            out["model"] = model_bytes(model)
        return out


@contextlib.contextmanager
def _verbosity(stemmap: Any, progress: bool):
    """Core messages at INFO while R shows progress, else WARNING; restored afterwards."""
    old_level = stemmap.settings.verbosity
    stemmap.settings.verbosity = "INFO" if progress else "WARNING"
    try:
        yield
    finally:
        stemmap.settings.verbosity = old_level


def _label_values(x: Any) -> np.ndarray:
    """Labels from R: None stays missing; numbers sent as numbers stay numbers (so that
    :func:`stemmap._validate.check_labels` can refuse continuous values), else text."""
    vals = list(x) if isinstance(x, (list, tuple)) else [x]
    nums = [v for v in vals if v is not None]
    if nums and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in nums):
        if any(isinstance(v, float) for v in nums):
            return np.array([np.nan if v is None else float(v) for v in vals])
    return np.array([None if v is None else str(v) for v in vals], dtype=object)


def _strs_or_nums(x: Any) -> list:
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


# --------------------------------------------------------------------------- h5ad
def write_h5ad(path: str, result: dict) -> str:
    """Write a mapping result sent by R to an ``.h5ad`` file (cells × spots).

    ``X`` is the SC→ST mapping (dense or sparse; zeros when not stored),
    ``obsm["STEM"]`` the cell embedding, ``obsm["STEM_spatial"]`` the pseudo-coordinates,
    ``obs`` the best spot (``stem_best_spot``) and confidence (``stem_confidence``),
    ``varm["STEM"]`` the spot embedding, ``var["stem_slice"]`` the slice of each spot,
    ``uns["stem"]`` the settings (JSON) and the loss history.
    """
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    cells, spots = _strs(result["cells"]), _strs(result["spots"])
    x = result.get("mapping")
    mat = unpack(x) if x is not None else sp.csr_matrix((len(cells), len(spots)))
    if sp.issparse(mat):
        mat = sp.csr_matrix(mat)
    best = ["" if v is None else str(v) for v in (result.get("best_spot") or [])]
    obs = pd.DataFrame(
        {
            "stem_best_spot": best,
            "stem_confidence": unpack(result["confidence"]).ravel(),
        },
        index=pd.Index(cells),
    )
    var = pd.DataFrame({"stem_slice": _strs(result.get("spot_slice"))}, index=pd.Index(spots))
    adata = ad.AnnData(X=mat, obs=obs, var=var)
    adata.obsm["STEM"] = unpack(result["embedding"])
    adata.obsm["STEM_spatial"] = unpack(result["coords"])
    adata.varm["STEM"] = unpack(result["spot_embedding"])
    stem_uns: dict[str, Any] = {"settings": _json_safe(result.get("settings") or {})}
    hist = result.get("history") or {}
    if hist:
        stem_uns["history"] = pd.DataFrame({k: unpack(v).ravel() for k, v in hist.items()})
    adata.uns["stem"] = stem_uns
    adata.write_h5ad(path)
    return path


def _json_safe(v: Any) -> Any:
    """Settings as strings inside h5ad (nested dicts of scalars/str; None → "None")."""
    import json

    return json.dumps(_builtin(v))


def read_h5ad(path: str) -> dict:
    """Read a file written by :func:`write_h5ad` back into builtins for R."""
    import json

    import anndata as ad
    import scipy.sparse as sp

    adata = ad.read_h5ad(path)
    x = adata.X
    stem_uns = adata.uns.get("stem", {})
    settings = stem_uns.get("settings", "{}")
    hist = stem_uns.get("history")
    return {
        "cells": [str(c) for c in adata.obs_names],
        "spots": [str(s) for s in adata.var_names],
        "spot_slice": [str(v) for v in adata.var.get("stem_slice", [""] * adata.n_vars)],
        "mapping": pack(sp.csc_matrix(x) if sp.issparse(x) else np.asarray(x)),
        "embedding": pack(np.asarray(adata.obsm["STEM"])),
        "spot_embedding": pack(np.asarray(adata.varm["STEM"])),
        "coords": pack(np.asarray(adata.obsm["STEM_spatial"])),
        "best_spot": [str(v) for v in adata.obs["stem_best_spot"]],
        "confidence": pack(adata.obs["stem_confidence"].to_numpy(dtype=np.float64)),
        "settings": json.loads(settings) if isinstance(settings, str) else _builtin(settings),
        "history": _history(hist) if hist is not None else {},
    }


# ------------------------------------------------------------------ interpretation
def model_bytes(model: Any) -> bytearray:
    """A trained STEM as the bytes of its :meth:`stemmap.STEM.save` file (for R to keep)."""
    import os
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".stem")
    os.close(fd)
    try:
        model.save(path)
        with open(path, "rb") as fh:
            return bytearray(fh.read())
    finally:
        os.unlink(path)


def _load_model(blob: Any, device: str = "cpu"):
    """STEM from the bytes written by :func:`model_bytes`."""
    import os
    import tempfile

    import stemmap

    fd, path = tempfile.mkstemp(suffix=".stem")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(bytes(blob))
        return stemmap.STEM.load(path, device=device)
    finally:
        os.unlink(path)


def attribution(
    model: Any,
    cells: Any = None,
    target: Any = "best_spot",
    steps: Any = None,
    method: Any = None,
    batch_size: Any = None,
    device: str = "cpu",
    progress: bool = False,
) -> dict:
    """Integrated-gradient attribution of a model saved by R (see :func:`model_bytes`).

    ``steps``, ``method`` and ``batch_size`` left None (R ``NULL``) take the defaults of
    :func:`stemmap.attribution.integrated_gradients`; ``device`` is where R runs it (R
    always sends it; ``stemAttribution(device = "cpu")``).

    Parameters
    ----------
    model
        Bytes of a saved STEM.
    cells
        Model cell names to explain (default all); names the model lacks (cells the core
        dropped) are skipped.
    target
        ``"best_spot"`` or a list of model spot names (their summed probability).

    Returns
    -------
    dict
        ``x`` (packed cells × genes), ``cells``, ``genes``, ``delta`` (packed completeness
        error per cell).
    """
    import stemmap

    old_level = stemmap.settings.verbosity
    stemmap.settings.verbosity = "INFO" if progress else "WARNING"
    try:
        return _attribution(model, cells, target, steps, method, batch_size, device)
    finally:
        stemmap.settings.verbosity = old_level


def _attribution(model, cells, target, steps, method, batch_size, device) -> dict:
    from .attribution import integrated_gradients

    m = _load_model(model, device=device)
    names = [str(c) for c in m.data.sc_names]
    if cells is None:
        keep = names
    else:
        have = set(names)
        keep = [c for c in _strs(cells) if c in have]
    tgt = target if isinstance(target, str) and target == "best_spot" else _strs(target)
    if not keep:
        return {
            "x": pack(np.zeros((0, len(m.data.genes)))),
            "cells": [],
            "genes": [str(g) for g in m.data.genes],
            "delta": pack(np.zeros(0)),
        }
    kw: dict[str, Any] = {}
    if steps is not None:
        kw["steps"] = int(steps)
    if method is not None:
        kw["method"] = str(method)
    if batch_size is not None:
        kw["batch_size"] = int(batch_size)
    attr, delta = integrated_gradients(m, cells=keep, target=tgt, return_delta=True, **kw)
    return {
        "x": pack(attr.to_numpy(dtype=np.float64)),
        "cells": [str(c) for c in attr.index],
        "genes": [str(g) for g in attr.columns],
        "delta": pack(np.asarray(delta, dtype=np.float64)),
    }


def _table(df: Any) -> dict:
    """A DataFrame as {column: packed numbers or list of str}, with the column order."""
    cols: dict[str, Any] = {}
    for c in df.columns:
        v = df[c]
        if v.dtype.kind in "biuf":
            cols[str(c)] = pack(v.to_numpy(dtype=np.float64))
        else:
            cols[str(c)] = [str(x) for x in v]
    return {"columns": [str(c) for c in df.columns], "data": cols}


def _labels(x: Any) -> Any:
    return None if x is None else np.asarray(_strs(x), dtype=object)


def _given(**kwargs: Any) -> dict[str, Any]:
    """The keyword arguments R set; None (an R ``NULL``) leaves the core's default."""
    return {k: v for k, v in kwargs.items() if v is not None}


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _axis(axis: Any) -> Any:
    """An axis name, or a direction packed by R."""
    return unpack(axis).ravel().tolist() if isinstance(axis, dict) else axis


def spatial_dominant_genes(
    values: dict,
    genes: Any,
    coords: Any = None,
    segments: Any = None,
    axis: Any = None,
    n_segments: Any = None,
    alternative: Any = None,
    min_cells: Any = None,
) -> dict:
    """:func:`stemmap.analysis.spatial_dominant_genes` on a packed cells × genes matrix."""
    from .analysis import spatial_dominant_genes as sdg

    X = np.asarray(unpack(values), dtype=np.float64)
    xy = None if coords is None else np.asarray(unpack(coords), dtype=np.float64)
    res = sdg(
        X,
        xy,
        segments=_labels(segments),
        genes=_strs(genes),
        **_given(
            axis=_axis(axis),
            n_segments=_int(n_segments),
            alternative=alternative,
            min_cells=_int(min_cells),
        ),
    )
    res["segment"] = res["segment"].astype(str)
    return _table(res)


def axis_score(coords: dict, axis: Any) -> dict:
    """:func:`stemmap.analysis.axis_score` of packed (cells × 2) coordinates."""
    from .analysis import axis_score as score

    return pack(score(np.asarray(unpack(coords), dtype=np.float64), _axis(axis)))


def axis_genes(
    expr: dict, genes: Any, score: dict, groups: Any = None, min_cells: Any = None
) -> dict:
    """:func:`stemmap.analysis.axis_genes` on a packed cells × genes matrix."""
    from .analysis import axis_genes as ag

    res = ag(
        np.asarray(unpack(expr), dtype=np.float64),
        unpack(score).ravel(),
        groups=_labels(groups),
        genes=_strs(genes),
        **_given(min_cells=_int(min_cells)),
    )
    res["group"] = res["group"].astype(str)
    return _table(res)


def expression_trends(
    expr: dict,
    genes: Any,
    score: dict,
    groups: Any = None,
    n_knots: Any = None,
    degree: Any = None,
    n_points: Any = None,
    min_cells: Any = None,
) -> dict:
    """:func:`stemmap.analysis.expression_trends` on a packed cells × genes matrix."""
    import pandas as pd

    from .analysis import expression_trends as et

    df = pd.DataFrame(np.asarray(unpack(expr), dtype=np.float64), columns=_strs(genes))
    res = et(
        df,
        unpack(score).ravel(),
        groups=_labels(groups),
        **_given(
            n_knots=_int(n_knots),
            degree=_int(degree),
            n_points=_int(n_points),
            min_cells=_int(min_cells),
        ),
    )
    res["group"] = res["group"].astype(str)
    return _table(res)


def neighbourhood_enrichment(
    coords: dict, labels: Any, n_neighbors: Any = None, n_perms: Any = None, seed: Any = None
) -> dict:
    """:func:`stemmap.analysis.neighbourhood_enrichment`; z-scores and counts packed."""
    from .analysis import neighbourhood_enrichment as ne

    res = ne(
        np.asarray(unpack(coords), dtype=np.float64),
        _labels(labels),
        **_given(n_neighbors=_int(n_neighbors), n_perms=_int(n_perms), seed=_int(seed)),
    )
    return {
        "zscore": pack(res.zscore.to_numpy(dtype=np.float64)),
        "count": pack(res.count.to_numpy(dtype=np.float64)),
        "labels": [str(v) for v in res.zscore.index],
    }


def estimate_resources(
    n_cells: int,
    n_spots: int,
    n_genes: int,
    hidden: Any = None,
    device: Any = None,
    cell_batch_size: Any = None,
    spot_batch_size: Any = None,
    epochs: Any = None,
) -> dict:
    """:func:`stemmap.estimate_resources` for R: builtins in, builtins out; a MemoryError
    becomes ``{"error": message}`` so that R can show it as its own error. None (an R
    ``NULL``) leaves an argument to the core's default."""
    import stemmap

    kw: dict[str, Any] = {}
    if hidden is not None:
        kw["hidden"] = tuple(int(h) for h in _strs_or_nums(hidden))
    if device is not None:
        kw["device"] = str(device)
    if epochs is not None:
        kw["epochs"] = int(epochs)
    try:
        out = stemmap.estimate_resources(
            int(n_cells),
            int(n_spots),
            int(n_genes),
            cell_batch_size=None if cell_batch_size is None else int(cell_batch_size),
            spot_batch_size=None if spot_batch_size is None else int(spot_batch_size),
            **kw,
        )
    except MemoryError as e:
        return {"error": str(e)}
    return {
        k: (None if v is None else (v if isinstance(v, str) else float(v))) for k, v in out.items()
    }


#: bridge functions R may call through :func:`call` besides those in ``__all__``
_EXTRA_ENTRY_POINTS = {
    "attribution",
    "spatial_dominant_genes",
    "axis_score",
    "axis_genes",
    "expression_trends",
    "neighbourhood_enrichment",
    "estimate_resources",
    "model_bytes",
}
