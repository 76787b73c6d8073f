"""The hybrid readout's expression profile (``expression_profile``)."""

from __future__ import annotations

import numpy as np
import pytest

from stemmap.mapping import StemMapping
from stemmap.mapping._readout import hellinger_profiles as _hellinger_profiles


def _toy(seed: int = 0, m: int = 40, n: int = 12, g: int = 8, h: int = 4):
    rng = np.random.default_rng(seed)
    counts_sc = rng.poisson(3.0, size=(m, g)).astype(np.float64)
    counts_st = rng.poisson(20.0, size=(n, g)).astype(np.float64)
    counts_sc[:, 0] += 40  # one dominant gene
    counts_st[:, 0] += 300

    def lognorm(c, total=1e4):
        return np.log1p(c / c.sum(axis=1, keepdims=True) * total).astype(np.float32)

    return {
        "z_sc": rng.normal(size=(m, h)).astype(np.float32),
        "z_st": rng.normal(size=(n, h)).astype(np.float32),
        "coords": rng.uniform(size=(n, 2)),
        "counts_sc": counts_sc,
        "counts_st": counts_st,
        "x_sc": lognorm(counts_sc),
        "x_st": lognorm(counts_st),
        "lognorm": lognorm,
    }


def _mapping(t, **kw) -> StemMapping:
    m, n = t["z_sc"].shape[0], t["z_st"].shape[0]
    return StemMapping(
        t["z_sc"],
        t["z_st"],
        t["coords"],
        [f"c{i}" for i in range(m)],
        [f"s{j}" for j in range(n)],
        ["st"] * n,
        sc_expr=kw.pop("sc_expr", t["x_sc"]),
        st_expr=kw.pop("st_expr", t["x_st"]),
        readout="hybrid",
        **kw,
    )


def test_hellinger_profiles_are_sqrt_proportions_standardised_per_gene():
    t = _toy()
    h = _hellinger_profiles(t["x_sc"])
    p = t["counts_sc"] / t["counts_sc"].sum(axis=1, keepdims=True)
    ref = np.sqrt(p)
    ref = (ref - ref.mean(axis=0)) / ref.std(axis=0)
    np.testing.assert_allclose(h, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(h.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(h.std(axis=0), 1.0, rtol=1e-4)
    # the log1p normalisation total does not matter
    h100 = _hellinger_profiles(t["lognorm"](t["counts_sc"], total=100.0))
    np.testing.assert_allclose(h, h100, rtol=1e-3, atol=1e-3)
    # a constant gene is centred, not divided by zero; a zero row stays finite
    x = t["x_sc"].copy()
    x[:, 3] = x[0, 3]
    x[5] = 0.0
    assert np.all(np.isfinite(_hellinger_profiles(x)))


def test_log_profile_is_the_previous_pearson_term_and_hellinger_differs():
    t = _toy()
    log = _mapping(t, expression_profile="log")
    hel = _mapping(t)  # the default
    assert hel.expression_profile == "hellinger"
    assert hel.settings["mapping"]["expression_profile"] == "hellinger"

    def pearson(a, b):
        a = a - a.mean(axis=1, keepdims=True)
        b = b - b.mean(axis=1, keepdims=True)
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        return a @ b.T

    r = pearson(t["x_sc"].astype(np.float64), t["x_st"].astype(np.float64))
    want = t["z_sc"] @ t["z_st"].T + log.expression_scale * r
    got = log.engine.logits(slice(0, t["z_sc"].shape[0])).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # the dominant gene drives the log correlation; the per-gene standardised profile does not
    assert not np.allclose(hel.sc_to_st, log.sc_to_st, atol=1e-3)
    np.testing.assert_allclose(hel.sc_to_st.sum(axis=1), 1.0, rtol=1e-5)


def test_expression_profile_is_checked():
    t = _toy()
    with pytest.raises(ValueError, match="expression_profile"):
        _mapping(t, expression_profile="sqrt")
    # no expression term: the profile is not used and not reported
    m = _mapping(t, expression_weight=0.0)
    assert m.settings["mapping"]["expression_profile"] is None
