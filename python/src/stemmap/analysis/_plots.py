"""Figures of the analyses (matplotlib): segment heatmaps and expression trends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._common import _matrix
from ._sdg import top_genes


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
    from ..plotting import _plt

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
    from ..plotting import _plt

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
