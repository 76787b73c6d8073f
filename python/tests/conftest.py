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
