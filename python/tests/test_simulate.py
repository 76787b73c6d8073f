"""Tests of stemmap.simulate: pseudo spots and noise."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from stemmap import simulate

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("STEMMAP_SHARED_DATA", REPO.parent / "shared" / "data"))


def _shared(name: str) -> ad.AnnData:
    """A shared real data set; skipped (an allowed reason) where the data are absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not found; set STEMMAP_SHARED_DATA to the shared data folder")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.read_h5ad(path)


def _toy() -> ad.AnnData:
    """Cells on [0, 2]²; a 3 × 3 grid has step 1, window 0.5 → half-side 0.25."""
    xy = np.array(
        [
            [0.0, 0.0],  # spot (0, 0)
            [0.2, 0.1],  # spot (0, 0)
            [1.0, 1.0],  # spot (1, 1)
            [1.1, 0.9],  # spot (1, 1)
            [0.8, 1.2],  # spot (1, 1)
            [1.25, 1.0],  # on the border of (1, 1): inside
            [1.4, 1.0],  # between windows: in no spot
            [2.0, 2.0],  # spot (2, 2)
        ]
    )
    counts = np.arange(8 * 3, dtype=np.int32).reshape(8, 3)
    obs = pd.DataFrame(
        {"celltype": ["a", "a", "a", "b", "b", "c", "a", "c"]},
        index=[f"cell{i}" for i in range(8)],
    )
    adata = ad.AnnData(sp.csr_matrix(counts), obs=obs)
    adata.var_names = ["g0", "g1", "g2"]
    adata.obsm["spatial"] = xy
    return adata


def test_pseudo_spots_toy_case():
    adata = _toy()
    sc, st = simulate.pseudo_spots(adata, grid=(3, 3), window=0.5, min_cells=3)
    assert st.n_obs == 1
    assert list(st.obs_names) == ["spot_1_1"]
    assert st.obs["n_cells"].tolist() == [4]
    np.testing.assert_allclose(st.obsm["spatial"], [[1.0, 1.0]])
    X = adata.X.toarray()
    np.testing.assert_array_equal(st.X.toarray()[0], X[[2, 3, 4, 5]].sum(0))
    props = st.obsm["proportions"]
    assert list(props.columns) == ["a", "b", "c"]
    np.testing.assert_allclose(props.to_numpy(), [[0.25, 0.5, 0.25]])
    # sc: every cell kept, true coordinates moved, spot membership recorded
    assert sc.n_obs == adata.n_obs
    assert "spatial" not in sc.obsm
    np.testing.assert_allclose(sc.obsm["spatial_true"], adata.obsm["spatial"])
    spot = sc.obs["spot"]
    assert spot.isna().tolist() == [True, True, False, False, False, False, True, True]
    assert set(spot.dropna()) == {"spot_1_1"}
    sim = st.uns["simulation"]
    assert sim["step"] == pytest.approx(1.0)
    assert sim["step_xy"] == [1.0, 1.0]
    assert sim["grid"] == [3, 3]
    assert sim["n_cells_in_spots"] == 4
    # the input is untouched
    assert "spatial" in adata.obsm
    assert "spot" not in adata.obs


def test_pseudo_spots_min_cells_and_no_labels():
    sc, st = simulate.pseudo_spots(_toy(), grid=(3, 3), window=0.5, min_cells=1, label_key=None)
    assert list(st.obs_names) == ["spot_0_0", "spot_1_1", "spot_2_2"]
    assert st.obs["n_cells"].tolist() == [2, 4, 1]
    assert "proportions" not in st.obsm
    assert sc.obs["spot"].notna().sum() == 7


def test_pseudo_spots_rectangular_steps_and_dense_float_input():
    adata = _toy()
    adata.obsm["spatial"] = adata.obsm["spatial"] * np.array([1.0, 2.0])  # y step 2
    adata.X = adata.X.toarray().astype(np.float32)
    _, st = simulate.pseudo_spots(adata, grid=(3, 3), window=0.5, min_cells=3)
    assert st.uns["simulation"]["step_xy"] == [1.0, 2.0]
    assert st.uns["simulation"]["step"] == pytest.approx(np.sqrt(2.0))
    assert isinstance(st.X, np.ndarray)
    assert st.n_obs == 1


def test_pseudo_spots_uses_layer():
    adata = _toy()
    adata.layers["counts"] = adata.X * 2
    sc, st = simulate.pseudo_spots(adata, grid=(3, 3), window=0.5, layer="counts")
    np.testing.assert_array_equal(st.X.toarray()[0], adata.X.toarray()[[2, 3, 4, 5]].sum(0) * 2)
    np.testing.assert_array_equal(sc.X.toarray(), adata.layers["counts"].toarray())


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"grid": (1, 3)}, ValueError, "at least 2"),
        ({"grid": 3}, TypeError, "pair of integers"),
        ({"grid": (3.0, 3)}, TypeError, "integers"),
        ({"window": 1.5}, ValueError, "window"),
        ({"window": "big"}, TypeError, "window"),
        ({"min_cells": -1}, ValueError, "min_cells"),
        ({"min_cells": 2.5}, TypeError, "min_cells"),
        ({"label_key": "nope"}, KeyError, "label_key"),
        ({"spatial_key": "xy"}, KeyError, "xy"),
        ({"layer": "nope"}, KeyError, "layer"),
        ({"min_cells": 100}, ValueError, "No spot holds"),
    ],
)
def test_pseudo_spots_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        simulate.pseudo_spots(_toy(), **{"grid": (3, 3), **kwargs})


def test_pseudo_spots_rejects_non_anndata_and_flat_coords():
    with pytest.raises(TypeError, match="AnnData"):
        simulate.pseudo_spots(np.zeros((3, 3)))
    adata = _toy()
    adata.obsm["spatial"][:, 1] = 0.0
    with pytest.raises(ValueError, match="spans no area"):
        simulate.pseudo_spots(adata)


def test_add_noise():
    rng = np.random.default_rng(0)
    counts = rng.poisson(5.0, size=(4000, 3)).astype(np.int32)
    adata = ad.AnnData(sp.csr_matrix(counts))
    same = simulate.add_noise(adata, 0.0)
    np.testing.assert_array_equal(same.X, counts)
    noisy = simulate.add_noise(adata, 0.5, seed=1)
    again = simulate.add_noise(adata, 0.5, seed=1)
    np.testing.assert_array_equal(noisy.X, again.X)
    assert noisy.X.dtype == np.float32
    assert noisy.X.min() >= 0.0
    assert sp.issparse(adata.X)  # input untouched
    # before clipping the noise variance is R * var(gene); with mean 5 clipping is rare
    diff = noisy.X - counts
    np.testing.assert_allclose(diff.var(axis=0), 0.5 * counts.var(axis=0), rtol=0.1)
    assert noisy.uns["noise"]["R"] == 0.5
    rounded = simulate.add_noise(adata, 0.5, seed=1, round_counts=True)
    np.testing.assert_array_equal(rounded.X, np.rint(rounded.X))


@pytest.mark.parametrize(
    ("R", "error"), [(-0.1, ValueError), (float("nan"), ValueError), ("0.2", TypeError)]
)
def test_add_noise_errors(R, error):
    with pytest.raises(error, match="`R`"):
        simulate.add_noise(_toy(), R)


@pytest.mark.parametrize(
    ("name", "n_spots"), [("embryo2_z2.h5ad", 495), ("osmfish_cortex.h5ad", 283)]
)
def test_pseudo_spots_real_data(name, n_spots):
    adata = _shared(name)
    sc, st = simulate.pseudo_spots(adata, grid=(30, 40))
    assert st.n_obs == n_spots
    assert (st.obs["n_cells"] >= 3).all()
    assert st.obs["n_cells"].sum() == sc.obs["spot"].notna().sum()
    np.testing.assert_allclose(st.obsm["proportions"].sum(axis=1), 1.0)
    assert st.X.sum() == adata.X[sc.obs["spot"].notna().to_numpy()].sum()


def _uniform(m: int = 200, seed: int = 1) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    adata = ad.AnnData(
        sp.csr_matrix(rng.poisson(2.0, size=(m, 4)).astype(np.int64)),
        obs=pd.DataFrame(
            {"celltype": rng.choice(["a", "b", "c"], size=m)},
            index=[f"c{i}" for i in range(m)],
        ),
    )
    adata.obsm["spatial"] = rng.uniform(0, 2, size=(m, 2))
    return adata


def test_disjoint_pseudo_spots_parts_are_disjoint_and_spots_sum_part_a():
    adata = _uniform()
    before = adata.X.toarray().copy()
    sc, st = simulate.disjoint_pseudo_spots(adata, seed=3, grid=(3, 3), window=1.0, min_cells=1)
    # the caller's object is not changed
    np.testing.assert_array_equal(adata.X.toarray(), before)
    assert "spatial" in adata.obsm
    sim = st.uns["simulation"]
    assert sim["split"] == "disjoint"
    assert sim["split_seed"] == 3
    assert sim["n_cells_spot_part"] == 100
    assert sc.n_obs == 100
    part_b = set(sc.obs_names)
    part_a = [c for c in adata.obs_names if c not in part_b]
    assert len(part_a) == 100
    # window 1 on a 3 x 3 grid: every cell of A is in a spot, so the spots hold all of A
    assert sim["n_cells_in_spots"] == 100
    assert st.X.sum() == adata[part_a].X.sum()
    # no SC cell is in a spot; positions are moved to spatial_true
    assert sc.obs["spot"].isna().all()
    assert list(sc.obs["spot"].cat.categories) == list(st.obs_names)
    assert "spatial" not in sc.obsm
    np.testing.assert_array_equal(sc.obsm["spatial_true"], adata[sc.obs_names].obsm["spatial"])
    np.testing.assert_array_equal(sc.X.toarray(), adata[sc.obs_names].X.toarray())
    np.testing.assert_allclose(st.obsm["proportions"].sum(axis=1), 1.0)


def test_disjoint_pseudo_spots_seed_decides_the_split():
    adata = _uniform()
    kw = {"grid": (3, 3), "window": 1.0, "min_cells": 1}
    sc0, st0 = simulate.disjoint_pseudo_spots(adata, seed=0, **kw)
    sc0b, st0b = simulate.disjoint_pseudo_spots(adata, seed=0, **kw)
    sc1, _ = simulate.disjoint_pseudo_spots(adata, seed=1, **kw)
    assert list(sc0.obs_names) == list(sc0b.obs_names)
    np.testing.assert_array_equal(st0.X.toarray(), st0b.X.toarray())
    assert list(sc0.obs_names) != list(sc1.obs_names)
    sc_q, _ = simulate.disjoint_pseudo_spots(adata, fraction=0.25, seed=0, **kw)
    assert sc_q.n_obs == 150


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"fraction": 0.0}, ValueError, "`fraction`"),
        ({"fraction": 1.0}, ValueError, "`fraction`"),
        ({"fraction": "half"}, TypeError, "`fraction`"),
        ({"fraction": 0.001}, ValueError, "leaves a part empty"),
        ({"seed": 1.5}, TypeError, "`seed`"),
        ({"window": 2.0}, ValueError, "`window`"),
    ],
)
def test_disjoint_pseudo_spots_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        simulate.disjoint_pseudo_spots(_uniform(), **kwargs)


# --------------------------------------------------------------- cross-region split
def _strip(m: int = 400, seed: int = 2) -> ad.AnnData:
    """Cells on [0, 4] × [0, 1]: a section longer along x, types by y-band and x-half."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform([0, 0], [4, 1], size=(m, 2))
    types = np.where(xy[:, 1] < 0.5, "a", "b").astype(object)
    types[(xy[:, 0] > 3.0) & (xy[:, 1] > 0.8)] = "c"  # only at the high-x end
    adata = ad.AnnData(
        sp.csr_matrix(rng.poisson(3.0, size=(m, 5)).astype(np.int64)),
        obs=pd.DataFrame({"celltype": types}, index=[f"c{i}" for i in range(m)]),
    )
    adata.var_names = [f"g{i}" for i in range(5)]
    adata.obsm["spatial"] = xy
    return adata


def test_cross_region_default_axis_is_the_shorter_side():
    adata = _strip()
    before = adata.X.toarray().copy()
    kw = {"grid": (9, 3), "window": 0.8, "min_cells": 1}
    sc, st = simulate.cross_region_pseudo_spots(adata, **kw)
    np.testing.assert_array_equal(adata.X.toarray(), before)  # input untouched
    assert "spatial" in adata.obsm
    assert "spot" not in adata.obs
    sim = st.uns["simulation"]
    assert sim["split"] == "cross_region"
    assert sim["axis"] == 1  # y spans 1, x spans 4: the cut runs along x
    assert sim["n_cells_spot_part"] == 200
    assert sim["n_cells_spot_part"] + sim["n_cells_sc_part"] + sim["n_cells_between"] == 400
    assert sc.n_obs == sim["n_cells_sc_part"]
    y_sc = sc.obsm["spatial_true"][:, 1]
    # every SC cell lies beyond the reach of every spot window
    half = 0.5 * 0.8 * sim["step_xy"][1]
    spot_y = st.obsm["spatial"][:, 1]
    assert y_sc.min() > spot_y.max() + half
    assert sim["sc_from"] == pytest.approx(sim["cut"] + half)
    assert "spatial" not in sc.obsm
    assert sc.obs["spot"].isna().all()
    assert list(sc.obs["spot"].cat.categories) == list(st.obs_names)
    np.testing.assert_array_equal(sc.X.toarray(), adata[sc.obs_names].X.toarray())
    # the spots are exactly the pseudo spots of region A on its own grid
    part_a = adata[adata.obsm["spatial"][:, 1] <= sim["cut"]]
    assert part_a.n_obs == 200
    _, st_a = simulate.pseudo_spots(part_a, grid=tuple(sim["grid"]), window=0.8, min_cells=1)
    np.testing.assert_array_equal(st.X.toarray(), st_a.X.toarray())
    np.testing.assert_allclose(st.obsm["proportions"], st_a.obsm["proportions"])
    # region A's half spans about half the y range: its grid keeps about the full step
    assert sim["grid"][0] == 9
    assert sim["grid"][1] == 2
    assert 0.0 <= sim["composition_tv"] <= 1.0


def test_cross_region_axis_side_and_gap():
    adata = _strip()
    kw = {"grid": (9, 3), "window": 0.5, "min_cells": 1}
    sc, st = simulate.cross_region_pseudo_spots(adata, axis=0, spot_side="high", **kw)
    sim = st.uns["simulation"]
    assert sim["axis"] == 0
    assert sim["spot_side"] == "high"
    x_sc = sc.obsm["spatial_true"][:, 0]
    half = 0.5 * 0.5 * sim["step_xy"][0]
    assert x_sc.max() < st.obsm["spatial"][:, 0].min() - half
    assert sim["cut"] == pytest.approx(st.obsm["spatial"][:, 0].min())
    # type c lives only at the high-x end: in the spots, absent from the SC cells
    assert sim["types_absent_from_sc"] == ["c"]
    assert sim["composition_tv"] > 0
    # the grid of the right half keeps the full section's step (4 / 8 = 0.5) within rounding
    assert sim["step_xy"][0] == pytest.approx(0.5, rel=0.1)
    sc_gap, st_gap = simulate.cross_region_pseudo_spots(
        adata, axis=0, spot_side="high", gap=0.25, **kw
    )
    gap_x = sc_gap.obsm["spatial_true"][:, 0]
    assert gap_x.max() < st_gap.uns["simulation"]["cut"] - half - 0.25 * 4 + 1e-9
    assert sc_gap.n_obs < sc.n_obs
    # deterministic
    sc2, st2 = simulate.cross_region_pseudo_spots(adata, axis=0, spot_side="high", **kw)
    assert list(sc2.obs_names) == list(sc.obs_names)
    np.testing.assert_array_equal(st2.X.toarray(), st.X.toarray())


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"axis": 2}, ValueError, "`axis`"),
        ({"axis": True}, ValueError, "`axis`"),
        ({"fraction": 1.0}, ValueError, "`fraction`"),
        ({"fraction": "half"}, TypeError, "`fraction`"),
        ({"fraction": 0.001}, ValueError, "leaves a part empty"),
        ({"spot_side": "left"}, ValueError, "`spot_side`"),
        ({"gap": -0.1}, ValueError, "`gap`"),
        ({"gap": 0.9}, ValueError, "No cell lies beyond"),
        ({"seed": 1.5}, TypeError, "`seed`"),
        ({"window": 2.0}, ValueError, "`window`"),
    ],
)
def test_cross_region_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        simulate.cross_region_pseudo_spots(_strip(), **{"grid": (9, 3), **kwargs})


@pytest.mark.parametrize("name", ["embryo2_z2.h5ad", "osmfish_cortex.h5ad"])
def test_cross_region_real_data(name):
    adata = _shared(name)
    sc, st = simulate.cross_region_pseudo_spots(adata)
    sim = st.uns["simulation"]
    assert sim["axis"] == 0  # both sections are longer along y
    assert sc.obsm["spatial_true"][:, 0].min() > st.obsm["spatial"][:, 0].max()
    assert 100 < st.n_obs < 300
    assert sc.n_obs > 2000
    np.testing.assert_allclose(st.obsm["proportions"].sum(axis=1), 1.0)
    assert not set(sc.obs_names) & set(adata.obs_names[adata.obsm["spatial"][:, 0] <= sim["cut"]])


# --------------------------------------------------------------- platform effect
def test_platform_effect_factors_and_resampling():
    rng = np.random.default_rng(0)
    counts = rng.poisson(50.0, size=(3000, 40)).astype(np.int64)
    adata = ad.AnnData(sp.csr_matrix(counts))
    out = simulate.platform_effect(adata, sigma=0.5, seed=4)
    assert sp.issparse(adata.X)
    assert np.array_equal(adata.X.toarray(), counts)
    assert "platform_factor" not in adata.var
    f = out.var["platform_factor"].to_numpy()
    # log-normal factors: log f ~ N(0, 0.5²)
    assert abs(np.log(f).std() - 0.5) < 0.15
    assert abs(np.log(f).mean()) < 0.2
    x = out.X.toarray()
    assert sp.issparse(out.X)
    assert np.issubdtype(x.dtype, np.integer)
    # Poisson around the scaled counts: gene means follow the factors
    np.testing.assert_allclose(x.mean(axis=0), counts.mean(axis=0) * f, rtol=0.03)
    assert out.uns["platform_effect"] == {
        "sigma": 0.5,
        "seed": 4,
        "layer": None,
        "resample": "poisson",
    }
    again = simulate.platform_effect(adata, sigma=0.5, seed=4)
    np.testing.assert_array_equal(again.X.toarray(), x)
    other = simulate.platform_effect(adata, sigma=0.5, seed=5)
    assert not np.allclose(other.var["platform_factor"], f)


def test_platform_effect_round_none_dense_layer_and_zero_sigma():
    adata = _toy()
    adata.layers["counts"] = adata.X.toarray()
    exact = simulate.platform_effect(adata, sigma=0.3, seed=1, resample="none", layer="counts")
    f = exact.var["platform_factor"].to_numpy()
    np.testing.assert_allclose(exact.layers["counts"], adata.layers["counts"] * f[None, :])
    np.testing.assert_array_equal(exact.X.toarray(), adata.X.toarray())  # X untouched
    rounded = simulate.platform_effect(adata, sigma=0.3, seed=1, resample="round")
    np.testing.assert_array_equal(
        rounded.X.toarray(), np.rint(adata.X.toarray() * f[None, :]).astype(np.int64)
    )
    same = simulate.platform_effect(adata, sigma=0.0, resample="round")
    np.testing.assert_array_equal(same.X.toarray(), adata.X.toarray())
    np.testing.assert_allclose(same.var["platform_factor"], 1.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"sigma": -0.5}, ValueError, "`sigma`"),
        ({"sigma": float("inf")}, ValueError, "`sigma`"),
        ({"sigma": "0.5"}, TypeError, "`sigma`"),
        ({"seed": 0.5}, TypeError, "`seed`"),
        ({"resample": "binomial"}, ValueError, "`resample`"),
        ({"layer": "nope"}, KeyError, "layer"),
    ],
)
def test_platform_effect_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        simulate.platform_effect(_toy(), **kwargs)
