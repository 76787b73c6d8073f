"""Analyses along an axis: transfer a spot score to cells, order cells, fit and test genes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .._defaults import ANALYSIS
from ._common import _matrix, bh_fdr

logger = logging.getLogger(__name__)


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
    """Order cells by increasing score (stable; NaN last), within groups if given.

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
