"""The R bridge: packed arrays round-trip and only Python builtins come out."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from stemmap import _r_bridge as rb

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
    packed = rb.pack(arr)
    assert _only_builtins(packed)
    back = rb.unpack(packed)
    np.testing.assert_array_equal(back, arr)
    assert back.shape == arr.shape


def test_pack_is_column_major():
    arr = np.array([[1.0, 2.0], [3.0, 4.0]])
    vals = np.frombuffer(bytes(rb.pack(arr)["data"]), dtype="<f8")
    np.testing.assert_array_equal(vals, [1.0, 3.0, 2.0, 4.0])  # R's order


def test_pack_unpack_sparse():
    mat = sp.random(20, 7, density=0.3, random_state=0, format="csr")
    packed = rb.pack(mat)
    assert packed["format"] == "csc" and _only_builtins(packed)
    back = rb.unpack(packed)
    assert sp.issparse(back)
    np.testing.assert_allclose(back.toarray(), mat.toarray())


def test_unpack_accepts_scalar_shape():
    packed = rb.pack(np.arange(3, dtype=np.int32))
    packed["shape"] = 3  # a length-1 R vector arrives as an int
    np.testing.assert_array_equal(rb.unpack(packed), [0, 1, 2])


def test_roundtrip_keeps_dimnames():
    arr = np.arange(6, dtype=np.float64).reshape(2, 3)
    res = rb.roundtrip(rb.pack(arr), ["g1", "g2"], ["a", "b", "c"])
    assert _only_builtins(res)
    assert res["rownames"] == ["g1", "g2"] and res["colnames"] == ["a", "b", "c"]
    assert res["sum"] == pytest.approx(15.0)
    np.testing.assert_array_equal(rb.unpack(res["x"]), arr)


def test_info_is_builtins():
    info = rb.info()
    assert _only_builtins(info)
    assert info["device"] in {"cpu", "cuda", "mps", "none"}
    assert info["stemmap_version"]


def test_topk_keeps_k_per_row():
    rng = np.random.default_rng(0)
    mat = rng.random((5, 8))
    back = rb.unpack(rb._topk(mat, 3)).toarray()
    assert ((back > 0).sum(axis=1) == 3).all()
    np.testing.assert_allclose(back.max(axis=1), mat.max(axis=1))
