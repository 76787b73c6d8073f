"""Readout at bin scale (issue 28): the stabilised sample kernel, Ĉ from column sums, chunks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import stemmap
from stemmap.mapping import _balance, _engine


def _wide_logits(n_cells: int = 400, n_spots: int = 300, spread: float = 200.0) -> torch.Tensor:
    """Logits spread far beyond float32's exp range: the row-shifted kernel underflows."""
    gen = torch.Generator().manual_seed(0)
    L = spread * torch.rand(n_cells, n_spots, generator=gen, dtype=torch.float64)
    L[:, :5] -= 500.0  # five spots no cell prefers: their columns underflow entirely
    return L


def test_stabilised_kernel_equals_float64_reference_where_float32_underflows():
    L = _wide_logits()
    m, n = L.shape
    target = torch.full((n,), m / n, dtype=torch.float64)
    K32 = L.float()
    K32 = torch.exp(K32 - K32.max(dim=1, keepdim=True).values)
    assert _balance.sinkhorn_kernel(K32, target, 1e-6, 2000)[0] is None  # plain float32 fails
    ref, _ = _balance.sinkhorn_log(lambda r: L[r], torch.arange(m), target.log(), 1e-10, 20000, 64)
    g, info = _balance.sinkhorn_sample(
        lambda r: L[r].float(), torch.arange(m), target, 1e-6, 20000, 64
    )
    assert info["max_column_error"] < 1e-6

    def plan(g: torch.Tensor) -> torch.Tensor:
        return torch.softmax(L + g, dim=1)

    P, Q = plan(g), plan(ref)
    np.testing.assert_allclose(P.sum(0).numpy(), target.numpy(), rtol=1e-5)
    np.testing.assert_allclose(P.numpy(), Q.numpy(), atol=1e-5)  # float32 rounding


def test_sample_fit_at_scale_uses_the_stabilised_kernel(monkeypatch):
    L = _wide_logits(2000, 300, spread=20.0)
    calls = []
    orig = _balance.sinkhorn_sample
    monkeypatch.setattr(
        _balance, "sinkhorn_sample", lambda *a, **k: calls.append(len(a[1])) or orig(*a, **k)
    )
    w = np.full(300, 1 / 300)
    kw = dict(tol=1e-4, max_iter=5000, min_cells=200, pass_tol=0.1, pass_dtype=torch.float32)
    g, info = _balance.fit_potentials(
        lambda r: L[r].float(), 2000, w, 256, 8 * 200 * 300, passes=3, **kw
    )
    assert calls == [200]
    assert info["cells"] == 200
    assert info["passes"] >= 1
    col = torch.softmax(L + g, dim=1).sum(0) / (2000 / 300)
    assert (col - 1).abs().max() < 0.1
    assert torch.isfinite(g).all()


def _scaled(monkeypatch, mapping) -> None:
    """Make the next mappings fit their potentials on a 100-cell sample (as at 10⁵ spots)."""
    monkeypatch.setattr("stemmap.mapping._values.free_cpu", lambda: 4 * 8 * 100 * mapping.n_spots)
    monkeypatch.setattr(stemmap.StemMapping, "_balance_min_cells", 100)


@pytest.mark.parametrize("rounds", [1, 2])
def test_chat_at_scale_is_C_normalised_per_spot(trained, monkeypatch, rounds):
    _scaled(monkeypatch, trained.mapping())
    m = trained.mapping(rounds=rounds)
    _ = m.coords  # the output pass: it collects each round's column sums
    assert m.engine.sampled
    Cr = [m.round_mapping(r + 1).astype(np.float64) for r in range(rounds)]
    expect = sum(c / c.sum(0) for c in Cr) / rounds
    np.testing.assert_allclose(m.st_to_sc, expect.T, rtol=1e-5, atol=1e-8)
    lab = np.arange(m.n_cells) % 3
    D = m.deconvolve(lab).to_numpy()
    T = np.eye(3)[lab]
    np.testing.assert_allclose(D, expect.T @ T, rtol=1e-5, atol=1e-7)


def test_deconvolution_at_scale_reads_each_round_once(trained, monkeypatch, count_round_rows):
    _scaled(monkeypatch, trained.mapping())
    m = trained.mapping()
    _ = m.coords
    calls = count_round_rows()
    m.deconvolve(np.arange(m.n_cells) % 3)
    assert sorted(calls) == sorted((r, a) for r in range(2) for a, _ in m.engine.chunks())


def test_chunks_capped_at_wide_spot_sets(trained, monkeypatch):
    """A chunk of rows of C holds at most CHUNK_ENTRIES; the outputs do not change."""
    m0 = trained.mapping()
    ref = m0.sc_to_st, m0.coords, m0.topk_mapping(5).toarray(), m0.st_to_sc
    monkeypatch.setattr(_engine, "CHUNK_ENTRIES", 7 * m0.n_spots)
    m = trained.mapping()
    assert m.engine.chunk_size == 7
    got = m.sc_to_st, m.coords, m.topk_mapping(5).toarray(), m.st_to_sc
    for a, b in zip(ref, got):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    top = m.topk_mapping(5).toarray()  # sparse top-k equals the dense C's largest entries
    idx = np.argsort(-m.sc_to_st, axis=1)[:, :5]
    expect = np.zeros_like(top)
    np.put_along_axis(expect, idx, np.take_along_axis(m.sc_to_st, idx, axis=1), axis=1)
    np.testing.assert_allclose(top, expect, atol=1e-7)
