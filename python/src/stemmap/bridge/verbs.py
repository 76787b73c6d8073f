"""The verbs R calls to train and map: one function per verb, builtins in and out.

Each verb is registered with :func:`stemmap.bridge._wire.register` and called from R through
:func:`stemmap.bridge.call` (``R/bridge.R``, one R worker per verb). There are no
defaults here: an argument R leaves ``NULL`` arrives as None and is not passed on, so
the core's own defaults (:mod:`stemmap._defaults`) apply.

Orientation: R objects keep genes in rows and cells/spots in columns; AnnData keeps
observations in rows. :func:`run_stem` transposes on the way in (a view, not a copy).
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from typing import Any

import numpy as np

from .. import _layout
from ._wire import history, pack, register, strs, unpack

__all__ = [
    "info",
    "defaults",
    "roundtrip",
    "gene_overlaps",
    "shared_genes",
    "run_stem",
    "estimate_resources",
]


@register
def info() -> dict:
    """Versions and device of this Python, as builtins.

    Returns
    -------
    dict
        ``python`` (executable), ``python_version``, ``torch_version``, ``device``
        (``"cuda"``, ``"mps"`` or ``"cpu"``), ``device_name``, ``stemmap_version``,
        ``stemmap_path``, ``numpy_version``, ``anndata_version``, ``torch_deepbind``.
    """
    out: dict[str, Any] = {
        "python": sys.executable,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        # set by the R launcher when it imported torch with RTLD_DEEPBIND (see R/bridge.R)
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
    from importlib.metadata import PackageNotFoundError, version

    try:
        out["anndata_version"] = version("anndata")
    except PackageNotFoundError:
        out["anndata_version"] = "not installed"
    import stemmap

    out["stemmap_version"] = str(getattr(stemmap, "__version__", "unknown"))
    out["stemmap_path"] = str(getattr(stemmap, "__file__", ""))
    return out


@register
def defaults() -> dict:
    """Return the core's table of defaults and presets (:mod:`stemmap._defaults`), for R.

    Returns
    -------
    dict
        :func:`stemmap._defaults.table` plus ``choices`` (``readout``, ``preset`` and
        ``gene_match``): what R's arguments that default to ``NULL`` mean, and the
        choices R offers.
    """
    from .._data import GENE_MATCH
    from .._defaults import PRESETS, table
    from ..mapping import READOUTS

    out = table()
    out["choices"] = {
        "readout": list(READOUTS),
        "preset": list(PRESETS),
        "gene_match": list(GENE_MATCH),
    }
    return out


@register
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
    rn, cn = strs(rownames), strs(colnames)
    df = pd.DataFrame(dense, index=rn or None, columns=cn or None)
    return {
        "x": pack(arr) if kind != "ndarray" else pack(df.to_numpy()),
        "rownames": [str(v) for v in df.index] if rn else None,
        "colnames": [str(v) for v in df.columns] if cn else None,
        "shape": [int(s) for s in arr.shape],
        "sum": float(dense.sum()),
        "type": kind,
    }


@register
def gene_overlaps(sc_genes: Any, st_genes: Any) -> dict:
    """Genes SC and every ST slice share under each rule (:func:`stemmap._data.gene_overlaps`).

    Returns
    -------
    dict
        ``{rule: number of shared genes}``.
    """
    from .._data import gene_overlaps as overlaps

    return {k: int(v) for k, v in overlaps(strs(sc_genes), [strs(g) for g in st_genes]).items()}


@register
def shared_genes(sc_genes: Any, st_genes: Any) -> dict:
    """Which rows R sends: the genes SC and ST share, so the rest never crosses the bridge.

    A gene of ``sc`` is kept when, under some rule of :data:`stemmap._data.GENE_MATCH`, its
    key is a gene key of some slice; a gene of a slice when its key is one of ``sc``. The
    core (:func:`stemmap._data.prepare`) then matches genes on these rows exactly as it
    would on all of them (every rule's matches, ambiguous names and per-slice overlaps
    are kept), so choosing genes stays the core's decision.

    Parameters
    ----------
    sc_genes
        Gene names of ``sc``.
    st_genes
        Gene names of each ST slice.

    Returns
    -------
    dict
        ``sc`` (1-based row positions to send, in order), ``st`` (one such list per
        slice) and ``overlaps`` (:func:`gene_overlaps`: genes shared under each rule).
    """
    from .._data import GENE_MATCH, gene_key

    sc = strs(sc_genes)
    st = [strs(g) for g in st_genes]
    sc_keep = np.zeros(len(sc), dtype=bool)
    st_keep = [np.zeros(len(g), dtype=bool) for g in st]
    for rule in GENE_MATCH:
        sc_keys = [gene_key(g, rule) for g in sc]
        sc_set = set(sc_keys)
        for names, keep in zip(st, st_keep):
            keys = [gene_key(g, rule) for g in names]
            keep |= np.fromiter((k in sc_set for k in keys), dtype=bool, count=len(keys))
            own = set(keys)
            sc_keep |= np.fromiter((k in own for k in sc_keys), dtype=bool, count=len(sc))
    return {
        "sc": [int(i) + 1 for i in np.flatnonzero(sc_keep)],
        "st": [[int(i) + 1 for i in np.flatnonzero(k)] for k in st_keep],
        "overlaps": gene_overlaps(sc, st),
    }


def _anndata(x: dict, genes: Any, obs_names: Any, coords: Any = None):
    """AnnData (observations × genes) from an R genes × observations matrix (no copy)."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    mat = unpack(x)
    mat = mat.T.tocsr() if sp.issparse(mat) else np.ascontiguousarray(np.asarray(mat).T)
    obs = pd.DataFrame(index=pd.Index(strs(obs_names), name=None))
    var = pd.DataFrame(index=pd.Index(strs(genes), name=None))
    adata = ad.AnnData(X=mat, obs=obs, var=var)
    if coords is not None:
        adata.obsm["spatial"] = np.asarray(unpack(coords), dtype=np.float64)
    return adata


def _core_params(params: Any) -> tuple[dict, dict, dict, int, bool, bool]:
    """R's params split into STEM(), train() and mapping() arguments (R types → Python).

    The split and the one validation are the resolver's (:mod:`stemmap._resolve`), before
    any data is read: a bad value or choice (``preset``, ``readout``...) fails first. No
    defaults here: what R left NULL is not passed on (``adjacency_k`` is resolved).
    """
    from .._resolve import resolve_run, split

    params = dict(params or {})
    progress = bool(params.pop("progress", False))
    keep_model = bool(params.pop("keep_model", False))
    parts = split(params)  # None (R's NULL) left out
    model_kw = {**parts["model"], **parts["other"]}
    if "hidden" in model_kw:
        h = model_kw["hidden"]
        model_kw["hidden"] = tuple(h) if isinstance(h, (list, tuple)) else (h,)
    if "genes" in model_kw:
        model_kw["genes"] = strs(model_kw["genes"])
    if isinstance(model_kw.get("sigma"), list) and len(model_kw["sigma"]) == 1:
        model_kw["sigma"] = model_kw["sigma"][0]
    given = {k: v for g in ("model", "train", "mapping", "graph") for k, v in parts[g].items()}
    run = resolve_run(given.pop("preset", None), **given)
    adjacency_k = int(run["graph"]["adjacency_k"])
    return model_kw, parts["train"], parts["mapping"], adjacency_k, progress, keep_model


@register
def run_stem(
    sc: dict,
    st: list,
    params: dict,
    labels: Any,
    transfer: Any,
    mapping: str,
    mapping_k: int,
) -> dict:
    """Train STEM on matrices sent by R and return every result as builtins.

    Parameters
    ----------
    sc
        ``{"x": packed genes × cells, "genes": [...], "cells": [...]}`` (R sends the rows
        :func:`shared_genes` chose).
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
    mapping_k
        Spots per cell kept by ``"topk"``.

    Returns
    -------
    dict
        ``cells``/``spots`` (names kept by the core: cells or spots that are all-zero on
        the shared genes are dropped), ``sc_embedding`` (M×d), ``st_embedding`` (N×d),
        ``genes`` (the genes the model was trained on, SC names in its order),
        ``coords`` (M×2; with several slices, in the frame of each cell's best slice),
        ``best_spot`` (names), ``best_slice``, ``confidence``, ``sc_to_st`` and ``placement`` (C and C₁, as ``mapping``),
        ``uncertainty`` (M; the radius of each cell's 90 % region,
        :meth:`stemmap.StemMapping.placement_uncertainty`; in its best slice's frame),
        ``deconvolution`` ({name: {"x": packed N×T, "types"}}), ``transfer``
        ({name: packed M×F}), ``history`` ({term: packed}), ``settings``,
        ``adjacency`` (sparse M×M SC–SC kNN graph, when ``adjacency_k`` > 0); with
        ``params["keep_model"]`` also ``model`` (the :meth:`stemmap.STEM.save` file as bytes).
    """
    import stemmap

    from .files import model_bytes

    # split and resolved (caller → preset → table), every value checked before training
    params, train_kw, map_kw, adjacency_k, progress, keep_model = _core_params(params)
    with _verbosity(stemmap, progress):
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
        out = _results(model, m, map_kw, adjacency_k, mapping, mapping_k)
        out["deconvolution"] = _deconvolutions(m, labels, sc["cells"])
        out["transfer"] = _transfers(m, transfer, [n for s in st for n in strs(s["spots"])])
        if keep_model:
            out["model"] = model_bytes(model)
        return out


def _results(model: Any, m: Any, map_kw: dict, adjacency_k: int, mapping: str, k: int) -> dict:
    best_slice = np.asarray(m.best_slice, dtype=object)
    if len(m.slices) == 1:
        coords = np.asarray(m.coords, dtype=np.float64)
        radius = m.placement_uncertainty()  # the 90 % region's radius
    else:
        coords, radius = np.full((m.n_cells, 2), np.nan), np.full(m.n_cells, np.nan)
        for name in m.slices:
            sel = best_slice == name
            if sel.any():
                one = model.mapping(slice=name, **map_kw)
                coords[sel] = np.asarray(one.coords)[sel]
                radius[sel] = one.placement_uncertainty()[sel]
    out: dict[str, Any] = {
        "cells": list(m.sc_names),
        "spots": list(m.spot_names),
        "spot_slice": [str(v) for v in m.spot_slice],
        "genes": [str(g) for g in model.data.genes],  # what R's analyses normalise
        "sc_embedding": pack(np.asarray(m.sc_embedding)),
        "st_embedding": pack(np.asarray(m.st_embedding)),
        "coords": pack(coords),
        "best_spot": [str(v) for v in m.best_spot_name],
        "best_slice": [str(v) for v in best_slice],
        "confidence": pack(np.asarray(m.confidence, dtype=np.float64)),
        "uncertainty": pack(np.asarray(radius, dtype=np.float64)),
        "history": history(getattr(model, "history", None)),
        "settings": _layout.to_builtins(m.settings),  # the model's and the mapping's
    }
    if adjacency_k > 0 and m.n_cells > 1:
        out["adjacency"] = pack(m.sc_adjacency(min(adjacency_k, m.n_cells - 1), weighted=True))
    # the mapping C (the rounds' mean) and the placement C₁ that coords, best spot and
    # confidence read (the same matrix with one round)
    if mapping == "dense":
        out["sc_to_st"] = pack(np.asarray(m.sc_to_st, dtype=np.float64))
        out["placement"] = pack(np.asarray(m.placement, dtype=np.float64))
    elif mapping == "topk":
        kk = int(min(k, m.n_spots))
        out["sc_to_st"] = pack(m.topk_mapping(kk))
        out["placement"] = pack(m.topk_mapping(kk, placement=True))
    return out


def _deconvolutions(m: Any, labels: Any, cells: Any) -> dict:
    import pandas as pd

    out = {}
    for name, lab in (labels or {}).items():
        df = m.deconvolve(pd.Series(_label_values(lab), index=strs(cells)))
        out[str(name)] = {
            "x": pack(df.to_numpy(dtype=np.float64)),
            "types": [str(c) for c in df.columns],
        }
    return out


def _transfers(m: Any, transfer: Any, all_spots: list[str]) -> dict:
    import pandas as pd

    out = {}
    for name, vals in (transfer or {}).items():
        v = np.asarray(unpack(vals), dtype=np.float64)
        v = v if v.ndim > 1 else v[:, None]
        res = m.transfer(pd.DataFrame(v, index=all_spots))
        out[str(name)] = pack(np.asarray(res, dtype=np.float64))
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
    """Labels from R: None stays missing; numbers stay numbers, else text.

    Numbers sent as numbers stay numbers so that :func:`stemmap._validate.check_labels`
    can refuse continuous values.
    """
    vals = list(x) if isinstance(x, (list, tuple)) else [x]
    nums = [v for v in vals if v is not None]
    if nums and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in nums):
        if any(isinstance(v, float) for v in nums):
            return np.array([np.nan if v is None else float(v) for v in vals])
    return np.array([None if v is None else str(v) for v in vals], dtype=object)


@register
def estimate_resources(n_cells: int, n_spots: int, n_genes: int, **options: Any) -> dict:
    """:func:`stemmap.estimate_resources` for R: builtins in, builtins out.

    ``options`` (``hidden``, ``device``, ``cell_batch_size``, ``spot_batch_size``,
    ``epochs``) left None (an R ``NULL``) take the core's defaults. A MemoryError becomes
    ``{"error": message}`` so that R can show it as its own error.

    Returns
    -------
    dict
        The estimate, numbers as floats.
    """
    import stemmap

    from ._wire import given

    kw = given(**options)
    if "hidden" in kw:
        h = kw["hidden"]
        kw["hidden"] = tuple(int(v) for v in (h if isinstance(h, (list, tuple)) else [h]))
    for k in ("cell_batch_size", "spot_batch_size", "epochs"):
        if k in kw:
            kw[k] = int(kw[k])
    try:
        out = stemmap.estimate_resources(int(n_cells), int(n_spots), int(n_genes), **kw)
    except MemoryError as e:
        return {"error": str(e)}
    return {
        k: (None if v is None else (v if isinstance(v, str) else float(v))) for k, v in out.items()
    }
