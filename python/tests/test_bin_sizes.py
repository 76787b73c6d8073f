"""One model, several bin sizes (#28): train on coarse bins, read out on finer ones.

Also what the core does on bin grids: empty bins are dropped (listed), the ST dropout and σ
stay finite and sensible.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import stemmap
from stemmap import simulate
from stemmap._validate import StemInputWarning

N_CELLS = 900
#: about one cell per fine bin on the 2 × 1 synthetic tissue
FINE = float(np.sqrt(2.0 / N_CELLS))


@pytest.fixture(scope="module")
def capture():
    """One capture, two bin sizes: 8 µm-like (~1 cell) and 16 µm-like (~4 cells) bins."""
    tissue = stemmap.datasets.synthetic_tissue(n_cells=N_CELLS, n_genes=60, seed=0)
    sc, fine = simulate.bin_capture(tissue, FINE, umis_per_bin=60, seed=0)
    p = fine.uns["simulation"]["capture_rate"]
    _, coarse = simulate.bin_capture(tissue, 2 * FINE, capture_rate=p, seed=0)
    return sc, fine, coarse


@pytest.fixture(scope="module")
def coarse_model(capture):
    sc, _, coarse = capture
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StemInputWarning)  # empty bins dropped
        model = stemmap.STEM(sc, coarse, seed=0, threads=1)
    model.train(preset="quick", epochs=150, progress=False)
    return model


def _mae(sc, mapping) -> float:
    return float(np.linalg.norm(sc.obsm["spatial_true"] - mapping.coords, axis=1).mean())


def test_finer_readout_places_cells_at_least_as_well(capture, coarse_model):
    sc, fine, coarse = capture
    on_coarse = coarse_model.mapping()
    with pytest.warns(StemInputWarning, match="no counts"):  # the empty fine bins
        on_fine = coarse_model.mapping(st=fine)
    assert on_fine.sc_to_st.shape[1] == int((fine.obs["total_counts"] > 0).sum())
    assert len(on_fine.dropped["st"]) == int((fine.obs["total_counts"] == 0).sum())
    mae_coarse, mae_fine = _mae(sc, on_coarse), _mae(sc, on_fine)
    assert mae_fine <= mae_coarse
    hit_c = stemmap.metrics.hit_number(sc.obsm["spatial_true"], on_coarse.coords, ks=[20])[20]
    hit_f = stemmap.metrics.hit_number(sc.obsm["spatial_true"], on_fine.coords, ks=[20])[20]
    assert hit_f >= hit_c
    # both place cells far better than the tissue's centre would
    centre = np.linalg.norm(sc.obsm["spatial_true"] - sc.obsm["spatial_true"].mean(0), axis=1)
    assert mae_coarse < 0.5 * centre.mean()
    rec = on_fine.settings["resolved"]["st"]
    assert rec["source"] == "caller"
    assert str(fine.n_obs) in rec["value"]
    assert "st" not in on_coarse.settings["resolved"]  # nothing recorded when not given


def test_st_equal_to_training_spots_gives_the_same_mapping(capture, coarse_model):
    _, _, coarse = capture
    a = coarse_model.mapping()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StemInputWarning)
        b = coarse_model.mapping(st=coarse)
    np.testing.assert_array_equal(a.coords, b.coords)
    assert a.spot_names == b.spot_names
    assert a.dropped["st"] == b.dropped["st"]


def test_st_errors_name_the_argument(capture, coarse_model):
    _, fine, _ = capture
    with pytest.raises(TypeError, match="`st`"):
        coarse_model.mapping(st=fine.X)
    with pytest.raises(ValueError, match="`st` lacks 2 of the 60 genes"):
        coarse_model.mapping(st=fine[:, 2:].copy())
    with pytest.raises(ValueError, match="not both"):
        coarse_model.mapping(st=fine, slice="st")
    no_xy = fine.copy()
    del no_xy.obsm["spatial"]
    with pytest.raises(KeyError, match="spatial"):
        coarse_model.mapping(st=no_xy)


def test_core_on_bins_drops_empty_bins_and_keeps_estimates_finite(capture):
    """Empty bins: dropped with a warning and listed; dropout and σ finite and sensible."""
    sc, fine, _ = capture
    empty = fine.obs_names[fine.obs["total_counts"].to_numpy() == 0]
    assert len(empty) > 0
    with pytest.warns(StemInputWarning, match="have no counts"):
        model = stemmap.STEM(sc, fine, seed=0, threads=1)
    # bins hold fewer genes than the reference cells: the paper's formula clips to 0
    assert model.config["dropout"] == 0.0
    sigma = model.settings["sigma"][0]
    assert np.isfinite(sigma)
    assert sigma == pytest.approx(FINE, rel=0.05)  # σ = 1 × the bin pitch
    model.train(preset="quick", epochs=3, progress=False)
    assert np.isfinite(model.history.to_numpy(dtype=float)).all()
    m = model.mapping()
    assert sorted(m.dropped["st"]) == sorted(empty)
    assert np.isfinite(m.coords).all()
