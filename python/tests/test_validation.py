"""Bad input: each gets a clear error or warning naming the argument, and the caller's data stay as they were."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import stemmap
from stemmap import StemInputWarning


def test_wrong_types(toy):
    sc, st = toy
    with pytest.raises(TypeError, match="`sc` must be an AnnData object.*ndarray"):
        stemmap.STEM(np.zeros((3, 3)), st)
    with pytest.raises(TypeError, match=r"`st\[1\]` must be an AnnData"):
        stemmap.STEM(sc, [st, "x"])
    with pytest.raises(ValueError, match="`kernel` must be one of"):
        stemmap.STEM(sc, st, kernel="cosine")
    with pytest.raises(ValueError, match="`alpha` must be a non-negative"):
        stemmap.STEM(sc, st, alpha=-1)
    with pytest.raises(ValueError, match="`device` must be"):
        stemmap.STEM(sc, st, device="gpu0")


def test_no_shared_genes(toy_copy):
    sc, st = toy_copy
    st.var_names = [f"ENSG{i}" for i in range(st.n_vars)]
    with pytest.raises(ValueError, match="share no gene names"):
        stemmap.STEM(sc, st)


def test_fewer_than_two_spots(toy_copy):
    sc, st = toy_copy
    with pytest.raises(ValueError, match="at least 2 spots"):
        stemmap.STEM(sc, st[:1].copy())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf(toy_copy, bad):
    sc, st = toy_copy
    X = np.asarray(sc.X.toarray() if sp.issparse(sc.X) else sc.X, dtype=np.float32).copy()
    X[0, 0] = bad
    sc.X = X
    with pytest.raises(ValueError, match=r"`sc.X` has 1 NaN/Inf"):
        stemmap.STEM(sc, st)


def test_negative_values(toy_copy):
    sc, st = toy_copy
    X = np.asarray(st.X.toarray() if sp.issparse(st.X) else st.X, dtype=np.float32).copy()
    X[2, 3] = -1
    st.X = X
    with pytest.raises(ValueError, match="`st.X` has negative values"):
        stemmap.STEM(sc, st)


def test_missing_coordinates(toy_copy):
    sc, st = toy_copy
    del st.obsm["spatial"]
    with pytest.raises(KeyError, match=r"obsm\['spatial'\]` not found"):
        stemmap.STEM(sc, st)


def test_non_numeric_coordinates(toy_copy):
    sc, st = toy_copy
    st.obsm["spatial"] = np.array([["a", "b"]] * st.n_obs, dtype=object)
    with pytest.raises(TypeError, match="must be numeric coordinates"):
        stemmap.STEM(sc, st)


def test_coordinate_shape_and_rows(toy_copy):
    from types import SimpleNamespace

    from stemmap._validate import get_coords

    sc, st = toy_copy
    st.obsm["one_col"] = np.zeros((st.n_obs, 1))
    with pytest.raises(ValueError, match=r"must be a \(spots × 2\) array; found shape"):
        stemmap.STEM(sc, st, spatial_key="one_col")
    # AnnData itself keeps obsm rows = n_obs; objects built elsewhere (e.g. from R) may not
    fake = SimpleNamespace(obsm={"spatial": np.zeros((3, 2))}, n_obs=4)
    with pytest.raises(ValueError, match="has 3 rows but `st` has 4 spots"):
        get_coords(fake, "spatial", "st")


def test_all_zero_cells_and_spots_dropped_with_warning(toy_copy):
    sc, st = toy_copy
    X = np.asarray(sc.X.toarray() if sp.issparse(sc.X) else sc.X, dtype=np.float32).copy()
    X[[0, 5]] = 0
    sc.X = X
    Xs = np.asarray(st.X.toarray() if sp.issparse(st.X) else st.X, dtype=np.float32).copy()
    Xs[1] = 0
    st.X = Xs
    with pytest.warns(StemInputWarning, match="2 cells in `sc` have no counts"):
        model = stemmap.STEM(sc, st, hidden=(8,))
    model.train(epochs=1)
    m = model.mapping()
    assert m.dropped["sc"] == [sc.obs_names[0], sc.obs_names[5]]
    assert m.dropped["st"] == [st.obs_names[1]]
    assert m.n_cells == sc.n_obs - 2
    assert m.n_spots == st.n_obs - 1
    out = m.to_anndata(sc)
    assert np.isnan(out.obsm["stem_spatial"][0]).all()


def test_duplicated_names(toy_copy, toy):
    sc, st = toy_copy
    names = list(sc.var_names)
    names[1] = names[0]
    sc.var_names = names
    with pytest.raises(ValueError, match="`sc` has 1 duplicated gene name"):
        stemmap.STEM(sc, st)
    sc, st = toy[0].copy(), toy[1]
    cells = list(sc.obs_names)
    cells[2] = cells[3]
    sc.obs_names = cells
    with pytest.raises(ValueError, match="duplicated cell name"):
        stemmap.STEM(sc, st)


def test_log_normalised_input_warns(toy_copy):
    sc, st = toy_copy
    X = np.asarray(sc.X.toarray() if sp.issparse(sc.X) else sc.X, dtype=np.float32)
    sc.X = np.log1p(X)
    with pytest.warns(StemInputWarning, match="does not look like raw counts"):
        stemmap.STEM(sc, st, hidden=(8,))


def test_memory_check_before_allocating(toy, monkeypatch):
    sc, st = toy
    model = stemmap.STEM(sc, st, hidden=(8,))
    monkeypatch.setattr("stemmap._device.available_memory", lambda device: 1000)
    with pytest.raises(MemoryError, match="cell_batch_size=.*spot_batch_size="):
        model.train(epochs=1)
    monkeypatch.undo()
    m = stemmap.STEM(sc, st, hidden=(8,)).train(epochs=1).mapping()
    monkeypatch.setattr("stemmap.mapping._values.available_memory", lambda device: 1000)
    with pytest.raises(MemoryError, match="topk_mapping"):
        _ = m.sc_to_st


def test_bad_train_arguments(toy):
    sc, st = toy
    model = stemmap.STEM(sc, st, hidden=(8,))
    with pytest.raises(ValueError, match="`epochs` must be a positive integer"):
        model.train(epochs=0)
    with pytest.raises(TypeError, match="`lr` must be a positive number"):
        model.train(lr="fast")


def test_caller_objects_unchanged(toy_copy):
    sc, st = toy_copy
    before_sc, before_st = sc.copy(), st.copy()
    model = stemmap.STEM(sc, st, hidden=(8,))
    model.train(epochs=1)
    model.mapping().to_anndata(sc, st)
    for a, b in ((sc, before_sc), (st, before_st)):
        assert list(a.obs.columns) == list(b.obs.columns)
        assert list(a.obsm.keys()) == list(b.obsm.keys())
        Xa = a.X.toarray() if sp.issparse(a.X) else a.X
        Xb = b.X.toarray() if sp.issparse(b.X) else b.X
        np.testing.assert_array_equal(Xa, Xb)
