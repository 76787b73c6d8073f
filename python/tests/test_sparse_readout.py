"""The sparse readout at bin scale (issue 28): one pass per round, kept and tail entries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from stemmap.mapping import StemMapping, _pass, _sparse


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


@pytest.mark.parametrize("select", ["float32", "bfloat16"])
def test_sparse_readout_matches_the_exact_one_where_rows_are_peaked(monkeypatch, select):
    # bfloat16: the candidates chosen in bfloat16, every value float32 (emulated where the
    # CPU has no native bfloat16: slower, the same numbers)
    monkeypatch.setattr(StemMapping, "_sparse_select", select)
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
    logk, cols = _pass.read_entries(
        lambda a, b: L[a:b].clone(),
        torch.zeros(500, dtype=torch.float64),
        4000,
        1000,
        (10, 50, 0),
        0,
    )
    est = (logk.exp() * torch.exp(L.max(dim=1).values)[:, None])[:, 10:].sum(dim=1)
    top = torch.topk(L, 10, dim=1).values
    true = L.exp().sum(dim=1) - top.exp().sum(dim=1)
    ratio = (est / true).numpy()
    assert abs(ratio.mean() - 1) < 0.01
    assert 0.05 < ratio.std() < 0.3  # an estimate, not the sum itself


def _sides(m: int = 600, n: int = 3000, w: int = 48, seed: int = 2):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(m, w, generator=gen), 0.6 * torch.randn(n, w, generator=gen)


def test_bfloat16_candidates_keep_float32_values():
    cells, side = _sides()
    g = torch.linspace(-1, 1, side.shape[0], dtype=torch.float64)
    L = cells @ side.T + g.float()
    ent = (40, 20, 24)
    logk, cols = _pass.read_entries(
        *_pass.pass_functions(cells, side, torch.bfloat16)[:1], g, 600, 128, ent, 0,
        _pass.pass_functions(cells, side, torch.bfloat16)[1],
    )  # fmt: skip
    exact, ecols = _pass.read_entries(lambda a, b: L[a:b].clone(), g * 0, 600, 128, ent, 0)
    # every kept value is the float32 logit of its bin (to float rounding), decreasing
    got = logk[:, :40] + L.max(dim=1).values[:, None]
    want = L.gather(1, cols[:, :40].long())
    torch.testing.assert_close(got, want, rtol=0, atol=2e-5)
    assert bool((logk[:, 1:40] <= logk[:, :39]).all())
    # the kept bins are the 40 largest float32 logits, up to near-ties at the cut
    same = [len(set(a) & set(b)) for a, b in zip(cols[:, :40].tolist(), ecols[:, :40].tolist())]
    assert np.mean(same) > 39.9
    # a drawn bin weighs 0 exactly when it is kept (index, not value: a bin may be missed)
    drawn, kept = cols[:, 40:].long(), cols[:, :40].long()
    in_kept = (drawn[:, :, None] == kept[:, None, :]).any(dim=2)
    assert bool((torch.isinf(logk[:, 40:]) == in_kept).all())
    # the same draws as the float32 pass (one generator per pass)
    assert torch.equal(cols[:, 40:], ecols[:, 40:])


def test_logits_at_is_the_product_at_the_entries():
    cells, side = _sides(m=50, n=400)
    cols = torch.randint(400, (50, 30), generator=torch.Generator().manual_seed(3))
    cols[:, 1] = cols[:, 0]  # repeats and unsorted bins
    want = (cells.double() @ side.double().T).gather(1, cols)
    torch.testing.assert_close(_pass.logits_at(cells, side, cols).double(), want, atol=1e-5, rtol=0)


def test_tail_estimate_is_unbiased_with_bfloat16_candidates():
    cells, side = _sides(m=4000, n=500, w=16)
    L = cells @ side.T
    rows, values = _pass.pass_functions(cells, side, torch.bfloat16)
    logk, _ = _pass.read_entries(
        rows, torch.zeros(500, dtype=torch.float64), 4000, 1000, (10, 50, 8), 0, values
    )
    est = (logk.exp() * torch.exp(L.max(dim=1).values)[:, None])[:, 10:].sum(dim=1)
    true = L.exp().sum(dim=1) - torch.topk(L, 10, dim=1).values.exp().sum(dim=1)
    assert abs((est / true).numpy().mean() - 1) < 0.01


@pytest.mark.parametrize(("kept", "sample"), [(32, 16)])
def test_sparse_mode_needs_many_more_bins_than_entries(monkeypatch, kept, sample):
    zsc, zst, xy, scx, stx, *_ = _problem(m=200, side=9)
    monkeypatch.setattr(StemMapping, "_sparse_entries", 0)
    names = [f"c{i}" for i in range(200)], [f"s{j}" for j in range(81)]
    m = StemMapping(zsc, zst, xy, *names, ["a"] * 81, sc_expr=scx, st_expr=stx)
    assert not m.engine.sparse  # 81 bins: the exact readout


def test_bins_in_no_cells_entries_give_finite_outputs(monkeypatch):
    # 60 cells × 1600 bins, 8 + 4 entries each: most bins are in no cell's entries (the
    # deconvolution divided 0 by 0 there: NaN)
    zsc, zst, xy, scx, stx, lab, _ = _problem(m=60, side=40)
    monkeypatch.setattr(StemMapping, "_sparse_entries", 0)
    monkeypatch.setattr(StemMapping, "_sparse_kept", 8)
    monkeypatch.setattr(StemMapping, "_sparse_sample", 4)
    names = [f"c{i}" for i in range(60)], [f"s{j}" for j in range(1600)]
    m = StemMapping(zsc, zst, xy, *names, ["a"] * 1600, sc_expr=scx, st_expr=stx)
    dec = m.deconvolve(lab).to_numpy()
    assert m.engine.sparse
    assert m.balance_info["unreached"] > 800
    assert np.isfinite(dec).all()
    np.testing.assert_allclose(dec.sum(axis=1), 1.0, rtol=1e-6)
    # a bin no round reaches: no evidence, the cells' overall composition
    hit = np.zeros(1600, bool)
    for r in range(m.engine.rounds):
        hit[m.engine.sparse_round(r).cols.long().flatten().numpy()] = True
    overall = pd.get_dummies(lab).mean().to_numpy()
    np.testing.assert_allclose(dec[~hit], np.tile(overall, ((~hit).sum(), 1)), atol=1e-9)


def test_profile_axes_keep_the_expression_term_on_its_main_axes(monkeypatch):
    # all axes: the product over the axes is the product over the genes
    gen = torch.Generator().manual_seed(0)
    esc, est = torch.randn(50, 30, generator=gen), torch.randn(80, 30, generator=gen)
    V = _pass.profile_axes(est, 30)
    np.testing.assert_allclose((V.T @ V).numpy(), np.eye(30), atol=1e-5)
    np.testing.assert_allclose(((esc @ V) @ (est @ V).T).numpy(), (esc @ est.T).numpy(), atol=1e-4)
    # a few axes of profiles that vary along a few directions lose little
    low = torch.randn(80, 3, generator=gen) @ torch.randn(3, 30, generator=gen)
    V3 = _pass.profile_axes(low, 3)
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


def test_spread_ratio_in_chunks_equals_one_product(monkeypatch):
    # at 5·10⁵ bins the 2048 sampled rows × all bins took 4 GB (and 8 GB as float64) at once
    from stemmap.mapping import _readout

    gen = torch.Generator().manual_seed(4)
    zsc, zst = torch.randn(300, 8, generator=gen), torch.randn(700, 8, generator=gen)
    esc, est = torch.randn(300, 20, generator=gen), torch.randn(700, 20, generator=gen)
    whole = _readout.spread_ratio(zsc, zst, esc, est)
    monkeypatch.setattr(_readout, "SPREAD_ENTRIES", 700 * 7)  # 7 rows a chunk
    calls = []
    real = torch.Tensor.double
    monkeypatch.setattr(torch.Tensor, "double", lambda t: calls.append(t.shape) or real(t))
    assert _readout.spread_ratio(zsc, zst, esc, est) == pytest.approx(whole, rel=1e-9)
    assert max(s[0] for s in calls) == 7
