"""The R bridge: packed arrays round-trip and only Python builtins come out."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from stemmap.bridge import _wire, files, interpret, verbs

BUILTINS = (dict, list, str, int, float, bool, bytearray, type(None))


def _only_builtins(obj) -> bool:
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _only_builtins(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_only_builtins(v) for v in obj)
    return isinstance(obj, BUILTINS) and not isinstance(obj, np.generic)


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(6, dtype=np.float64).reshape(2, 3),
        np.arange(24, dtype=np.int64).reshape(2, 3, 4),
        np.array([1.5, np.nan, -np.inf]),
        np.zeros((0, 3)),
    ],
)
def test_pack_unpack_dense(arr):
    packed = _wire.pack(arr)
    assert _only_builtins(packed)
    back = _wire.unpack(packed)
    np.testing.assert_array_equal(back, arr)
    assert back.shape == arr.shape


def test_pack_is_column_major():
    arr = np.array([[1.0, 2.0], [3.0, 4.0]])
    vals = np.frombuffer(bytes(_wire.pack(arr)["data"]), dtype="<f8")
    np.testing.assert_array_equal(vals, [1.0, 3.0, 2.0, 4.0])  # R's order


def test_pack_unpack_sparse():
    mat = sp.random(20, 7, density=0.3, random_state=0, format="csr")
    packed = _wire.pack(mat)
    assert packed["format"] == "csc"
    assert _only_builtins(packed)
    back = _wire.unpack(packed)
    assert sp.issparse(back)
    np.testing.assert_allclose(back.toarray(), mat.toarray())


def test_unpack_accepts_scalar_shape():
    packed = _wire.pack(np.arange(3, dtype=np.int32))
    packed["shape"] = 3  # a length-1 R vector arrives as an int
    np.testing.assert_array_equal(_wire.unpack(packed), [0, 1, 2])


def test_roundtrip_keeps_dimnames():
    arr = np.arange(6, dtype=np.float64).reshape(2, 3)
    res = verbs.roundtrip(_wire.pack(arr), ["g1", "g2"], ["a", "b", "c"])
    assert _only_builtins(res)
    assert res["rownames"] == ["g1", "g2"]
    assert res["colnames"] == ["a", "b", "c"]
    assert res["sum"] == pytest.approx(15.0)
    np.testing.assert_array_equal(_wire.unpack(res["x"]), arr)


def test_info_is_builtins():
    info = verbs.info()
    assert _only_builtins(info)
    assert info["device"] in {"cpu", "cuda", "mps", "none"}
    assert info["stemmap_version"]


def _small_inputs():
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(12)]
    sc = {
        "x": _wire.pack(rng.poisson(5, (12, 20)).astype(float)),
        "genes": genes,
        "cells": [f"c{i}" for i in range(20)],
    }
    xy = np.array([[i % 4, i // 4] for i in range(12)], dtype=float)
    st = [
        {
            "x": _wire.pack(rng.poisson(5, (12, 12)).astype(float)),
            "genes": genes,
            "spots": [f"s{i}" for i in range(12)],
            "coords": _wire.pack(xy),
            "name": "slice0",
        }
    ]
    return sc, st


def test_topk_keeps_k_per_row():
    sc, st = _small_inputs()
    params = {"epochs": 1, "hidden": [8, 4], "device": "cpu", "adjacency_k": 0}
    top = _wire.unpack(verbs.run_stem(sc, st, params, None, None, "topk", 3)["sc_to_st"])
    dense = _wire.unpack(verbs.run_stem(sc, st, params, None, None, "dense", 10)["sc_to_st"])
    back = top.toarray()
    assert ((back > 0).sum(axis=1) == 3).all()
    np.testing.assert_allclose(back.max(axis=1), dense.max(axis=1))


# ------------------------------------------------------------------ interpretation
def test_attribution_from_model_bytes_matches_the_core(trained):
    from stemmap.attribution import integrated_gradients

    blob = files.model_bytes(trained)
    assert isinstance(blob, bytearray)
    assert len(blob) > 0
    cells = [str(c) for c in trained.data.sc_names[:5]] + ["not-a-cell"]
    res = interpret.attribution(blob, cells=cells, steps=8)
    assert _only_builtins(res)
    assert res["cells"] == cells[:5]
    x = _wire.unpack(res["x"])
    assert x.shape == (5, len(trained.data.genes))
    ref = integrated_gradients(trained, cells=cells[:5], steps=8)
    np.testing.assert_allclose(x, ref.to_numpy(), rtol=1e-4, atol=1e-6)
    assert _wire.unpack(res["delta"]).shape == (5,)


def test_run_stem_keep_model_returns_loadable_bytes():
    sc, st = _small_inputs()
    params = {"epochs": 2, "hidden": [8, 4], "keep_model": True, "device": "cpu"}
    out = verbs.run_stem(sc, st, params, None, None, "none", 10)
    assert isinstance(out["model"], bytearray)
    assert files.load_model(out["model"], "cpu").data.sc_x.shape == (20, 12)
    assert "model" not in verbs.run_stem(
        sc, st, {"epochs": 1, "hidden": [8, 4]}, None, None, "none", 1
    )


def test_analysis_wrappers_return_tables():
    rng = np.random.default_rng(1)
    X = rng.random((40, 5))
    X[:20, 0] += 2.0
    xy = np.c_[np.r_[np.zeros(20), np.ones(20)] + rng.random(40) * 0.1, rng.random(40)]
    genes = [f"g{i}" for i in range(5)]
    tab = interpret.spatial_dominant_genes(
        _wire.pack(X), genes, coords=_wire.pack(xy), n_segments=2
    )
    assert _only_builtins(tab)
    assert tab["columns"][:3] == ["segment", "gene", "statistic"]
    assert tab["data"]["gene"][0] == "g0"
    assert tab["data"]["segment"][0] == "0"
    seg = interpret.spatial_dominant_genes(_wire.pack(X), genes, segments=["a"] * 20 + ["b"] * 20)
    assert set(seg["data"]["segment"]) == {"a", "b"}
    score = interpret.axis_score(_wire.pack(xy), "pc1")
    assert _wire.unpack(score).shape == (40,)
    ag = interpret.axis_genes(_wire.pack(X), genes, _wire.pack(xy[:, 0]))
    assert ag["columns"] == ["group", "gene", "rho", "pval", "padj"]
    tr = interpret.expression_trends(
        _wire.pack(X), genes, _wire.pack(xy[:, 0]), n_knots=1, n_points=5
    )
    assert len(tr["data"]["gene"]) == 25
    ne = interpret.neighbourhood_enrichment(
        _wire.pack(xy), ["a"] * 20 + ["b"] * 20, n_neighbors=5, n_perms=20, seed=0
    )
    assert ne["labels"] == ["a", "b"]
    assert _wire.unpack(ne["zscore"]).shape == (2, 2)
