"""The STEM model: outputs against hand-checkable identities, determinism, save/load, slices."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import stemmap
from stemmap._kernels import spatial_adjacency
from stemmap._module import STEMModule, gaussian_mmd


def test_one_epoch_smoke(toy):
    sc, st = toy
    model = stemmap.STEM(sc, st, seed=1, hidden=(32, 16, 8))
    model.train(epochs=1)
    assert len(model.history) == 1
    assert np.isfinite(model.history["loss"]).all()


def test_mapping_rows_sum_to_one(trained):
    m = trained.mapping()
    C, Ch = m.sc_to_st, m.st_to_sc
    assert C.shape == (m.n_cells, m.n_spots)
    assert Ch.shape == (m.n_spots, m.n_cells)
    np.testing.assert_allclose(C.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(Ch.sum(1), 1.0, atol=1e-5)
    assert (C >= 0).all()
    assert (Ch >= 0).all()


def test_mapping_is_softmax_of_inner_products(trained):
    m = trained.mapping(readout="paper")
    B = m.sc_embedding.astype(np.float64) @ m.st_embedding.T.astype(np.float64)
    C = np.exp(B - B.max(1, keepdims=True))
    C /= C.sum(1, keepdims=True)
    np.testing.assert_allclose(m.sc_to_st, C, atol=1e-5)
    Ch = np.exp(B.T - B.T.max(1, keepdims=True))
    Ch /= Ch.sum(1, keepdims=True)
    np.testing.assert_allclose(m.st_to_sc, Ch, atol=1e-5)


def test_hybrid_mapping_is_balanced_product_of_experts(trained):
    # the hybrid readout with stemmap 0.1's expression profile (the default until issue 17;
    # the default's own profile is checked in the next test)
    m = trained.mapping(expression_profile="log", expression_weight=1.0, rounds=1)
    assert m.readout == "hybrid"
    assert m.balance
    zs, zt = m.sc_embedding.astype(np.float64), m.st_embedding.astype(np.float64)
    B = zs @ zt.T
    # Pearson correlation of normalised expression, computed here independently
    xs, xt = trained.data.sc_x.astype(np.float64), trained.data.slices[0].x.astype(np.float64)
    R = np.corrcoef(np.vstack([xs, xt]))[: len(xs), len(xs) :]
    lam = B.std(1, ddof=1).mean() / R.std(1, ddof=1).mean()  # w = 1: equal spreads
    assert m.expression_scale == pytest.approx(lam, rel=0.02)
    C = m.sc_to_st.astype(np.float64)
    np.testing.assert_allclose(C.sum(1), 1.0, atol=1e-5)
    # balanced: every spot receives M / N cells' worth of mass
    np.testing.assert_allclose(C.sum(0), m.n_cells / m.n_spots, rtol=1e-3)
    # log C - L = row constant + column constant (a Sinkhorn scaling of exp(L))
    resid = np.log(C) - (B + m.expression_scale * R)
    resid = resid - resid.mean(1, keepdims=True) - resid.mean(0, keepdims=True) + resid.mean()
    assert np.abs(resid).max() < 1e-3
    # Ĉ is the same plan normalised over cells
    P = C / m.n_cells
    np.testing.assert_allclose(m.st_to_sc, (P / P.sum(0)).T, atol=1e-5)
    # weight 0 without balancing is the paper readout
    p0 = trained.mapping(readout="hybrid", expression_weight=0, balance=False)
    np.testing.assert_allclose(p0.sc_to_st, trained.mapping(readout="paper").sc_to_st, atol=1e-6)


def test_default_hybrid_mapping_uses_hellinger_profiles(trained):
    # one round, weight 1: the formula (the default's rounds are checked further down)
    m = trained.mapping(expression_weight=1.0, rounds=1)
    assert m.readout == "hybrid"
    assert m.balance
    assert m.expression_profile == "hellinger"
    B = m.sc_embedding.astype(np.float64) @ m.st_embedding.T.astype(np.float64)

    # computed here independently: sqrt of proportions, genes standardised per modality
    def hell(x):
        p = np.expm1(x.astype(np.float64))
        h = np.sqrt(p / p.sum(1, keepdims=True))
        sd = h.std(0)
        sd[sd == 0] = 1.0
        return (h - h.mean(0)) / sd

    hs, ht = hell(trained.data.sc_x), hell(trained.data.slices[0].x)
    R = np.corrcoef(np.vstack([hs, ht]))[: len(hs), len(hs) :]
    lam = B.std(1, ddof=1).mean() / R.std(1, ddof=1).mean()
    assert m.expression_scale == pytest.approx(lam, rel=0.02)
    C = m.sc_to_st.astype(np.float64)
    np.testing.assert_allclose(C.sum(0), m.n_cells / m.n_spots, rtol=1e-3)
    resid = np.log(C) - (B + m.expression_scale * R)
    resid = resid - resid.mean(1, keepdims=True) - resid.mean(0, keepdims=True) + resid.mean()
    assert np.abs(resid).max() < 1e-3


def test_balancing_kernel_and_log_space_agree(trained):
    import torch

    from stemmap.mapping._balance import sinkhorn_log

    m = trained.mapping()
    g = m._potentials()
    assert m.balance_info["max_column_error"] < 1e-4
    m2 = trained.mapping()
    # the chunked log-space path used when the kernel does not fit (chunks of 17 cells)
    log_target = torch.from_numpy(m2.n_cells * m2._spot_w).log()
    g2, _ = sinkhorn_log(m2.engine.logits, torch.arange(m2.n_cells), log_target, 1e-4, 5000, 17)
    # both stop within 1e-4 of the balance, the over-relaxed kernel path possibly from the
    # other side of the fixed point
    torch.testing.assert_close(g - g.mean(), g2 - g2.mean(), atol=3e-4, rtol=0)


@pytest.mark.parametrize("sharp", [1.0, 15.0])
def test_overrelaxed_sinkhorn_reaches_the_plain_fixed_point(sharp):
    import torch

    from stemmap.mapping._balance import OVERRELAX, sinkhorn_kernel

    gen = torch.Generator().manual_seed(0)
    L = sharp * torch.randn(400, 60, generator=gen, dtype=torch.float64)
    K = torch.exp(L - L.max(dim=1, keepdim=True).values)
    w = torch.rand(60, generator=gen, dtype=torch.float64) + 0.5
    target = 400 * w / w.sum()
    g1, info1 = sinkhorn_kernel(K, target, 1e-8, 20000, omega=1.0)
    g2, info2 = sinkhorn_kernel(K, target, 1e-8, 20000)  # the default: over-relaxed
    assert OVERRELAX > 1
    assert info2["max_column_error"] < 1e-8
    # sharp logits converge slowly: over-relaxed, in fewer iterations; mild ones stay plain
    if sharp > 1:
        assert info2["iterations"] < 0.75 * info1["iterations"]
    else:
        assert info2["iterations"] == info1["iterations"]
    torch.testing.assert_close(g2 - g2.mean(), g1 - g1.mean(), atol=1e-6, rtol=0)
    # the plan's rows sum to 1 and its columns to the target
    P = K * g2.exp()
    P = P / P.sum(dim=1, keepdim=True)
    torch.testing.assert_close(P.sum(0), target, atol=1e-6, rtol=1e-7)


def test_balancing_on_a_sample_of_cells(trained, monkeypatch):
    full = trained.mapping()
    g_full = full._potentials()
    # pretend memory is tiny: the potentials are fitted on an evenly spread sample of cells
    monkeypatch.setattr("stemmap.mapping._values.free_cpu", lambda: 4 * 8 * 100 * full.n_spots)
    monkeypatch.setattr(stemmap.StemMapping, "_balance_min_cells", 100)
    m = trained.mapping(rounds=1)  # round 1's balancing (a residual round keeps its sample's)
    g = m._potentials()
    assert m.balance_info["cells"] == 100 < m.n_cells
    # the sample's potentials, refined by a few passes over all cells, are close to the
    # full fit and balance all cells well
    assert np.corrcoef(g.numpy(), g_full.numpy())[0, 1] > 0.95
    col = m.sc_to_st.sum(0) / (m.n_cells / m.n_spots)
    assert np.abs(col - 1).mean() < 0.1


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"readout": "nope"}, "readout"),
        ({"expression_weight": -1}, "expression_weight"),
        ({"temperature": 0}, "temperature"),
        ({"spot_weights": [1.0, 2.0]}, "spot_weights"),
        ({"balance": "yes"}, "balance"),
    ],
)
def test_mapping_readout_arguments_checked(trained, kw, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        trained.mapping(**kw)


@pytest.mark.parametrize("rounds", [1, 2])
def test_coords_equal_placement_times_Y(trained, rounds):
    """Coordinates, best spots and confidences read round 1's C₁ (C itself with one round)."""
    m = trained.mapping(rounds=rounds)
    C1 = trained.mapping(rounds=1).sc_to_st.astype(np.float64)
    np.testing.assert_allclose(m.coords, C1 @ m.spot_coords, atol=1e-4)
    np.testing.assert_array_equal(m.best_spot, C1.argmax(1))
    np.testing.assert_allclose(m.confidence, C1.max(1), atol=1e-6)
    if rounds == 1:
        np.testing.assert_allclose(m.sc_to_st, C1, atol=1e-7)
    else:  # C is the rounds' mean, which would put cells between two places
        assert np.abs(m.sc_to_st - C1).max() > 1e-2
        far = np.abs(m.sc_to_st.astype(np.float64) @ m.spot_coords - m.coords).max()
        assert far > 1e-2 * np.ptp(m.spot_coords)


def test_deconvolution_equals_Chat_times_T(trained, toy):
    sc, _ = toy
    m = trained.mapping()
    labels = sc.obs["celltype"].astype(str).to_numpy()
    dec = m.deconvolve(labels)
    types = sorted(set(labels))
    T = np.stack([(labels == t).astype(float) for t in types], axis=1)
    np.testing.assert_allclose(dec.to_numpy(), m.st_to_sc.astype(np.float64) @ T, atol=1e-5)
    assert list(dec.columns) == types
    assert list(dec.index) == m.spot_names
    np.testing.assert_allclose(dec.sum(1), 1.0, atol=1e-5)


def test_deconvolve_aligns_series_by_name(trained, toy):
    sc, _ = toy
    m = trained.mapping()
    s = sc.obs["celltype"].astype(str)
    shuffled = s.iloc[::-1]
    pd.testing.assert_frame_equal(m.deconvolve(s), m.deconvolve(shuffled))


def test_transfer_equals_C_times_v(trained):
    m = trained.mapping()
    v = np.arange(m.n_spots, dtype=float)
    np.testing.assert_allclose(m.transfer(v), m.sc_to_st.astype(np.float64) @ v, rtol=1e-5)
    cat = pd.Series(np.where(v % 2 == 0, "even", "odd"), index=m.spot_names)
    probs = m.transfer(cat)
    assert list(probs.columns) == ["even", "odd"]
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)


def test_topk(trained):
    m = trained.mapping()
    top1 = m.topk_coords(1)
    np.testing.assert_allclose(top1, m.spot_coords[m.best_spot])
    C = m.sc_to_st
    C1 = trained.mapping(rounds=1).sc_to_st  # the placement: topk_coords reads it
    k = 3
    place = np.argsort(-C1, axis=1)[:, :k]
    np.testing.assert_allclose(m.topk_coords(k), m.spot_coords[place].mean(1), atol=1e-10)
    idx = np.argsort(-C, axis=1)[:, :k]
    T = m.topk_mapping(k)
    assert sp.issparse(T)
    assert (T.getnnz(axis=1) == k).all()
    np.testing.assert_allclose(
        T.toarray()[np.arange(m.n_cells)[:, None], idx], np.take_along_axis(C, idx, 1), atol=1e-6
    )
    with pytest.raises(ValueError, match="`k` must be an integer"):
        m.topk_coords(0)


def test_sc_adjacency(trained):
    m = trained.mapping()
    A = m.sc_adjacency(5, basis="embedding")
    assert A.shape == (m.n_cells, m.n_cells)
    assert (A.getnnz(axis=1) == 5).all()
    assert A.diagonal().sum() == 0
    Z = m.sc_embedding.astype(np.float64)
    sim = Z @ Z.T
    np.fill_diagonal(sim, -np.inf)
    expect = np.sort(np.argsort(-sim, axis=1)[:, :5], axis=1)
    got = np.sort(A.indices.reshape(-1, 5), axis=1)
    assert (expect == got).mean() > 0.99  # ties in float32 may swap a rare pair


def test_sc_adjacency_from_mapping(trained):
    m = trained.mapping()
    A = m.sc_adjacency(4, weighted=True, basis="mapping")
    Q = np.sqrt(m.sc_to_st.astype(np.float64))
    sim = Q @ Q.T  # Bhattacharyya affinity of mapping rows
    np.fill_diagonal(sim, -np.inf)
    expect = np.sort(np.argsort(-sim, axis=1)[:, :4], axis=1)
    got = np.sort(A.indices.reshape(-1, 4), axis=1)
    assert (expect == got).mean() > 0.99
    np.testing.assert_allclose(A.data.max(), np.max(sim[np.isfinite(sim)]), rtol=1e-4)
    with pytest.raises(ValueError, match="basis"):
        m.sc_adjacency(4, basis="pca")


def test_sc_adjacency_spatial_is_expected_kernel(trained):
    m = trained.mapping()
    xy = m.spot_coords
    D2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    nn = np.sqrt(np.where(D2 > 0, D2, np.inf).min(1)).mean()
    K = np.exp(-D2 / (2 * nn**2))
    K[D2 > (3 * nn) ** 2] = 0.0  # the kernel is cut at 3 bandwidths
    np.testing.assert_allclose(m.spot_kernel().toarray(), K, atol=1e-6)
    C = m.sc_to_st.astype(np.float64)
    sim = C @ K @ C.T  # E[K(position of i, position of j)] for independent placements
    np.fill_diagonal(sim, -np.inf)
    A = m.sc_adjacency(6, weighted=True, basis="spatial")
    expect = np.sort(np.argsort(-sim, axis=1)[:, :6], axis=1)
    got = np.sort(A.indices.reshape(-1, 6), axis=1)
    assert (expect == got).mean() > 0.99
    np.testing.assert_allclose(np.sort(A.data)[-5:], np.sort(sim[np.isfinite(sim)])[-5:], rtol=1e-4)
    # auto = spatial for the hybrid readout when the dense C fits (here it does) ...
    assert (m.sc_adjacency(6, basis="auto") != (A > 0)).nnz == 0
    # ... and the paper's embedding adjacency for the paper readout
    mp = trained.mapping(readout="paper")
    assert (mp.sc_adjacency(6) != mp.sc_adjacency(6, basis="embedding")).nnz == 0
    # a wider bandwidth changes the kernel; bad bandwidths are named
    assert m.spot_kernel(bandwidth=3 * nn).nnz > m.spot_kernel().nnz
    with pytest.raises(ValueError, match="bandwidth"):
        m.sc_adjacency(6, basis="spatial", bandwidth=-1.0)


def test_sc_adjacency_spatial_candidates_match_exact(trained):
    m = trained.mapping()
    exact = m.sc_adjacency(5, weighted=True, basis="spatial", exact=True)
    approx = m.sc_adjacency(5, weighted=True, basis="spatial", exact=False)
    assert approx.shape == exact.shape
    assert (approx.getnnz(axis=1) == 5).all()
    assert approx.diagonal().sum() == 0
    a = np.sort(approx.indices.reshape(-1, 5), axis=1)
    e = np.sort(exact.indices.reshape(-1, 5), axis=1)
    shared = np.mean([len(set(x) & set(y)) / 5 for x, y in zip(a, e)])
    assert shared > 0.8
    # its weights are the same affinity, from each cell's 32 most probable spots
    C = m.topk_mapping(32, renormalize=True).toarray().astype(np.float64)
    S = C @ m.spot_kernel().toarray() @ C.T
    r, c = approx.nonzero()
    np.testing.assert_allclose(np.asarray(approx[r, c]).ravel(), S[r, c], rtol=1e-4)


def test_spot_kernel_is_zero_between_slices(toy):
    sc, st = toy
    a, b = st[:20].copy(), st[20:40].copy()
    b.obsm["spatial"] = a.obsm["spatial"].copy()  # same frame: only the slice tells them apart
    model = stemmap.STEM(sc, [a, b], hidden=(8, 4), slice_names=["a", "b"])
    K = model.mapping(readout="paper").spot_kernel().toarray()
    assert np.all(K[:20, 20:] == 0)
    assert np.all(K[20:, :20] == 0)
    np.testing.assert_allclose(K[:20, :20], K[20:, 20:])
    assert np.all(np.diag(K) == 1)


def test_chunked_equals_unchunked(trained):
    m = trained.mapping()
    m2 = trained.mapping()
    m2.chunk_size = 7
    np.testing.assert_allclose(m.coords, m2.coords, atol=1e-6)
    np.testing.assert_allclose(m.st_to_sc, m2.st_to_sc, atol=1e-6)
    np.testing.assert_allclose(
        m.deconvolve(np.arange(m.n_cells) % 3).to_numpy(),
        m2.deconvolve(np.arange(m.n_cells) % 3).to_numpy(),
        atol=1e-6,
    )


def test_same_seed_same_mapping(toy):
    sc, st = toy
    runs = []
    for _ in range(2):
        model = stemmap.STEM(sc, st, seed=3, hidden=(32, 16, 8))
        model.train(epochs=8)
        runs.append(model.mapping().coords)
    np.testing.assert_array_equal(runs[0], runs[1])
    other = stemmap.STEM(sc, st, seed=4, hidden=(32, 16, 8)).train(epochs=8).mapping().coords
    assert not np.allclose(runs[0], other)


def test_training_reduces_loss_and_learns_space(toy):
    sc, st = toy
    model = stemmap.STEM(sc, st, seed=0)
    model.train(epochs=150)
    h = model.history
    assert h["extract"].iloc[-10:].mean() < h["extract"].iloc[:10].mean()
    m = model.mapping()
    true = sc.obsm["spatial_true"]
    mae = np.linalg.norm(m.coords - true, axis=1).mean()
    # a random placement in the 2 × 1 tissue has a mean error of ~0.75
    shuffled = np.linalg.norm(
        m.coords[np.random.default_rng(0).permutation(len(true))] - true, axis=1
    ).mean()
    assert mae < 0.5 * shuffled


def test_beta_schedule_and_lr(toy):
    sc, st = toy
    model = stemmap.STEM(sc, st, seed=0, hidden=(16, 8))
    model.train(epochs=8, warmup=4, lr_step=4, lr_gamma=0.5)
    h = model.history
    np.testing.assert_allclose(h["beta"], [0, 0, 0, 0, 0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(h["lr"], [0.002] * 4 + [0.001] * 4)


def test_cell_batches_train(toy):
    sc, st = toy
    model = stemmap.STEM(sc, st, seed=0, hidden=(32, 16))
    model.train(epochs=5, cell_batch_size=64)
    assert model.train_settings["cell_batch_size"] == 64
    assert model.mapping().coords.shape == (sc.n_obs, 2)


def test_save_load_roundtrip(trained, tmp_path, toy):
    path = tmp_path / "model.pt"
    trained.save(path)
    loaded = stemmap.STEM.load(path, device="cpu")
    a, b = trained.mapping(), loaded.mapping()
    np.testing.assert_allclose(a.coords, b.coords, atol=1e-6)
    np.testing.assert_allclose(a.sc_embedding, b.sc_embedding, atol=1e-6)
    pd.testing.assert_frame_equal(trained.history, loaded.history, check_dtype=False)
    # new data with the same genes (in another order) maps with the trained encoder
    sc, st = toy
    again = stemmap.STEM.load(path, sc=sc[:, ::-1].copy(), st=st)
    np.testing.assert_allclose(again.mapping().coords, a.coords, atol=1e-5)


def test_load_rejects_wrong_genes(trained, tmp_path, toy):
    path = tmp_path / "model.pt"
    trained.save(path)
    sc, st = toy
    with pytest.raises(ValueError, match="lacks 5 of the 40 genes"):
        stemmap.STEM.load(path, sc=sc[:, 5:].copy(), st=st)
    bad = tmp_path / "junk.pt"
    torch.save({"x": 1}, bad)
    with pytest.raises(ValueError, match="not a stemmap model file"):
        stemmap.STEM.load(bad)


def test_multi_slice(toy):
    sc, st = toy
    st2 = st.copy()
    st2.obs_names = [f"b_{n}" for n in st2.obs_names]
    st2.obsm["spatial"] = st2.obsm["spatial"] * 2.0 + 10.0
    model = stemmap.STEM(sc, [st, st2], seed=0, hidden=(32, 16), slice_names=["A", "B"])
    assert [round(s.sigma / model.data.slices[0].sigma, 6) for s in model.data.slices] == [1.0, 2.0]
    model.train(epochs=6)
    m = model.mapping()
    assert m.n_spots == 2 * st.n_obs
    assert m.slices == ["A", "B"]
    np.testing.assert_allclose(m.sc_to_st.sum(1), 1.0, atol=1e-5)
    assert set(m.best_slice) <= {"A", "B"}
    with pytest.raises(ValueError, match="spans 2 slices"):
        _ = m.coords
    mb = model.mapping(slice="B")
    assert mb.n_spots == st.n_obs
    assert (mb.coords >= 10.0 - 1e-9).all()
    out = m.to_anndata(sc)
    assert "stem_best_slice" in out.obs
    assert "stem_spatial" not in out.obsm


def test_to_anndata(trained, toy):
    sc, st = toy
    m = trained.mapping()
    sc2, st2 = m.to_anndata(sc, st, label_key="celltype")
    assert "X_stem" not in sc.obsm  # caller's object untouched
    np.testing.assert_allclose(sc2.obsm["stem_spatial"], m.coords)
    assert sc2.obsm["X_stem"].shape == (sc.n_obs, trained.config["hidden"][-1])
    assert (sc2.obs["stem_best_spot"].astype(str).to_numpy() == m.best_spot_name).all()
    dec = st2.obsm["stem_deconvolution"]
    assert dec.shape == (st.n_obs, sc.obs["celltype"].nunique())
    assert sc2.uns["stem"]["seed"] == 0


def test_to_anndata_h5ad_roundtrip(trained, toy, tmp_path):
    import anndata as ad

    sc, st = toy
    sc2, st2 = trained.mapping().to_anndata(sc, st, label_key="celltype")
    sc2.write_h5ad(tmp_path / "sc.h5ad")
    st2.write_h5ad(tmp_path / "st.h5ad")
    back = ad.read_h5ad(tmp_path / "sc.h5ad")
    np.testing.assert_allclose(back.obsm["stem_spatial"], sc2.obsm["stem_spatial"])


def test_kernels_rows_sum_to_one():
    Y = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    for kern, kw in [
        ("gaussian", {"sigma": 1.0}),
        ("exponential", {"scale": 1.0}),
        ("knn", {"k": 2}),
    ]:
        S = spatial_adjacency(Y, kern, **kw).numpy()
        np.testing.assert_allclose(S.sum(1), 1.0, atol=1e-6)
    S = spatial_adjacency(Y, "gaussian", sigma=1.0).numpy()
    w = np.exp(-np.array([0.0, 1.0, 9.0]) / 2)
    np.testing.assert_allclose(S[0], w / w.sum(), atol=1e-6)
    K = spatial_adjacency(Y, "knn", k=2).numpy()
    np.testing.assert_allclose(K[0], [0.5, 0.5, 0.0])
    # tiny σ does not underflow to NaN
    assert np.isfinite(spatial_adjacency(Y, "gaussian", sigma=1e-4).numpy()).all()


def test_kernel_choice_in_training(toy):
    sc, st = toy
    for kern in ("exponential", "knn"):
        model = stemmap.STEM(sc, st, kernel=kern, seed=0, hidden=(16, 8))
        model.train(epochs=2)
        assert model.settings["kernel"] == kern


def test_mmd_matches_naive():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, generator=g)
    y = torch.randn(5, 3, generator=g) + 1.0
    z = torch.cat([x, y])
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    n = z.shape[0]
    bw = d2.sum() / (n * n - n) / 4.0
    k = sum(torch.exp(-d2 / (bw * 2.0**i)) for i in range(5))
    naive = k[:7, :7].mean() + k[7:, 7:].mean() - 2 * k[:7, 7:].mean()
    torch.testing.assert_close(gaussian_mmd(x, y), naive, atol=1e-5, rtol=1e-5)
    assert gaussian_mmd(x, x).abs() < 1e-5


def test_mmd_gradients_and_other_bandwidth_factor_match_naive():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = (torch.randn(8, 4, generator=g, dtype=torch.float64) + 0.5).requires_grad_()

    def naive(x, y, mul):
        z = torch.cat([x, y])
        d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
        n = z.shape[0]
        bw = d2.detach().sum() / (n * n - n) / mul**2
        k = sum(torch.exp(-d2 / (bw * mul**i)) for i in range(5))
        return k[:6, :6].mean() + k[6:, 6:].mean() - 2 * k[:6, 6:].mean()

    for mul in (2.0, 3.0):
        want, got = naive(x, y, mul), gaussian_mmd(x, y, mul=mul)
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-8)
        gw = torch.autograd.grad(want, (x, y))
        gg = torch.autograd.grad(got, (x, y))
        for a, b in zip(gw, gg):
            torch.testing.assert_close(b, a, atol=1e-10, rtol=1e-7)


def test_module_losses_match_formulas():
    torch.manual_seed(0)
    mod = STEMModule(6, (8, 4), st_dropout=0.0).eval()
    x_sc, x_st = torch.rand(9, 6), torch.rand(5, 6)
    S = torch.softmax(torch.randn(5, 5), dim=1)
    out = mod(x_sc, x_st, S)
    z_sc, z_st = mod.embed(x_sc), mod.embed(x_st)
    St = torch.softmax(z_st @ z_st.T, dim=1)
    torch.testing.assert_close(out["extract"], -(S * St.log()).sum(1).mean())
    B = z_sc @ z_st.T
    S_hat = torch.softmax(B.T, dim=1) @ torch.softmax(B, dim=1)
    torch.testing.assert_close(out["trans"], -(S * torch.log(S_hat + 1e-7)).sum(1).mean())


def test_default_sigma_and_dropout(toy):
    sc, st = toy
    from scipy.spatial import cKDTree

    model = stemmap.STEM(sc, st)
    Y = st.obsm["spatial"]
    d = cKDTree(Y).query(Y, 2)[0][:, 1]
    assert model.data.slices[0].sigma == pytest.approx(1.0 * d.mean())
    assert stemmap.STEM(sc, st, sigma_scale=0.5).data.slices[0].sigma == pytest.approx(
        0.5 * d.mean()
    )
    x_sc, x_st = model.data.sc_x, model.data.slices[0].x
    d_exp = 1 - np.median((x_sc > 0).sum(1)) / np.median((x_st > 0).sum(1))
    assert model.config["dropout"] == pytest.approx(np.clip(d_exp, 0, 0.95))
    assert stemmap.STEM(sc, st, sigma=0.3, dropout=0.1).data.slices[0].sigma == 0.3


def test_gene_matching_order_independent(toy):
    sc, st = toy
    sub = st[:, ::-1][:, 5:].copy()
    model = stemmap.STEM(sc, sub, hidden=(16, 8))
    assert model.data.genes == [g for g in sc.var_names if g in set(sub.var_names)]
    j = list(sub.var_names).index(model.data.genes[0])
    x = sub.X[:, j]
    tot = np.asarray(sub.X.sum(1)).ravel()
    np.testing.assert_allclose(model.data.slices[0].x[:, 0], np.log1p(x / tot * 1e4), rtol=1e-5)


def test_normalized_input_skips_normalisation(toy):
    # normalised input (raw counts with normalized=True now warn: test_hardening.py)
    sc, st = toy
    sc, st = sc.copy(), st.copy()
    sc.X = np.log1p(np.asarray(sc.X, dtype=np.float64))
    st.X = np.log1p(np.asarray(st.X, dtype=np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = stemmap.STEM(sc, st, normalized=True, hidden=(8,))
    np.testing.assert_allclose(model.data.sc_x, np.asarray(sc.X, dtype=np.float32))


def test_presets(toy):
    sc, st = toy
    model = stemmap.STEM(sc, st, seed=0, hidden=(8,))
    stemmap.PRESETS["_tiny"] = {**stemmap.PRESETS["fast"], "epochs": 3, "cell_batch_size": 50}
    try:
        model.train(preset="_tiny")
    finally:
        del stemmap.PRESETS["_tiny"]
    assert len(model.history) == 3
    assert model.train_settings["cell_batch_size"] == 50
    assert model.train_settings["preset"] == "_tiny"
    with pytest.raises(ValueError, match="`preset` must be one of"):
        model.train(preset="turbo")
    assert stemmap.PRESETS["paper"]["epochs"] == 400


def test_quick_preset_trains_small_batches_on_one_thread(toy, monkeypatch):
    sc, st = toy
    monkeypatch.setattr(stemmap._runtime, "usable_cpus", lambda: 2)
    model = stemmap.STEM(sc, st, seed=0, hidden=(8,))
    model.train(preset="quick", progress=False)
    q = stemmap.PRESETS["quick"]
    assert len(model.history) == q["epochs"] == 80
    assert model.train_settings["lr"] == q["lr"]
    assert model.train_settings["preset"] == "quick"
    assert model.train_settings["cell_batch_size"] == min(128, model.data.sc_x.shape[0])
    assert model.train_settings["threads"] == 1  # a small step
    assert model.config["hidden"] == [8]  # the caller's layers win over the preset's


def test_quick_preset_sets_default_layers_and_readout(toy):
    sc, st = toy
    q = stemmap.PRESETS["quick"]
    model = stemmap.STEM(sc, st, seed=0)
    assert model.config["hidden"] == list(stemmap._defaults.MODEL["hidden"])
    model.train(preset="quick", epochs=3, progress=False)
    assert model.config["hidden"] == list(q["hidden"]) == [256, 128, 64]
    assert [m.out_features for m in model.module.modules() if hasattr(m, "out_features")] == [
        256,
        128,
        64,
    ]
    # the network is rebuilt from the model's seed: the same as asking for the layers
    other = stemmap.STEM(sc, st, seed=0, hidden=(256, 128, 64))
    other.train(preset="quick", epochs=3, progress=False)
    np.testing.assert_array_equal(model.embed(model.data.sc_x), other.embed(other.data.sc_x))
    m = model.mapping()
    assert m.settings["mapping"]["expression_weight"] == q["expression_weight"] == 3.0
    assert m.settings["mapping"]["rounds"] == q["rounds"] == 3
    # the caller's values win; other models keep the table's
    m = model.mapping(expression_weight=1.0, rounds=1)
    assert (m.settings["mapping"]["expression_weight"], m.settings["mapping"]["rounds"]) == (1.0, 1)
    plain = stemmap.STEM(sc, st, seed=0, hidden=(16, 8))
    plain.train(epochs=2, progress=False)
    m = plain.mapping()
    assert (
        m.settings["mapping"]["expression_weight"] == stemmap._defaults.MAPPING["expression_weight"]
    )
    assert m.settings["mapping"]["rounds"] == stemmap._defaults.MAPPING["rounds"]
    # a trained model keeps its layers when trained on with the preset
    plain.train(preset="quick", progress=False)
    assert plain.config["hidden"] == [16, 8]


def test_paper_preset_restores_paper_sigma_and_readout(toy):
    sc, st = toy
    from scipy.spatial import cKDTree

    Y = st.obsm["spatial"]
    nn = cKDTree(Y).query(Y, 2)[0][:, 1].mean()
    model = stemmap.STEM(sc, st, hidden=(16, 8), seed=0)
    model.train(preset="paper", epochs=2, progress=False)  # the caller's 2 epochs win
    assert len(model.history) == 2
    assert model.train_settings["resolved"]["epochs"] == {"value": 2, "source": "caller"}
    assert model.train_settings["resolved"]["lr_step"] == {"value": 200, "source": "preset"}
    assert model.data.slices[0].sigma == pytest.approx(0.5 * nn)
    assert model.settings["preset"] == "paper"
    assert model.settings["sigma_scale"] == 0.5
    assert model.mapping().readout == "paper"
    assert model.mapping(readout="hybrid").readout == "hybrid"
    # what the caller chose explicitly is kept
    m2 = stemmap.STEM(sc, st, hidden=(16, 8), sigma_scale=2.0)
    m2.train(preset="fast", epochs=1, progress=False)
    assert m2.data.slices[0].sigma == pytest.approx(2.0 * nn)
    assert m2.mapping().readout == "hybrid"


def test_default_readout_takes_two_residual_rounds(trained):
    """C and Ĉ are the mean of round 1 and a round on the spots' residual profiles."""
    m = trained.mapping()  # default: 2 rounds, expression weight 1.5
    assert m.rounds == 2
    assert m.settings["mapping"]["rounds"] == 2
    assert m.expression_weight == 1.5
    one = trained.mapping(rounds=1)  # round 1 alone
    C1 = one.sc_to_st.astype(np.float64)

    # the residual, computed here independently: P_ST - ½ Ĉ₁ P_SC (Ĉ₁ = C₁ per spot)
    def props(x):
        p = np.clip(np.expm1(x.astype(np.float64)), 0, None)
        return p / p.sum(1, keepdims=True)

    x_st = trained.data.slices[0].x
    chat1 = (C1 / C1.sum(0)).T
    resid = np.clip(props(x_st) - 0.5 * chat1 @ props(trained.data.sc_x), 0, None)
    st2 = np.log1p(1e4 * resid / resid.sum(1, keepdims=True)).astype(np.float32)
    two = stemmap.StemMapping(
        m.sc_embedding, m.st_embedding, m.spot_coords, m.sc_names, m.spot_names,
        m.spot_slice, sc_expr=trained.data.sc_x, st_expr=st2, expression_weight=1.5, rounds=1,
    )  # fmt: skip
    C2 = two.sc_to_st.astype(np.float64)
    np.testing.assert_allclose(m.sc_to_st, 0.5 * C1 + 0.5 * C2, atol=1e-4)
    np.testing.assert_allclose(m.st_to_sc, 0.5 * one.st_to_sc + 0.5 * two.st_to_sc, atol=1e-4)
    np.testing.assert_allclose(m.coords, C1 @ m.spot_coords, atol=1e-4)  # placement: round 1
    # round 2 moves the mapping: it is not round 1 again
    assert np.abs(C2 - C1).max() > 1e-2
    # the paper readout, weight 0 and an unbalanced readout have one round
    assert trained.mapping(readout="paper").rounds == 1
    assert trained.mapping(expression_weight=0).rounds == 1
    assert trained.mapping(balance=False).rounds == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_rounds_must_be_a_whole_number(trained, bad):
    with pytest.raises(ValueError, match="`rounds` must be a whole number >= 1"):
        trained.mapping(rounds=bad)


def test_mapping_none_means_the_table_default(trained):
    m = trained.mapping(rounds=None, expression_weight=None)
    assert m.rounds == stemmap._defaults.MAPPING["rounds"]
    assert m.expression_weight == stemmap._defaults.MAPPING["expression_weight"]
