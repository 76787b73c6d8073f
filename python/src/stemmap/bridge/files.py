"""Verbs that read and write files for R: ``.h5ad`` mappings, saved models, example data.

The ``.h5ad`` layout is the one of :meth:`stemmap.StemMapping.to_anndata`, named in
:mod:`stemmap._layout`; files of stemmap 0.1's ``writeSTEMh5ad()`` are read too.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

from .. import _layout
from ._wire import history, pack, register, strs, unpack

__all__ = ["write_h5ad", "read_h5ad", "model_bytes", "load_model", "example"]


@register
def write_h5ad(path: str, result: dict, base: Any = None) -> str:
    """Write a mapping sent by R to ``.h5ad`` in the layout of :mod:`stemmap._layout`.

    Cells are the observations (no genes: ``X`` is empty, unless ``base``); the mapping is
    ``obsm["stem_mapping"]`` (cells × spots), the spots' names, slices and embedding
    ``uns["stem_spots"]``, the loss history ``uns["stem_history"]``.

    Parameters
    ----------
    path
        File to write.
    result
        ``cells``, ``spots``, ``spot_slice``, ``mapping`` (packed or None),
        ``embedding``, ``coords``, ``spot_embedding``, ``best_spot``, ``best_slice``
        (optional), ``confidence``, ``settings``, ``history``.
    base
        An ``.h5ad`` file of the same cells to write the results into, as ``to_anndata``
        writes into the caller's AnnData (R's ``writeSTEMh5ad(engine = "zellkonverter")``:
        the object as zellkonverter's ``writeH5AD()`` wrote it, expression and metadata
        included); None: an AnnData of the results only.

    Returns
    -------
    str
        ``path``.
    """
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    from .._validate import check_path

    check_path(path)
    key = _layout.key
    cells = strs(result["cells"])
    obs = pd.DataFrame(index=pd.Index(cells))
    obs[key("best_spot")] = pd.Categorical(
        [None if v is None or v == "" else str(v) for v in result.get("best_spot") or []]
    )
    obs[key("confidence")] = unpack(result["confidence"]).ravel().astype(np.float32)
    if result.get("best_slice") is not None:
        obs[key("best_slice")] = pd.Categorical(strs(result["best_slice"]))
    if base is None:
        adata = ad.AnnData(obs=obs)
    else:
        check_path(base, "base")
        adata = ad.read_h5ad(base)
        if [str(c) for c in adata.obs_names] != cells:
            raise ValueError("`base` must hold the mapped cells, in their order.")
        for col in obs.columns:
            adata.obs[col] = obs[col].values  # (categoricals stay categorical)
    adata.obsm[key("embedding")] = np.asarray(unpack(result["embedding"]), dtype=np.float32)
    adata.obsm[key("coords")] = np.asarray(unpack(result["coords"]), dtype=np.float64)
    if result.get("mapping") is not None:
        mat = unpack(result["mapping"])
        adata.obsm[key("mapping")] = sp.csr_matrix(mat) if sp.issparse(mat) else mat
    adata.uns[key("settings")] = _layout.settings_to_uns(result.get("settings") or {})
    adata.uns[key("spots")] = {
        "names": np.asarray(strs(result["spots"]), dtype=object),
        "slice": np.asarray(strs(result.get("spot_slice")), dtype=object),
        "embedding": np.asarray(unpack(result["spot_embedding"])),
    }
    hist = result.get("history") or {}
    if hist:
        adata.uns[key("history")] = pd.DataFrame({k: unpack(v).ravel() for k, v in hist.items()})
    adata.write_h5ad(path)
    return path


@register
def read_h5ad(path: str) -> dict:
    """Read a mapping from ``.h5ad`` into builtins for R.

    Reads the layout of :mod:`stemmap._layout` (files of R's ``writeSTEMh5ad()`` and of
    :meth:`stemmap.StemMapping.to_anndata`) and stemmap 0.1's (:data:`_layout.LEGACY_01`).

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    dict
        ``cells``, ``spots``, ``spot_slice``, ``mapping``, ``embedding``,
        ``spot_embedding``, ``coords``, ``best_spot``, ``best_slice``, ``confidence``,
        ``settings``, ``history``, ``layout`` (``"0.2"`` or ``"0.1"``); what a file lacks
        is None.
    """
    import anndata as ad

    adata = ad.read_h5ad(path)
    if _layout.obsm_embedding in adata.obsm:
        return _read_current(adata)
    if _layout.LEGACY_01["embedding"][1] in adata.obsm:
        return _read_01(adata)
    raise ValueError(
        f"`file` {path!r} holds no STEM mapping: no obsm[{_layout.obsm_embedding!r}] "
        f"(written by writeSTEMh5ad() or to_anndata()) nor obsm['STEM'] (stemmap 0.1)."
    )


def _col(adata: Any, name: str) -> Any:
    if name not in adata.obs:
        return None
    return [None if v is None or v != v else str(v) for v in adata.obs[name].astype(object)]


def _packed(x: Any) -> Any:
    import scipy.sparse as sp

    if x is None:
        return None
    return pack(sp.csc_matrix(x) if sp.issparse(x) else np.asarray(x))


def _read_current(adata: Any) -> dict:
    key = _layout.key
    spots = adata.uns.get(key("spots"), {})
    conf = adata.obs.get(key("confidence"))
    hist = adata.uns.get(key("history"))
    return {
        "layout": "0.2",
        "cells": [str(c) for c in adata.obs_names],
        "spots": [str(s) for s in spots.get("names", [])] or None,
        "spot_slice": [str(s) for s in spots.get("slice", [])] or None,
        "mapping": _packed(adata.obsm.get(key("mapping"))),
        "embedding": _packed(adata.obsm[key("embedding")]),
        "spot_embedding": _packed(spots.get("embedding")),
        "coords": _packed(adata.obsm.get(key("coords"))),
        "best_spot": _col(adata, key("best_spot")),
        "best_slice": _col(adata, key("best_slice")),
        "confidence": None if conf is None else pack(conf.to_numpy(dtype=np.float64)),
        "settings": _layout.settings_from_uns(adata.uns.get(key("settings"), {})),
        "history": history(hist) if hist is not None else {},
    }


def _read_01(adata: Any) -> dict:
    import json

    old = _layout.LEGACY_01
    stem_uns = adata.uns.get(old["settings"][1], {})
    settings = stem_uns.get("settings", "{}")
    hist = stem_uns.get("history")
    return {
        "layout": "0.1",
        "cells": [str(c) for c in adata.obs_names],
        "spots": [str(s) for s in adata.var_names],
        "spot_slice": [str(v) for v in adata.var.get(old["spot_slice"][1], [""] * adata.n_vars)],
        "mapping": _packed(adata.X),
        "embedding": _packed(adata.obsm[old["embedding"][1]]),
        "spot_embedding": _packed(adata.varm[old["spot_embedding"][1]]),
        "coords": _packed(adata.obsm[old["coords"][1]]),
        "best_spot": _col(adata, old["best_spot"][1]),
        "best_slice": None,
        "confidence": pack(adata.obs[old["confidence"][1]].to_numpy(dtype=np.float64)),
        "settings": json.loads(settings) if isinstance(settings, str) else settings,
        "history": history(hist) if hist is not None else {},
    }


@register
def model_bytes(model: Any) -> bytearray:
    """Return a trained STEM as the bytes of its :meth:`stemmap.STEM.save` file (for R to keep).

    Returns
    -------
    bytearray
        The file's bytes.
    """
    fd, path = tempfile.mkstemp(suffix=".stem")
    os.close(fd)
    try:
        model.save(path)
        with open(path, "rb") as fh:
            return bytearray(fh.read())
    finally:
        os.unlink(path)


def load_model(blob: Any, device: Any) -> Any:
    """Load a STEM from the bytes written by :func:`model_bytes`.

    ``device`` None: the default of :meth:`stemmap.STEM.load`.

    Returns
    -------
    stemmap.STEM
        The model.
    """
    import stemmap

    fd, path = tempfile.mkstemp(suffix=".stem")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(bytes(blob))
        return stemmap.STEM.load(path, **({} if device is None else {"device": device}))
    finally:
        os.unlink(path)


@register
def example(path: Any, name: str, source: str, grid: Any, n_cells: Any, seed: int) -> dict:
    """Semi-simulated example data for R's ``stemExampleData()``.

    Returns
    -------
    dict
        Counts (packed, observations × genes), names, labels, true positions, spot
        coordinates, proportions and the simulation's settings.
    """
    import stemmap

    tissue, src = None, None
    if source in ("auto", "embryo"):
        try:
            if path:
                import anndata as ad

                tissue = ad.read_h5ad(path)
            else:
                tissue = stemmap.datasets.load_shared(name)
            src = name
        except FileNotFoundError:
            if source == "embryo":
                raise
    if tissue is None:
        tissue = stemmap.datasets.synthetic_tissue(n_cells=3000, n_genes=80, seed=int(seed))
        src = "generated"
    if grid is None:
        grid = (30, 40) if src != "generated" else (20, 12)
    grid = tuple(int(g) for g in grid)
    sc, st = stemmap.simulate.pseudo_spots(tissue, grid=grid)
    if n_cells is not None and int(n_cells) < sc.n_obs:
        rng = np.random.default_rng(int(seed))
        idx = np.sort(rng.choice(sc.n_obs, int(n_cells), replace=False))
        sc = sc[idx].copy()
    props = st.obsm["proportions"]
    spot = sc.obs["spot"].astype(object).where(sc.obs["spot"].notna(), "")
    return {
        "sc_x": pack(sc.X),
        "st_x": pack(st.X),
        "genes": [str(g) for g in sc.var_names],
        "cells": [str(c) for c in sc.obs_names],
        "spots": [str(s) for s in st.obs_names],
        "celltype": [str(v) for v in sc.obs["celltype"]],
        "cell_spot": [str(v) for v in spot],
        "true": pack(np.asarray(sc.obsm["spatial_true"], dtype=float)[:, :2]),
        "spot_xy": pack(np.asarray(st.obsm["spatial"], dtype=float)[:, :2]),
        "n_cells": pack(st.obs["n_cells"].to_numpy()),
        "props": pack(props.to_numpy(dtype=float)),
        "types": [str(t) for t in props.columns],
        "step": float(st.uns["simulation"]["step"]),
        "grid": list(grid),
        "source": src,
        "n_tissue": int(tissue.n_obs),
    }
