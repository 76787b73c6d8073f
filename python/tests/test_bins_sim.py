"""Tests of stemmap.simulate.bin_capture: square bins, thinned counts, empty bins kept."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import stemmap
from stemmap import simulate

#: ~1 cell per bin on the synthetic tissue below (600 cells on a 2 × 1 rectangle)
SIDE = float(np.sqrt(2.0 / 600))


@pytest.fixture(scope="module")
def tissue() -> ad.AnnData:
    return stemmap.datasets.synthetic_tissue(n_cells=600, n_genes=40, seed=0)


def _dense(x):
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def _raw_bins(sc, st) -> np.ndarray:
    """Unthinned bin sums: the counts of the cells each bin holds (``sc.obs["spot"]``)."""
    codes = sc.obs["spot"].cat.codes.to_numpy()
    assert list(sc.obs["spot"].cat.categories) == list(st.obs_names)
    assert (codes >= 0).all()
    A = sp.csr_matrix((np.ones(sc.n_obs), (codes, np.arange(sc.n_obs))), (st.n_obs, sc.n_obs))
    return _dense(A @ sp.csr_matrix(_dense(sc.X).astype(np.float64)))


def test_counts_are_thinned_sums(tissue):
    sc, st = simulate.bin_capture(tissue, SIDE, umis_per_bin=20, seed=0)
    raw = _raw_bins(sc, st)
    thin = _dense(st.X)
    assert st.X.dtype == np.int64
    assert sp.issparse(st.X)
    assert (thin <= raw).all()
    assert (thin >= 0).all()
    assert thin.sum() < raw.sum()  # actually thinned
    # with capture rate 1 the bins are the exact sums
    sc, full = simulate.bin_capture(tissue, SIDE, capture_rate=1.0, seed=0)
    np.testing.assert_array_equal(_dense(full.X), raw)


@pytest.mark.parametrize("target", [10.0, 40.0])
def test_thinning_depth(tissue, target):
    _, st = simulate.bin_capture(tissue, SIDE, umis_per_bin=target, seed=1)
    sim = st.uns["simulation"]
    occupied = st.obs["n_cells"].to_numpy() > 0
    mean = st.obs["total_counts"].to_numpy()[occupied].mean()
    assert mean == pytest.approx(target, rel=0.1)
    assert sim["mean_counts_per_occupied_bin"] == pytest.approx(mean)
    assert 0 < sim["capture_rate"] < 1
    np.testing.assert_array_equal(st.obs["total_counts"], _dense(st.X).sum(axis=1))


def test_bin_membership_and_compositions(tissue):
    sc, st = simulate.bin_capture(tissue, SIDE, seed=0)
    xy = sc.obsm["spatial_true"]
    centre = st.obsm["spatial"][st.obs_names.get_indexer(sc.obs["spot"].astype(str))]
    assert np.all(np.abs(xy - centre) <= SIDE / 2 + 1e-12)
    counts = sc.obs["spot"].value_counts().reindex(st.obs_names, fill_value=0)
    np.testing.assert_array_equal(counts.to_numpy(), st.obs["n_cells"].to_numpy())
    props = st.obsm["proportions"]
    rs = props.sum(axis=1).to_numpy()
    has = st.obs["n_cells"].to_numpy() > 0
    np.testing.assert_allclose(rs[has], 1.0)
    assert (rs[~has] == 0).all()
    # a bin's composition is the labels of its cells
    b = st.obs_names[np.argmax(st.obs["n_cells"].to_numpy())]
    lab = sc.obs.loc[sc.obs["spot"] == b, "celltype"].astype(str).value_counts(normalize=True)
    np.testing.assert_allclose(props.loc[b, lab.index].to_numpy(), lab.to_numpy())
    assert "spatial" not in sc.obsm  # no position leaks into a mapping method
    assert st.uns["simulation"]["step"] == SIDE


def test_empty_bins_kept_by_margin(tissue):
    _, st1 = simulate.bin_capture(tissue, SIDE / 2, margin=1, seed=0)
    n_cells = st1.obs["n_cells"].to_numpy()
    assert (n_cells == 0).sum() > 0
    assert st1.uns["simulation"]["n_bins_no_cell"] > 0
    assert (st1.obs["total_counts"] == 0).sum() == st1.uns["simulation"]["n_bins_no_counts"] > 0
    _, st0 = simulate.bin_capture(tissue, SIDE / 2, margin=0, seed=0)
    assert (st0.obs["n_cells"] > 0).all()
    _, st_all = simulate.bin_capture(tissue, SIDE / 2, margin=None, seed=0)
    nx, ny = st_all.uns["simulation"]["grid"]
    assert st_all.n_obs == nx * ny > st1.n_obs > st0.n_obs
    # every kept empty bin touches an occupied one (Chebyshev distance 1 on the grid)
    occ = set(zip(st1.obs["bin_x"][n_cells > 0], st1.obs["bin_y"][n_cells > 0]))
    for x, y in zip(st1.obs["bin_x"][n_cells == 0], st1.obs["bin_y"][n_cells == 0]):
        assert any((x + dx, y + dy) in occ for dx in (-1, 0, 1) for dy in (-1, 0, 1))


def test_same_seed_same_capture_and_nested_sizes(tissue):
    _, a = simulate.bin_capture(tissue, SIDE, seed=3)
    _, b = simulate.bin_capture(tissue, SIDE, seed=3)
    _, c = simulate.bin_capture(tissue, SIDE, seed=4)
    np.testing.assert_array_equal(_dense(a.X), _dense(b.X))
    assert (_dense(a.X) != _dense(c.X)).any()
    # twice the side, same capture: each coarse bin is the sum of its 2 × 2 fine bins
    p = a.uns["simulation"]["capture_rate"]
    _, coarse = simulate.bin_capture(tissue, 2 * SIDE, capture_rate=p, seed=3, margin=0)
    _, fine = simulate.bin_capture(tissue, SIDE, capture_rate=p, seed=3, margin=0)
    parent = pd.Index(list(zip(coarse.obs["bin_x"], coarse.obs["bin_y"])))
    codes = parent.get_indexer(list(zip(fine.obs["bin_x"] // 2, fine.obs["bin_y"] // 2)))
    assert (codes >= 0).all()
    agg = sp.csr_matrix((np.ones(fine.n_obs), (codes, np.arange(fine.n_obs))))
    np.testing.assert_array_equal(_dense(agg @ fine.X), _dense(coarse.X))


def test_caller_object_unchanged(tissue):
    before = tissue.copy()
    simulate.bin_capture(tissue, SIDE, seed=0)
    np.testing.assert_array_equal(_dense(before.X), _dense(tissue.X))
    assert list(tissue.obsm) == list(before.obsm)
    assert list(tissue.obs) == list(before.obs)


def test_large_capture_is_fast():
    """10^4 cells in 5·10^4 bins, most empty (the scale benchmark's shape, 10× smaller)."""
    import time

    t = stemmap.datasets.synthetic_tissue(n_cells=10_000, n_genes=50, seed=0)
    t0 = time.perf_counter()
    _, st = simulate.bin_capture(t, float(np.sqrt(2 / 50_000)), margin=None, seed=0)
    assert time.perf_counter() - t0 < 10
    assert st.n_obs >= 50_000
    assert st.uns["simulation"]["n_bins_no_cell"] > st.n_obs / 2


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"bin_size": -1.0}, ValueError, "`bin_size`"),
        ({"bin_size": "8um"}, TypeError, "`bin_size`"),
        ({"umis_per_bin": 10, "capture_rate": 0.5}, ValueError, "not both"),
        ({"capture_rate": 1.5}, ValueError, "`capture_rate`"),
        ({"umis_per_bin": 0}, ValueError, "`umis_per_bin`"),
        ({"margin": -1}, ValueError, "`margin`"),
        ({"margin": 1.5}, TypeError, "`margin`"),
        ({"seed": "a"}, TypeError, "`seed`"),
        ({"origin": (1.0, 0.0)}, ValueError, "`origin"),
        ({"label_key": "nope"}, KeyError, "label_key"),
        ({"spatial_key": "xy"}, KeyError, "xy"),
        ({"bin_size": 1e-6}, ValueError, "`bin_size"),
    ],
)
def test_errors_name_the_argument(tissue, kwargs, exc, match):
    kw = {"bin_size": SIDE, **kwargs}
    with pytest.raises(exc, match=match):
        simulate.bin_capture(tissue, **kw)


def test_errors_on_bad_inputs(tissue):
    with pytest.raises(TypeError, match="`adata`"):
        simulate.bin_capture(np.zeros((3, 3)), SIDE)
    frac = tissue.copy()
    frac.X = _dense(frac.X).astype(np.float32) + 0.5
    with pytest.raises(ValueError, match="raw counts"):
        simulate.bin_capture(frac, SIDE)
