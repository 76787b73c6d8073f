"""The bridge verbs R's analyses and ``writeSTEMh5ad()`` use: the core's own normalised values,
and the results written into the file of an object zellkonverter wrote."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import stemmap
from stemmap.bridge import _wire, files, interpret


def _with_extra_genes(sc, n=5, seed=1):
    """``sc`` with ``n`` more genes, which ``st`` lacks (the core leaves them out)."""
    rng = np.random.default_rng(seed)
    extra = rng.poisson(30, size=(sc.n_obs, n)).astype(np.float32)
    x = sc.X.toarray() if sp.issparse(sc.X) else np.asarray(sc.X)
    var = pd.DataFrame(index=[*map(str, sc.var_names), *(f"extra{i}" for i in range(n))])
    return ad.AnnData(np.hstack([x, extra]), obs=sc.obs.copy(), var=var)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("normalized", [False, True])
def test_expression_gives_the_values_the_model_was_trained_on(toy, sparse, normalized):
    sc, st = toy
    sc = _with_extra_genes(sc)
    if normalized:  # "data" layers: log1p of scaled counts, taken as they are
        sc.X = np.log1p(sc.X / sc.X.sum(axis=1, keepdims=True) * 1e4)
        st = st.copy()
        x = st.X.toarray() if sp.issparse(st.X) else np.asarray(st.X, dtype=np.float64)
        st.X = np.log1p(x / np.maximum(x.sum(axis=1, keepdims=True), 1) * 1e4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = stemmap.STEM(sc, st, hidden=(8, 4), normalized=normalized)
    genes = list(model.data.genes)
    assert len(genes) < sc.n_vars  # the extra genes are not the model's
    counts = sc[:, genes].X.T  # what R sends: genes x cells, the model's genes in its order
    counts = sp.csc_matrix(counts) if sparse else np.asfortranarray(counts, dtype=np.float64)
    got = _wire.unpack(interpret.expression(_wire.pack(counts), normalized=normalized))
    assert got.shape == model.data.sc_x.shape
    np.testing.assert_array_equal(got, model.data.sc_x.astype(np.float64))  # bitwise


def test_write_h5ad_writes_into_a_base_file(tmp_path):
    cells = [f"c{i}" for i in range(4)]
    result = {
        "cells": cells,
        "spots": ["s1", "s2"],
        "spot_slice": ["st", "st"],
        "mapping": _wire.pack(np.full((4, 2), 0.5)),
        "embedding": _wire.pack(np.ones((4, 3))),
        "coords": _wire.pack(np.zeros((4, 2))),
        "spot_embedding": _wire.pack(np.ones((2, 3))),
        "best_spot": ["s1", "s2", "", "s1"],
        "confidence": _wire.pack(np.full(4, 0.5)),
        "settings": {"seed": 0, "preset": None},
        "history": {"loss": _wire.pack(np.arange(3.0))},
    }
    base = ad.AnnData(
        np.ones((4, 2), dtype=np.float32),
        obs=pd.DataFrame({"celltype": pd.Categorical(list("abba"))}, index=cells),
        var=pd.DataFrame(index=["g1", "g2"]),
    )
    path = str(tmp_path / "x.h5ad")
    base.write_h5ad(path)  # as zellkonverter's writeH5AD() wrote the object
    files.write_h5ad(path, result, base=path)
    back = ad.read_h5ad(path)
    np.testing.assert_array_equal(back.X, np.ones((4, 2)))  # the object's own data stay
    assert list(back.obs["celltype"]) == list("abba")
    own = tmp_path / "own.h5ad"
    files.write_h5ad(str(own), result)
    plain = ad.read_h5ad(own)
    assert set(plain.obsm) == set(back.obsm)
    assert set(plain.uns) <= set(back.uns)
    assert files.read_h5ad(path)["best_spot"] == files.read_h5ad(str(own))["best_spot"]
    other = str(tmp_path / "other.h5ad")
    base[:3].copy().write_h5ad(other)
    with pytest.raises(ValueError, match="`base` must hold the mapped cells"):
        files.write_h5ad(other, result, base=other)
