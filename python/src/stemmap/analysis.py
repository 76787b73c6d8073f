"""Downstream analyses of STEM mappings: spatial dominant genes, axes, neighbourhoods.

* :func:`spatial_dominant_genes` — per spatial segment, genes whose attribution (or
  expression: DEGs) is higher than in the rest of the tissue (Wilcoxon rank-sum + BH FDR),
  as the paper's SDG analysis along the embryo's anterior–posterior axis.
* :func:`transfer_score`, :func:`order_along`, :func:`expression_trends`,
  :func:`axis_genes` — move a spot score (e.g. a liver zonation score) to cells, order
  cells along it and find/fit genes that vary along it, per cell type (the paper's liver
  PV–CV analysis).
* :func:`neighbourhood_enrichment` — label co-localisation z-scores on a kNN graph of
  (reconstructed) positions, as ``squidpy.gr.nhood_enrichment``.
* :func:`plot_segment_heatmap`, :func:`plot_expression_trends` — figures (matplotlib).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats
from scipy.spatial import cKDTree

from ._defaults import ANALYSIS

logger = logging.getLogger(__name__)

__all__ = [
    "bh_fdr",
    "axis_score",
    "segment_along",
    "spatial_dominant_genes",
    "top_genes",
    "transfer_score",
    "order_along",
    "expression_trends",
    "axis_genes",
    "neighbourhood_enrichment",
    "NhoodEnrichment",
    "plot_segment_heatmap",
    "plot_expression_trends",
]


# ---------------------------------------------------------------------- helpers
def bh_fdr(pvals: Any) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (NaN kept as NaN, not counted as tests).

    Parameters
    ----------
    pvals
        Array of p-values in [0, 1] (any shape; adjusted jointly).

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, same shape: ``min_{k ≥ rank} p_(k) · n / k``, capped at 1.
    """
    p = np.asarray(pvals, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    flat = p.ravel()
    ok = ~np.isnan(flat)
    q = flat[ok]
    if q.size and (q.min() < 0 or q.max() > 1):
        raise ValueError("`pvals` must lie in [0, 1].")
    n = q.size
    if n:
        order = np.argsort(q, kind="mergesort")
        scaled = q[order] * n / np.arange(1, n + 1)
        adj = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
        res = np.empty(n)
        res[order] = adj
        o = out.ravel()
        o[ok] = res
        out = o.reshape(p.shape)
    return out


def _matrix(
    values: Any, genes: Sequence[str] | None, name: str
) -> tuple[np.ndarray, list[str], list[str] | None]:
    """(cells × genes) float64 array, gene names, cell names from a DataFrame/array/AnnData."""
    cells = None
    if hasattr(values, "obs_names") and hasattr(values, "var_names"):  # AnnData
        X = values.X
        cells = list(map(str, values.obs_names))
        g = list(map(str, values.var_names))
        X = X.toarray() if sp.issparse(X) else np.asarray(X)
    elif isinstance(values, pd.DataFrame):
        X = values.to_numpy()
        cells = list(map(str, values.index))
        g = list(map(str, values.columns))
    elif sp.issparse(values):
        X = values.toarray()
        g = None
    elif isinstance(values, np.ndarray):
        X = values
        g = None
    else:
        raise TypeError(
            f"`{name}` must be a DataFrame, numpy array, sparse matrix or AnnData (cells × "
            f"genes); found {type(values).__name__}."
        )
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (cells × genes); found shape {X.shape}.")
    if genes is not None:
        genes = [str(x) for x in genes]
        if len(genes) != X.shape[1]:
            raise ValueError(
                f"`genes` has {len(genes)} names but `{name}` has {X.shape[1]} columns."
            )
        g = genes
    if g is None:
        g = [f"gene{j}" for j in range(X.shape[1])]
    return X, g, cells


def _coords(coords: Any, n: int | None, name: str = "coords") -> np.ndarray:
    if hasattr(coords, "coords") and hasattr(coords, "sc_embedding"):  # StemMapping
        coords = coords.coords
    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise ValueError(f"`{name}` must be (cells × 2) coordinates; found shape {xy.shape}.")
    if n is not None and xy.shape[0] != n:
        raise ValueError(f"`{name}` must have one row per cell ({n}); found {xy.shape[0]}.")
    return xy[:, :2]


def axis_score(coords: Any, axis: Any = "x") -> np.ndarray:
    """Position of each cell along a spatial axis.

    Parameters
    ----------
    coords
        (cells × 2) coordinates, or a :class:`~stemmap.StemMapping` (its pseudo-coordinates).
    axis
        ``"x"``/``0``, ``"y"``/``1``, ``"pc1"`` (first principal axis of the coordinates,
        oriented so the score increases with x), or a length-2 direction vector (the
        score is the projection onto it).

    Returns
    -------
    numpy.ndarray
        (cells,) scores.
    """
    xy = _coords(coords, None)
    if isinstance(axis, str):
        key = axis.lower()
        if key in ("x", "y"):
            return xy[:, 0 if key == "x" else 1].copy()
        if key == "pc1":
            c = xy - xy.mean(axis=0)
            v = np.linalg.svd(c, full_matrices=False)[2][0]
            v = v if v[0] >= 0 else -v
            return c @ v
        raise ValueError(f"`axis` must be 'x', 'y', 'pc1', 0, 1 or a 2-vector; found {axis!r}.")
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        if axis not in (0, 1):
            raise ValueError(f"`axis` index must be 0 or 1; found {axis!r}.")
        return xy[:, int(axis)].copy()
    v = np.asarray(axis, dtype=np.float64)
    if v.shape != (2,) or not np.linalg.norm(v) > 0:
        raise ValueError(
            f"`axis` must be 'x', 'y', 'pc1', 0, 1 or a non-zero 2-vector; found {axis!r}."
        )
    return xy @ (v / np.linalg.norm(v))


def segment_along(score: Any, n_segments: int = 10) -> np.ndarray:
    """Quantile bins of a score: segment 0 holds the lowest scores (≈ equal-sized segments).

    Parameters
    ----------
    score
        (cells,) values, e.g. from :func:`axis_score` or :func:`transfer_score`.
    n_segments
        Number of segments.

    Returns
    -------
    numpy.ndarray
        (cells,) integer segment labels in ``0 .. n_segments - 1``.
    """
    if (
        isinstance(n_segments, bool)
        or not isinstance(n_segments, (int, np.integer))
        or n_segments < 2
    ):
        raise ValueError(f"`n_segments` must be an integer ≥ 2; found {n_segments!r}.")
    s = np.asarray(score, dtype=np.float64).ravel()
    if not np.isfinite(s).all():
        raise ValueError("`score` must be finite.")
    # rank-based so ties and skew still give equal-sized bins
    r = stats.rankdata(s, method="ordinal") - 1
    return (r * n_segments // len(s)).astype(np.int64)


# ---------------------------------------------------------- spatial dominant genes
def spatial_dominant_genes(
    values: Any,
    coords: Any = None,
    *,
    segments: Any = None,
    axis: Any = ANALYSIS["spatial_dominant_genes"]["axis"],
    n_segments: int = 10,
    genes: Sequence[str] | None = None,
    alternative: str = ANALYSIS["spatial_dominant_genes"]["alternative"],
    min_cells: int = ANALYSIS["spatial_dominant_genes"]["min_cells"],
    **ig_kwargs: Any,
) -> pd.DataFrame:
    """Genes whose attribution (or expression) differs in each spatial segment vs the rest.

    Cells are grouped into segments — quantile bins along ``axis`` of ``coords``, or a given
    label per cell (``segments``, e.g. a region or cell type) — and every gene is tested in
    each segment against all other cells with the Wilcoxon rank-sum (Mann–Whitney U) test,
    vectorised over genes; p-values are Benjamini–Hochberg-adjusted within each segment.
    On IG attributions this gives the paper's spatial dominant genes (SDGs); on normalised
    expression it gives regional DEGs, for comparison.

    Parameters
    ----------
    values
        (cells × genes) attributions or expression: a DataFrame (gene columns), array,
        AnnData, or a trained :class:`stemmap.STEM` (its IG attributions are computed with
        ``ig_kwargs`` and ``coords`` defaults to its pseudo-coordinates).
    coords
        (cells × 2) coordinates or a :class:`~stemmap.StemMapping`; needed unless
        ``segments`` is given.
    segments
        One label per cell; overrides ``axis``/``n_segments``.
    axis, n_segments
        Axis for :func:`axis_score` and the number of quantile segments along it.
    genes
        Gene names (default: the DataFrame/AnnData columns, else ``gene0..``).
    alternative
        ``"greater"`` (default: higher in the segment, as the paper's SDGs),
        ``"two-sided"`` or ``"less"``.
    min_cells
        Segments with fewer cells (or fewer cells outside) are skipped.
    **ig_kwargs
        Passed to :func:`stemmap.attribution.integrated_gradients` when ``values`` is a model.

    Returns
    -------
    pandas.DataFrame
        Tidy: ``segment, gene, statistic`` (U), ``auc`` (U / (n_in · n_out): probability a
        segment cell beats a rest cell), ``mean_in, mean_out, mean_diff, pval, padj,
        n_in``; sorted by segment, then padj, then decreasing auc.
    """
    if hasattr(values, "module") and hasattr(values, "data"):  # a STEM model
        from .attribution import integrated_gradients

        model = values
        if coords is None and segments is None:
            coords = model.mapping().coords
        values = integrated_gradients(model, **ig_kwargs)
    elif ig_kwargs:
        raise TypeError(
            f"unexpected arguments {sorted(ig_kwargs)} (only used when `values` is a STEM model)."
        )
    if alternative not in ("greater", "two-sided", "less"):
        raise ValueError(
            f"`alternative` must be 'greater', 'two-sided' or 'less'; found {alternative!r}."
        )
    X, gnames, _ = _matrix(values, genes, "values")
    n = X.shape[0]
    if segments is not None:
        seg = np.asarray(segments)
        if seg.shape != (n,):
            raise ValueError(
                f"`segments` must have one label per cell ({n}); found shape {seg.shape}."
            )
    elif coords is not None:
        seg = segment_along(axis_score(_coords(coords, n), axis), n_segments)
    else:
        raise ValueError("pass `coords` (with `axis`, `n_segments`) or `segments`.")
    labels = pd.unique(pd.Series(seg))
    try:
        labels = np.sort(labels)
    except TypeError:
        pass
    frames = []
    for lab in labels:
        inside = seg == lab
        n_in = int(inside.sum())
        if n_in < min_cells or n - n_in < min_cells:
            logger.info("segment %r skipped: %d cells inside, %d outside", lab, n_in, n - n_in)
            continue
        a, b = X[inside], X[~inside]
        res = stats.mannwhitneyu(a, b, axis=0, alternative=alternative, method="asymptotic")
        p = np.where(np.isnan(res.pvalue), 1.0, res.pvalue)
        mi, mo = a.mean(axis=0), b.mean(axis=0)
        frames.append(
            pd.DataFrame(
                {
                    "segment": lab,
                    "gene": gnames,
                    "statistic": res.statistic,
                    "auc": res.statistic / (n_in * (n - n_in)),
                    "mean_in": mi,
                    "mean_out": mo,
                    "mean_diff": mi - mo,
                    "pval": p,
                    "padj": bh_fdr(p),
                    "n_in": n_in,
                }
            )
        )
    if not frames:
        raise ValueError(
            f"no segment has at least `min_cells`={min_cells} cells inside and outside."
        )
    out = pd.concat(frames, ignore_index=True)
    rank = {lab: i for i, lab in enumerate(labels)}
    out["_o"] = out["segment"].map(rank)
    desc = alternative != "less"
    out = out.sort_values(["_o", "padj", "auc"], ascending=[True, True, not desc], kind="mergesort")
    return out.drop(columns="_o").reset_index(drop=True)


def top_genes(result: pd.DataFrame, n: int = 3, fdr: float = 0.05) -> list[str]:
    """The ``n`` best genes of each segment of a :func:`spatial_dominant_genes` table.

    Genes are taken segment by segment (in table order), keeping only ``padj < fdr`` and
    skipping genes already taken, so a heatmap of them shows the diagonal pattern.
    """
    taken: list[str] = []
    sig = result[result["padj"] < fdr]
    for _, grp in sig.groupby("segment", sort=False):
        k = 0
        for g in grp["gene"]:
            if g not in taken:
                taken.append(g)
                k += 1
            if k == n:
                break
    return taken


# ------------------------------------------------------------------- axis analyses
def transfer_score(mapping: Any, spot_score: Any) -> np.ndarray:
    """Move a per-spot score (e.g. a zonation score) to cells: ``C · v``.

    Parameters
    ----------
    mapping
        A :class:`~stemmap.StemMapping` (``model.mapping()``) or a trained STEM.
    spot_score
        (spots,) values (a pandas Series is aligned by spot name).

    Returns
    -------
    numpy.ndarray
        (cells,) each cell's expected score under its mapping distribution.
    """
    if hasattr(mapping, "module") and hasattr(mapping, "mapping"):
        mapping = mapping.mapping()
    if not hasattr(mapping, "transfer"):
        raise TypeError(f"`mapping` must be a StemMapping or STEM; found {type(mapping).__name__}.")
    if isinstance(spot_score, pd.DataFrame):
        if spot_score.shape[1] != 1:
            raise ValueError(
                "`spot_score` must be one score per spot (a 1-column DataFrame at most)."
            )
        spot_score = spot_score.iloc[:, 0]
    if not isinstance(spot_score, pd.Series):
        v = np.asarray(spot_score, dtype=np.float64)
        if v.ndim != 1:
            raise ValueError(
                f"`spot_score` must be 1-D (one value per spot); found shape {v.shape}."
            )
        spot_score = v
    out = mapping.transfer(spot_score)
    out = out.to_numpy() if isinstance(out, pd.DataFrame) else np.asarray(out)
    return out.reshape(-1)


def order_along(score: Any, groups: Any = None) -> np.ndarray:
    """Indices that order cells by increasing score (stable; NaN last), within groups if given.

    Parameters
    ----------
    score
        (cells,) scores.
    groups
        Optional labels: cells are ordered by group (sorted), then by score.

    Returns
    -------
    numpy.ndarray
        (cells,) integer order.
    """
    s = np.asarray(score, dtype=np.float64).ravel()
    if groups is None:
        return np.argsort(s, kind="stable")
    g = pd.Categorical(np.asarray(groups))
    if len(g) != len(s):
        raise ValueError(f"`groups` must have one label per cell ({len(s)}); found {len(g)}.")
    return np.lexsort((s, g.codes))


def _spline_basis(t: np.ndarray, knots: np.ndarray, degree: int) -> np.ndarray:
    cols = [t**d for d in range(degree + 1)]
    cols += [np.clip(t - k, 0.0, None) ** degree for k in knots]
    return np.stack(cols, axis=1)


def expression_trends(
    expr: Any,
    score: Any,
    groups: Any = None,
    n_knots: int = ANALYSIS["expression_trends"]["n_knots"],
    *,
    degree: int = ANALYSIS["expression_trends"]["degree"],
    genes: Sequence[str] | None = None,
    n_points: int = ANALYSIS["expression_trends"]["n_points"],
    min_cells: int = ANALYSIS["expression_trends"]["min_cells"],
) -> pd.DataFrame:
    """Smooth per gene × group trends of expression along a score (least-squares splines).

    Each trend is a regression spline of ``degree`` (truncated-power basis, ``n_knots``
    interior knots at score quantiles; ``n_knots=0`` is a plain polynomial, e.g. the
    paper's degree-3 fits along the liver zonation axis), fitted for all genes of a group
    at once with one ``numpy.linalg.lstsq``; pointwise standard errors come from the
    residual variance.

    Parameters
    ----------
    expr
        (cells × genes) expression (DataFrame, array or AnnData).
    score
        (cells,) position along the axis (e.g. :func:`transfer_score`).
    groups
        Optional label per cell (e.g. cell type): one trend per group. Groups with fewer
        than ``min_cells`` cells, or fewer than the basis size + 1, are skipped.
    n_knots, degree
        Spline flexibility.
    genes
        Gene names, or the subset to fit when ``expr`` has names.
    n_points
        Score grid points per trend (over each group's score range).

    Returns
    -------
    pandas.DataFrame
        Tidy: ``group, gene, score, fitted, se``.
    """
    X, gnames, _ = _matrix(expr, None, "expr")
    s = np.asarray(score, dtype=np.float64).ravel()
    if s.shape[0] != X.shape[0]:
        raise ValueError(
            f"`score` must have one value per cell ({X.shape[0]}); found {s.shape[0]}."
        )
    if genes is not None:
        pos = pd.Index(gnames).get_indexer([str(g) for g in genes])
        if (pos < 0).any():
            raise ValueError(f"`genes` not in `expr`: {np.asarray(genes)[pos < 0][:3].tolist()}.")
        X, gnames = X[:, pos], [gnames[i] for i in pos]
    for v, nm in ((n_knots, "n_knots"), (degree, "degree")):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"`{nm}` must be a non-negative integer; found {v!r}.")
    g = np.full(len(s), "all", dtype=object) if groups is None else np.asarray(groups, dtype=object)
    if g.shape[0] != len(s):
        raise ValueError(f"`groups` must have one label per cell ({len(s)}); found {g.shape[0]}.")
    p = degree + 1 + n_knots
    frames = []
    for lab in pd.unique(pd.Series(g)):
        sel = g == lab
        if sel.sum() < max(min_cells, p + 1):
            logger.info("group %r skipped: %d cells", lab, int(sel.sum()))
            continue
        t, Y = s[sel], X[sel]
        lo, hi = t.min(), t.max()
        span = hi - lo if hi > lo else 1.0
        u = (t - lo) / span
        knots = np.quantile(u, np.linspace(0, 1, n_knots + 2)[1:-1]) if n_knots else np.zeros(0)
        B = _spline_basis(u, knots, degree)
        coef, _, rank, _ = np.linalg.lstsq(B, Y, rcond=None)
        resid = Y - B @ coef
        dof = max(len(t) - rank, 1)
        sigma2 = (resid**2).sum(axis=0) / dof
        grid = np.linspace(0.0, 1.0, n_points)
        Bg = _spline_basis(grid, knots, degree)
        fit = Bg @ coef
        lev = np.einsum("ij,jk,ik->i", Bg, np.linalg.pinv(B.T @ B), Bg)
        se = np.sqrt(np.clip(lev, 0, None)[:, None] * sigma2[None, :])
        frames.append(
            pd.DataFrame(
                {
                    "group": lab,
                    "gene": np.tile(gnames, n_points),
                    "score": np.repeat(lo + grid * span, len(gnames)),
                    "fitted": fit.ravel(),
                    "se": se.ravel(),
                }
            )
        )
    if not frames:
        raise ValueError("no group has enough cells to fit a trend.")
    return pd.concat(frames, ignore_index=True)


def axis_genes(
    expr: Any,
    score: Any,
    groups: Any = None,
    *,
    genes: Sequence[str] | None = None,
    min_cells: int = ANALYSIS["axis_genes"]["min_cells"],
) -> pd.DataFrame:
    """Genes that vary monotonically along an axis: Spearman correlation with BH FDR.

    Parameters
    ----------
    expr
        (cells × genes) expression (DataFrame, array or AnnData).
    score
        (cells,) position along the axis.
    groups
        Optional label per cell: test within each group (FDR within each group).
    genes
        Gene names (default from ``expr``).
    min_cells
        Groups with fewer cells are skipped.

    Returns
    -------
    pandas.DataFrame
        ``group, gene, rho, pval, padj``; sorted by group, padj, then decreasing ``|rho|``.
    """
    X, gnames, _ = _matrix(expr, genes, "expr")
    s = np.asarray(score, dtype=np.float64).ravel()
    if s.shape[0] != X.shape[0]:
        raise ValueError(
            f"`score` must have one value per cell ({X.shape[0]}); found {s.shape[0]}."
        )
    g = np.full(len(s), "all", dtype=object) if groups is None else np.asarray(groups, dtype=object)
    if g.shape[0] != len(s):
        raise ValueError(f"`groups` must have one label per cell ({len(s)}); found {g.shape[0]}.")
    frames = []
    for lab in pd.unique(pd.Series(g)):
        sel = g == lab
        n = int(sel.sum())
        if n < max(min_cells, 4):
            continue
        rx = stats.rankdata(X[sel], axis=0)
        rs = stats.rankdata(s[sel])
        rx = rx - rx.mean(axis=0)
        rs = rs - rs.mean()
        den = np.sqrt((rx**2).sum(axis=0) * (rs**2).sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.where(den > 0, (rs @ rx) / np.where(den > 0, den, 1.0), np.nan)
            tt = rho * np.sqrt((n - 2) / np.clip(1 - rho**2, 1e-300, None))
        p = 2 * stats.t.sf(np.abs(tt), n - 2)
        p = np.where(np.isnan(rho), 1.0, np.clip(p, 0.0, 1.0))
        frames.append(
            pd.DataFrame({"group": lab, "gene": gnames, "rho": rho, "pval": p, "padj": bh_fdr(p)})
        )
    if not frames:
        raise ValueError("no group has enough cells to test.")
    out = pd.concat(frames, ignore_index=True)
    out["_a"] = -out["rho"].abs()
    out = out.sort_values(["group", "padj", "_a"], kind="mergesort").drop(columns="_a")
    return out.reset_index(drop=True)


# ------------------------------------------------------- neighbourhood enrichment
@dataclass
class NhoodEnrichment:
    """Result of :func:`neighbourhood_enrichment`.

    Attributes
    ----------
    zscore
        (labels × labels) ``(observed − mean_perm) / sd_perm`` of kNN edge counts.
    count
        (labels × labels) observed edge counts.
    """

    zscore: pd.DataFrame
    count: pd.DataFrame


def neighbourhood_enrichment(
    coords: Any,
    labels: Any,
    n_neighbors: int = ANALYSIS["neighbourhood_enrichment"]["n_neighbors"],
    n_perms: int = ANALYSIS["neighbourhood_enrichment"]["n_perms"],
    seed: int = ANALYSIS["neighbourhood_enrichment"]["seed"],
) -> NhoodEnrichment:
    """Label neighbourhood enrichment on a kNN graph: permutation z-scores (as squidpy).

    Builds the symmetric kNN graph of the (e.g. reconstructed) positions, counts edges
    between each pair of labels, and compares the counts with those after ``n_perms``
    random permutations of the labels: ``z = (observed − mean) / sd``. Positive z: the two
    labels are neighbours more often than chance (same-label z > 0 means clustering).
    Counting uses ``numpy.bincount`` over the edge list per permutation (O(edges)).

    Parameters
    ----------
    coords
        (cells × 2) coordinates or a :class:`~stemmap.StemMapping` (pseudo-coordinates).
    labels
        One label per cell.
    n_neighbors
        k of the kNN graph (the cell itself excluded), made symmetric (i~j if either is a
        neighbour of the other).
    n_perms
        Label permutations.
    seed
        Seed of the permutations.

    Returns
    -------
    NhoodEnrichment
        ``zscore`` and ``count`` DataFrames (labels × labels).
    """
    lab = np.asarray(labels)
    xy = _coords(coords, None)
    n = xy.shape[0]
    if lab.shape != (n,):
        raise ValueError(f"`labels` must have one entry per cell ({n}); found shape {lab.shape}.")
    for v, nm in ((n_neighbors, "n_neighbors"), (n_perms, "n_perms")):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"`{nm}` must be a positive integer; found {v!r}.")
    if n_neighbors >= n:
        raise ValueError(
            f"`n_neighbors` must be below the number of cells ({n}); found {n_neighbors}."
        )
    cat = pd.Categorical(lab)
    codes = cat.codes.astype(np.int64)
    L = len(cat.categories)
    _, nb = cKDTree(xy).query(xy, k=n_neighbors + 1)
    rows = np.repeat(np.arange(n), n_neighbors)
    cols = nb[:, 1:].ravel()
    A = sp.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n)).tocsr()
    A = ((A + A.T) > 0).tocoo()
    r, c = A.row, A.col

    def counts(cd: np.ndarray) -> np.ndarray:
        return np.bincount(cd[r] * L + cd[c], minlength=L * L).reshape(L, L)

    obs = counts(codes)
    rng = np.random.default_rng(seed)
    s1 = np.zeros((L, L))
    s2 = np.zeros((L, L))
    for _ in range(n_perms):
        cp = counts(rng.permutation(codes)).astype(np.float64)
        s1 += cp
        s2 += cp * cp
    mean = s1 / n_perms
    sd = np.sqrt(np.clip(s2 / n_perms - mean**2, 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(sd > 0, (obs - mean) / np.where(sd > 0, sd, 1.0), np.nan)
    names = [str(x) for x in cat.categories]
    return NhoodEnrichment(
        zscore=pd.DataFrame(z, index=names, columns=names),
        count=pd.DataFrame(obs, index=names, columns=names),
    )


# ------------------------------------------------------------------------- plots
def plot_segment_heatmap(
    values: Any,
    segments: Any,
    genes: Sequence[str] | None = None,
    *,
    result: pd.DataFrame | None = None,
    n_top: int = 3,
    scale: bool = True,
    ax: Any = None,
    cmap: str = "RdBu_r",
):
    """Heatmap of the mean attribution (or expression) per segment for the top genes.

    Parameters
    ----------
    values
        (cells × genes) DataFrame/array/AnnData (the same matrix that was tested).
    segments
        One segment label per cell (e.g. :func:`segment_along`).
    genes
        Genes to show (rows). Default: :func:`top_genes` of ``result`` (``n_top`` each).
    result
        A :func:`spatial_dominant_genes` table, used when ``genes`` is None.
    scale
        Z-score each gene's segment means across segments.
    ax
        Matplotlib Axes to draw in (default: a new figure).

    Returns
    -------
    matplotlib.axes.Axes
    """
    from .plotting import _plt

    plt = _plt()
    X, gnames, _ = _matrix(values, None, "values")
    seg = np.asarray(segments)
    if seg.shape != (X.shape[0],):
        raise ValueError(
            f"`segments` must have one label per cell ({X.shape[0]}); found {seg.shape}."
        )
    if genes is None:
        if result is None:
            raise ValueError("pass `genes` or a `result` table of spatial_dominant_genes().")
        genes = top_genes(result, n_top)
        if not genes:
            genes = list(result.sort_values("padj")["gene"].drop_duplicates()[: n_top * 3])
    pos = pd.Index(gnames).get_indexer([str(g) for g in genes])
    if (pos < 0).any():
        raise ValueError(f"`genes` not in `values`: {np.asarray(genes)[pos < 0][:3].tolist()}.")
    df = pd.DataFrame(X[:, pos], columns=[gnames[i] for i in pos])
    means = df.groupby(seg, sort=True).mean().T  # genes × segments
    M = means.to_numpy()
    if scale:
        sd = M.std(axis=1, keepdims=True)
        M = (M - M.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.45 * M.shape[1], 1.0 + 0.28 * M.shape[0]))
    lim = np.nanmax(np.abs(M)) if scale and M.size else None
    im = ax.imshow(M, aspect="auto", cmap=cmap, vmin=-lim if lim else None, vmax=lim)
    ax.set_xticks(range(M.shape[1]), [str(c) for c in means.columns])
    ax.set_yticks(range(M.shape[0]), list(means.index), fontsize=7)
    ax.set_xlabel("segment")
    ax.figure.colorbar(im, ax=ax, label="z-scored mean" if scale else "mean", shrink=0.8)
    return ax


def plot_expression_trends(
    trends: pd.DataFrame,
    genes: Sequence[str] | None = None,
    groups: Sequence[Any] | None = None,
    *,
    band: bool = True,
    ax: Any = None,
):
    """Line plot of :func:`expression_trends` output (± 1.96 se bands).

    Parameters
    ----------
    trends
        Table from :func:`expression_trends`.
    genes, groups
        Subsets to draw (default: all; at most 12 lines are sensible).
    band
        Shade the 95 % pointwise interval.
    ax
        Matplotlib Axes (default: a new figure).

    Returns
    -------
    matplotlib.axes.Axes
    """
    from .plotting import _plt

    plt = _plt()
    need = {"group", "gene", "score", "fitted", "se"}
    if not isinstance(trends, pd.DataFrame) or not need <= set(trends.columns):
        raise ValueError(
            f"`trends` must be a table from expression_trends() with columns {sorted(need)}."
        )
    t = trends
    if genes is not None:
        t = t[t["gene"].isin([str(g) for g in genes])]
    if groups is not None:
        t = t[t["group"].isin(list(groups))]
    if t.empty:
        raise ValueError("no trends left to plot after selecting `genes`/`groups`.")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    multi = t["group"].nunique() > 1
    for (grp, gene), d in t.groupby(["group", "gene"], sort=False):
        lbl = f"{gene} ({grp})" if multi else str(gene)
        (line,) = ax.plot(d["score"], d["fitted"], label=lbl)
        if band:
            ax.fill_between(
                d["score"],
                d["fitted"] - 1.96 * d["se"],
                d["fitted"] + 1.96 * d["se"],
                color=line.get_color(),
                alpha=0.2,
                lw=0,
            )
    ax.set_xlabel("score along the axis")
    ax.set_ylabel("expression (fitted)")
    ax.legend(fontsize=7, frameon=False)
    return ax
