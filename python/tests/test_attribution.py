"""Integrated gradients: completeness, quadrature, targets, batching, determinism, planted gene."""

from __future__ import annotations

import logging
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import stemmap
from stemmap import analysis, attribution


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # the CI box is a shared 2-core machine: oversubscribed threads make tiny models 50x slower
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def planted_pair(seed: int = 0, n: int = 400, n_genes: int = 30):
    """Cells in [0,2]x[0,1]; gene 'planted' rises steeply with x, the others are pure noise.

    Inputs are log1p of counts (SC) and of mean counts per cell (ST), passed with
    ``normalized=True``, so no library-size normalisation leaks x into the noise genes.
    """
    rng = np.random.default_rng(seed)
    xy = rng.uniform([0.0, 0.0], [2.0, 1.0], size=(n, 2))
    lam = np.full((n, n_genes), 3.0)
    lam[:, 0] = np.exp(0.3 + 2.2 * xy[:, 0])
    genes = ["planted"] + [f"noise{j}" for j in range(1, n_genes)]
    a = ad.AnnData(
        rng.poisson(lam).astype(np.float32),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(index=genes),
    )
    a.obsm["spatial"] = xy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc, st = stemmap.simulate.pseudo_spots(
            a, grid=(10, 5), window=0.9, min_cells=2, label_key=None
        )
    sc.X = np.log1p(np.asarray(sc.X))
    st.X = np.log1p(np.asarray(st.X) / st.obs["n_cells"].to_numpy()[:, None])
    return sc, st


def train_planted(seed: int = 0):
    sc, st = planted_pair(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = stemmap.STEM(sc, st, seed=seed, hidden=(64, 32, 16), normalized=True)
    return sc, model.train(epochs=80, progress=False)


@pytest.fixture(scope="module")
def planted():
    logging.getLogger("stemmap").setLevel(logging.WARNING)
    return train_planted(0)


def test_frame_layout(planted):
    sc, model = planted
    attr = attribution.integrated_gradients(model, steps=10)
    assert isinstance(attr, pd.DataFrame)
    assert attr.shape == (sc.n_obs, 30)
    assert list(attr.index) == model.data.sc_names
    assert list(attr.columns) == model.data.genes
    assert attr.dtypes.iloc[0] == np.float32
    sub = attribution.integrated_gradients(model, cells=["c3", "c1"], steps=10)
    assert list(sub.index) == ["c3", "c1"]
    np.testing.assert_allclose(sub.to_numpy(), attr.loc[["c3", "c1"]].to_numpy(), atol=1e-6)


def test_completeness(planted):
    _, model = planted
    m = model.mapping(readout="paper")  # IG explains the embedding mapping
    attr, delta = attribution.integrated_gradients(
        model, steps=200, method="gausslegendre", return_delta=True
    )
    # F(x) = C_{i,best}: the mapping's confidence, computed independently of the IG code
    z0 = model.embed(np.zeros((1, len(model.data.genes)), dtype=np.float32))
    logits0 = (z0 @ m.st_embedding.T)[0]
    p0 = np.exp(logits0 - logits0.max())
    f0 = (p0 / p0.sum())[m.best_spot]
    gap = m.confidence.astype(np.float64) - f0
    np.testing.assert_allclose(attr.sum(axis=1) - gap, delta, atol=1e-4)
    # ReLU kinks make the path integrand piecewise smooth: error ~ 1/steps
    assert np.abs(delta).mean() < 0.02 * np.abs(gap).mean() + 1e-3
    assert np.abs(delta).max() < 0.1 * np.abs(gap).max()
    _, d_coarse = attribution.integrated_gradients(model, steps=10, return_delta=True)
    assert np.abs(d_coarse).mean() > np.abs(delta).mean()


@pytest.mark.parametrize("method", attribution.METHODS)
def test_path_weights(method):
    a, w = attribution.path_weights(100, method)
    assert a.min() >= 0
    assert a.max() <= 1
    assert w.sum() == pytest.approx(1.0)
    assert (w * a**3).sum() == pytest.approx(0.25, abs=1e-2)
    if method == "gausslegendre":
        a, w = attribution.path_weights(3, method)
        assert (w * a**5).sum() == pytest.approx(1 / 6, abs=1e-12)


def test_targets_linear(planted):
    _, model = planted
    cells = np.arange(25)
    one = attribution.integrated_gradients(model, cells, target=3, steps=30)
    two = attribution.integrated_gradients(model, cells, target=[7], steps=30)
    both = attribution.integrated_gradients(model, cells, target=[3, 7], steps=30)
    np.testing.assert_allclose(both.to_numpy(), (one + two).to_numpy(), atol=1e-5)
    name = model.data.slices[0].spot_names[3]
    np.testing.assert_allclose(
        attribution.integrated_gradients(model, cells, target=name, steps=30), one, atol=1e-6
    )
    best = model.mapping(readout="paper").best_spot[cells]
    W = np.zeros((len(cells), model.data.n_spots), dtype=np.float32)
    W[np.arange(len(cells)), best] = 1
    np.testing.assert_allclose(
        attribution.integrated_gradients(model, cells, target=W, steps=30),
        attribution.integrated_gradients(model, cells, steps=30),
        atol=1e-5,
    )


def test_batch_invariance_and_determinism(planted):
    _, model = planted
    a = attribution.integrated_gradients(model, steps=20, batch_size=7)
    b = attribution.integrated_gradients(model, steps=20, batch_size=500)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=1e-5)
    c = attribution.integrated_gradients(model, steps=20, batch_size=7)
    np.testing.assert_array_equal(a.to_numpy(), c.to_numpy())


def test_planted_gene_ranked_first(planted):
    sc, model = planted
    attr = attribution.integrated_gradients(model, steps=50)
    assert attr.abs().mean().idxmax() == "planted"
    for coords in (sc.obsm["spatial_true"], model.mapping()):
        res = analysis.spatial_dominant_genes(attr, coords, axis="x", n_segments=5)
        assert res.sort_values("pval").iloc[0]["gene"] == "planted"
        last = res[res["segment"] == 4]
        assert last.iloc[0]["gene"] == "planted"
        assert last.iloc[0]["padj"] < 1e-6
    # the model itself can be passed (IG computed inside, pseudo-coordinates by default)
    res = analysis.spatial_dominant_genes(model, n_segments=5, steps=20)
    assert res.sort_values("pval").iloc[0]["gene"] == "planted"


def test_seeded_training_is_deterministic():
    _, m1 = train_planted(1)
    _, m2 = train_planted(1)
    a1 = attribution.integrated_gradients(m1, cells=np.arange(30), steps=20)
    a2 = attribution.integrated_gradients(m2, cells=np.arange(30), steps=20)
    np.testing.assert_array_equal(a1.to_numpy(), a2.to_numpy())


def test_errors(planted):
    _, model = planted
    ig = attribution.integrated_gradients
    with pytest.raises(TypeError, match="model"):
        ig(object())
    with pytest.raises(ValueError, match="steps"):
        ig(model, steps=1)
    with pytest.raises(TypeError, match="steps"):
        ig(model, steps=2.5)
    with pytest.raises(ValueError, match="method"):
        ig(model, method="simpson")
    with pytest.raises(ValueError, match="batch_size"):
        ig(model, batch_size=0)
    with pytest.raises(ValueError, match="cells"):
        ig(model, cells=["nope"])
    with pytest.raises(ValueError, match="cells"):
        ig(model, cells=[10_000])
    with pytest.raises(ValueError, match="target"):
        ig(model, target=10_000)
    with pytest.raises(ValueError, match="target"):
        ig(model, target=["no-such-spot"])
    with pytest.raises(ValueError, match="target"):
        ig(model, cells=[0, 1], target=np.ones((3, 3)))
    with pytest.raises(TypeError, match="target"):
        ig(model, target=1.5)
    with pytest.raises(ValueError, match="slice"):
        ig(model, slice="other")
