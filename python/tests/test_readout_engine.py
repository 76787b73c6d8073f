"""The readout engine (issue 26): outputs read the matrix they name; NaN stops at once."""

from __future__ import annotations

import inspect
import time

import numpy as np
import pandas as pd
import pytest
import torch

import stemmap
from stemmap import StemMapping
from stemmap.mapping import _balance, _readout


def _col_normalised(C: np.ndarray) -> np.ndarray:
    return (C / C.sum(axis=0, keepdims=True)).T


@pytest.mark.parametrize("rounds", [1, 2, 3])
@pytest.mark.parametrize("readout", ["hybrid", "paper"])
def test_every_output_reads_the_matrix_it_names(trained, readout, rounds):
    m = trained.mapping(readout=readout, rounds=rounds)
    assert m.rounds == (rounds if readout == "hybrid" else 1)
    P, C, Chat, Y = m.placement, m.sc_to_st, m.st_to_sc, m.spot_coords
    # the placement outputs read the public placement C₁
    np.testing.assert_allclose(m.coords, P.astype(np.float64) @ Y, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(m.best_spot, P.argmax(axis=1))
    np.testing.assert_array_equal(m.confidence, P.max(axis=1))
    top = np.argsort(-P, axis=1, kind="stable")[:, :3]
    np.testing.assert_allclose(m.topk_coords(3), Y[top].mean(axis=1), atol=1e-9)
    # C is the rounds' mean of the public C_r; C₁ is round 1's
    rounds_c = [m.round_mapping(r) for r in range(1, m.rounds + 1)]
    np.testing.assert_array_equal(rounds_c[0], P)
    np.testing.assert_allclose(C, np.mean(rounds_c, axis=0), rtol=1e-5, atol=1e-7)
    if m.rounds == 1:
        np.testing.assert_array_equal(P, C)
    # Ĉ: balanced, each round's C_r normalised per spot; the paper, the column softmax
    if m.balance:
        want = np.mean([_col_normalised(c.astype(np.float64)) for c in rounds_c], axis=0)
    else:
        want = torch.softmax(m.engine.logits(slice(None)).double(), dim=0).T.numpy()
    np.testing.assert_allclose(Chat, want, rtol=1e-4, atol=1e-6)
    # deconvolution and spot aggregates read Ĉ, transfer reads C, top-k reads C
    labels = trained.data.sc_names
    lab = pd.Series(np.asarray(labels)).str[-1].to_numpy()  # a few "types"
    dec = m.deconvolve(lab)
    onehot = pd.get_dummies(pd.Series(lab)).to_numpy(dtype=np.float64)
    np.testing.assert_allclose(dec.to_numpy(), Chat @ onehot, rtol=1e-5, atol=1e-6)
    v = np.arange(m.n_spots, dtype=np.float64)
    np.testing.assert_allclose(m.transfer(v), C @ v, rtol=1e-5)
    k = 4
    idx = np.argsort(-C, axis=1)[:, :k]
    got = m.topk_mapping(k).toarray()
    np.testing.assert_allclose(
        np.take_along_axis(got, idx, axis=1), np.take_along_axis(C, idx, axis=1), atol=1e-7
    )
    # ... and with placement=True, the placement C₁'s (what R stores beside the mapping)
    idx = np.argsort(-P, axis=1)[:, :k]
    got = m.topk_mapping(k, placement=True).toarray()
    assert (got > 0).sum(axis=1).max() <= k
    np.testing.assert_allclose(
        np.take_along_axis(got, idx, axis=1), np.take_along_axis(P, idx, axis=1), atol=1e-7
    )


def test_round_mapping_is_checked(trained):
    m = trained.mapping(rounds=2)
    with pytest.raises(ValueError, match="`r` must be an integer in \\[1, 2\\]"):
        m.round_mapping(3)


@pytest.mark.parametrize("bad", [10**12, 21, float("inf")])
def test_rounds_are_bounded(trained, bad):
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=f"`rounds` must be .* <= {_readout.MAX_ROUNDS}"):
        trained.mapping(rounds=bad)
    assert time.perf_counter() - t0 < 5
    assert trained.mapping(rounds=_readout.MAX_ROUNDS).rounds == _readout.MAX_ROUNDS


def test_expression_is_turned_into_proportions_once(trained, monkeypatch):
    calls = []
    orig = _readout.proportions
    monkeypatch.setattr(
        _readout, "proportions", lambda x, *a, **k: calls.append(x.shape) or orig(x, *a, **k)
    )
    m = trained.mapping(rounds=3)
    _ = m.coords, m.sc_to_st, m.st_to_sc
    # once for the cells, once for the spots: the residual rounds reuse them
    assert calls == [trained.data.sc_x.shape, (m.n_spots, trained.data.sc_x.shape[1])]


# ---------------------------------------------------------------- NaN and Inf
def _parts(trained):
    m = trained.mapping()
    return {
        "sc_embedding": m.sc_embedding.copy(),
        "st_embedding": m.st_embedding.copy(),
        "spot_coords": m.spot_coords,
        "sc_names": m.sc_names,
        "spot_names": m.spot_names,
        "spot_slice": list(m.spot_slice),
        "sc_expr": trained.data.sc_x.copy(),
        "st_expr": trained.data.slices[0].x.copy(),
    }


@pytest.mark.parametrize("where", ["sc_embedding", "st_embedding", "sc_expr", "st_expr"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_non_finite_input_is_an_error_naming_it(trained, where, value):
    kw = _parts(trained)
    kw[where][3, 1] = value
    with pytest.raises(FloatingPointError, match=f"`{where}`"):
        _ = StemMapping(**kw).coords


@pytest.mark.parametrize("readout", ["hybrid", "paper"])
def test_overflowing_logits_are_an_error_not_a_nan_mapping(trained, readout):
    kw = _parts(trained)
    kw["sc_embedding"] *= 1e20  # finite, but Z_SC Z_STᵀ overflows float32
    kw["st_embedding"] *= 1e20
    with pytest.raises(FloatingPointError, match="overflow"):
        _ = StemMapping(**kw, readout=readout).coords


def test_raw_counts_passed_as_normalized_are_an_error(toy):
    """Preparation refuses them first (ValueError naming ``normalized``)."""
    sc, st = toy
    with pytest.raises(ValueError, match="normalized=True"):
        stemmap.STEM(sc, st, seed=0, hidden=(32, 16), normalized=True)


def test_expression_whose_expm1_overflows_is_an_error_in_the_readout(trained):
    """The readout's own guard, for values that reach it without preparation's check."""
    kw = _parts(trained)
    kw["st_expr"] = kw["st_expr"] + 100.0  # expm1(100) overflows float32
    with pytest.raises(FloatingPointError, match="normalized=True"):
        _ = StemMapping(**kw).coords


class _Logits:
    """Logits of 60 cells × 9 spots with one NaN (or Inf); counts the chunks read."""

    def __init__(self, value: float) -> None:
        gen = torch.Generator().manual_seed(0)
        self.L = 2.0 * torch.randn(60, 9, generator=gen, dtype=torch.float64)
        self.L[7, 2] = value
        self.reads = 0

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        self.reads += 1
        return self.L[rows].float()


@pytest.mark.parametrize(
    ("value", "cap"),  # cap 1e9: the kernel iterations; 1: log space (no kernel)
    [(np.nan, 1e9), (np.inf, 1e9), (-np.inf, 1e9), (np.nan, 1.0), (np.inf, 1.0)],
)
def test_a_nan_stops_the_balancing_within_one_iteration(value, cap):
    logits = _Logits(value)
    with pytest.raises(FloatingPointError, match="balancing C .* not finite"):
        _balance.fit_potentials(
            logits,
            60,
            np.full(9, 1 / 9),
            16,
            cap,
            tol=1e-4,
            max_iter=50,
            min_cells=60,
            passes=0,
            pass_tol=0.1,
            pass_dtype=torch.float32,
        )
    assert logits.reads <= 2 * 4  # one iteration: every chunk of 16 read at most twice


def test_nan_potentials_stop_the_log_iterations():
    logits = _Logits(0.0)
    g0 = torch.zeros(9, dtype=torch.float64)
    g0[4] = float("nan")
    with pytest.raises(FloatingPointError, match="starting potentials"):
        _balance.sinkhorn_log(logits, torch.arange(60), torch.zeros(9), 1e-4, 50, 16, g0=g0)
    assert logits.reads == 0


def test_r_gets_a_training_error_for_a_non_finite_mapping():
    from stemmap.bridge._wire import _error_kinds

    err = _balance.non_finite("the readout logits", 1)
    assert next(k for cls, k in _error_kinds() if isinstance(err, cls)) == "training"


# ------------------------------------------------------------------ to_anndata
def test_to_anndata_label_key_errors_name_label_key(trained, toy):
    sc, st = toy
    sc = sc.copy()
    sc.obs["nothing"] = np.nan
    m = trained.mapping()
    with pytest.raises(ValueError, match="`label_key='nothing'` are all missing"):
        m.to_anndata(sc, st, label_key="nothing")
    sc.obs["some"] = sc.obs["celltype"].astype(object)
    sc.obs.iloc[:5, sc.obs.columns.get_loc("some")] = None
    with pytest.warns(stemmap.StemInputWarning, match="`label_key='some'`"):
        m.to_anndata(sc, st, label_key="some")


# --------------------------------------------------------------- who owns what
def _writes_to_a_mapping(module) -> list[str]:
    """Attribute writes (``=``, ``+=``, ``[...] =``) on ``self`` or ``m`` in a module's functions.

    Methods of a class of the module (which write their own instance) are left out.
    """
    import ast

    tree = ast.parse(inspect.getsource(module))
    found = []
    for fn in tree.body:  # module-level functions only
        if not isinstance(fn, ast.FunctionDef):
            continue
        for node in ast.walk(fn):
            targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
            for t in targets:
                while isinstance(t, (ast.Subscript, ast.Attribute)):
                    if isinstance(t.value, ast.Name) and t.value.id in ("self", "m"):
                        found.append(ast.unparse(t))
                    t = t.value
    return found


def test_only_the_engine_changes_the_readout_state():
    from stemmap.mapping import _export, _graph, _mapping, _rounds, _transfer

    # the functions bound onto StemMapping, and the rounds' helpers, write nothing of it
    for mod in (_transfer, _graph, _export, _rounds):
        assert _writes_to_a_mapping(mod) == [], mod.__name__
    # and StemMapping never writes into its engine
    assert "engine._" not in inspect.getsource(_mapping)
