"""Model files are checked when read (issue 26): keys, names and array shapes.

Each test saves a toy model, edits the file as a damaged or hand-edited file would be
(the settings' JSON or one ``.npy`` member), and expects a one-line
``StemModelFileError`` naming the file and what is wrong, at ``STEM.load``.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import stemmap
from stemmap._validate import StemModelFileError

MANIFEST = "stemmap-model.json"


@pytest.fixture(scope="module")
def saved(tmp_path_factory, toy):
    sc, st = toy
    model = stemmap.STEM(sc, st, hidden=(8,), seed=1)
    model.train(epochs=2)
    path = tmp_path_factory.mktemp("files") / "model.stem"
    model.save(path)
    return model, path


def _rewrite(path, dest, settings=None, arrays=None):
    """Copy a model file, passing its settings through ``settings(dict)`` and each named
    array member through ``arrays[name](ndarray)``."""
    arrays = arrays or {}
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(dest, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == MANIFEST and settings is not None:
                m = json.loads(data)
                settings(m)
                data = json.dumps(m).encode()
            elif name in arrays:
                a = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
                buf = io.BytesIO()
                np.lib.format.write_array(buf, arrays[name](a), allow_pickle=False)
                data = buf.getvalue()
            dst.writestr(name, data)
    return dest


def _refused(p, match):
    with pytest.raises(StemModelFileError, match=match) as e:
        stemmap.STEM.load(p, device="cpu")
    msg = str(e.value)
    assert str(p) in msg
    assert "\n" not in msg


def test_unedited_file_loads(saved):
    model, path = saved
    loaded = stemmap.STEM.load(path, device="cpu")
    np.testing.assert_array_equal(loaded.mapping().coords, model.mapping().coords)


def test_cell_names_one_short(saved, tmp_path):
    # loaded before, and gave cell 1 the embedding of cell 0
    _, path = saved
    p = _rewrite(path, tmp_path / "short.stem", settings=lambda m: m["sc_names"].pop(0))
    _refused(p, r"sc_x\) is 300 × 40, its names say 299 × 40")


def test_sc_x_one_gene_short(saved, tmp_path):
    # loaded before, then mapping() failed inside torch (mat1 and mat2 shapes ...)
    _, path = saved
    p = _rewrite(path, tmp_path / "gene.stem", arrays={"arrays/sc_x.npy": lambda a: a[:, 1:]})
    _refused(p, r"sc_x\) is 300 × 39, its names say 300 × 40")


def test_slice_arrays_checked(saved, tmp_path):
    _, path = saved
    p = _rewrite(
        path, tmp_path / "spots.stem", arrays={"arrays/slices/0/coords.npy": lambda a: a[:-1]}
    )
    _refused(p, r"coordinates of slice 0 is 42 × 2, its names say 43 × 2")
    p = _rewrite(
        path,
        tmp_path / "nan.stem",
        arrays={"arrays/slices/0/x.npy": lambda a: np.where(a > 0, np.nan, a)},
    )
    _refused(p, r"spots' expression of slice 0 has NaN/Inf")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.pop("sc_dropped"), r"no 'sc_dropped' in its settings"),
        (lambda m: m.pop("state_dict_keys"), r"no 'state_dict_keys' in its settings"),
        (lambda m: m["config"].pop("hidden"), r"no 'hidden' in its 'config'"),
        (lambda m: m["slices"][0].pop("spot_names"), r"no 'spot_names' in slice 0"),
        (lambda m: m["slices"][0].update(sigma="wide"), r"'sigma' of slice 0 must be a positive"),
        (lambda m: m["sc_names"].__setitem__(1, m["sc_names"][0]), r"'sc_names' has repeated"),
        (lambda m: m.update(genes="gene0"), r"'genes' must be a list of names"),
        (lambda m: m["config"].update(hidden=[8, "x"]), r"'hidden' must be a list of layer"),
    ],
)
def test_missing_or_bad_keys(saved, tmp_path, edit, match):
    # missing keys gave a bare KeyError (from load_model, after the format check)
    _, path = saved
    _refused(_rewrite(path, tmp_path / "keys.stem", settings=edit), match)
