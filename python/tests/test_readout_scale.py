"""Readout at scale: top-k outputs from the single per-cell pass, float32 balancing passes."""

from __future__ import annotations

import numpy as np
import pytest

import stemmap


@pytest.mark.parametrize("k", [1, 5, 16, 17, 40])
def test_topk_outputs_match_dense_C(trained, k):
    m = trained.mapping()
    C = m.sc_to_st
    top = m.topk_mapping(k).toarray()
    idx = np.argsort(-C, axis=1)[:, :k]
    expect = np.zeros_like(C)
    np.put_along_axis(expect, idx, np.take_along_axis(C, idx, axis=1), axis=1)
    np.testing.assert_allclose(top, expect, atol=1e-7)
    place = np.argsort(-trained.mapping(rounds=1).sc_to_st, axis=1)[:, :k]  # C₁'s top-k
    Y = m.spot_coords
    np.testing.assert_allclose(m.topk_coords(k), Y[place].mean(axis=1), atol=1e-9)


@pytest.mark.parametrize("rounds", [1, 2])
def test_one_pass_serves_coords_and_topk(trained, monkeypatch, rounds, count_round_rows):
    m = trained.mapping(rounds=rounds)
    m.engine.potentials(rounds - 1)  # the balancing (not counted here)
    calls = count_round_rows()
    _ = m.coords, m.best_spot, m.confidence, m.topk_mapping(10), m.topk_coords(5)
    # each round's rows were read once: round 1's serve the placement and C
    assert sorted(calls) == sorted((r, a) for r in range(rounds) for a, _ in m.engine.chunks())


@pytest.mark.parametrize("passes", [0, 3])
def test_sampled_balancing_with_few_float32_passes(trained, monkeypatch, passes):
    full = trained.mapping()
    g_full = full._potentials()
    monkeypatch.setattr("stemmap.mapping._values.free_cpu", lambda: 4 * 8 * 100 * full.n_spots)
    monkeypatch.setattr(stemmap.StemMapping, "_balance_min_cells", 100)
    monkeypatch.setattr(stemmap.StemMapping, "_balance_passes", passes)
    m = trained.mapping(rounds=1)
    g = m._potentials()
    assert m.balance_info["cells"] == 100 < m.n_cells
    # without passes the potentials are a 100-cell sample's estimate: a loose bound (its value
    # moves with the trained toy model, 0.80-0.85); the float32 passes must make it close
    assert np.corrcoef(g.numpy(), g_full.numpy())[0, 1] > (0.95 if passes else 0.75)
    col = m.sc_to_st.sum(0) / (m.n_cells / m.n_spots)
    assert np.abs(col - 1).mean() < (0.1 if passes else 0.3)


@pytest.mark.parametrize("low", [0.0, 1000.0])  # 1000: column 0 underflows in float32
def test_log_column_sums_match_float64(low):
    import torch

    from stemmap.mapping import _balance

    gen = torch.Generator().manual_seed(0)
    L = 3.0 * torch.randn(300, 40, generator=gen, dtype=torch.float64)
    L[:, 0] -= low
    g = torch.randn(40, generator=gen, dtype=torch.float64)
    f = -torch.logsumexp(L + g, dim=1, keepdim=True)
    expect = torch.logsumexp(L + f, dim=0)
    got = _balance._log_column_sums(
        lambda rows: L[rows].float(), torch.arange(300), g, 64, torch.float32
    )
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), expect.numpy(), rtol=1e-4, atol=1e-4)


def test_residual_round_at_scale_reads_the_balancing_pass(trained, monkeypatch, count_round_rows):
    """At scale round 1's balancing pass also collects Ĉ₁ P_SC; the output pass measures C."""
    exact = trained.mapping()
    monkeypatch.setattr("stemmap.mapping._values.free_cpu", lambda: 4 * 8 * 100 * exact.n_spots)
    monkeypatch.setattr(stemmap.StemMapping, "_balance_min_cells", 100)
    m = trained.mapping()
    calls = count_round_rows()
    _ = m.coords
    assert m.balance_info["cells"] == 100
    assert m.balance_info["passes"] >= 1
    # no separate pass over round 1's rows for the residual: only the output pass reads them
    assert [c for c in calls if c[0] == 0] == [(0, a) for a, _ in m.engine.chunks()]
    # what the pass collected (under the potentials it started from) is close to a separate
    # pass under the refined ones
    m2 = trained.mapping()
    m2.engine.potentials(0)
    collected = m2.engine._collected[0].result()
    m2.engine._collected.clear()
    separate = m2.engine.explained(0)
    assert np.abs(collected - separate).max() < 0.05 * np.abs(separate).max()
    assert np.abs(collected - separate).max() > 0  # two different computations
    col = m.sc_to_st.sum(0) / (m.n_cells / m.n_spots)
    assert m.balance_info["output_column_error"] == pytest.approx(np.abs(col - 1).max(), rel=1e-3)
