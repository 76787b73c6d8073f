"""Spatial dominant genes: per spatial segment, genes higher than in the rest (Wilcoxon + BH)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .._defaults import ANALYSIS
from ._common import _coords, _matrix, axis_score, bh_fdr, segment_along

logger = logging.getLogger(__name__)


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
        from ..attribution import integrated_gradients

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
    """Pick the ``n`` best genes of each segment of a :func:`spatial_dominant_genes` table.

    Genes are taken segment by segment (in table order), keeping only ``padj < fdr`` and
    skipping genes already taken, so a heatmap of them shows the diagonal pattern.

    Parameters
    ----------
    result
        Table from :func:`spatial_dominant_genes`.
    n
        Genes per segment.
    fdr
        Largest adjusted p-value kept.

    Returns
    -------
    list of str
        Gene names, segment by segment.
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
