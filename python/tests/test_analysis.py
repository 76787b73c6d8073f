"""Spatial dominant genes, BH, axes and trends, neighbourhood enrichment, plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from stemmap import analysis  # noqa: E402


def test_bh_hand_case():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    # sorted 0.01 0.03 0.04 0.2 -> x4/k: 0.04 0.06 0.0533 0.2 -> running min from the top
    np.testing.assert_allclose(analysis.bh_fdr(p), [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    q = np.random.default_rng(0).uniform(size=200) ** 3
    np.testing.assert_allclose(analysis.bh_fdr(q), stats.false_discovery_control(q))
    with_nan = analysis.bh_fdr([0.01, np.nan, 0.02])
    assert np.isnan(with_nan[1])
    np.testing.assert_allclose(with_nan[[0, 2]], [0.02, 0.02])
    with pytest.raises(ValueError, match="pvals"):
        analysis.bh_fdr([1.5])


def test_segments_and_axes():
    rng = np.random.default_rng(0)
    xy = rng.uniform(size=(103, 2)) * [4, 1]
    seg = analysis.segment_along(analysis.axis_score(xy, "x"), 5)
    counts = np.bincount(seg)
    assert counts.max() - counts.min() <= 1
    assert len(counts) == 5
    assert np.all(np.diff(seg[np.argsort(xy[:, 0])]) >= 0)
    np.testing.assert_allclose(analysis.axis_score(xy, 1), xy[:, 1])
    np.testing.assert_allclose(analysis.axis_score(xy, [0, 2]), xy[:, 1])
    pc = analysis.axis_score(xy, "pc1")
    assert stats.spearmanr(pc, xy[:, 0])[0] > 0.9
    with pytest.raises(ValueError, match="axis"):
        analysis.axis_score(xy, "z")
    with pytest.raises(ValueError, match="n_segments"):
        analysis.segment_along(xy[:, 0], 1)
    with pytest.raises(ValueError, match="coords"):
        analysis.axis_score(xy[:, 0])


def _expr(n=300, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(size=(n, 2)) * [2, 1]
    X = rng.normal(size=(n, 8))
    X[:, 0] += 3 * xy[:, 0]
    return pd.DataFrame(X, columns=[f"g{j}" for j in range(8)]), xy


def test_spatial_dominant_genes_table():
    X, xy = _expr()
    res = analysis.spatial_dominant_genes(X, xy, axis="x", n_segments=4)
    assert list(res.columns) == [
        "segment", "gene", "statistic", "auc", "mean_in", "mean_out",
        "mean_diff", "pval", "padj", "n_in",
    ]  # fmt: skip
    assert len(res) == 4 * 8
    assert list(res["segment"].unique()) == [0, 1, 2, 3]
    top = res[res["segment"] == 3].iloc[0]
    assert top["gene"] == "g0"
    assert top["padj"] < 1e-10
    assert top["mean_diff"] > 0
    # agrees with a direct scipy call for one gene
    seg = analysis.segment_along(xy[:, 0], 4)
    u = stats.mannwhitneyu(X["g0"][seg == 3], X["g0"][seg != 3], alternative="greater")
    assert top["pval"] == pytest.approx(u.pvalue, rel=1e-6)
    assert top["statistic"] == pytest.approx(u.statistic)
    # given region labels; two-sided; arrays with gene names
    lab = np.where(xy[:, 0] < 1, "left", "right")
    res2 = analysis.spatial_dominant_genes(
        X.to_numpy(), segments=lab, genes=list(X.columns), alternative="two-sided"
    )
    assert set(res2["segment"]) == {"left", "right"}
    assert res2.groupby("segment").head(1)["gene"].tolist() == ["g0", "g0"]
    assert analysis.top_genes(res, n=1)[0] == "g0"
    with pytest.raises(ValueError, match="segments"):
        analysis.spatial_dominant_genes(X, segments=lab[:5])
    with pytest.raises(ValueError, match="coords"):
        analysis.spatial_dominant_genes(X)
    with pytest.raises(TypeError, match="values"):
        analysis.spatial_dominant_genes("x", xy)
    with pytest.raises(ValueError, match="alternative"):
        analysis.spatial_dominant_genes(X, xy, alternative="bigger")


def test_axis_genes_and_trends():
    rng = np.random.default_rng(1)
    s = rng.uniform(0, 1, 200)
    grp = np.where(np.arange(200) % 2, "A", "B")
    X = np.column_stack([1 + 2 * s - 3 * s**2 + 1.5 * s**3, rng.normal(size=200), -s])
    res = analysis.axis_genes(X, s, genes=["cubic", "noise", "down"])
    assert res.iloc[0]["gene"] in ("cubic", "down")
    row = res.set_index("gene")
    assert row.loc["down", "rho"] == pytest.approx(-1.0)
    assert row.loc["noise", "padj"] > 0.01
    assert row.loc["cubic", "rho"] == pytest.approx(stats.spearmanr(X[:, 0], s)[0])
    per = analysis.axis_genes(X, s, grp, genes=["cubic", "noise", "down"])
    assert set(per["group"]) == {"A", "B"}
    tr = analysis.expression_trends(
        pd.DataFrame(X, columns=["cubic", "noise", "down"]), s, grp, n_knots=0, n_points=20
    )
    assert set(tr.columns) == {"group", "gene", "score", "fitted", "se"}
    cub = tr[(tr["gene"] == "cubic") & (tr["group"] == "A")]
    t = cub["score"].to_numpy()
    np.testing.assert_allclose(cub["fitted"], 1 + 2 * t - 3 * t**2 + 1.5 * t**3, atol=1e-8)
    spl = analysis.expression_trends(X, s, n_knots=3, genes=["gene1"])
    assert set(spl["gene"]) == {"gene1"}
    assert (spl["se"] > 0).all()
    order = analysis.order_along(s)
    assert np.all(np.diff(s[order]) >= 0)
    og = analysis.order_along(s, grp)
    assert (grp[og][:100] == "A").all()
    assert np.all(np.diff(s[og][:100]) >= 0)
    ax = analysis.plot_expression_trends(tr, genes=["cubic", "down"])
    assert len(ax.lines) == 4
    with pytest.raises(ValueError, match="score"):
        analysis.expression_trends(X, s[:10])
    with pytest.raises(ValueError, match="trends"):
        analysis.plot_expression_trends(pd.DataFrame({"a": [1]}))


def test_transfer_score(toy):
    import torch

    import stemmap

    n = torch.get_num_threads()
    torch.set_num_threads(1)  # shared 2-core CI box
    try:
        trained = stemmap.STEM(*toy, seed=0, hidden=(16, 8)).train(epochs=5, progress=False)
    finally:
        torch.set_num_threads(n)
    m = trained.mapping()
    v = np.linspace(0, 1, m.n_spots)
    sc_score = analysis.transfer_score(m, v)
    np.testing.assert_allclose(sc_score, m.transfer(v))
    ser = pd.Series(v[::-1], index=m.spot_names[::-1])
    np.testing.assert_allclose(analysis.transfer_score(trained, ser), sc_score, atol=1e-12)
    with pytest.raises(ValueError, match="spot_score"):
        analysis.transfer_score(m, np.ones((m.n_spots, 2)))
    with pytest.raises(TypeError, match="mapping"):
        analysis.transfer_score(object(), v)


def test_neighbourhood_enrichment():
    g = np.stack(np.meshgrid(np.arange(20), np.arange(20)), -1).reshape(-1, 2).astype(float)
    halves = np.where(g[:, 0] < 10, "A", "B")
    res = analysis.neighbourhood_enrichment(g, halves, n_neighbors=4, n_perms=100, seed=0)
    z = res.zscore
    assert z.loc["A", "A"] > 5
    assert z.loc["B", "B"] > 5
    assert z.loc["A", "B"] < -5
    assert res.count.to_numpy().sum() > 0
    np.testing.assert_allclose(z, z.T)
    checker = np.where((g[:, 0] + g[:, 1]) % 2 == 0, "black", "white")
    zc = analysis.neighbourhood_enrichment(g, checker, n_neighbors=4, n_perms=100).zscore
    assert zc.loc["black", "black"] < -5
    assert zc.loc["black", "white"] > 5
    again = analysis.neighbourhood_enrichment(g, halves, n_neighbors=4, n_perms=100, seed=0)
    pd.testing.assert_frame_equal(again.zscore, z)
    with pytest.raises(ValueError, match="labels"):
        analysis.neighbourhood_enrichment(g, halves[:3])
    with pytest.raises(ValueError, match="n_perms"):
        analysis.neighbourhood_enrichment(g, halves, n_perms=0)


def test_segment_heatmap():
    X, xy = _expr()
    seg = analysis.segment_along(xy[:, 0], 4)
    res = analysis.spatial_dominant_genes(X, segments=seg)
    ax = analysis.plot_segment_heatmap(X, seg, result=res, n_top=2)
    assert ax.get_images()[0].get_array().shape[1] == 4
    ax2 = analysis.plot_segment_heatmap(X, seg, genes=["g0", "g1"], scale=False)
    assert ax2.get_images()[0].get_array().shape == (2, 4)
    with pytest.raises(ValueError, match="genes"):
        analysis.plot_segment_heatmap(X, seg)
