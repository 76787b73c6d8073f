"""Input checks of issue 26: ``normalized=True`` on counts, gene-name ambiguity, threads."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import stemmap
from stemmap import StemInputWarning

HIDDEN = (8,)


def _log1p(a):
    x = np.asarray(a.X, dtype=np.float64)
    return np.log1p(x / x.sum(axis=1, keepdims=True) * 1e4)


# ------------------------------------------------------------ normalized=True on counts
def test_normalized_true_on_raw_st_counts_is_refused(toy_copy):
    # the ST side alone: expm1 of 182 overflows float32 in the readout (NaN for every cell)
    sc, st = toy_copy
    sc.X = _log1p(sc)
    with pytest.raises(ValueError, match=r"`normalized=True` says `st.X`.*integers up to 182"):
        stemmap.STEM(sc, st, normalized=True, hidden=HIDDEN)


def test_normalized_true_on_scaled_not_logged_values_is_refused(toy_copy):
    # normalize_total without log1p: non-integer values far above any log1p value
    sc, st = toy_copy
    x = np.asarray(sc.X, dtype=np.float64)
    sc.X = x / x.sum(axis=1, keepdims=True) * 1e4
    st.X = _log1p(st)
    with pytest.raises(ValueError, match=r"`sc.X`.*has values up to .*expected log1p-normalised"):
        stemmap.STEM(sc, st, normalized=True, hidden=HIDDEN)


def test_normalized_true_on_small_integer_counts_warns(toy_copy):
    # borderline: integers that are numerically safe are used as they are, with a warning
    sc, st = toy_copy
    sc.X = np.minimum(np.asarray(sc.X), 15.0)
    st.X = _log1p(st)
    with pytest.warns(StemInputWarning, match=r"`sc.X` looks like raw counts.*up to 15"):
        model = stemmap.STEM(sc, st, normalized=True, hidden=HIDDEN)
    assert np.isfinite(model.mapping().coords).all()


def test_normalized_true_on_log1p_values_is_silent_and_finite(toy_copy):
    sc, st = toy_copy
    sc.X, st.X = _log1p(sc), _log1p(st)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = stemmap.STEM(sc, st, normalized=True, hidden=HIDDEN, seed=0)
    model.train(epochs=2)
    m = model.mapping()
    assert np.isfinite(m.coords).all()
    assert np.isfinite(m.sc_to_st.toarray() if hasattr(m.sc_to_st, "toarray") else m.sc_to_st).all()


# ------------------------------------------------------------ gene names: exact wins
def _with_extra_gene(a, name, like):
    """``a`` (SC, no coordinates) with one more gene ``name``, a copy of gene ``like``."""
    import anndata as ad
    import pandas as pd

    x = np.asarray(a.X.toarray() if hasattr(a.X, "toarray") else a.X)
    j = list(a.var_names).index(like)
    var = pd.DataFrame(index=[*map(str, a.var_names), name])
    return ad.AnnData(np.hstack([x, x[:, [j]]]), obs=a.obs.copy(), var=var)


def test_case_rule_keeps_the_exact_match(toy):
    # `gene0` and `GENE0` in sc, `gene0` in st: `gene0` matches exactly and must be used
    sc, st = toy
    sc2 = _with_extra_gene(sc, "GENE0", "gene1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", StemInputWarning)
        model = stemmap.STEM(sc2, st, gene_match="case", hidden=HIDDEN)
    assert model.data.genes == [str(g) for g in sc.var_names]  # gene0 kept, GENE0 unmatched
    assert "gene0" in model.data.genes
    ref = stemmap.STEM(sc, st, hidden=HIDDEN)
    np.testing.assert_array_equal(model.data.slices[0].x, ref.data.slices[0].x)
    np.testing.assert_array_equal(model.data.sc_x, ref.data.sc_x)


def test_ensembl_rule_keeps_the_exact_version():
    from stemmap._data import match_genes

    sc = ["ENSMUSG00000000001.1", "ENSMUSG00000000001.2", "ENSMUSG00000000002.1", "X"]
    st = [["ENSMUSG00000000001.2", "ENSMUSG00000000002", "X"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error", StemInputWarning)
        gm = match_genes(sc, st, "ensembl")
    assert gm.sc == ["ENSMUSG00000000001.2", "ENSMUSG00000000002.1", "X"]
    assert gm.st == [["ENSMUSG00000000001.2", "ENSMUSG00000000002", "X"]]
    assert (gm.n_renamed, gm.n_ambiguous) == (1, 0)


def test_remaining_ambiguity_is_a_warning_naming_the_genes():
    from stemmap._data import gene_overlaps, match_genes

    sc = ["ENSMUSG00000000001.1", "ENSMUSG00000000001.2", "X"]
    st = [["ENSMUSG00000000001", "X"]]
    with pytest.warns(
        StemInputWarning,
        match=r"gene_match='ensembl', 1 gene\(s\).*'ENSMUSG00000000001.1', "
        r"'ENSMUSG00000000001.2'\] ~ st \['ENSMUSG00000000001'\]",
    ):
        gm = match_genes(sc, st, "ensembl")
    assert gm.sc == ["X"]
    assert gm.n_ambiguous == 1
    assert gene_overlaps(sc, st)["ensembl"] == 1


def test_exact_match_wins_per_slice_and_genes_selects_by_name():
    from stemmap._data import match_genes

    sc = ["gene0", "GENE0", "b"]
    st = [["gene0", "Gene0", "B"], ["GENE0", "gene0", "b"]]
    gm = match_genes(sc, st, "case")
    assert gm.sc == ["gene0", "GENE0", "b"]
    assert gm.st == [["gene0", "Gene0", "B"], ["gene0", "GENE0", "b"]]
    assert match_genes(sc, st, "case", genes=["gene0"]).sc == ["gene0"]
    assert match_genes(sc, st, "case", genes=["Gene0"]).sc == ["GENE0"]
    assert match_genes(sc, st, "case", genes=["B"]).sc == ["b"]


# ------------------------------------------------------------ the core's normalised values
def test_normalize_counts_is_what_the_model_trains_on(toy_copy):
    import scipy.sparse as sp

    from stemmap._data import normalize_counts

    sc, st = toy_copy
    sc = sc[:, ::-1].copy()  # another gene order than the model's
    sc.X = sp.csr_matrix(np.asarray(sc.X))
    st = st[:, [*range(35)]].copy()  # 35 shared genes: totals over the used genes only
    model = stemmap.STEM(sc, st, hidden=HIDDEN)
    d = model.data
    got = normalize_counts(sc.X, sc.var_names, d.genes)
    rows = [list(sc.obs_names).index(n) for n in d.sc_names]
    np.testing.assert_array_equal(got[rows], d.sc_x)  # bit for bit
    assert got.dtype == np.float32
    st_got = normalize_counts(np.asarray(st.X), st.var_names, d.genes)
    rows = [list(st.obs_names).index(n) for n in d.slices[0].spot_names]
    np.testing.assert_array_equal(st_got[rows], d.slices[0].x)
    # not the values over every gene of the object (what R's analyses computed)
    assert not np.allclose(st_got, stemmap._data.normalize_log1p(st.X)[:, : len(d.genes)])


def test_prepared_normalized_expression(toy):
    sc, st = toy
    model = stemmap.STEM(sc, st, hidden=HIDDEN)
    d = model.data
    e = d.normalized_expression("sc")
    assert list(e.index) == d.sc_names
    assert list(e.columns) == d.genes
    np.testing.assert_array_equal(e.to_numpy(), d.sc_x)
    e.iloc[0, 0] += 1.0  # a copy
    assert e.iloc[0, 0] != d.sc_x[0, 0]
    s = d.normalized_expression("st", slice="st")
    assert list(s.index) == d.slices[0].spot_names
    np.testing.assert_array_equal(s.to_numpy(), d.slices[0].x)
    with pytest.raises(ValueError, match="`side` must be one of"):
        d.normalized_expression("spots")
    with pytest.raises(ValueError, match="`slice` must be one of"):
        d.normalized_expression("st", slice="nope")


def test_normalize_counts_names_what_is_wrong(toy):
    from stemmap._data import normalize_counts

    sc, _ = toy
    with pytest.raises(ValueError, match=r"`x` lacks 1 of the 2 genes.*'nope'"):
        normalize_counts(sc.X, sc.var_names, ["gene0", "nope"])
    with pytest.raises(ValueError, match="`var_names` must name the 40 columns"):
        normalize_counts(sc.X, sc.var_names[:3], ["gene0"])
    with pytest.raises(ValueError, match="`normalized=True` says `x`"):
        normalize_counts(sc.X, sc.var_names, list(map(str, sc.var_names)), normalized=True)
