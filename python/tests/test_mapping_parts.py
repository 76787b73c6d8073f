"""The parts behind StemMapping: the one chunked top-k and the checks of values passed in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from stemmap import StemMapping
from stemmap._topk import chunked_topk, topk_csr


@pytest.mark.parametrize("chunk", [1, 4, 7, 100])
def test_chunked_topk_equals_topk_of_the_whole_matrix(chunk):
    scores = torch.from_numpy(np.random.default_rng(0).normal(size=(23, 11)))
    blocks = list(chunked_topk(lambda a, b: scores[a:b].clone(), 23, 3, chunk))
    assert [(a, b) for a, b, _, _ in blocks] == [
        (a, min(a + chunk, 23)) for a in range(0, 23, chunk)
    ]
    want_v, want_i = torch.topk(scores, 3, dim=1)
    torch.testing.assert_close(torch.cat([v for _, _, v, _ in blocks]), want_v, rtol=0, atol=0)
    assert torch.equal(torch.cat([i for _, _, _, i in blocks]), want_i)


def test_chunked_topk_excludes_each_row_itself():
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(17, 3)))
    sim = x @ x.T  # the largest entry of each row is usually the row itself
    blocks = list(chunked_topk(lambda a, b: x[a:b] @ x.T, 17, 4, 5, exclude_self=True))
    idx = torch.cat([i for _, _, _, i in blocks])
    assert not (idx == torch.arange(17)[:, None]).any()
    masked = sim.clone()
    masked.fill_diagonal_(-float("inf"))
    assert torch.equal(idx, torch.topk(masked, 4, dim=1).indices)


@pytest.mark.parametrize("values", [True, False])
def test_topk_csr_keeps_k_entries_per_row(values):
    scores = torch.from_numpy(np.random.default_rng(2).uniform(size=(9, 6)).astype(np.float32))
    A = topk_csr(chunked_topk(lambda a, b: scores[a:b], 9, 2, 4), (9, 6), values=values)
    assert A.shape == (9, 6)
    assert np.all(np.diff(A.indptr) == 2)
    dense = A.toarray()
    top = np.argsort(-scores.numpy(), axis=1)[:, :2]
    want = np.take_along_axis(scores.numpy(), top, axis=1) if values else 1.0
    np.testing.assert_array_equal(np.take_along_axis(dense, top, axis=1), want)


def test_transfer_leaves_the_callers_dataframe_alone():
    rng = np.random.default_rng(3)
    n = 12
    m = StemMapping(
        rng.normal(size=(30, 4)),
        rng.normal(size=(n, 4)),
        rng.uniform(size=(n, 2)),
        [f"c{i}" for i in range(30)],
        [str(j) for j in range(n)],  # spot names that a caller may hold as integers
        ["s"] * n,
        readout="paper",
    )
    df = pd.DataFrame({"v": np.linspace(0, 1, n)}, index=np.arange(n)[::-1])
    out = m.transfer(df)
    np.testing.assert_array_equal(df.index, np.arange(n)[::-1])  # still the caller's integers
    np.testing.assert_allclose(out["v"], m.sc_to_st @ np.linspace(1, 0, n), rtol=1e-5)
