"""The sparse readout at bin scale (issue 28): one pass per round, kept and tail entries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from stemmap.mapping import StemMapping, _sparse


def _problem(m: int = 1500, side: int = 30, seed: int = 0):
    """Cells drawn at bins of a smooth spatial embedding, with cell-type expression."""
    rng = np.random.default_rng(seed)
    n, h, g = side * side, 12, 40
    xy = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2).astype(float)
    freq = rng.normal(size=(2, h)) * 0.3
    zst = (2 * np.cos(xy @ freq + rng.uniform(0, 6, h))).astype(np.float32)
    true = rng.integers(0, n, m)
    zsc = (zst[true] + rng.normal(scale=0.7, size=(m, h))).astype(np.float32)
    types = rng.integers(0, 6, n)
    prof = rng.gamma(1.0, 1.0, (6, g))
    stx = np.log1p(rng.poisson(prof[types] * 5)).astype(np.float32)
    scx = np.log1p(rng.poisson(prof[types[true]] * 5)).astype(np.float32)
    labels = np.array([f"t{t}" for t in types[true]])
    return zsc, zst, xy, scx, stx, labels, true


def _mapping(monkeypatch, sparse: bool, temperature: float = 1.0, **kw) -> StemMapping:
    zsc, zst, xy, scx, stx, *_ = _problem()
    monkeypatch.setattr(StemMapping, "_sparse_entries", 0 if sparse else 2**32)
    monkeypatch.setattr(StemMapping, "_sparse_kept", 32)
    monkeypatch.setattr(StemMapping, "_sparse_sample", 16)
    names = [f"c{i}" for i in range(len(zsc))], [f"s{j}" for j in range(len(zst))]
    return StemMapping(
        zsc, zst, xy, *names, ["a"] * len(zst), sc_expr=scx, st_expr=stx,
        temperature=temperature, chunk_size=512, **kw,
    )  # fmt: skip


def test_sparse_readout_matches_the_exact_one_where_rows_are_peaked(monkeypatch):
    exact, sparse = _mapping(monkeypatch, False), _mapping(monkeypatch, True)
    assert sparse.engine.sparse
    assert not exact.engine.sparse
    labels = _problem()[5]
    # the same best bins but near-ties (the two balance to 1e-3 and 1e-4)
    assert (sparse.best_spot == exact.best_spot).mean() > 0.995
    d = np.abs(sparse.coords - exact.coords)
    assert d.mean() < 0.02
    assert np.quantile(d, 0.98) < 0.05
    assert np.quantile(np.abs(sparse.confidence - exact.confidence), 0.98) < 5e-3
    dec_s, dec_e = sparse.deconvolve(labels), exact.deconvolve(labels)
    dd = np.abs(dec_s.to_numpy() - dec_e.to_numpy())
    assert dd.mean() < 1e-3
    assert np.quantile(dd, 0.99) < 0.02
    a, b = sparse.topk_mapping(3), exact.topk_mapping(3)
    same = np.sort(a.indices.reshape(-1, 3)) == np.sort(b.indices.reshape(-1, 3))
    assert same.all(axis=1).mean() > 0.99
    # balanced on its entries: every bin its share, every row sums to 1
    assert sparse.balance_info["output_column_error"] < 1e-2  # _sparse.BALANCE_TOL
    assert sparse.balance_info["sparse"]["tail_mass"] < 1e-3
    rows = sparse.engine.round_rows(0, 0, 100)
    np.testing.assert_allclose(rows.sum(dim=1).numpy(), 1.0, rtol=1e-5)


def test_sparse_outputs_read_the_matrix_they_name(monkeypatch):
    # flat rows: most of each row's mass is in its tail, estimated from the drawn bins
    m = _mapping(monkeypatch, True, temperature=20.0)
    P, C, Y = m.placement.astype(np.float64), m.sc_to_st.astype(np.float64), m.spot_coords
    assert m.balance_info["sparse"]["tail_mass"] > 0.3
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(C.sum(axis=0), m.n_cells / m.n_spots, rtol=1e-2)
    np.testing.assert_allclose(m.coords, P @ Y, rtol=1e-4, atol=1e-4)  # with the tail
    # best bins, confidences and top-k read the kept entries: a drawn tail bin stands for
    # N / sample bins and is no single bin's value
    kept = m.engine.sparse_round(0).kept_values(0, m.n_cells)
    Pk = np.zeros_like(P)
    np.put_along_axis(Pk, kept[1].numpy(), kept[0].numpy(), axis=1)
    np.testing.assert_array_equal(m.best_spot, Pk.argmax(axis=1))
    np.testing.assert_allclose(m.confidence, Pk.max(axis=1), rtol=1e-6)
    got = m.topk_mapping(20, placement=True).toarray()  # beyond the one pass's 16
    idx = np.argsort(-Pk, axis=1)[:, :20]
    np.testing.assert_allclose(np.take_along_axis(got, idx, 1), np.take_along_axis(Pk, idx, 1))
    # Ĉ: each round's C_r normalised per bin; deconvolution and transfer read Ĉ and C
    chat = m.st_to_sc.astype(np.float64)
    rounds_c = [m.round_mapping(r).astype(np.float64) for r in range(1, m.rounds + 1)]
    np.testing.assert_allclose(
        chat, np.mean([c / c.sum(0) for c in rounds_c], axis=0).T, rtol=1e-3, atol=1e-7
    )
    lab = _problem()[5]
    onehot = pd.get_dummies(pd.Series(lab)).to_numpy(dtype=np.float64)
    np.testing.assert_allclose(m.deconvolve(lab).to_numpy(), chat @ onehot, atol=1e-5)
    v = np.arange(m.n_spots, dtype=np.float64)
    np.testing.assert_allclose(m.transfer(v), C @ v, rtol=1e-4)


def test_sparse_readout_reads_each_round_once(monkeypatch, count_round_rows):
    from stemmap.mapping._engine import ReadoutEngine

    seen: list[tuple[int, int]] = []
    orig = ReadoutEngine.logits
    monkeypatch.setattr(
        ReadoutEngine,
        "logits",
        lambda self, rows, r=0: seen.append((r, _n(rows, self.n_cells))) or orig(self, rows, r),
    )
    m = _mapping(monkeypatch, True)
    m.coords, m.topk_mapping(5), m.deconvolve(_problem()[5])
    for r in range(m.rounds):  # one pass over all cells per round, besides the sample fit's
        full = sum(n for rr, n in seen if rr == r and n > 1)
        assert m.n_cells <= full <= m.n_cells + m.balance_info["cells"] + 2048


def _n(rows, total):
    return len(range(*rows.indices(total))) if isinstance(rows, slice) else len(rows)


def test_sparse_readout_is_deterministic(monkeypatch):
    a, b = _mapping(monkeypatch, True, 5.0), _mapping(monkeypatch, True, 5.0)
    np.testing.assert_array_equal(a.coords, b.coords)
    np.testing.assert_array_equal(a.engine.sparse_round(1).cols, b.engine.sparse_round(1).cols)


def test_tail_estimate_is_unbiased():
    # a row's tail sum over all its other bins, estimated from its drawn bins
    gen = torch.Generator().manual_seed(1)
    L = torch.randn(4000, 500, generator=gen)
    logk, cols = _sparse.read_entries(
        lambda a, b: L[a:b].clone(), torch.zeros(500, dtype=torch.float64), 4000, 1000, 10, 50, 0
    )
    est = (logk.exp() * torch.exp(L.max(dim=1).values)[:, None])[:, 10:].sum(dim=1)
    top = torch.topk(L, 10, dim=1).values
    true = L.exp().sum(dim=1) - top.exp().sum(dim=1)
    ratio = (est / true).numpy()
    assert abs(ratio.mean() - 1) < 0.01
    assert 0.05 < ratio.std() < 0.3  # an estimate, not the sum itself


@pytest.mark.parametrize(("kept", "sample"), [(32, 16)])
def test_sparse_mode_needs_many_more_bins_than_entries(monkeypatch, kept, sample):
    zsc, zst, xy, scx, stx, *_ = _problem(m=200, side=9)
    monkeypatch.setattr(StemMapping, "_sparse_entries", 0)
    names = [f"c{i}" for i in range(200)], [f"s{j}" for j in range(81)]
    m = StemMapping(zsc, zst, xy, *names, ["a"] * 81, sc_expr=scx, st_expr=stx)
    assert not m.engine.sparse  # 81 bins: the exact readout


def test_profile_axes_keep_the_expression_term_on_its_main_axes(monkeypatch):
    # all axes: the product over the axes is the product over the genes
    gen = torch.Generator().manual_seed(0)
    esc, est = torch.randn(50, 30, generator=gen), torch.randn(80, 30, generator=gen)
    V = _sparse.profile_axes(est, 30)
    np.testing.assert_allclose((V.T @ V).numpy(), np.eye(30), atol=1e-5)
    np.testing.assert_allclose(((esc @ V) @ (est @ V).T).numpy(), (esc @ est.T).numpy(), atol=1e-4)
    # a few axes of profiles that vary along a few directions lose little
    low = torch.randn(80, 3, generator=gen) @ torch.randn(3, 30, generator=gen)
    V3 = _sparse.profile_axes(low, 3)
    np.testing.assert_allclose(
        ((esc @ V3) @ (low @ V3).T).numpy(), (esc @ low.T).numpy(), atol=1e-3
    )
    # in a mapping: the logits' width is h + rank, and the readout stays close to all genes'
    monkeypatch.setattr(StemMapping, "_sparse_rank", 16)
    ranked = _mapping(monkeypatch, True)
    assert ranked.engine.logits(slice(0, 2)).shape == (2, 900)
    assert ranked.engine._cells.shape[1] == 12 + 16
    monkeypatch.setattr(StemMapping, "_sparse_rank", 0)
    full = _mapping(monkeypatch, True)
    assert full.engine._cells.shape[1] == 12 + 40
    # the cells' true places: on these six-type profiles the main axes place cells as well
    # (better: the dropped axes are mostly counting noise)
    zsc, zst, xy, scx, stx, lab, true = _problem()
    err = [np.linalg.norm(m.coords - xy[true], axis=1).mean() for m in (ranked, full)]
    assert err[0] <= err[1] + 0.05
    assert (ranked.best_spot == true).mean() >= (full.best_spot == true).mean() - 0.01


def test_sparse_balancing_without_a_solution_stays_finite():
    # bins 1 and 2 are reached by cell 0 alone: their two shares cannot both be met
    logk = torch.log(torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]))
    cols = torch.tensor([[0, 1, 2], [0, 0, 0], [0, 0, 0]], dtype=torch.int32)
    rnd = _sparse.SparseRound(logk, cols, 3, torch.zeros(3, dtype=torch.float64))
    info = rnd.balance(torch.ones(3, dtype=torch.float64), 1e-3, 500)
    assert info["iterations"] < 500  # stopped once the error stalled
    assert info["max_column_error"] > 0.1  # reported, not hidden
    assert torch.isfinite(rnd.potentials).all()
    np.testing.assert_allclose(rnd.dense(0, 3).sum(dim=1).numpy(), 1.0, rtol=1e-5)


def test_placement_uncertainty_reads_the_entries_under_the_sparse_readout(monkeypatch):
    exact, sparse = _mapping(monkeypatch, False), _mapping(monkeypatch, True)
    r_e, r_s = exact.placement_uncertainty(0.9), sparse.placement_uncertainty(0.9)
    assert r_s.shape == (sparse.n_cells,)
    assert np.isfinite(r_s).all()
    # the same regions where rows are peaked (their tails hold almost nothing)
    assert np.median(np.abs(r_s - r_e) / r_e) < 0.1
    # and never a dense row: the sparse path reads no row over all bins
    monkeypatch.setattr(type(sparse.engine), "round_rows", lambda *a: pytest.fail("dense row"))
    np.testing.assert_allclose(sparse.placement_uncertainty(0.9), r_s)


@pytest.mark.parametrize("placement", [False, True])
def test_kept_topk_equals_the_topk_of_the_kept_rows(monkeypatch, placement):
    m = _mapping(monkeypatch, True, temperature=5.0)
    rounds = [m.engine.sparse_round(r) for r in range(m.rounds)]
    assert len(rounds) == 2
    v, i = _sparse.kept_topk(rounds, 0, 300, 8, placement)
    dv, di = torch.topk(_sparse.kept_rows(rounds, 0, 300, placement), 8, dim=1)
    np.testing.assert_allclose(v.numpy(), dv.numpy(), rtol=1e-5)
    dense = _sparse.kept_rows(rounds, 0, 300, placement)
    np.testing.assert_allclose(dense.gather(1, i).numpy(), v.numpy(), rtol=1e-5)
