"""Cross-region pseudo spots and platform effects (see :mod:`stemmap.simulate`)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._validate import check_anndata, get_coords, get_matrix
from ._spots import _check_grid, _part_size, pseudo_spots

logger = logging.getLogger(__name__)


def _check_number(value: Any, name: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be {what}; found {value!r}.")
    if not np.isfinite(value):
        raise ValueError(f"`{name}` must be {what}; found {value!r}.")
    return float(value)


def cross_region_pseudo_spots(
    adata: Any,
    axis: int | None = None,
    fraction: float = 0.5,
    spot_side: str = "low",
    gap: float = 0.0,
    seed: int = 0,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """Pseudo spots from one region of the section; the SC data are the cells of another.

    The section is cut by a line across ``axis`` (a coordinate cut): the spot region A
    holds the ``fraction`` of the cells with the lowest (``spot_side="low"``) or highest
    (``"high"``) coordinate along ``axis``, and the pseudo spots are built from A alone with
    :func:`pseudo_spots`, the grid laid over A's bounding box with about the full section's
    grid step (``grid`` gives the points over the whole section; A gets
    ``round((n - 1) · span_A / span) + 1`` points per axis, at least 2). The SC data are the
    cells B on the other side, beyond the reach of every spot window: farther from A's edge
    than half a spot window along ``axis`` (a border spot's window reaches that far), plus
    ``gap`` × the section's span along ``axis``. The cells in between belong to neither
    part. So no spot holds a mapped cell and no mapped cell's true position is in the spots'
    region, as when the cells of one section (or animal) are mapped onto the spots of
    another: a placement cannot be scored against the true positions (they are kept in
    ``obsm["spatial_true"]`` for plots), but spot compositions and held-out genes can (the
    spots' true proportions come from their own cells, those of A).

    The two regions need not hold the same cell types in the same proportions: that is part
    of the test. ``st.uns["simulation"]`` records the total-variation distance between the
    two parts' type compositions and the types of A absent from B.

    Parameters
    ----------
    adata
        Single-cell-resolution spatial data, as for :func:`pseudo_spots`.
    axis
        Coordinate that is cut: 0 (x) or 1 (y). ``None``: the shorter side of the
        bounding box, so that the cut runs along the longer axis and both parts span the
        section's whole length.
    fraction
        Share of the cells in the spot region A, in ``(0, 1)`` (the cut is at that quantile
        of the coordinate, counted from ``spot_side``).
    spot_side
        ``"low"``: A is the part with the smaller coordinates; ``"high"``: the larger.
    gap
        Further band between the regions, as a fraction of the section's span along
        ``axis``, in ``[0, 1)``; its cells are in neither part.
    seed
        Recorded in ``uns["simulation"]``; the construction is deterministic.
    **kwargs
        Passed to :func:`pseudo_spots` (``grid``, ``window``, ``min_cells``,
        ``spatial_key``, ``label_key``, ``layer``).

    Returns
    -------
    sc, st
        As :func:`disjoint_pseudo_spots` returns them, with B the cells of the other region
        and A the spots' region; ``st.uns["simulation"]`` records ``split="cross_region"``, ``axis``, ``cut`` (A's edge), ``sc_from``
        (B's nearest coordinate allowed), ``spot_side``, ``fraction``, ``gap``, the number
        of cells in each part and between them, ``composition_tv`` and
        ``types_absent_from_sc``.

    Raises
    ------
    TypeError
        If ``adata`` is not an AnnData or an argument has the wrong type.
    ValueError
        If an argument is out of range or a part would be empty; see also
        :func:`pseudo_spots`.

    Examples
    --------
    >>> sc, st = cross_region_pseudo_spots(adata, fraction=0.5)  # doctest: +SKIP
    >>> st.uns["simulation"]["split"]  # doctest: +SKIP
    'cross_region'
    """
    check_anndata(adata, "adata")
    if axis is not None and (
        isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis not in (0, 1)
    ):
        raise ValueError(f"`axis` must be 0 (x), 1 (y) or None; found {axis!r}.")
    fraction = _check_number(fraction, "fraction", "a number in (0, 1)")
    if not 0 < fraction < 1:
        raise ValueError(f"`fraction` must be in (0, 1); found {fraction!r}.")
    if spot_side not in ("low", "high"):
        raise ValueError(f"`spot_side` must be 'low' or 'high'; found {spot_side!r}.")
    gap = _check_number(gap, "gap", "a number in [0, 1)")
    if not 0 <= gap < 1:
        raise ValueError(f"`gap` must be in [0, 1) (a fraction of the span); found {gap!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an integer; found {seed!r}.")
    spatial_key = kwargs.get("spatial_key", "spatial")
    layer = kwargs.get("layer")
    label_key = kwargs.get("label_key", "celltype")
    nx, ny = _check_grid(kwargs.pop("grid", (30, 40)))
    window = kwargs.get("window", 0.55)
    xy = np.asarray(get_coords(adata, spatial_key, "adata"), dtype=np.float64)
    span = xy.max(axis=0) - xy.min(axis=0)
    if np.any(span <= 0):
        raise ValueError(
            f"`adata.obsm[{spatial_key!r}]` spans no area (x range {span[0]:.3g}, y range "
            f"{span[1]:.3g}); a region cut needs cells spread along both axes."
        )
    if axis is None:
        axis = int(np.argmin(span))
    axis = int(axis)
    m = adata.n_obs
    n_a = _part_size(fraction, m, "region")
    # signed coordinate: A is the n_a cells with the smallest t (ties by cell order)
    t = xy[:, axis] if spot_side == "low" else -xy[:, axis]
    order = np.argsort(t, kind="stable")
    in_a = np.zeros(m, dtype=bool)
    in_a[order[:n_a]] = True
    span_a = xy[in_a].max(axis=0) - xy[in_a].min(axis=0)
    grid_a = tuple(
        max(2, int(round((n - 1) * s_a / s)) + 1) for n, s_a, s in zip((nx, ny), span_a, span)
    )
    _, st = pseudo_spots(adata[np.flatnonzero(in_a)], grid=grid_a, seed=seed, **kwargs)
    step_axis = float(st.uns["simulation"]["step_xy"][axis])
    if not np.isfinite(step_axis) or step_axis <= 0:  # A has no extent along the axis
        step_axis = 0.0
    edge = float(t[in_a].max())
    reach = edge + 0.5 * float(window) * step_axis + gap * float(span[axis])
    in_b = ~in_a & (t > reach)
    if not in_b.any():
        raise ValueError(
            f"No cell lies beyond the spot region's reach (cut at the {fraction:g} quantile, "
            f"gap {gap:g}); use a smaller `fraction` or `gap`."
        )
    part_b = np.flatnonzero(in_b)
    sc = adata[part_b].copy()
    if layer is not None:
        sc.X = sc.layers[layer].copy()
    sc.obsm["spatial_true"] = xy[part_b]
    if spatial_key in sc.obsm:
        del sc.obsm[spatial_key]
    sc.obs["spot"] = pd.Categorical.from_codes(
        np.full(sc.n_obs, -1), categories=pd.Index(st.obs_names)
    )
    tv, absent = float("nan"), []
    if label_key is not None:
        labels = adata.obs[label_key].astype(str).to_numpy()
        pa = pd.Series(labels[in_a]).value_counts(normalize=True)
        pb = pd.Series(labels[in_b]).value_counts(normalize=True)
        both = pa.index.union(pb.index)
        tv = 0.5 * float(
            np.abs(pa.reindex(both, fill_value=0) - pb.reindex(both, fill_value=0)).sum()
        )
        absent = sorted(set(pa.index) - set(pb.index))
    sign = 1.0 if spot_side == "low" else -1.0
    st.uns["simulation"].update(
        split="cross_region",
        axis=axis,
        spot_side=spot_side,
        fraction=float(fraction),
        gap=float(gap),
        cut=sign * edge,
        sc_from=sign * reach,
        grid_full=[nx, ny],
        n_cells_spot_part=int(n_a),
        n_cells_sc_part=int(in_b.sum()),
        n_cells_between=int(m - n_a - in_b.sum()),
        composition_tv=tv,
        types_absent_from_sc=absent,
    )
    logger.info(
        "cross_region_pseudo_spots: %d spots from %d cells (%s side of axis %d); %d cells of "
        "the other region as SC data, %d between; composition TV %.2f",
        st.n_obs,
        n_a,
        spot_side,
        axis,
        int(in_b.sum()),
        int(m - n_a - in_b.sum()),
        tv,
    )
    return sc, st


def platform_effect(
    adata: Any,
    sigma: float = 0.5,
    seed: int = 0,
    layer: str | None = None,
    resample: str = "poisson",
) -> Any:
    """Scale each gene by a log-normal factor, as a second platform's gene-wise detection.

    Gene ``g`` gets the factor ``f_g = exp(sigma · z_g)``, ``z_g ~ N(0, 1)`` (median 1;
    ``numpy.random.default_rng(seed)``), the same for every spot (or cell); the expected
    counts ``λ = X · f`` are then, by default, Poisson-resampled so that the result stays
    integer counts (what count-based methods such as cell2location expect). Apply it to the
    ``st`` of a semi-simulation to give the spots a platform effect the SC data lack.

    Parameters
    ----------
    adata
        Spots (or cells) × genes with counts in ``X`` (or ``layer``). Not modified.
    sigma
        Standard deviation of the log factors, ``>= 0`` (0: factors of 1).
    seed
        Seed of the factors and of the resampling.
    layer
        Layer to change; ``None`` for ``X``. The result replaces that layer in the copy.
    resample
        ``"poisson"``: counts drawn from Poisson(λ) (default); ``"round"``: λ rounded to the
        nearest integer; ``"none"``: λ as floats.

    Returns
    -------
    AnnData
        A copy of ``adata`` with the changed matrix (sparse if the input was; int64 for
        ``"poisson"``/``"round"``, float64 for ``"none"``), the factors in
        ``var["platform_factor"]`` and the settings in ``uns["platform_effect"]``.

    Raises
    ------
    TypeError
        If ``adata`` is not an AnnData or ``sigma`` / ``seed`` have the wrong type.
    ValueError
        If ``sigma`` is negative or not finite, or ``resample`` is not a known choice.

    Examples
    --------
    >>> st_platform = platform_effect(st, sigma=0.5, seed=0)  # doctest: +SKIP
    """
    check_anndata(adata, "adata")
    sigma = _check_number(sigma, "sigma", "a non-negative number")
    if sigma < 0:
        raise ValueError(f"`sigma` must be a non-negative number; found {sigma!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an integer; found {seed!r}.")
    if resample not in ("poisson", "round", "none"):
        raise ValueError(f"`resample` must be 'poisson', 'round' or 'none'; found {resample!r}.")
    X = get_matrix(adata, layer, "adata")
    rng = np.random.default_rng(seed)
    factors = np.exp(sigma * rng.standard_normal(adata.n_vars))
    if sp.issparse(X):
        lam = sp.csr_matrix(X, dtype=np.float64) @ sp.diags(factors)
        lam = sp.csr_matrix(lam)
        vals = lam.data
    else:
        lam = np.asarray(X, dtype=np.float64) * factors[None, :]
        vals = lam.reshape(-1)
    if resample == "poisson":
        vals = rng.poisson(vals).astype(np.int64)
    elif resample == "round":
        vals = np.rint(vals).astype(np.int64)
    if sp.issparse(X):
        out_x = sp.csr_matrix((vals, lam.indices, lam.indptr), shape=lam.shape)
        out_x.eliminate_zeros()
    else:
        out_x = vals.reshape(lam.shape)
    out = adata.copy()
    if layer is None:
        out.X = out_x
    else:
        out.layers[layer] = out_x
    out.var["platform_factor"] = factors
    out.uns["platform_effect"] = {
        "sigma": sigma,
        "seed": int(seed),
        "layer": layer,
        "resample": resample,
    }
    logger.info(
        "platform_effect: sigma=%.3g on %d x %d (%s)", sigma, adata.n_obs, adata.n_vars, resample
    )
    return out
