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


# Okabe & Ito (2008), colour-blind safe, for up to 8 labels; Kelly (1965), 21 colours of
# maximum contrast (white left out), for up to 21; then tab20/tab20b/tab20c. The same lists
# as the R package's plots (R/plots.R).
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")
KELLY = (
    "#F3C300", "#875692", "#F38400", "#A1CAF1", "#BE0032", "#C2B280", "#848482",
    "#008856", "#E68FAC", "#0067A5", "#F99379", "#604E97", "#F6A600", "#B3446C",
    "#DCD300", "#882D17", "#8DB600", "#654522", "#E25822", "#2B3D26", "#222222",
)  # fmt: skip


def _colours(
    labels: Sequence[Any], palette: Any = None
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Colour each label: the default palettes, or ``palette``.

    ``palette`` is a list of colours in the order of the sorted labels, a dict label ->
    colour, or a matplotlib colormap name.
    """
    plt = _plt()
    cats = sorted(pd.unique(pd.Series(labels).astype(str)))
    n = len(cats)
    if palette is None:
        if n <= len(OKABE_ITO):
            pal: list[Any] = list(OKABE_ITO)
        elif n <= len(KELLY):
            pal = list(KELLY)
        else:
            pal = list(KELLY) + [
                c for name in ("tab20", "tab20b", "tab20c") for c in plt.get_cmap(name).colors
            ]
    elif isinstance(palette, dict):
        missing = [c for c in cats if c not in palette]
        if missing:
            raise ValueError(f"`palette` has no colour for labels {missing[:5]}.")
        pal = [palette[c] for c in cats]
    elif isinstance(palette, str):
        cmap = plt.get_cmap(palette)
        pal = (
            list(cmap.colors)
            if hasattr(cmap, "colors")
            else [cmap(v) for v in np.linspace(0, 1, n)]
        )
    else:
        pal = list(palette)
        if len(pal) < n:
            raise ValueError(
                f"`palette` has {len(pal)} colours for {n} labels; give one per label."
            )
    lut = {c: pal[i % len(pal)] for i, c in enumerate(cats)}
    return np.array([lut[str(v)] for v in labels], dtype=object), cats, lut


def tissue_image(
    adata: Any, library_id: str | None = None, img_key: str | None = None
) -> tuple[np.ndarray, float, str]:
    """Find the tissue image of an AnnData in scanpy's layout and its scale factor.

    Reads ``adata.uns["spatial"][library_id]["images"][img_key]`` and
    ``["scalefactors"]["tissue_<img_key>_scalef"]`` (as written by ``scanpy.read_visium``;
    squidpy uses the same layout). ``obsm["spatial"]`` × the scale factor gives image pixels.

    Parameters
    ----------
    adata
        Spatial AnnData.
    library_id
        Key of ``uns["spatial"]`` (default: the first).
    img_key
        ``"lowres"`` (default when present) or ``"hires"``.

    Returns
    -------
    (image, scale_factor, library_id)
    """
    spatial = getattr(adata, "uns", {}).get("spatial")
    if not isinstance(spatial, dict) or not spatial:
        raise ValueError(
            "`image` has no tissue image: expected adata.uns['spatial'][library_id]['images'] "
            "as written by scanpy.read_visium."
        )
    if library_id is None:
        library_id = next(iter(spatial))
    if library_id not in spatial:
        raise KeyError(f"`library_id={library_id!r}` not in uns['spatial']; found {list(spatial)}.")
    lib = spatial[library_id]
    images = lib.get("images", {})
    if img_key is None:
        img_key = "lowres" if "lowres" in images else next(iter(images), None)
    if img_key not in images:
        raise KeyError(
            f"`img_key={img_key!r}` not in the images of {library_id!r}: {list(images)}."
        )
    key = f"tissue_{img_key}_scalef"
    sf = lib.get("scalefactors", {}).get(key)
    if sf is None or not np.isfinite(sf) or sf <= 0:
        raise ValueError(f"uns['spatial'][{library_id!r}]['scalefactors'] has no {key!r}.")
    return np.asarray(images[img_key]), float(sf), str(library_id)


def positions(
    coords: np.ndarray,
    labels: Sequence[Any] | None = None,
    *,
    true_coords: np.ndarray | None = None,
    spot_coords: np.ndarray | None = None,
    s: float = 3.0,
    title: str = "STEM pseudo-coordinates",
    legend: bool = True,
    palette: Any = None,
    image: Any = None,
    library_id: str | None = None,
    img_key: str | None = None,
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
    palette
        Colours for ``labels``: a list (in the order of the sorted labels), a dict label ->
        colour, or a matplotlib colormap name. Default: Okabe-Ito up to 8 labels, Kelly's 21
        colours of maximum contrast up to 21.
    image
        A spatial AnnData with a tissue image in ``uns["spatial"]`` (scanpy layout, see
        :func:`tissue_image`): the cells are drawn over it. ``coords`` must be in the frame of
        its ``obsm["spatial"]`` (the default when it was the ST data of the mapping).
    library_id, img_key
        Which image (default: the first library, ``"lowres"`` when present).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    sf = 1.0
    img = None
    if image is not None:
        img, sf, library_id = tissue_image(image, library_id, img_key)
        title = f"{title} on the tissue image ({library_id})"
    panels = [("true positions", true_coords)] if true_coords is not None else []
    panels.append((title, coords))
    col, cats, lut = _colours(labels, palette) if labels is not None else (None, [], {})
    n_leg = 1 if len(cats) <= 18 else 2
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.2 * len(panels) + (2.2 * n_leg if legend and cats else 0), 4.6)
    )
    axes = np.atleast_1d(axes)
    for ax, (name, xy) in zip(axes, panels):
        xy = np.asarray(xy, dtype=float) * sf
        if img is not None:
            ax.imshow(img)  # pixel frame: rows grow downwards, as image coordinates
        if spot_coords is not None:
            sp_xy = np.asarray(spot_coords, dtype=float) * sf
            ax.scatter(sp_xy[:, 0], sp_xy[:, 1], s=14, marker="s", c="0.85", lw=0)
        default = "tab:blue" if img is None else "#0072B2"
        ax.scatter(xy[:, 0], xy[:, 1], s=s, c=list(col) if col is not None else default, lw=0)
        ax.set_title(name)
        if img is None:
            ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
    if legend and cats:
        handles = [plt.Line2D([], [], marker="o", ls="", color=lut[c], label=c) for c in cats]
        fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False, ncol=n_leg)
        fig.subplots_adjust(right=0.78 if n_leg == 1 else 0.68)
    return fig


def loss_curve(history: pd.DataFrame, alpha: float = 0.5):
    """Plot the loss that is minimised, and each term, per epoch, with the warm-up shaded.

    Left: the weighted terms ``extract``, ``α·mmd`` and ``β·trans`` stacked, whose top is the
    total. β is 0 during the warm-up and then rises to 1, so the total rises after the
    warm-up while every term falls. Right: each term unweighted (``trans`` is computed but
    not optimised during the warm-up) and β.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    h = history
    ep = h["epoch"].to_numpy(dtype=float)
    beta = h["beta"].to_numpy(dtype=float) if "beta" in h else np.ones(len(h))
    warm = ep[beta == 0]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11.0, 4.0))
    parts = [
        ("extract", h["extract"].to_numpy(dtype=float), OKABE_ITO[4]),
        (f"α·mmd (α = {alpha})", alpha * h["mmd"].to_numpy(dtype=float), OKABE_ITO[2]),
        ("β·trans", beta * h["trans"].to_numpy(dtype=float), OKABE_ITO[5]),
    ]
    ax.stackplot(ep, *[v for _, v, _ in parts], labels=[n for n, _, _ in parts],
                 colors=[c for _, _, c in parts], alpha=0.85)  # fmt: skip
    ax.plot(ep, h["loss"], color="black", lw=1, label="total")
    for a in (ax, ax2):
        if warm.size:
            a.axvspan(warm.min() - 0.5, warm.max() + 0.5, color="0.88", lw=0, zorder=0)
        a.set_xlabel("epoch")
    ax.set_ylabel("weighted loss")
    ax.set_title("minimised: extract + α·mmd + β·trans", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    for col, style in (("extract", "-"), ("trans", "-."), ("mmd", ":")):
        ax2.plot(ep, h[col], style, label=col, color="0.2")
    ax2.set_ylabel("loss (unweighted)")
    ax3 = ax2.twinx()
    ax3.plot(ep, beta, color="0.6", lw=1)
    ax3.set_ylabel("β (weight of trans)", color="0.5")
    ax2.legend(loc="center left", fontsize=8)
    ax2.set_title("each term" + (" (grey: warm-up, β = 0)" if warm.size else ""), fontsize=10)
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
