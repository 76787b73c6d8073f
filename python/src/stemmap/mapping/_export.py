"""AnnData export of a mapping (key names and the settings' ``uns`` form: :mod:`stemmap._layout`).

:func:`to_anndata` is the method :meth:`stemmap.StemMapping.to_anndata` (bound there); the
AnnData key names it writes are the ones documented there.
"""

from __future__ import annotations

import copy as copy_module
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _layout as layout
from .._validate import StemInputWarning, check_anndata
from ._transfer import deconvolve_as

if TYPE_CHECKING:
    from ._view import MappingView


def to_anndata(
    self: MappingView, sc: Any, st: Any = None, *, copy: bool = True, label_key: str | None = None
):
    """Write the results into AnnData objects.

    SC (``sc``): ``obsm["X_stem"]`` embedding, ``obsm["stem_spatial"]`` pseudo-coordinates
    (single slice), ``obs["stem_best_spot"]``, ``obs["stem_best_slice"]`` (several slices),
    ``obs["stem_confidence"]``, ``uns["stem"]`` settings, and the scanpy/squidpy
    ``uns["spatial"]`` (images, scale factors) of ``st`` where ``sc`` has none: the
    pseudo-coordinates are in the units of ``st.obsm["spatial"]``, so
    ``sc.pl.spatial(sc_out, basis="stem_spatial")`` draws the cells on the tissue image. ST
    (``st``, any slices, spots matched by name; everything else of ``st``, ``uns["spatial"]``
    included, as it was): ``obsm["X_stem"]`` and, with ``label_key``,
    ``obsm["stem_deconvolution"]`` (a DataFrame of proportions of ``sc.obs[label_key]``).
    Coordinates, best spots and
    confidences read the placement (:attr:`placement`), the deconvolution Ĉ
    (:attr:`st_to_sc`). Cells dropped before training
    get NaN.

    Parameters
    ----------
    sc, st
        The AnnData objects the model was trained on (``st`` optional).
    copy
        Return modified copies (default) instead of writing in place.
    label_key
        ``sc.obs`` column to deconvolve spots by.

    Returns
    -------
    AnnData or tuple of AnnData
        ``sc`` (and ``st`` when given).
    """
    check_anndata(sc, "sc")
    pos = pd.Index(self.sc_names).get_indexer(sc.obs_names.map(str))
    ok = pos >= 0
    _check_names_known(sc.obs_names, ok, self.dropped.get("sc", []), "sc", "cells")
    if st is not None:
        check_anndata(st, "st")
        sok = pd.Index(self.spot_names).get_indexer(st.obs_names.map(str)) >= 0
        _check_names_known(st.obs_names, sok, self.dropped.get("st", []), "st", "spots")
    if label_key is not None and label_key not in sc.obs:
        raise KeyError(
            f"`label_key={label_key!r}` is not a column of `sc.obs` "
            f"(available: {list(sc.obs.columns)})."
        )
    sc = sc.copy() if copy else sc
    h = self.sc_embedding.shape[1]
    emb = np.full((sc.n_obs, h), np.nan, dtype=np.float32)
    emb[ok] = self.sc_embedding[pos[ok]]
    sc.obsm[layout.obsm_embedding] = emb
    best = np.full(sc.n_obs, None, dtype=object)
    best[ok] = self.best_spot_name[pos[ok]]
    sc.obs[layout.obs_best_spot] = pd.Categorical(best)
    conf = np.full(sc.n_obs, np.nan, dtype=np.float32)
    conf[ok] = self.confidence[pos[ok]]
    sc.obs[layout.obs_confidence] = conf
    if len(self.slices) == 1:
        xy = np.full((sc.n_obs, 2), np.nan)
        xy[ok] = self.coords[pos[ok]]
        sc.obsm[layout.obsm_coords] = xy
    else:
        bs = np.full(sc.n_obs, None, dtype=object)
        bs[ok] = self.best_slice[pos[ok]]
        sc.obs[layout.obs_best_slice] = pd.Categorical(bs)
    sc.uns[layout.uns_settings] = layout.settings_to_uns(self.settings)
    if st is None:
        return sc
    if "spatial" in st.uns and "spatial" not in sc.uns:
        sc.uns["spatial"] = copy_module.deepcopy(st.uns["spatial"])
    st = st.copy() if copy else st
    spos = pd.Index(self.spot_names).get_indexer(st.obs_names.map(str))
    sok = spos >= 0
    semb = np.full((st.n_obs, h), np.nan, dtype=np.float32)
    semb[sok] = self.st_embedding[spos[sok]]
    st.obsm[layout.obsm_embedding] = semb
    if label_key is not None:
        labels = sc.obs[label_key].iloc[np.flatnonzero(ok)]
        labels.index = np.asarray(self.sc_names)[pos[ok]]
        dec = deconvolve_as(self, labels, f"label_key={label_key!r}")
        st.obsm["stem_deconvolution"] = dec.reindex(st.obs_names.map(str)).set_axis(st.obs_names)
    st.uns[layout.uns_settings] = layout.settings_to_uns(self.settings)
    return sc, st


def _check_names_known(
    names: Any, ok: np.ndarray, dropped: Sequence[str], arg: str, what: str
) -> None:
    """Check the names of ``arg`` the mapping neither mapped nor dropped.

    An error when none of ``names`` is known, else a warning counting the unknown ones
    (they get NaN).
    """
    unknown = ~ok & ~pd.Index(names.map(str)).isin(list(dropped))
    if not unknown.any():
        return
    eg = [str(n) for n in np.asarray(names)[unknown][:3]]
    if not ok.any():
        raise ValueError(
            f"none of the {len(names)} {what} of `{arg}` are in the mapping (e.g. {eg}); "
            f"pass the AnnData the model was trained on (matched by `{arg}.obs_names`)."
        )
    warnings.warn(
        f"{int(unknown.sum())} of the {len(names)} {what} of `{arg}` are not in the mapping "
        f"(e.g. {eg}); they get NaN.",
        StemInputWarning,
        stacklevel=4,
    )
