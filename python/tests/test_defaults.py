"""The one table of defaults (stemmap._defaults): every reader takes its values from it."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import stemmap
from stemmap import _defaults
from stemmap._estimate import estimate_resources
from stemmap._module import STEMModule
from stemmap.attribution import integrated_gradients
from stemmap.bridge import _wire, interpret, verbs
from stemmap.cli import build_parser

# table group -> the functions whose keyword defaults it sets (STEM.train and STEM.mapping
# default every argument to None and resolve it: test_resolved_arguments_default_to_none)
READERS = {
    "MODEL": [stemmap.STEM.__init__],
    "MAPPING": [stemmap.StemMapping.__init__],
    "ATTRIBUTION": [integrated_gradients, stemmap.STEM.attribution],
}
# arguments whose signature default is None on purpose: None means "the table's value, unless
# a preset sets another" (STEM(sigma_scale=None), STEM(hidden=None))
PRESET_DEPENDENT = {
    ("MODEL", "sigma_scale"),
    ("MODEL", "hidden"),
}


def _signature_defaults(fn):
    return {
        k: p.default
        for k, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


@pytest.mark.parametrize("group", sorted(READERS))
def test_signatures_read_the_table(group):
    table = getattr(_defaults, group)
    checked = 0
    for fn in READERS[group]:
        sig = _signature_defaults(fn)
        for key, value in table.items():
            if key not in sig:
                continue
            if (group, key) in PRESET_DEPENDENT and sig[key] is None:
                continue
            assert sig[key] == value, f"{fn.__qualname__}({key}=) is {sig[key]!r}, table {value!r}"
            checked += 1
    assert checked >= 3  # the check is not vacuous
    # StemMapping's readout and sc_adjacency's k follow the table too (they disagreed once)
    assert _signature_defaults(stemmap.StemMapping.__init__)["readout"] == "hybrid"
    assert (
        _signature_defaults(stemmap.StemMapping.sc_adjacency)["k"]
        == (_defaults.MAPPING["adjacency_k"])
    )


def test_resolved_arguments_default_to_none():
    """train() and mapping() keep no defaults: None is resolved (caller → preset → table)."""
    from stemmap._resolve import GROUPS

    for fn, group in ((stemmap.STEM.train, "train"), (stemmap.STEM.mapping, "mapping")):
        params = inspect.signature(fn).parameters
        sig = _signature_defaults(fn)
        assert set(sig) == set(params) - {"self"}, fn.__qualname__
        assert all(v is None for v in sig.values()), fn.__qualname__
        assert set(GROUPS[group][1]) <= set(sig), fn.__qualname__
    # the resolved groups fall back to the table's values
    for group, (table, keys) in GROUPS.items():
        for key in keys:
            assert key in table, (group, key)


def test_analyses_read_the_table():
    from stemmap import analysis

    for name, table in _defaults.ANALYSIS.items():
        sig = _signature_defaults(getattr(analysis, name))
        assert table, name
        for key, value in table.items():
            assert sig[key] == value, f"analysis.{name}({key}=)"
        # the bridge's wrapper has no defaults of its own: None = the core's
        wrapper = _signature_defaults(getattr(interpret, name))
        assert all(wrapper[k] is None for k in table if k in wrapper), name


def test_planner_and_module_read_the_table():
    sig = _signature_defaults(estimate_resources)
    assert sig["hidden"] == _defaults.MODEL["hidden"]
    assert sig["epochs"] == _defaults.TRAIN["epochs"]
    assert sig["device"] == _defaults.MODEL["device"]
    assert _signature_defaults(STEMModule.__init__)["hidden"] == _defaults.MODEL["hidden"]


def test_cli_reads_the_table():
    from stemmap import cli

    parser = build_parser()
    a = parser.parse_args(["map", "--sc", "a.h5ad", "--st", "b.h5ad", "--out", "o.h5ad"])
    assert a.spatial_key == _defaults.MODEL["spatial_key"]
    # every option of the run defaults to None: the resolver decides (a preset's or the table's)
    for name in cli._options(a):
        assert getattr(a, name) is None, name
    run = cli._resolve_run(a)
    for group, table in (("train", _defaults.TRAIN), ("mapping", _defaults.MAPPING)):
        assert run[group].values == {k: table[k] for k in run[group].values}
        assert set(run[group].sources.values()) == {"default"}
    # the help names the table's values
    text = parser._subparsers._group_actions[0].choices["map"].format_help()
    assert f"else {_defaults.TRAIN['epochs']}" in text
    assert f"else {_defaults.MAPPING['rounds']}" in text
    with pytest.raises(SystemExit):
        parser.parse_args(["map", "--sc", "a", "--st", "b", "--out", "o", "--preset", "turbo"])


def test_presets_are_the_table():
    assert stemmap.PRESETS is _defaults.PRESETS
    paper = _defaults.PRESETS["paper"]
    assert paper["sigma_scale"] == _defaults.PAPER_SIGMA_SCALE == 0.5
    assert paper["readout"] == "paper"
    # the paper schedule is the default schedule
    for key in ("epochs", "lr", "lr_step", "lr_gamma", "warmup", "cell_batch_size"):
        assert paper[key] == _defaults.TRAIN[key]
    # every preset key is a train() argument or one of the model or mapping keys a preset
    # may set, and those are arguments of STEM() / STEM.mapping() whose default is None
    train_args = set(inspect.signature(stemmap.STEM.train).parameters)
    extra = set(_defaults.PRESET_MODEL_KEYS) | set(_defaults.PRESET_MAPPING_KEYS)
    for p in _defaults.PRESETS.values():
        assert set(p) <= train_args | extra
    for fn, keys in (
        (stemmap.STEM.__init__, _defaults.PRESET_MODEL_KEYS),
        (stemmap.STEM.mapping, _defaults.PRESET_MAPPING_KEYS),
    ):
        sig = inspect.signature(fn).parameters
        assert all(sig[k].default is None for k in keys), fn.__qualname__


def test_table_is_read_only():
    with pytest.raises(TypeError):
        _defaults.TRAIN["epochs"] = 10  # type: ignore[index]


def test_bridge_defaults_are_builtins():
    out = verbs.defaults()

    def builtins_only(v):
        if isinstance(v, dict):
            return all(isinstance(k, str) and builtins_only(w) for k, w in v.items())
        if isinstance(v, list):
            return all(builtins_only(w) for w in v)
        return v is None or isinstance(v, (bool, int, float, str))

    assert builtins_only(out)
    assert out["model"]["hidden"] == [512, 256, 128]
    assert out["mapping"]["adjacency_k"] == 15
    assert out["choices"]["readout"] == ["hybrid", "paper"]
    assert out["choices"]["preset"] == list(stemmap.PRESETS)


#: what R always sends besides the core's arguments (its own storage choices)
R_ARGS = {"labels": None, "transfer": None, "mapping": "topk", "mapping_k": 10}


def test_bridge_leaves_unset_arguments_to_the_core(toy, bridge_inputs):
    """What R leaves NULL is not sent; the bridge then behaves as the Python defaults."""
    sc, st = toy
    sc_in, st_in = bridge_inputs(sc, st)
    res = verbs.run_stem(
        sc_in, st_in, {"epochs": 3, "hidden": [16, 8], "sigma_scale": None}, **R_ARGS
    )
    s = res["settings"]
    assert s["sigma_scale"] == _defaults.MODEL["sigma_scale"]
    assert s["alpha"] == _defaults.MODEL["alpha"]
    assert s["seed"] == _defaults.MODEL["seed"]
    assert s["lr"] == _defaults.TRAIN["lr"]
    assert s["warmup"] == _defaults.TRAIN["warmup"]
    assert s["mapping"]["readout"] == _defaults.MAPPING["readout"]
    adj = _wire.unpack(res["adjacency"])
    assert (np.diff(adj.tocsr().indptr) == _defaults.MAPPING["adjacency_k"]).all()
    model = stemmap.STEM(sc, st, hidden=(16, 8))
    model.train(epochs=3)
    np.testing.assert_allclose(
        _wire.unpack(res["coords"]), model.mapping().coords, rtol=0, atol=1e-3
    )


def test_bridge_preset_paper_is_the_python_preset(toy, bridge_inputs):
    sc, st = toy
    sc_in, st_in = bridge_inputs(sc, st)
    stemmap.PRESETS["_short_paper"] = {**stemmap.PRESETS["paper"], "epochs": 4}
    try:
        res = verbs.run_stem(
            sc_in, st_in, {"preset": "_short_paper", "hidden": [16, 8], "adjacency_k": 5}, **R_ARGS
        )
        model = stemmap.STEM(sc, st, hidden=(16, 8))
        model.train(preset="_short_paper")
        m = model.mapping()  # the readout of the model's preset
    finally:
        del stemmap.PRESETS["_short_paper"]
    assert res["settings"]["sigma"] == pytest.approx([s.sigma for s in model.data.slices])
    assert res["settings"]["sigma_scale"] == 0.5
    assert res["settings"]["preset"] == "_short_paper"
    assert res["settings"]["mapping"]["readout"] == m.readout == "paper"
    adj = _wire.unpack(res["adjacency"]).tocsr()
    ref = m.sc_adjacency(5, weighted=True)
    assert (adj.indices == ref.indices).mean() > 0.95  # embedding basis (paper), same graph
    np.testing.assert_allclose(_wire.unpack(res["coords"]), m.coords, rtol=0, atol=1e-3)


@pytest.mark.parametrize(
    ("params", "match"),
    [({"readout": "nope"}, "`readout` must be one of"), ({"preset": "turbo"}, "`preset`")],
)
def test_bridge_checks_choices_before_training(toy, params, match, bridge_inputs):
    sc, st = toy
    sc_in, st_in = bridge_inputs(sc, st)
    with pytest.raises(ValueError, match=match):
        verbs.run_stem(sc_in, st_in, {"epochs": 1, **params}, **R_ARGS)
