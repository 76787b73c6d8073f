"""The one argument resolver (issue 26): an explicit argument wins over a preset, a preset over
the defaults table, and the settings say which gave each value, in Python, the CLI and the
bridge R calls. R's own tests: ``tests/testthat/test-resolver.R``."""

from __future__ import annotations

import pytest
import torch

import stemmap
from stemmap import _defaults
from stemmap._resolve import GROUPS, resolve, resolve_run, split
from stemmap.bridge import _wire, verbs
from stemmap.cli import main

#: per preset key: an explicit value that differs from every preset's value
EXPLICIT = {
    "epochs": 3,
    "lr": 0.001,
    "lr_step": 7,
    "lr_gamma": 0.9,
    "warmup": 1,
    "cell_batch_size": 50,
    "sigma_scale": 2.0,
    "hidden": (8,),
    "readout": "hybrid",
    "expression_weight": 0.5,
    "rounds": 1,
}
#: every (preset, key) pair of the table
PRESET_KEYS = [(p, k) for p, keys in _defaults.PRESETS.items() for k in keys]
#: the resolver's group of each key
GROUP_OF = {k: g for g, (_, keys) in GROUPS.items() for k in keys}
SMALL = (8,)


def test_every_preset_key_has_an_explicit_value_and_a_group():
    for preset, key in PRESET_KEYS:
        assert key in EXPLICIT, key
        assert EXPLICIT[key] != _defaults.PRESETS[preset][key] or key == "readout", (preset, key)
        assert GROUP_OF[key] in ("model", "train", "mapping"), key


@pytest.mark.parametrize(("preset", "key"), PRESET_KEYS, ids=[f"{p}-{k}" for p, k in PRESET_KEYS])
def test_resolver_order_for_every_preset_key(preset, key):
    group = GROUP_OF[key]
    table = GROUPS[group][0]
    value = _defaults.PRESETS[preset][key]
    # the preset beats the table
    r = resolve(group, preset)
    assert r.sources[key] == "preset"
    assert r.record()[key] == {"value": _plain(value), "source": "preset"}
    # no preset: the table
    r = resolve(group)
    assert (r[key], r.sources[key]) == (table[key], "default")
    # the caller beats the preset
    explicit = "paper" if key == "readout" and value == "hybrid" else EXPLICIT[key]
    r = resolve(group, preset, **{key: explicit})
    assert r.sources[key] == "caller"
    assert _plain(r[key]) == _plain(explicit)


def _plain(v):
    return list(v) if isinstance(v, (list, tuple)) else v


@pytest.fixture
def data(toy):
    return toy


TRAIN_KEYS = [(p, k) for p, k in PRESET_KEYS if GROUP_OF[k] == "train"]


@pytest.mark.parametrize(("preset", "key"), TRAIN_KEYS, ids=[f"{p}-{k}" for p, k in TRAIN_KEYS])
def test_train_explicit_argument_beats_the_preset(data, preset, key):
    sc, st = data
    model = stemmap.STEM(*data, seed=0, hidden=SMALL)
    # epochs kept short where another key is tested (an explicit value, as well)
    kwargs = {"epochs": 2, key: EXPLICIT[key]}
    model.train(preset=preset, progress=False, **kwargs)
    got = model.train_settings
    assert got[key] == EXPLICIT[key]
    assert got["resolved"][key] == {"value": EXPLICIT[key], "source": "caller"}
    assert len(model.history) == kwargs["epochs"]
    # the keys not given come from the preset
    for other, value in _defaults.PRESETS[preset].items():
        if GROUP_OF[other] == "train" and other not in kwargs:
            assert got["resolved"][other] == {"value": value, "source": "preset"}, other
    # and those the preset does not set from the table
    assert got["resolved"]["weight_decay"] == {
        "value": _defaults.TRAIN["weight_decay"],
        "source": "default",
    }


def test_quick_with_three_epochs_trains_three(data):
    """Issue 26, defect 1: ``train(preset="quick", epochs=3)`` trained 80 epochs."""
    model = stemmap.STEM(*data, seed=0, hidden=SMALL)
    model.train(preset="quick", epochs=3, progress=False)
    assert len(model.history) == 3
    assert model.settings["epochs"] == 3
    assert model.settings["lr"] == _defaults.PRESETS["quick"]["lr"]


def test_model_keys_explicit_beats_the_preset(data):
    sc, st = data
    nn_sigma = stemmap.STEM(sc, st, hidden=SMALL).data.slices[0].sigma  # scale 1 (table)
    # sigma_scale: the caller's 2 beats paper's 0.5
    own = stemmap.STEM(sc, st, hidden=SMALL, sigma_scale=EXPLICIT["sigma_scale"])
    own.train(preset="paper", epochs=1, progress=False)
    assert own.settings["sigma_scale"] == 2.0
    assert own.data.slices[0].sigma == pytest.approx(2.0 * nn_sigma)
    assert own.settings["resolved"]["sigma_scale"] == {"value": 2.0, "source": "caller"}
    # left None: paper's 0.5 beats the table's 1
    left = stemmap.STEM(sc, st, hidden=SMALL)
    assert left.settings["resolved"]["sigma_scale"]["source"] == "default"
    left.train(preset="paper", epochs=1, progress=False)
    assert left.data.slices[0].sigma == pytest.approx(0.5 * nn_sigma)
    assert left.settings["resolved"]["sigma_scale"] == {"value": 0.5, "source": "preset"}
    # hidden: the caller's layers beat quick's
    own = stemmap.STEM(sc, st, hidden=EXPLICIT["hidden"])
    own.train(preset="quick", epochs=1, progress=False)
    assert own.config["hidden"] == [8]
    assert own.settings["resolved"]["hidden"] == {"value": [8], "source": "caller"}
    # left None: quick's layers beat the table's
    left = stemmap.STEM(sc, st)
    left.train(preset="quick", epochs=1, progress=False)
    assert left.config["hidden"] == list(_defaults.PRESETS["quick"]["hidden"])
    assert left.settings["resolved"]["hidden"]["source"] == "preset"


MAPPING_KEYS = [(p, k) for p, k in PRESET_KEYS if GROUP_OF[k] == "mapping"]


@pytest.fixture(scope="module")
def by_preset(toy):
    out = {}
    for preset in _defaults.PRESETS:
        model = stemmap.STEM(*toy, seed=0, hidden=SMALL)
        out[preset] = model.train(preset=preset, epochs=2, progress=False)
    return out


@pytest.mark.parametrize(("preset", "key"), MAPPING_KEYS, ids=[f"{p}-{k}" for p, k in MAPPING_KEYS])
def test_mapping_explicit_argument_beats_the_preset(by_preset, preset, key):
    model = by_preset[preset]
    value = _defaults.PRESETS[preset][key]
    m = model.mapping()
    assert m.settings["mapping"][key] == value
    assert m.settings["resolved"][key] == {"value": value, "source": "preset"}
    m = model.mapping(**{key: EXPLICIT[key]})
    assert m.settings["mapping"][key] == EXPLICIT[key]
    assert m.settings["resolved"][key] == {"value": EXPLICIT[key], "source": "caller"}


def test_bad_values_are_refused_before_the_model_changes(data):
    sc, st = data
    model = stemmap.STEM(sc, st, seed=0)
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    with pytest.raises(ValueError, match="`lr`"):
        model.train(preset="quick", lr=-1.0)
    assert model.config["hidden"] == list(_defaults.MODEL["hidden"])  # quick's not applied
    assert model.config["preset"] is None
    for k, v in model.module.state_dict().items():
        assert torch.equal(v, before[k])
    with pytest.raises(ValueError, match="`preset`"):
        model.train(preset="turbo")
    with pytest.raises(TypeError, match="`mixed_precision`"):
        model.train(epochs=1, mixed_precision="yes")


def test_resolve_refuses_keys_of_no_group_and_split_sorts_them():
    with pytest.raises(TypeError, match="alpha"):
        resolve("train", alpha=0.5)
    parts = split({"epochs": 2, "preset": "quick", "rounds": 1, "alpha": 0.1, "lr": None})
    assert parts["train"] == {"epochs": 2, "preset": "quick"}
    assert parts["mapping"] == {"rounds": 1}
    assert parts["other"] == {"alpha": 0.1}
    run = resolve_run("quick", epochs=2, rounds=1, adjacency_k=4, alpha=0.1)
    assert run["train"]["epochs"] == 2
    assert run["train"]["lr"] == 0.004
    assert run["mapping"]["rounds"] == 1
    assert run["mapping"]["expression_weight"] == 3.0
    assert run["graph"]["adjacency_k"] == 4
    with pytest.raises(ValueError, match="`rounds`"):
        resolve_run(None, rounds=0)


# ------------------------------------------------------------------ the command line
def run_map(files, *extra, sc="sc.h5ad"):
    args = ["map", "--sc", str(files / sc), "--st", str(files / "st.h5ad")]
    return main([*args, "--out", str(files / "o.h5ad"), "--quiet", *extra])


def test_cli_explicit_options_beat_the_preset(files):
    import anndata as ad

    from stemmap._layout import settings_from_uns

    f = files / "m.stem"
    args = ("--preset", "quick", "--epochs", "2", "--lr", "0.001", "--cell-batch-size", "50")
    assert (
        run_map(files, *args, "--rounds", "1", "--expression-weight", "0.5", "--save-model", str(f))
        == 0
    )
    model = stemmap.STEM.load(f)
    assert len(model.history) == 2
    assert model.settings["lr"] == 0.001
    assert model.settings["cell_batch_size"] == 50
    assert model.settings["lr_step"] == _defaults.PRESETS["quick"]["lr_step"]  # not given
    assert model.settings["resolved"]["epochs"] == {"value": 2, "source": "caller"}
    s = settings_from_uns(ad.read_h5ad(files / "o.h5ad").uns["stem"])
    assert s["mapping"]["rounds"] == 1
    assert s["mapping"]["expression_weight"] == 0.5
    # not given: quick's readout values
    assert run_map(files, "--preset", "quick", "--epochs", "1") == 0
    s = settings_from_uns(ad.read_h5ad(files / "o.h5ad").uns["stem"])
    assert s["mapping"]["rounds"] == _defaults.PRESETS["quick"]["rounds"]
    assert s["mapping"]["expression_weight"] == _defaults.PRESETS["quick"]["expression_weight"]


def test_cli_sigma_scale_and_readout_beat_the_paper_preset(files):
    import anndata as ad

    from stemmap._layout import settings_from_uns

    f = files / "p.stem"
    args = ("--preset", "paper", "--epochs", "1", "--sigma-scale", "2", "--readout", "hybrid")
    assert run_map(files, *args, "--save-model", str(f)) == 0
    model = stemmap.STEM.load(f)
    assert model.settings["sigma_scale"] == 2.0
    assert len(model.history) == 1
    s = settings_from_uns(ad.read_h5ad(files / "o.h5ad").uns["stem"])
    assert s["mapping"]["readout"] == "hybrid"
    assert run_map(files, "--preset", "paper", "--epochs", "1") == 0
    s = settings_from_uns(ad.read_h5ad(files / "o.h5ad").uns["stem"])
    assert s["mapping"]["readout"] == "paper"  # not given: the preset's


def test_cli_checks_every_option_before_reading_data(files, capsys):
    # a bad value is named before the (missing) input is even looked at
    assert run_map(files, "--preset", "quick", "--rounds", "0", sc="missing.h5ad") == 2
    err = capsys.readouterr().err
    assert "--rounds" in err
    assert "missing.h5ad" not in err
    assert run_map(files, "--expression-weight", "-1", sc="missing.h5ad") == 2
    assert "--expression-weight" in capsys.readouterr().err


# ------------------------------------------------------------------ the bridge R calls
R_ARGS = {"labels": None, "transfer": None, "mapping": "none", "mapping_k": 10}


def test_bridge_explicit_arguments_beat_the_preset(data, bridge_inputs):
    sc_in, st_in = bridge_inputs(*data)
    params = {"preset": "quick", "epochs": 2, "rounds": 1, "hidden": [8], "adjacency_k": 0}
    res = verbs.run_stem(sc_in, st_in, params, **R_ARGS)
    s = res["settings"]
    assert {len(_wire.unpack(v)) for v in res["history"].values()} == {2}
    assert s["epochs"] == 2
    assert s["lr"] == _defaults.PRESETS["quick"]["lr"]
    assert s["mapping"]["rounds"] == 1
    assert s["mapping"]["expression_weight"] == _defaults.PRESETS["quick"]["expression_weight"]
    assert s["resolved"]["epochs"]["source"] == "caller"
    assert s["resolved"]["expression_weight"]["source"] == "preset"
