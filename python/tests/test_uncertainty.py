"""StemMapping.placement_uncertainty: calibrated radii, their units, chunks and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.spatial import cKDTree

import stemmap
from stemmap import StemMapping


@pytest.fixture(scope="module")
def semisim():
    """A small seeded disjoint semi-simulation mapped with ``preset="quick"``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tissue = stemmap.datasets.synthetic_tissue(n_cells=1600, n_genes=60, seed=0)
        sc, st = stemmap.simulate.disjoint_pseudo_spots(tissue, seed=0, grid=(16, 8))
        model = stemmap.STEM(sc, st, seed=0, threads=1)
        model.train(preset="quick")
    m = model.mapping()
    keep = sc.obs_names.get_indexer(m.sc_names)
    true = np.asarray(sc.obsm["spatial_true"])[keep]
    return m, np.linalg.norm(true - m.coords, axis=1)


def _paper_mapping(coords, slices=None, chunk_size=8192, seed=0):
    g = np.random.default_rng(seed)
    n_cells, n_spots = 60, len(coords)
    return StemMapping(
        g.normal(size=(n_cells, 4)),
        g.normal(size=(n_spots, 4)),
        coords,
        [f"c{i}" for i in range(n_cells)],
        [f"s{j}" for j in range(n_spots)],
        slices or ["a"] * n_spots,
        readout="paper",
        chunk_size=chunk_size,
    )


def _grid(nx=6, ny=5):
    return np.array([[x, y] for x in range(nx) for y in range(ny)], dtype=float)


def test_regions_hold_about_the_stated_share_of_true_positions(semisim):
    m, err = semisim
    r = m.placement_uncertainty(0.9)
    cov = float(np.mean(err <= r))
    # loose (a toy tissue); the untempered C1 of the same mapping is far below its level
    assert 0.8 <= cov <= 0.99, cov


def test_radii_grow_with_the_level(semisim):
    m, _ = semisim
    r5, r8, r9 = (m.placement_uncertainty(x) for x in (0.5, 0.8, 0.9))
    assert np.median(r5) < np.median(r8) < np.median(r9)
    assert np.mean(r9 >= r5) > 0.99


def test_shape_type_and_the_footprint_floor(semisim):
    m, _ = semisim
    r = m.placement_uncertainty()
    assert r.shape == (m.n_cells,)
    assert r.dtype == np.float64
    assert np.isfinite(r).all()
    d, _ = cKDTree(m.spot_coords).query(m.spot_coords, k=2)
    assert r.min() >= 0.5 * np.median(d[:, 1]) - 1e-9  # at least half a spot spacing


def test_radii_are_in_the_units_of_the_spot_coordinates():
    Y = _grid()
    r = _paper_mapping(Y).placement_uncertainty(0.8)
    r_scaled = _paper_mapping(Y * 250.0 + 7.0).placement_uncertainty(0.8)
    np.testing.assert_allclose(r_scaled, 250.0 * r, rtol=1e-5)


def test_chunks_and_blocks_give_the_same_radii_and_c_is_never_dense(monkeypatch):
    from stemmap.mapping import _uncertainty

    Y = _grid()
    whole = _paper_mapping(Y)
    r = whole.placement_uncertainty(0.9)
    chunked = _paper_mapping(Y, chunk_size=7)
    np.testing.assert_allclose(chunked.placement_uncertainty(0.9), r, rtol=1e-6)
    monkeypatch.setattr(_uncertainty, "BLOCK", 2 * len(Y))  # blocks of two cells
    np.testing.assert_allclose(whole.placement_uncertainty(0.9), r, rtol=1e-6)
    assert not {"sc_to_st", "round1"} & set(whole._cache)


def test_caller_coordinates_are_not_changed():
    Y = _grid()
    before = Y.copy()
    _paper_mapping(Y).placement_uncertainty(0.9)
    np.testing.assert_array_equal(Y, before)


def test_one_spot_gives_zero_radii():
    m = _paper_mapping(np.array([[1.0, 2.0]]))
    np.testing.assert_array_equal(m.placement_uncertainty(0.9), np.zeros(m.n_cells))


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.2, float("nan"), float("inf")])
def test_level_out_of_range_is_a_value_error_naming_level(level):
    m = _paper_mapping(_grid())
    with pytest.raises(ValueError, match="`level`"):
        m.placement_uncertainty(level)


@pytest.mark.parametrize("level", ["0.9", True, None, [0.9]])
def test_level_not_a_number_is_a_type_error_naming_level(level):
    m = _paper_mapping(_grid())
    with pytest.raises(TypeError, match="`level`"):
        m.placement_uncertainty(level)


def test_several_slices_need_one_coordinate_frame():
    Y = _grid()
    m = _paper_mapping(Y, slices=["a"] * 15 + ["b"] * 15)
    with pytest.raises(ValueError, match="placement_uncertainty"):
        m.placement_uncertainty(0.9)
