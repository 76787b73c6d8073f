"""Shared fixtures: tiny synthetic SC/ST pairs (fast, deterministic) and the real data path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import stemmap


@pytest.fixture(autouse=True)
def _quiet():
    stemmap.settings.progress = False
    return


@pytest.fixture(scope="session")
def toy():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc, st = stemmap.datasets.toy_data(seed=0)
    return sc, st


@pytest.fixture
def toy_copy(toy):
    sc, st = toy
    return sc.copy(), st.copy()


@pytest.fixture(scope="session")
def trained(toy):
    sc, st = toy
    model = stemmap.STEM(sc, st, seed=0, hidden=(64, 32, 16))
    model.train(epochs=30)
    return model


@pytest.fixture(scope="session")
def shared_dir():
    d = stemmap.datasets.shared_data_dir()
    if d is None:
        pytest.skip("shared real data not found (set STEMMAP_SHARED_DATA)")
    return d


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.fixture
def files(toy, tmp_path):
    """The toy SC and ST data written as ``sc.h5ad`` / ``st.h5ad`` in a temporary folder."""
    sc, st = toy
    sc.write_h5ad(tmp_path / "sc.h5ad")
    st.write_h5ad(tmp_path / "st.h5ad")
    return tmp_path


def _bridge_inputs_of(sc, st):
    """``sc`` and ``st`` as R sends them to ``run_stem`` (genes × observations, packed)."""
    from stemmap.bridge import _wire

    def packed(adata):
        x = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
        return _wire.pack(np.asarray(x, dtype=np.float64).T)

    sc_in = {"x": packed(sc), "genes": list(sc.var_names), "cells": list(sc.obs_names)}
    st_in = [
        {
            "x": packed(st),
            "genes": list(st.var_names),
            "spots": list(st.obs_names),
            "coords": _wire.pack(np.asarray(st.obsm["spatial"])),
            "name": "s",
        }
    ]
    return sc_in, st_in


@pytest.fixture
def bridge_inputs():
    """``bridge_inputs(sc, st)``: the two inputs R sends to the bridge's ``run_stem``."""
    return _bridge_inputs_of


@pytest.fixture
def count_round_rows(monkeypatch):
    """``count_round_rows()``: from then on, a list of (round, first cell) of every read of a
    round's rows of C."""
    from stemmap.mapping._engine import ReadoutEngine

    def start() -> list[tuple[int, int]]:
        calls: list[tuple[int, int]] = []
        orig = ReadoutEngine.round_rows
        monkeypatch.setattr(
            ReadoutEngine,
            "round_rows",
            lambda self, r, a, b: calls.append((r, a)) or orig(self, r, a, b),
        )
        return calls

    return start
