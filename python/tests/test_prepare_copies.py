"""prepare(): one dense float32 copy of the counts, normalised in place; inputs untouched."""

import numpy as np
import scipy.sparse as sp

import stemmap
from stemmap._data import dense_float32, normalize_log1p, prepare


def _reference_log1p(x, target=1e4):
    x = np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float32)
    totals = x.sum(axis=1, keepdims=True)
    totals[totals == 0] = 1.0
    return np.log1p(x / totals * np.float32(target)).astype(np.float32)


def test_dense_float32_matches_toarray_for_every_input_kind():
    rng = np.random.default_rng(0)
    dense = rng.poisson(1.0, size=(30, 12)).astype(np.float64)
    coo = sp.coo_matrix(dense)
    repeated = sp.coo_matrix(
        (np.r_[coo.data, coo.data[:4]], (np.r_[coo.row, coo.row[:4]], np.r_[coo.col, coo.col[:4]])),
        shape=coo.shape,
    )
    for x in (dense, dense.astype(np.int64), sp.csr_matrix(dense), sp.csc_matrix(dense), repeated):
        want = np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float32)
        got = dense_float32(x)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(normalize_log1p(x), _reference_log1p(x))


def test_prepare_leaves_the_callers_counts_alone_and_normalises_bitwise_as_before():
    sc, st = stemmap.datasets.toy_data(seed=0)
    sc.X = np.asarray(sc.X.toarray() if sp.issparse(sc.X) else sc.X, dtype=np.float32)
    before_sc, before_st = sc.X.copy(), st.X.copy()
    data = prepare(sc, st)
    np.testing.assert_array_equal(sc.X, before_sc)
    assert (st.X != before_st).nnz == 0 if sp.issparse(st.X) else np.array_equal(st.X, before_st)
    np.testing.assert_array_equal(data.sc_x, _reference_log1p(before_sc))
    assert not np.shares_memory(data.sc_x, sc.X)


def test_normalize_counts_leaves_the_callers_matrix_alone():
    from stemmap._data import normalize_counts

    rng = np.random.default_rng(1)
    genes = [f"g{i}" for i in range(12)]
    for x in (rng.poisson(2.0, size=(20, 12)).astype(np.float32), sp.random(20, 12, 0.5, "csr")):
        before = x.copy()
        out = normalize_counts(x, genes, genes)  # every gene, in order: no subset copy
        assert not np.shares_memory(out, x.data if sp.issparse(x) else x)
        if sp.issparse(x):
            assert (x != before).nnz == 0
        else:
            np.testing.assert_array_equal(x, before)
        np.testing.assert_array_equal(out, _reference_log1p(before))
