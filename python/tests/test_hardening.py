"""Hardening (issue 16): bad input as a careless user or an attacker would give it.

Every case asserts the error (or warning) class and that the message names the argument or
the path; success cases check that the caller's objects are left as they were. Model files
must not run code; the CLI must not overwrite inputs, must check its outputs before training
and must leave all outputs or none; the R bridge must hand errors and input warnings to R.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import stemmap
from stemmap import StemInputWarning
from stemmap._validate import MIN_SHARED_GENES, StemModelFileError
from stemmap.bridge import _wire, verbs
from stemmap.cli import main

HIDDEN = (8,)


@pytest.fixture(scope="module")
def small_model(toy):
    """An untrained model: argument checks of train() run before any training."""
    sc, st = toy
    return stemmap.STEM(sc, st, hidden=HIDDEN)


@pytest.fixture(scope="module")
def mapping(toy):
    sc, st = toy
    model = stemmap.STEM(sc, st, hidden=HIDDEN, seed=0)
    model.train(epochs=3)
    return model.mapping()


def _dense(X):
    return np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64).copy()


def _snapshot(a):
    return (
        _dense(a.X),
        a.obs.copy(),
        a.var.copy(),
        {k: np.asarray(v).copy() for k, v in a.obsm.items()},
        list(a.obs_names),
        list(a.var_names),
    )


def _same(a, snap):
    X, obs, var, obsm, obs_names, var_names = snap
    np.testing.assert_array_equal(_dense(a.X), X)
    pd.testing.assert_frame_equal(a.obs, obs)
    pd.testing.assert_frame_equal(a.var, var)
    assert set(a.obsm) == set(obsm)
    for k, v in obsm.items():
        np.testing.assert_array_equal(np.asarray(a.obsm[k]), v)
    assert list(a.obs_names) == obs_names
    assert list(a.var_names) == var_names


# ------------------------------------------------------------------ STEM(...) arguments
BAD_MODEL_ARGS = [
    ({"alpha": float("nan")}, ValueError, "`alpha`"),
    ({"alpha": float("inf")}, ValueError, "`alpha`"),
    ({"alpha": "half"}, TypeError, "`alpha`"),
    ({"seed": 2**70}, ValueError, "`seed`"),
    ({"seed": -1}, ValueError, "`seed`"),
    ({"seed": 1.5}, TypeError, "`seed`"),
    ({"seed": True}, TypeError, "`seed`"),
    ({"sigma": float("inf")}, ValueError, "`sigma`"),
    ({"sigma": float("nan")}, ValueError, "`sigma`"),
    ({"sigma": 0.0}, ValueError, "`sigma`"),
    ({"sigma": [1.0, 2.0]}, ValueError, "`sigma`"),
    ({"sigma_scale": -1.0}, ValueError, "`sigma_scale`"),
    ({"sigma_scale": float("inf")}, ValueError, "`sigma_scale`"),
    ({"device": None}, TypeError, "`device`"),
    ({"device": 3}, TypeError, "`device`"),
    ({"device": "gpu0"}, ValueError, "`device`"),
    ({"hidden": ()}, ValueError, "`hidden`"),
    ({"hidden": (0,)}, ValueError, "`hidden`"),
    ({"hidden": "64"}, TypeError, "`hidden`"),
    ({"hidden": (8.5,)}, ValueError, "`hidden`"),
    ({"hidden": (float("nan"),)}, ValueError, "`hidden`"),
    ({"mmd_batch": 1}, ValueError, "`mmd_batch`"),
    ({"n_neighbors": 0}, ValueError, "`n_neighbors`"),
    ({"scale": -2.0}, ValueError, "`scale`"),
    ({"dropout": 1.0}, ValueError, "`dropout`"),
    ({"dropout": float("nan")}, ValueError, "`dropout`"),
    ({"dropout": "0.1"}, TypeError, "`dropout`"),
    ({"normalized": "yes"}, TypeError, "`normalized`"),
    ({"normalized": None}, TypeError, "`normalized`"),
    ({"kernel": "cosine"}, ValueError, "`kernel`"),
    ({"genes": "g1"}, TypeError, "`genes`"),
    ({"genes": []}, ValueError, "`genes`"),
    ({"genes": ["nope1", "nope2"]}, ValueError, "`genes`"),
    ({"layer": "counts_nope"}, KeyError, "`layer="),
    ({"spatial_key": "xy"}, KeyError, "spatial_key"),
]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"), BAD_MODEL_ARGS, ids=[str(a[0]) for a in BAD_MODEL_ARGS]
)
def test_bad_model_arguments(toy_copy, kwargs, exc, match):
    sc, st = toy_copy
    snap_sc, snap_st = _snapshot(sc), _snapshot(st)
    kwargs = {"hidden": HIDDEN, **kwargs}
    with pytest.raises(exc, match=match) as info:
        stemmap.STEM(sc, st, **kwargs)
    assert "\n" not in str(info.value)
    _same(sc, snap_sc)
    _same(st, snap_st)


def test_too_few_shared_genes(toy):
    sc, st = toy
    few = list(map(str, sc.var_names[: MIN_SHARED_GENES - 1]))
    with pytest.raises(ValueError, match=r"share only \d+ gene\(s\).*among `genes`"):
        stemmap.STEM(sc, st, genes=few, hidden=HIDDEN)
    with pytest.raises(ValueError, match=r"share only 1 gene\(s\)"):
        stemmap.STEM(sc[:, :1].copy(), st, hidden=HIDDEN)


def test_cuda_requested_without_cuda(toy):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the request is valid here")
    sc, st = toy
    with pytest.raises(ValueError, match="`device='cuda'`.*not available"):
        stemmap.STEM(sc, st, device="cuda", hidden=HIDDEN)


# ------------------------------------------------------------------ train(...) arguments
BAD_TRAIN_ARGS = [
    ({"lr": float("inf")}, ValueError, "`lr`"),
    ({"lr": float("nan")}, ValueError, "`lr`"),
    ({"lr": 0}, ValueError, "`lr`"),
    ({"weight_decay": -0.1}, ValueError, "`weight_decay`"),
    ({"weight_decay": float("nan")}, ValueError, "`weight_decay`"),
    ({"lr_gamma": -0.5}, ValueError, "`lr_gamma`"),
    ({"lr_gamma": 0.0}, ValueError, "`lr_gamma`"),
    ({"lr_step": 0}, ValueError, "`lr_step`"),
    ({"spot_batch_size": 1}, ValueError, "`spot_batch_size`"),
    ({"cell_batch_size": 1}, ValueError, "`cell_batch_size`"),
    ({"cell_batch_size": 2.5}, TypeError, "`cell_batch_size`"),
    ({"warmup": -1}, ValueError, "`warmup`"),
    ({"epochs": 1.5}, TypeError, "`epochs`"),
    ({"epochs": 0}, ValueError, "`epochs`"),
    ({"preset": "slow"}, ValueError, "`preset`"),
]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"), BAD_TRAIN_ARGS, ids=[str(a[0]) for a in BAD_TRAIN_ARGS]
)
def test_bad_train_arguments(small_model, kwargs, exc, match):
    before = {k: v.clone() for k, v in small_model.module.state_dict().items()}
    with pytest.raises(exc, match=match):
        small_model.train(**{"epochs": 1, **kwargs})
    assert len(small_model.history) == 0  # refused before any step
    for k, v in small_model.module.state_dict().items():
        assert torch.equal(v, before[k])


# ------------------------------------------------------------------ data problems
def test_three_d_coordinates_refused(toy_copy):
    sc, st = toy_copy
    xy = np.asarray(st.obsm["spatial"])
    st.obsm["spatial"] = np.column_stack([xy, np.arange(st.n_obs, dtype=float)])
    with pytest.raises(ValueError, match=r"`st.obsm\['spatial'\]` has 3 columns.*z"):
        stemmap.STEM(sc, st, hidden=HIDDEN)


def test_normalized_true_on_raw_counts_is_refused(toy):
    # once a warning, then NaN coordinates for every cell (issue 26): now refused up front
    sc, st = toy
    with pytest.raises(ValueError, match=r"`normalized=True` says `sc.X`.*integers up to 34"):
        stemmap.STEM(sc, st, normalized=True, hidden=HIDDEN)


def test_absent_genes_warn_and_are_counted(toy):
    sc, st = toy
    genes = [*map(str, sc.var_names[:10]), "NOT_A_GENE", "ALSO_NOT"]
    with pytest.warns(StemInputWarning, match="2 of the 12 genes in `genes`"):
        model = stemmap.STEM(sc, st, genes=genes, hidden=HIDDEN)
    assert model.data.genes == genes[:10]


def test_slices_with_different_genes_warn(toy):
    sc, st = toy
    st2 = st[:, 5:].copy()
    st2.obs_names = [f"b_{n}" for n in st2.obs_names]
    with pytest.warns(StemInputWarning, match="slices have different genes.*`st\\[0\\]` shares 40"):
        model = stemmap.STEM(sc, [st, st2], hidden=HIDDEN)
    assert len(model.data.genes) == st.n_vars - 5


def test_spot_names_repeated_across_slices(toy):
    sc, st = toy
    with pytest.raises(ValueError, match="spot name .* is in both `st\\[0\\]` and `st\\[1\\]`"):
        stemmap.STEM(sc, [st, st.copy()], hidden=HIDDEN)


@pytest.mark.parametrize("where", ["sc", "st"])
def test_nan_counts(toy_copy, where):
    sc, st = toy_copy
    a = sc if where == "sc" else st
    X = _dense(a.X)
    X[1, 2] = np.nan
    a.X = X
    with pytest.raises(ValueError, match=f"`{where}.X` has 1 NaN/Inf"):
        stemmap.STEM(sc, st, hidden=HIDDEN)


def test_inf_coordinates(toy_copy):
    sc, st = toy_copy
    xy = np.asarray(st.obsm["spatial"], dtype=float).copy()
    xy[0, 0] = np.inf
    st.obsm["spatial"] = xy
    with pytest.raises(ValueError, match=r"`st.obsm\['spatial'\]` has NaN/Inf"):
        stemmap.STEM(sc, st, hidden=HIDDEN)


# ------------------------------------------------------------------ results
def test_transfer_skips_missing_spot_values(mapping):
    v = np.arange(mapping.n_spots, dtype=float)
    v_in = v.copy()
    v_in[3] = np.nan
    kept = v_in.copy()
    with pytest.warns(StemInputWarning, match="1 of .* spots have missing .* `spot_values`"):
        out = mapping.transfer(v_in)
    np.testing.assert_array_equal(v_in, kept)  # not mutated
    assert np.all(np.isfinite(out))
    C = mapping.sc_to_st
    ok = np.isfinite(v_in)
    expect = C[:, ok] @ v[ok] / C[:, ok].sum(axis=1)
    np.testing.assert_allclose(out, expect, rtol=1e-5)


def test_transfer_without_missing_is_unchanged(mapping):
    v = np.linspace(0, 1, mapping.n_spots)
    np.testing.assert_allclose(mapping.transfer(v), mapping.sc_to_st @ v, rtol=1e-5)


@pytest.mark.parametrize(
    ("values", "exc", "match"),
    [
        ("all_nan", ValueError, "`spot_values` column 0 is missing"),
        ("inf", ValueError, "`spot_values` has 1 infinite"),
        ("text", TypeError, "`spot_values` must be numbers"),
        ("short", ValueError, "`spot_values` must have one row per spot"),
    ],
)
def test_transfer_bad_values(mapping, values, exc, match):
    n = mapping.n_spots
    v = {
        "all_nan": np.full(n, np.nan),
        "inf": np.r_[np.inf, np.zeros(n - 1)],
        "text": pd.DataFrame({"a": ["x"] * n}, index=mapping.spot_names),
        "short": np.zeros(n - 1),
    }[values]
    with pytest.raises(exc, match=match):
        mapping.transfer(v)


def test_transfer_categories_with_missing(mapping):
    cats = pd.Series(
        [None if i % 5 == 0 else ("a" if i % 2 else "b") for i in range(mapping.n_spots)],
        index=mapping.spot_names,
        dtype=object,
    )
    kept = cats.copy()
    with pytest.warns(StemInputWarning, match="spots have missing"):
        out = mapping.transfer(cats)
    assert list(out.columns) == ["a", "b"]  # no "None" column
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    pd.testing.assert_series_equal(cats, kept)


@pytest.mark.parametrize("missing", [np.nan, None])
def test_deconvolve_skips_missing_labels(mapping, missing):
    labels = np.array(["a", "b", "c"] * (mapping.n_cells // 3 + 1), dtype=object)[: mapping.n_cells]
    labels[:7] = missing
    kept = labels.copy()
    with pytest.warns(StemInputWarning, match="7 of .* cells have no label"):
        dec = mapping.deconvolve(labels)
    assert list(dec.columns) == ["a", "b", "c"]
    np.testing.assert_allclose(dec.sum(axis=1), 1.0, rtol=1e-6)
    assert all((a is b) or (a == b) for a, b in zip(labels, kept))


def test_deconvolve_refuses_continuous_float_labels(mapping):
    with pytest.raises(ValueError, match="`labels` are floating-point numbers with"):
        mapping.deconvolve(np.random.default_rng(0).random(mapping.n_cells))


def test_deconvolve_accepts_few_float_levels(mapping):
    lab = (np.arange(mapping.n_cells) % 3).astype(float)
    dec = mapping.deconvolve(lab)
    assert list(dec.columns) == ["0.0", "1.0", "2.0"]


def test_deconvolve_refuses_2d_labels(mapping):
    with pytest.raises(ValueError, match="`labels` must be one label per cell"):
        mapping.deconvolve(np.zeros((mapping.n_cells, 2)))


def test_to_anndata_refuses_unknown_cells(mapping, toy):
    sc, st = toy
    other = sc.copy()
    other.obs_names = [f"x{i}" for i in range(other.n_obs)]
    with pytest.raises(ValueError, match="none of the .* cells of `sc` are in the mapping"):
        mapping.to_anndata(other)


def test_to_anndata_warns_on_some_unknown_cells(mapping, toy):
    sc, st = toy
    other = sc.copy()
    names = list(map(str, other.obs_names))
    names[0] = "stranger"
    other.obs_names = names
    snap = _snapshot(other)
    with pytest.warns(StemInputWarning, match="1 of the .* cells of `sc` are not in the mapping"):
        out = mapping.to_anndata(other)
    assert np.isnan(out.obsm["stem_spatial"][0]).all()
    assert np.isfinite(out.obsm["stem_spatial"][1:]).all()
    _same(other, snap)


def test_to_anndata_bad_label_key(mapping, toy):
    sc, st = toy
    with pytest.raises(KeyError, match="`label_key='nope'`"):
        mapping.to_anndata(sc, st, label_key="nope")


def test_to_anndata_needs_anndata(mapping):
    with pytest.raises(TypeError, match="`sc` must be an AnnData"):
        mapping.to_anndata(np.zeros((3, 3)))


def test_success_leaves_inputs_unchanged(toy_copy):
    sc, st = toy_copy
    snap_sc, snap_st = _snapshot(sc), _snapshot(st)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StemInputWarning)
        model = stemmap.STEM(sc, st, hidden=HIDDEN, genes=[*map(str, sc.var_names), "absent"])
    model.train(epochs=2)
    m = model.mapping()
    labels = sc.obs["celltype"].copy() if "celltype" in sc.obs else None
    sc_out, st_out = m.to_anndata(sc, st, label_key="celltype" if labels is not None else None)
    _same(sc, snap_sc)
    _same(st, snap_st)
    assert "X_stem" not in sc.obsm
    assert "X_stem" in sc_out.obsm


# ------------------------------------------------------------------ model files
@pytest.fixture(scope="module")
def saved(tmp_path_factory, toy):
    sc, st = toy
    model = stemmap.STEM(sc, st, hidden=HIDDEN, seed=1)
    model.train(epochs=3)
    path = tmp_path_factory.mktemp("models") / "model.stem"
    model.save(path)
    return model, path


def _one_line_naming(e: BaseException, path: Path) -> None:
    msg = str(e)
    assert "\n" not in msg
    assert str(path) in msg


def test_roundtrip_is_bit_identical(saved):
    model, path = saved
    loaded = stemmap.STEM.load(path, device="cpu")
    a, b = model.mapping(), loaded.mapping()
    np.testing.assert_array_equal(a.sc_embedding, b.sc_embedding)
    np.testing.assert_array_equal(a.coords, b.coords)
    pd.testing.assert_frame_equal(model.history, loaded.history, check_dtype=False)
    assert loaded.config == json.loads(json.dumps(model.config))


def test_model_file_is_json_and_arrays(saved):
    _, path = saved
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        manifest = json.loads(zf.read(names[0]))
    assert names[0] == "stemmap-model.json"
    assert manifest["format"] == "stemmap-model"
    assert manifest["format_version"] == 2
    assert all(n == names[0] or n.endswith(".npy") for n in names)


def test_load_missing_file(tmp_path):
    p = tmp_path / "nope.stem"
    with pytest.raises(FileNotFoundError) as e:
        stemmap.STEM.load(p)
    _one_line_naming(e.value, p)


def test_load_directory(tmp_path):
    with pytest.raises(IsADirectoryError) as e:
        stemmap.STEM.load(tmp_path)
    _one_line_naming(e.value, tmp_path)


def test_load_random_bytes(tmp_path):
    p = tmp_path / "random.stem"
    p.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(StemModelFileError, match="not a stemmap model file") as e:
        stemmap.STEM.load(p)
    _one_line_naming(e.value, p)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.99])
def test_load_truncated(saved, tmp_path, fraction):
    _, path = saved
    data = path.read_bytes()
    p = tmp_path / "cut.stem"
    p.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(StemModelFileError) as e:
        stemmap.STEM.load(p)
    _one_line_naming(e.value, p)


def _rewrite_model(path, dest, change):
    """Copy the model file ``path`` to ``dest``, each member's bytes through ``change(name, data)``."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(dest, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, change(name, src.read(name)))
    return dest


def test_load_damaged_member(saved, tmp_path):
    """A valid zip whose array member is garbage."""
    _, path = saved
    p = _rewrite_model(
        path,
        tmp_path / "damaged.stem",
        lambda name, data: b"garbage" if name.endswith("sc_x.npy") else data,
    )
    with pytest.raises(StemModelFileError, match="damaged or truncated") as e:
        stemmap.STEM.load(p)
    _one_line_naming(e.value, p)


class _Payload:
    """Unpickling this runs ``os.system("touch <marker>")``: a harmless attack."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_model_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pt"
    torch.save({"format": "stemmap-model/1", "config": _Payload(str(marker))}, p)
    with pytest.raises(StemModelFileError, match="PyTorch pickle.*trust=True") as e:
        stemmap.STEM.load(p)
    _one_line_naming(e.value, p)
    assert not marker.exists()
    # the same through the R bridge (runSTEM(keep_model = TRUE) + stemAttribution())
    out = _wire.call("attribution", {"model": bytearray(p.read_bytes())})
    assert out["error"]["kind"] == "model_file"
    assert not marker.exists()
    # control: the payload is live (this is what STEM.load did before)
    torch.load(p, weights_only=False)
    assert marker.exists()


def test_crafted_object_array_does_not_run(saved, tmp_path):
    """A safe-format file whose array member is a pickled object array."""
    _, path = saved
    marker = tmp_path / "pwned2"
    buf = io.BytesIO()
    obj = np.empty(1, dtype=object)
    obj[0] = _Payload(str(marker))
    np.lib.format.write_array(buf, obj, allow_pickle=True)
    p = _rewrite_model(
        path,
        tmp_path / "evil.stem",
        lambda name, data: buf.getvalue() if name.endswith("sc_x.npy") else data,
    )
    with pytest.raises(StemModelFileError) as e:
        stemmap.STEM.load(p)
    _one_line_naming(e.value, p)
    assert not marker.exists()
    with zipfile.ZipFile(p) as zf, zf.open("arrays/sc_x.npy") as fh:  # control: live payload
        np.lib.format.read_array(fh, allow_pickle=True)
    assert marker.exists()


def test_newer_format_version_refused(saved, tmp_path):
    _, path = saved

    def future(name, data):
        if name != "stemmap-model.json":
            return data
        return json.dumps({**json.loads(data), "format_version": 99}).encode()

    p = _rewrite_model(path, tmp_path / "future.stem", future)
    with pytest.raises(StemModelFileError, match="format version 99") as e:
        stemmap.STEM.load(p)
    _one_line_naming(e.value, p)


def test_legacy_file_only_with_trust(saved, tmp_path):
    from stemmap._io import model_blob

    model, _ = saved
    blob = {"format": "stemmap-model/1", "version": "0.1.0", **model_blob(model)}
    p = tmp_path / "old.pt"
    torch.save(blob, p)
    with pytest.raises(StemModelFileError, match="trust=True"):
        stemmap.STEM.load(p)
    with pytest.raises(TypeError, match="`trust`"):
        stemmap.STEM.load(p, trust="yes")
    old = stemmap.STEM.load(p, trust=True)
    np.testing.assert_array_equal(old.mapping().coords, model.mapping().coords)
    again = tmp_path / "converted.stem"
    old.save(again)
    np.testing.assert_array_equal(stemmap.STEM.load(again).mapping().coords, model.mapping().coords)


def test_save_to_bad_places(saved, tmp_path):
    model, _ = saved
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        model.save(tmp_path)
    missing = tmp_path / "no" / "such" / "m.stem"
    with pytest.raises(FileNotFoundError, match="folder .* does not exist"):
        model.save(missing)


def test_failed_save_keeps_old_file(saved, tmp_path, monkeypatch):
    model, path = saved
    target = tmp_path / "keep.stem"
    target.write_bytes(path.read_bytes())
    before = target.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(target)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.stem"]  # no temporary file left


# ------------------------------------------------------------------ CLI
def _map(files, *extra, out="o.h5ad"):
    args = ["map", "--sc", str(files / "sc.h5ad"), "--st", str(files / "st.h5ad")]
    return main([*args, "--out", str(files / out) if out else "", "--quiet", *extra])


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if training starts: the CLI must refuse before."""

    def train(self, *a, **k):
        raise AssertionError("training started before the bad argument was refused")

    monkeypatch.setattr(stemmap.STEM, "train", train)


def _one_error_line(capsys, match: str) -> str:
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    assert "error:" in lines[0], err
    assert match in lines[0], err
    return lines[0]


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("out_is_sc", "--out"),
        ("out_is_st", "--out"),
        ("st_output_is_st", "--out (spots)"),
        ("model_is_sc", "--save-model"),
        ("model_is_out", "--save-model"),
        ("model_is_dir", "--save-model"),
        ("out_in_file", "--out"),
        ("out_is_dir", "--out"),
        ("label_key", "--label-key"),
        ("lr", "--lr"),
        ("spot_batch", "--spot-batch-size"),
        ("epochs", "--epochs"),
        ("out_empty", "--out: give a file name"),
    ],
)
def test_cli_refuses_before_training(files, capsys, no_training, case, match):
    (files / "a_file").write_text("x")
    (files / "adir").mkdir()
    inputs = {p: (files / p).read_bytes() for p in ("sc.h5ad", "st.h5ad")}
    extra, out = {
        "out_is_sc": ([], "sc.h5ad"),
        "out_is_st": ([], "st.h5ad"),
        "st_output_is_st": ([], None),  # run below
        "model_is_sc": (["--save-model", str(files / "sc.h5ad")], "o.h5ad"),
        "model_is_out": (["--save-model", str(files / "o.h5ad")], "o.h5ad"),
        "model_is_dir": (["--save-model", str(files / "adir")], "o.h5ad"),
        "out_in_file": ([], "a_file/o.h5ad"),
        "out_is_dir": ([], "adir"),
        "label_key": (["--label-key", "celltyp"], "o.h5ad"),
        "lr": (["--lr", "-1"], "o.h5ad"),
        "spot_batch": (["--spot-batch-size", "1"], "o.h5ad"),
        "epochs": (["--epochs", "0"], "o.h5ad"),
        "out_empty": ([], None),
    }[case]
    if case == "st_output_is_st":
        # --out x.h5ad writes x_st.h5ad: an input named like that must not be overwritten
        (files / "st.h5ad").rename(files / "x_st.h5ad")
        inputs = {"sc.h5ad": inputs["sc.h5ad"], "x_st.h5ad": inputs["st.h5ad"]}
        rc = main(
            [
                "map",
                "--sc",
                str(files / "sc.h5ad"),
                "--st",
                str(files / "x_st.h5ad"),
                "--out",
                str(files / "x.h5ad"),
                "--quiet",
            ]
        )
    else:
        rc = _map(files, *extra, out=out)
    assert rc == 2
    _one_error_line(capsys, match)
    for p, data in inputs.items():
        assert (files / p).read_bytes() == data
    assert not (files / "o.h5ad").exists()


def test_cli_failure_leaves_no_outputs(files, capsys, monkeypatch):
    (files / "o.h5ad").write_text("previous result")

    def save(self, path):
        raise OSError("disk full")

    monkeypatch.setattr(stemmap.STEM, "save", save)
    rc = _map(files, "--epochs", "1", "--save-model", str(files / "m.stem"))
    assert rc == 2
    _one_error_line(capsys, "disk full")
    assert (files / "o.h5ad").read_text() == "previous result"
    assert not (files / "o_st.h5ad").exists()
    assert not (files / "m.stem").exists()
    assert not [p for p in os.listdir(files) if p.endswith(".tmp.h5ad")]


def test_cli_unexpected_error_is_one_line(files, capsys, monkeypatch):
    def train(self, *a, **k):
        raise RuntimeError("something\ninternal")

    monkeypatch.setattr(stemmap.STEM, "train", train)
    assert _map(files, "--epochs", "1") == 1
    _one_error_line(capsys, "RuntimeError: something internal")


def test_cli_writes_all_outputs(files):
    umask = os.umask(0o022)
    try:
        assert _map(files, "--epochs", "1", "--save-model", str(files / "m.stem")) == 0
    finally:
        os.umask(umask)
    for name in ("o.h5ad", "o_st.h5ad", "m.stem"):  # not the 0600 of a temporary file
        assert (files / name).stat().st_mode & 0o777 == 0o644
    assert ad.read_h5ad(files / "o.h5ad").n_obs > 0
    assert ad.read_h5ad(files / "o_st.h5ad").n_obs > 0
    stemmap.STEM.load(files / "m.stem")
    assert not [p for p in os.listdir(files) if p.startswith(".")]


# ------------------------------------------------------------------ R bridge envelope
def _r_inputs(toy, **params):
    sc, st = toy
    X = _dense(sc.X).T
    S = _dense(st.X).T
    return {
        "sc": {
            "x": _wire.pack(X),
            "genes": list(map(str, sc.var_names)),
            "cells": list(map(str, sc.obs_names)),
        },
        "st": [
            {
                "x": _wire.pack(S),
                "genes": list(map(str, st.var_names)),
                "spots": list(map(str, st.obs_names)),
                "coords": _wire.pack(np.asarray(st.obsm["spatial"], dtype=float)),
                "name": "st",
            }
        ],
        "params": {"epochs": 1, "hidden": [8], **params},
        # R's own storage choices, always sent
        "labels": None,
        "transfer": None,
        "mapping": "topk",
        "mapping_k": 10,
    }


@pytest.mark.parametrize(
    ("params", "kind", "match"),
    [
        ({"lr": 0.0}, "value", "`lr` must be a finite positive number"),
        ({"lr": float("inf")}, "value", "`lr`"),
        ({"device": "gpu0"}, "value", "`device`"),
        ({"alpha": float("nan")}, "value", "`alpha`"),
        ({"genes": ["g_absent"]}, "value", "`genes`"),
    ],
)
def test_bridge_errors_have_kind_and_message(toy, params, kind, match):
    out = _wire.call("run_stem", _r_inputs(toy, **params))
    assert out["stemmap_envelope"] is True
    assert out["value"] is None
    assert out["error"]["kind"] == kind
    assert match in out["error"]["message"]


def test_bridge_forwards_input_warnings(toy):
    sc, st = toy
    out = _wire.call("run_stem", _r_inputs(toy, genes=[*map(str, sc.var_names), "absent"]))
    assert out["error"] is None
    assert out["value"]["cells"]
    assert any("`genes`" in w for w in out["warnings"])


def test_bridge_unknown_function():
    out = _wire.call("__import__", {"name": "os"})
    assert out["error"]["kind"] == "value"
    assert "unknown bridge function" in out["error"]["message"]


def test_pickle_module_not_needed_for_loading(saved, monkeypatch):
    """Loading never unpickles: it works with pickle.loads disabled."""
    _, path = saved

    def no_unpickling(*a, **k):
        raise AssertionError("unpickling during load")

    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "Unpickler", no_unpickling)
    stemmap.STEM.load(path)


@pytest.mark.parametrize(
    ("values", "expect"),
    [
        (["a", None, "b"], np.array(["a", None, "b"], dtype=object)),
        ([1.5, None, 2.5], np.array([1.5, np.nan, 2.5])),
        ([1, 2, None], np.array(["1", "2", None], dtype=object)),
    ],
)
def test_bridge_labels_keep_missing_and_numbers(values, expect):
    got = verbs._label_values(values)
    assert got.dtype == expect.dtype
    assert pd.isna(got).tolist() == pd.isna(expect).tolist()
    np.testing.assert_array_equal(got[~pd.isna(got)], expect[~pd.isna(expect)])


def _with(adata, **changes):
    a = adata.copy()
    for k, v in changes.items():
        if k == "coords":
            a.obsm["spatial"] = v(a)
        else:
            setattr(a, k, v(a))
    return a


@pytest.mark.parametrize(
    ("case", "exc", "match"),
    [
        ("spatial_key_list", TypeError, "`spatial_key` must be the name"),
        ("identical_coords", ValueError, r"`st.obsm\['spatial'\]`: all spots have the same"),
        ("float32_overflow", ValueError, "`sc.X` has values beyond the float32 range"),
        ("bool_counts", TypeError, "`sc.X` must be numeric"),
        ("one_column_coords", ValueError, r"must be a \(spots × 2\) array"),
        ("text_coords", TypeError, "must be numeric coordinates"),
        ("st_none", TypeError, "`st` must be an AnnData"),
        ("st_empty_list", ValueError, "`st` is an empty list"),
    ],
)
def test_careless_data(toy, case, exc, match):
    sc, st = toy
    kw = {}
    if case == "spatial_key_list":
        kw["spatial_key"] = ["spatial"]
    elif case == "identical_coords":
        st = _with(st, coords=lambda a: np.zeros((a.n_obs, 2)))
    elif case == "float32_overflow":
        sc = _with(sc, X=lambda a: _dense(a.X) * 1e300)
    elif case == "bool_counts":
        sc = _with(sc, X=lambda a: _dense(a.X) > 0)
    elif case == "one_column_coords":
        st = _with(st, coords=lambda a: np.zeros((a.n_obs, 1)))
    elif case == "text_coords":
        st = _with(
            st,
            coords=lambda a: pd.DataFrame(
                {"x": ["a"] * a.n_obs, "y": ["b"] * a.n_obs}, index=a.obs_names
            ),
        )
    elif case == "st_none":
        st = None
    elif case == "st_empty_list":
        st = []
    with pytest.raises(exc, match=match):
        stemmap.STEM(sc, st, hidden=HIDDEN, **kw)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda m: m.deconvolve(None), TypeError, "`labels` must be one value per mapped cell"),
        (lambda m: m.deconvolve("a"), TypeError, "`labels` must be one value per mapped cell"),
        (lambda m: m.spot_aggregate(np.zeros(3)), ValueError, "`values` must have one row"),
        (lambda m: m.transfer(None), ValueError, "`spot_values` must have one row per spot"),
    ],
    ids=["deconvolve_none", "deconvolve_scalar", "spot_aggregate_short", "transfer_none"],
)
def test_careless_result_calls(mapping, call, exc, match):
    with pytest.raises(exc, match=match):
        call(mapping)


@pytest.mark.parametrize("path", [None, 5, ""])
def test_model_paths_must_be_paths(saved, path):
    model, _ = saved
    with pytest.raises(TypeError, match="`path` must be a file path"):
        stemmap.STEM.load(path)
    with pytest.raises(TypeError, match="`path` must be a file path"):
        model.save(path)


def test_progress_must_be_a_flag(small_model):
    with pytest.raises(TypeError, match="`progress` must be True or False"):
        small_model.train(epochs=1, progress="x")
