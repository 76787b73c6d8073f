"""Figures people would rather look at than read: positions, losses, deconvolution."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        try:
            import matplotlib.pyplot as plt  # noqa: F401
        except Exception:  # pragma: no cover - headless without a GUI toolkit
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(labels: Sequence[Any]) -> tuple[np.ndarray, list[str], Any]:
    plt = _plt()
    cats = sorted(pd.unique(pd.Series(labels).astype(str)))
    if len(cats) <= 10:
        pal = list(plt.get_cmap("tab10").colors)
    else:  # up to 60 distinct colours before any repeats
        pal = [c for name in ("tab20", "tab20b", "tab20c") for c in plt.get_cmap(name).colors]
    lut = {c: pal[i % len(pal)] for i, c in enumerate(cats)}
    return np.array([lut[str(v)] for v in labels]), cats, lut


def positions(
    coords: np.ndarray,
    labels: Sequence[Any] | None = None,
    *,
    true_coords: np.ndarray | None = None,
    spot_coords: np.ndarray | None = None,
    s: float = 3.0,
    title: str = "STEM pseudo-coordinates",
    legend: bool = True,
):
    """Scatter of reconstructed cell positions (beside the true ones when given).

    Parameters
    ----------
    coords
        (M × 2) reconstructed positions.
    labels
        Colour by these labels (e.g. cell types).
    true_coords
        (M × 2) true positions: drawn in a first panel with the same colours.
    spot_coords
        (N × 2) spot positions, drawn as grey squares under the cells.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    panels = [("true positions", true_coords)] if true_coords is not None else []
    panels.append((title, coords))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.2 * len(panels) + (2.2 if legend else 0), 4.6)
    )
    axes = np.atleast_1d(axes)
    col, cats, lut = _colours(labels) if labels is not None else (None, [], {})
    for ax, (name, xy) in zip(axes, panels):
        if spot_coords is not None:
            ax.scatter(spot_coords[:, 0], spot_coords[:, 1], s=14, marker="s", c="0.85", lw=0)
        ax.scatter(xy[:, 0], xy[:, 1], s=s, c=col if col is not None else "tab:blue", lw=0)
        ax.set_title(name)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
    if legend and cats:
        handles = [plt.Line2D([], [], marker="o", ls="", color=lut[c], label=c) for c in cats]
        fig.legend(
            handles=handles,
            loc="center right",
            fontsize=7,
            frameon=False,
            ncol=1 if len(cats) <= 18 else 2,
        )
        fig.subplots_adjust(right=0.78 if len(cats) <= 18 else 0.68)
    return fig


def loss_curve(history: pd.DataFrame, alpha: float = 0.5):
    """Loss terms per epoch (total, extract, trans, MMD) with β on a second axis.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for col, style in (("loss", "-"), ("extract", "--"), ("trans", "-."), ("mmd", ":")):
        ax.plot(history["epoch"], history[col], style, label=col)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(history["epoch"], history["beta"], color="0.6", lw=1)
    ax2.set_ylabel("β (weight of L_trans)", color="0.5")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"STEM training (α = {alpha})")
    fig.tight_layout()
    return fig


def deconvolution(
    spot_coords: np.ndarray,
    proportions: pd.DataFrame,
    types: Sequence[str] | None = None,
    *,
    true: pd.DataFrame | None = None,
    ncols: int = 4,
):
    """Estimated proportion of each cell type per spot, as spatial maps.

    Parameters
    ----------
    spot_coords
        (N × 2) spot coordinates.
    proportions
        (N × types) estimated proportions (``StemMapping.deconvolve``).
    types
        Which types to draw (default: the 8 most abundant).
    true
        True proportions (same layout) to draw beneath, one row each.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    if types is None:
        types = list(proportions.sum(0).sort_values(ascending=False).index[:8])
    types = list(types)
    rows_per = 2 if true is not None else 1
    nrow = int(np.ceil(len(types) / ncols)) * rows_per
    fig, axes = plt.subplots(nrow, ncols, figsize=(3.0 * ncols, 2.8 * nrow), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, t in enumerate(types):
        r, c = divmod(i, ncols)
        sets = [("STEM", proportions)] + ([("true", true)] if true is not None else [])
        for j, (name, df) in enumerate(sets):
            ax = axes[r * rows_per + j, c]
            vals = df[t].to_numpy() if t in df else np.zeros(len(df))
            sc = ax.scatter(
                spot_coords[:, 0],
                spot_coords[:, 1],
                c=vals,
                s=10,
                cmap="viridis",
                vmin=0,
                lw=0,
                marker="s",
            )
            ax.set_title(f"{t} ({name})", fontsize=8)
            ax.set_aspect("equal", adjustable="datalim")
            fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.02)
    fig.tight_layout()
    return fig
