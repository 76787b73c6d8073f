"""AnnData in the scanpy/squidpy Visium layout: ``obsm["spatial"]`` in full-resolution pixels,
``uns["spatial"][library_id]`` with ``images`` and ``scalefactors`` (issue #28)."""

from __future__ import annotations

import copy
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import stemmap
from stemmap._validate import StemInputWarning

PX = 180.0  # full-resolution pixels per unit of the toy grid (Visium: ~100 px per spot pitch)


def _library(seed: int) -> dict:
    """One library's ``uns["spatial"]`` entry as ``scanpy.read_visium`` writes it."""
    r = np.random.default_rng(seed)
    return {
        "images": {
            "hires": r.random((40, 40, 3), dtype=np.float32),
            "lowres": r.random((12, 12, 3), dtype=np.float32),
        },
        "scalefactors": {
            "tissue_hires_scalef": 0.05,
            "tissue_lowres_scalef": 0.015,
            "spot_diameter_fullres": 90.0,
            "fiducial_diameter_fullres": 140.0,
        },
        "metadata": {"chemistry_description": "toy", "software_version": "toy"},
    }


def _visium(st: ad.AnnData, library_id: str, offset: float, seed: int) -> ad.AnnData:
    """``st`` as one Visium library: pixel coordinates, its images and scale factors."""
    out = st.copy()
    out.obs_names = [f"{library_id}_{n}" for n in st.obs_names]
    out.obsm["spatial"] = np.asarray(st.obsm["spatial"]) * PX + offset
    out.obs["library_id"] = pd.Categorical([library_id] * out.n_obs)
    out.uns["spatial"] = {library_id: _library(seed)}
    return out


@pytest.fixture(scope="module")
def visium(toy):
    sc, st = toy
    return sc, _visium(st, "A1", 2000.0, 0)


@pytest.fixture(scope="module")
def two_libraries(toy):
    """One AnnData of two libraries (``anndata.concat(..., uns_merge="unique")``)."""
    sc, st = toy
    a = _visium(st, "A1", 2000.0, 0)
    b = _visium(st, "B1", 9000.0, 1)
    both = ad.concat([a, b], merge="same", uns_merge="unique")
    both.obs["library_id"] = pd.Categorical(list(a.obs["library_id"]) + list(b.obs["library_id"]))
    return sc, both


def _same_uns(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for lib in a:
        for k, v in a[lib]["images"].items():
            np.testing.assert_array_equal(v, b[lib]["images"][k])
        assert a[lib]["scalefactors"] == b[lib]["scalefactors"]


def _fit(sc, st, **kw):
    model = stemmap.STEM(sc, st, seed=0, hidden=(32, 16), **kw)
    model.train(epochs=3)
    return model


def test_reads_obsm_spatial_pixels_and_keeps_uns_spatial(visium):
    sc, st = visium
    before = copy.deepcopy(st.uns["spatial"])
    model = _fit(sc, st)
    assert [s.name for s in model.data.slices] == ["st"]
    np.testing.assert_array_equal(model.data.slices[0].coords, st.obsm["spatial"])
    m = model.mapping()
    sc_out, st_out = m.to_anndata(sc, st, label_key="celltype")
    # the ST side: everything of st as it was, the results added
    _same_uns(st_out.uns["spatial"], before)
    np.testing.assert_array_equal(st_out.obsm["spatial"], st.obsm["spatial"])
    assert st_out.obsm["X_stem"].shape == (st.n_obs, 16)
    assert "stem_deconvolution" in st_out.obsm
    # the SC side: pseudo-coordinates in the pixels of obsm["spatial"], with the images and
    # scale factors sc.pl.spatial(sc_out, basis="stem_spatial") needs
    _same_uns(sc_out.uns["spatial"], before)
    xy = sc_out.obsm["stem_spatial"]
    ok = ~np.isnan(xy).any(axis=1)
    lo, hi = st.obsm["spatial"].min(axis=0), st.obsm["spatial"].max(axis=0)
    assert ok.sum() > 0
    assert np.all((xy[ok] >= lo - 1e-6) & (xy[ok] <= hi + 1e-6))
    # nothing of the caller's objects changed
    _same_uns(st.uns["spatial"], before)
    assert "spatial" not in sc.uns
    assert "X_stem" not in st.obsm


def test_sc_uns_spatial_of_its_own_is_kept(visium):
    sc, st = visium
    sc = sc.copy()
    sc.uns["spatial"] = {"mine": _library(5)}
    sc_out, _ = _fit(sc, st).mapping().to_anndata(sc, st)
    assert list(sc_out.uns["spatial"]) == ["mine"]


def test_several_libraries_are_slices(two_libraries):
    sc, st = two_libraries
    before = copy.deepcopy(st.uns["spatial"])
    model = _fit(sc, st)
    assert [s.name for s in model.data.slices] == ["A1", "B1"]
    for s in model.data.slices:
        rows = (st.obs["library_id"] == s.name).to_numpy()
        np.testing.assert_array_equal(s.coords, st.obsm["spatial"][rows])
        assert s.spot_names == list(st.obs_names[rows])
    m = model.mapping()
    assert set(m.best_slice) <= {"A1", "B1"}
    sc_out, st_out = m.to_anndata(sc, st, label_key="celltype")
    _same_uns(st_out.uns["spatial"], before)
    assert set(sc_out.obs["stem_best_slice"].dropna()) <= {"A1", "B1"}
    # every spot of both libraries gets its embedding and deconvolution
    assert not np.isnan(st_out.obsm["X_stem"]).any()
    assert st_out.obsm["stem_deconvolution"].shape[0] == st.n_obs


def test_one_library_of_several_in_uns_is_one_slice(two_libraries):
    """A subset to one library keeps every library in uns["spatial"]: one slice, no warning."""
    sc, st = two_libraries
    one = st[(st.obs["library_id"] == "B1").to_numpy()].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", StemInputWarning)
        model = stemmap.STEM(sc, one, seed=0, hidden=(32, 16))
    assert [s.name for s in model.data.slices] == ["st"]


def test_several_libraries_without_a_library_column_warn(two_libraries):
    sc, st = two_libraries
    st = st.copy()
    del st.obs["library_id"]
    with pytest.warns(StemInputWarning, match=r"2 libraries.*no `st.obs` column"):
        model = stemmap.STEM(sc, st, seed=0, hidden=(32, 16))
    assert len(model.data.slices) == 1


def test_slice_names_given_keep_one_slice(two_libraries):
    sc, st = two_libraries
    model = stemmap.STEM(sc, st, seed=0, hidden=(32, 16), slice_names=["both"])
    assert [s.name for s in model.data.slices] == ["both"]
