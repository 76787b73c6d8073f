"""The bridge's gene selection, its zero-copy unpacking and the one AnnData layout."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from stemmap import _layout
from stemmap._data import match_genes
from stemmap.bridge import _wire, files, verbs


def test_unpack_reads_the_bytes_in_place():
    packed = _wire.pack(np.arange(6, dtype=np.float64).reshape(2, 3))
    arr = _wire.unpack(packed)
    assert np.shares_memory(arr, np.frombuffer(packed["data"], dtype="<f8"))
    sparse = _wire.unpack(_wire.pack(sp.random(8, 5, density=0.4, random_state=0)))
    assert sp.issparse(sparse)  # sparse stays sparse


@pytest.mark.parametrize(
    ("sc", "st", "rule"),
    [
        (["A", "B", "c", "D"], [["a", "B", "X"]], "case"),
        (["ENSG00000000001.2", "ENSG00000000002", "Z"], [["ENSG00000000001", "Y"]], "ensembl"),
        (["A", "B", "C", "D"], [["A", "B", "Q"], ["A", "C"]], "exact"),
        (["GAPDH", "Gapdh", "Actb", "Z"], [["gapdh", "Actb", "Y"]], "case"),  # ambiguous kept
    ],
)
def test_shared_genes_leave_the_core_the_same_choice(sc, st, rule):
    rows = verbs.shared_genes(sc, st)
    sc_sub = [sc[i - 1] for i in rows["sc"]]
    st_sub = [[g[i - 1] for i in r] for g, r in zip(st, rows["st"])]
    assert len(sc_sub) < len(sc) or len(st_sub[0]) < len(st[0])  # something is left out
    for how in ("exact", "case", "ensembl"):
        full, sub = match_genes(sc, st, how), match_genes(sc_sub, st_sub, how)
        assert (full.sc, full.st, full.n_ambiguous) == (sub.sc, sub.st, sub.n_ambiguous)
    assert rows["overlaps"] == verbs.gene_overlaps(sc, st)
    # the per-slice overlaps with sc (the core warns about slices that differ) are kept
    for g, s in zip(st, st_sub):
        assert len(set(sc) & set(g)) == len(set(sc_sub) & set(s))


def test_one_sanitiser_matches_to_anndata(trained, toy):
    """to_anndata()'s uns["stem"] is what _layout.settings_to_uns() makes of the settings."""
    m = trained.mapping()
    new, old = _layout.settings_to_uns(m.settings), m.to_anndata(toy[0]).uns["stem"]

    def same(a, b):
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        return np.array_equal(np.asarray(a), np.asarray(b))

    assert same(new, old)
    settings = {"hidden": (8, 4), "preset": None, "mapping": {"k": np.int64(3), "x": [None, 1]}}
    back = _layout.settings_from_uns(_layout.settings_to_uns(settings))
    assert back == {"hidden": [8, 4], "preset": None, "mapping": {"k": 3, "x": [None, "1"]}}
    json.dumps(_layout.to_builtins(settings))  # builtins only


def _r_result(m, model):
    """What R's writeSTEMh5ad() sends for a mapping (cells, spots, packed results)."""
    return {
        "cells": list(m.sc_names),
        "spots": list(m.spot_names),
        "spot_slice": [str(s) for s in m.spot_slice],
        "mapping": _wire.pack(m.topk_mapping(3)),
        "embedding": _wire.pack(np.asarray(m.sc_embedding, dtype=np.float64)),
        "coords": _wire.pack(np.asarray(m.coords)),
        "spot_embedding": _wire.pack(np.asarray(m.st_embedding, dtype=np.float64)),
        "best_spot": [str(v) for v in m.best_spot_name],
        "confidence": _wire.pack(np.asarray(m.confidence, dtype=np.float64)),
        "settings": _layout.to_builtins(m.settings),
        "history": _wire.history(model.history),
    }


def test_r_writer_uses_the_layout_of_to_anndata(trained, toy, tmp_path):
    sc, _ = toy
    m = trained.mapping()
    path = str(tmp_path / "r.h5ad")
    files.write_h5ad(path, _r_result(m, trained))
    r_file = ad.read_h5ad(path)
    py = m.to_anndata(sc)
    for field, slot, key, _ in _layout.TABLE:
        in_py = key in getattr(py, slot)
        if in_py:  # every key to_anndata writes, R writes too, with the same values
            assert key in getattr(r_file, slot), (field, key)
    np.testing.assert_allclose(r_file.obsm["X_stem"], py.obsm["X_stem"], rtol=1e-6)
    np.testing.assert_allclose(r_file.obsm["stem_spatial"], py.obsm["stem_spatial"])
    assert list(r_file.obs["stem_best_spot"].astype(str)) == list(
        py.obs["stem_best_spot"].astype(str)
    )
    assert set(r_file.uns["stem"]) == set(py.uns["stem"])
    back = files.read_h5ad(path)
    assert back["layout"] == "0.2"
    assert back["cells"] == list(m.sc_names)
    assert back["spots"] == list(m.spot_names)
    assert _wire.unpack(back["mapping"]).shape == (m.n_cells, m.n_spots)
    assert back["settings"]["mapping"]["readout"] == m.readout
    # the SC file of to_anndata() reads too (no mapping, no spots)
    py.write_h5ad(tmp_path / "py.h5ad")
    got = files.read_h5ad(str(tmp_path / "py.h5ad"))
    assert got["mapping"] is None
    assert got["spots"] is None
    np.testing.assert_allclose(_wire.unpack(got["coords"]), py.obsm["stem_spatial"])


def test_files_of_stemmap_01_still_read(tmp_path):
    cells, spots = ["c1", "c2"], ["s1", "s2", "s3"]
    old = ad.AnnData(
        X=sp.csr_matrix(np.array([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]])),
        obs=pd.DataFrame(
            {"stem_best_spot": ["s1", "s3"], "stem_confidence": [0.5, 0.8]}, index=cells
        ),
        var=pd.DataFrame({"stem_slice": ["a"] * 3}, index=spots),
    )
    old.obsm["STEM"] = np.ones((2, 4))
    old.obsm["STEM_spatial"] = np.zeros((2, 2))
    old.varm["STEM"] = np.ones((3, 4))
    old.uns["stem"] = {"settings": json.dumps({"epochs": 3, "preset": None})}
    old.write_h5ad(tmp_path / "old.h5ad")
    got = files.read_h5ad(str(tmp_path / "old.h5ad"))
    assert got["layout"] == "0.1"
    assert got["spots"] == spots
    assert got["settings"] == {"epochs": 3, "preset": None}
    np.testing.assert_allclose(_wire.unpack(got["mapping"]).toarray(), old.X.toarray())


def test_a_file_without_a_mapping_is_a_clear_error(tmp_path):
    ad.AnnData(obs=pd.DataFrame(index=["a", "b"])).write_h5ad(tmp_path / "x.h5ad")
    with pytest.raises(ValueError, match="holds no STEM mapping"):
        files.read_h5ad(str(tmp_path / "x.h5ad"))
