"""Pseudo spots on a grid (all cells, or a random half mapped) and count noise."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._validate import check_anndata, check_integers, get_coords, get_matrix

logger = logging.getLogger(__name__)


def _part_size(fraction: float, m: int, what: str) -> int:
    """Cells in the spots' part: ``fraction`` of ``m``, leaving both parts non-empty."""
    n_a = int(round(fraction * m))
    if n_a < 1 or n_a > m - 1:
        raise ValueError(
            f"`fraction={fraction!r}` of {m} cells leaves a part empty; both the spot {what} "
            f"and the SC {what} need at least one cell."
        )
    return n_a


def _check_grid(grid: Any) -> tuple[int, int]:
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence) or len(grid) != 2:
        raise TypeError(
            f"`grid` must be a pair of integers (points along x, points along y); found {grid!r}."
        )
    nx, ny = check_integers(grid, "grid", 2, "needs at least 2 points per axis")
    return nx, ny


def pseudo_spots(
    adata: Any,
    grid: tuple[int, int] = (30, 40),
    window: float = 0.55,
    min_cells: int = 3,
    spatial_key: str = "spatial",
    label_key: str | None = "celltype",
    layer: str | None = None,
    seed: int = 0,
) -> tuple[Any, Any]:
    """Aggregate single cells with known positions into pseudo spots on a regular grid.

    The grid has ``grid[0]`` points along x and ``grid[1]`` along y, evenly spaced over the
    bounding box of the cell coordinates (the extreme cells lie on the outer grid lines),
    so the grid step is ``step_x = (x_max - x_min) / (grid[0] - 1)`` and likewise for y.
    Each spot is the window centred on a grid point whose side is ``window`` times the grid
    step along each axis (a square in grid units; a rectangle in data units where the two
    steps differ); a cell on the window border counts as inside. A spot's counts are the sum
    of the counts of its cells; spots with fewer than ``min_cells`` cells are dropped. Cells
    outside every kept spot remain in the SC data, as real ST misses cells too. With the
    paper's settings (30 × 40, 0.55, 3) the seqFISH embryo-2 slice z=2 gives 495 spots
    holding 26% of the cells.

    Parameters
    ----------
    adata
        Single-cell-resolution spatial data (cells × genes) with raw counts in ``X`` (or
        ``layer``), coordinates in ``obsm[spatial_key]`` and, optionally, cell labels in
        ``obs[label_key]``.
    grid
        Number of grid points along x and y. Other spot resolutions are other grid sizes.
    window
        Side of a spot window as a fraction of the grid step, in ``(0, 1]`` (above 1 the
        windows would overlap and a cell could belong to two spots).
    min_cells
        Spots holding fewer cells are dropped.
    spatial_key
        Key of the cell coordinates in ``adata.obsm`` (the first two columns are used).
    label_key
        Column of ``adata.obs`` with cell labels, used for the spots' true proportions;
        ``None`` to skip them.
    layer
        Layer with the counts; ``None`` for ``adata.X``.
    seed
        Recorded in ``st.uns["simulation"]`` for provenance. The construction itself is
        deterministic; noise is added separately with :func:`add_noise`.

    Returns
    -------
    sc
        Copy of all ``M`` cells. Its ``X`` holds the counts used for the spots; the true
        coordinates are moved to ``obsm["spatial_true"]`` (no ``obsm[spatial_key]`` is left,
        so no position leaks into a mapping method); ``obs["spot"]`` (categorical) names
        the kept spot each cell fell in, NA otherwise.
    st
        ``N`` spots × genes: ``X`` the summed counts (sparse if the input is),
        ``obsm["spatial"]`` the grid-point coordinates (N × 2), ``obs["n_cells"]``,
        ``obs["grid_x"]`` / ``obs["grid_y"]`` (grid indices), ``obsm["proportions"]`` (a
        DataFrame, spots × all label categories, rows sum to 1) when ``label_key`` is set,
        and ``uns["simulation"]`` with the parameters, the grid steps (``step_xy``) and
        ``step``, their geometric mean, the unit in which benchmarks report MAE.

    Raises
    ------
    TypeError
        If ``adata`` is not an AnnData or an argument has the wrong type.
    KeyError
        If ``spatial_key``, ``label_key`` or ``layer`` is missing.
    ValueError
        If an argument is out of range, the coordinates span no area, or no spot keeps
        ``min_cells`` cells.

    Examples
    --------
    >>> sc, st = pseudo_spots(adata, grid=(30, 40))  # doctest: +SKIP
    >>> st.obsm["proportions"].shape  # doctest: +SKIP
    (495, 24)
    """
    check_anndata(adata, "adata")
    nx, ny = _check_grid(grid)
    if isinstance(window, bool) or not isinstance(window, (int, float, np.integer, np.floating)):
        raise TypeError(f"`window` must be a number in (0, 1]; found {window!r}.")
    if not 0 < window <= 1:
        raise ValueError(
            f"`window` must be in (0, 1] (fraction of the grid step; larger windows overlap); "
            f"found {window!r}."
        )
    if isinstance(min_cells, bool) or not isinstance(min_cells, (int, np.integer)):
        raise TypeError(f"`min_cells` must be a non-negative integer; found {min_cells!r}.")
    if min_cells < 0:
        raise ValueError(f"`min_cells` must be a non-negative integer; found {min_cells!r}.")
    min_cells = max(int(min_cells), 1)  # an empty window is never a spot

    X = get_matrix(adata, layer, "adata")
    xy = get_coords(adata, spatial_key, "adata")
    labels = cell_labels(adata, label_key, "proportions")

    lo = xy.min(axis=0)
    hi = xy.max(axis=0)
    span = hi - lo
    if np.any(span <= 0):
        raise ValueError(
            f"`adata.obsm[{spatial_key!r}]` spans no area (x range {span[0]:.3g}, y range "
            f"{span[1]:.3g}); a grid needs cells spread along both axes."
        )
    step_xy = span / np.array([nx - 1, ny - 1], dtype=np.float64)
    half = 0.5 * window * step_xy

    # Nearest grid point of every cell; with window <= 1 it is the only window it can be in.
    rel = (xy - lo) / step_xy
    idx = np.rint(rel).astype(np.int64)
    np.clip(idx, 0, [nx - 1, ny - 1], out=idx)
    offset = np.abs(xy - (lo + idx * step_xy))
    eps = 1e-9 * step_xy
    inside = np.all(offset <= half + eps, axis=1)
    flat = idx[:, 0] * ny + idx[:, 1]

    spot_ids, counts = np.unique(flat[inside], return_counts=True)
    keep_ids = spot_ids[counts >= min_cells]
    if keep_ids.size == 0:
        raise ValueError(
            f"No spot holds at least {min_cells} cells with grid={grid!r} and window={window!r}; "
            "use a coarser grid, a larger window or a smaller `min_cells`."
        )
    spot_of_cell = np.full(adata.n_obs, -1, dtype=np.int64)
    pos = np.searchsorted(keep_ids, flat)
    pos_ok = inside & (pos < keep_ids.size)
    pos_ok[pos_ok] = keep_ids[pos[pos_ok]] == flat[pos_ok]
    spot_of_cell[pos_ok] = pos[pos_ok]

    n_spots = keep_ids.size
    gx, gy = keep_ids // ny, keep_ids % ny
    spot_names = np.array([f"spot_{i}_{j}" for i, j in zip(gx, gy)], dtype=object)
    members = np.flatnonzero(spot_of_cell >= 0)
    A = sp.csr_matrix(
        (np.ones(members.size, dtype=np.float64), (spot_of_cell[members], members)),
        shape=(n_spots, adata.n_obs),
    )
    is_int = np.issubdtype((X.data if sp.issparse(X) else X).dtype, np.integer)
    out_dtype = np.int64 if is_int else np.float64
    if sp.issparse(X):
        Xst = sp.csr_matrix((A @ X.astype(np.float64)).astype(out_dtype))
    else:
        Xst = np.asarray(A @ X.astype(np.float64)).astype(out_dtype)

    import anndata as ad

    n_cells = np.asarray(A.sum(axis=1)).ravel().astype(np.int64)
    coords = lo + np.column_stack([gx, gy]) * step_xy
    st = ad.AnnData(
        X=Xst,
        obs=pd.DataFrame(
            {"n_cells": n_cells, "grid_x": gx, "grid_y": gy},
            index=pd.Index(spot_names, name=None),
        ),
        var=adata.var.copy(),
    )
    st.obsm["spatial"] = coords
    if labels is not None:
        onehot = sp.csr_matrix(
            (np.ones(adata.n_obs), (np.arange(adata.n_obs), labels.codes)),
            shape=(adata.n_obs, len(labels.categories)),
        )
        per_type = np.asarray((A @ onehot).todense())
        props = per_type / n_cells[:, None]
        st.obsm["proportions"] = pd.DataFrame(
            props, index=st.obs_names, columns=pd.Index(labels.categories.astype(str))
        )

    sc = adata.copy()
    if layer is not None:
        sc.X = sc.layers[layer].copy()
    sc.obsm["spatial_true"] = np.asarray(xy)
    if spatial_key in sc.obsm:
        del sc.obsm[spatial_key]
    codes = np.where(spot_of_cell >= 0, spot_of_cell, -1)
    sc.obs["spot"] = pd.Categorical.from_codes(codes, categories=pd.Index(spot_names))

    n_in = int(members.size)
    st.uns["simulation"] = {
        "method": "pseudo_spots",
        "grid": [nx, ny],
        "window": float(window),
        "min_cells": int(min_cells),
        "spatial_key": spatial_key,
        "label_key": label_key,
        "layer": layer,
        "seed": int(seed),
        "origin": lo.tolist(),
        "step_xy": step_xy.tolist(),
        "step": float(np.sqrt(step_xy[0] * step_xy[1])),
        "n_spots": int(n_spots),
        "n_cells_in_spots": n_in,
        "n_cells_total": int(adata.n_obs),
    }
    logger.info(
        "pseudo_spots: %d spots on a %d x %d grid; %d of %d cells (%.0f%%) inside kept spots",
        n_spots,
        nx,
        ny,
        n_in,
        adata.n_obs,
        100.0 * n_in / max(adata.n_obs, 1),
    )
    return sc, st


def disjoint_pseudo_spots(
    adata: Any,
    fraction: float = 0.5,
    seed: int = 0,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """Pseudo spots from one random part of the cells; the SC data are the other part.

    The cells are split at random (``numpy.random.default_rng(seed)``) into a spot part A
    of ``round(fraction * M)`` cells and an SC part B (the rest). The pseudo spots are
    built from A alone with :func:`pseudo_spots` (same grid, window and ``min_cells``
    rules, grid laid over A's bounding box), and the SC data are B, so that no mapped
    cell's own counts are in any spot, as when a separate scRNA-seq reference is mapped
    onto real spots. B's true coordinates are kept for the metrics as in
    :func:`pseudo_spots`.

    Parameters
    ----------
    adata
        Single-cell-resolution spatial data, as for :func:`pseudo_spots`.
    fraction
        Share of the cells that make the spots, in ``(0, 1)``.
    seed
        Seed of the random split.
    **kwargs
        Passed to :func:`pseudo_spots` (``grid``, ``window``, ``min_cells``,
        ``spatial_key``, ``label_key``, ``layer``).

    Returns
    -------
    sc
        Copy of the cells of B: ``X`` their counts, ``obsm["spatial_true"]`` their true
        coordinates, ``obs["spot"]`` all NA (categorical, categories = the spot names).
    st
        The pseudo spots of A, as returned by :func:`pseudo_spots`; ``uns["simulation"]``
        also records ``split="disjoint"``, ``fraction``, ``split_seed`` and the number of
        cells in each part; ``obsm["proportions"]`` are A's true cell-type proportions.

    Raises
    ------
    TypeError
        If ``adata`` is not an AnnData or ``fraction`` / ``seed`` have the wrong type.
    ValueError
        If ``fraction`` is not in ``(0, 1)`` or a part would be empty; see also
        :func:`pseudo_spots`.

    Examples
    --------
    >>> sc, st = disjoint_pseudo_spots(adata, seed=0)  # doctest: +SKIP
    >>> sc.obs["spot"].isna().all()  # doctest: +SKIP
    True
    """
    check_anndata(adata, "adata")
    if isinstance(fraction, bool) or not isinstance(
        fraction, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"`fraction` must be a number in (0, 1); found {fraction!r}.")
    if not 0 < fraction < 1:
        raise ValueError(f"`fraction` must be in (0, 1); found {fraction!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an integer; found {seed!r}.")
    m = adata.n_obs
    n_a = _part_size(fraction, m, "part")
    perm = np.random.default_rng(seed).permutation(m)
    part_a = np.sort(perm[:n_a])
    part_b = np.sort(perm[n_a:])
    _, st = pseudo_spots(adata[part_a], seed=seed, **kwargs)
    spatial_key = kwargs.get("spatial_key", "spatial")
    layer = kwargs.get("layer")
    sc = adata[part_b].copy()
    if layer is not None:
        sc.X = sc.layers[layer].copy()
    sc.obsm["spatial_true"] = np.asarray(get_coords(adata, spatial_key, "adata"))[part_b]
    if spatial_key in sc.obsm:
        del sc.obsm[spatial_key]
    sc.obs["spot"] = pd.Categorical.from_codes(
        np.full(sc.n_obs, -1), categories=pd.Index(st.obs_names)
    )
    st.uns["simulation"].update(
        split="disjoint",
        fraction=float(fraction),
        split_seed=int(seed),
        n_cells_spot_part=int(n_a),
        n_cells_sc_part=int(m - n_a),
    )
    logger.info(
        "disjoint_pseudo_spots: %d spots from %d cells; %d other cells as SC data",
        st.n_obs,
        n_a,
        m - n_a,
    )
    return sc, st


def add_noise(
    adata: Any,
    R: float,
    seed: int = 0,
    layer: str | None = None,
    round_counts: bool = False,
) -> Any:
    """Add gene-wise Gaussian noise to counts (the paper's robustness test).

    Each gene ``g`` gets independent noise ``N(0, R · var_g)`` where ``var_g`` is the
    gene's variance across cells (population variance, ``ddof=0``), and the result is
    clipped at 0. The paper used R = 0.2, 0.4, 0.6, 0.8 on the SC data of the
    semi-simulation: apply it to the ``sc`` returned by :func:`pseudo_spots`.

    Parameters
    ----------
    adata
        Cells × genes with counts in ``X`` (or ``layer``). Not modified.
    R
        Noise-to-signal variance ratio, ``>= 0`` (0 returns an unchanged copy).
    seed
        Seed of the noise generator (``numpy.random.default_rng``).
    layer
        Layer to perturb; ``None`` for ``X``. The noisy matrix replaces that layer in the copy.
    round_counts
        Round the noisy values to integers (keeps the data count-like for tools that
        expect integers). The paper does not round.

    Returns
    -------
    AnnData
        A copy of ``adata`` whose ``X`` (or ``layer``) is a dense float32 noisy matrix.

    Raises
    ------
    TypeError
        If ``adata`` is not an AnnData or ``R`` is not a number.
    ValueError
        If ``R`` is negative or not finite.
    """
    check_anndata(adata, "adata")
    if isinstance(R, bool) or not isinstance(R, (int, float, np.integer, np.floating)):
        raise TypeError(f"`R` must be a non-negative number; found {R!r}.")
    if not np.isfinite(R) or R < 0:
        raise ValueError(f"`R` must be a non-negative finite number; found {R!r}.")
    X = get_matrix(adata, layer, "adata")
    if sp.issparse(X):
        Xd = X.toarray().astype(np.float64)
    else:
        Xd = np.asarray(X, dtype=np.float64).copy()
    var = Xd.var(axis=0)
    rng = np.random.default_rng(seed)
    if R > 0:
        Xd += rng.standard_normal(Xd.shape) * np.sqrt(R * var)[None, :]
        np.clip(Xd, 0.0, None, out=Xd)
    if round_counts:
        np.rint(Xd, out=Xd)
    out = adata.copy()
    if layer is None:
        out.X = Xd.astype(np.float32)
    else:
        out.layers[layer] = Xd.astype(np.float32)
    out.uns["noise"] = {"R": float(R), "seed": int(seed), "layer": layer, "rounded": round_counts}
    logger.info("add_noise: R=%.3g on %d cells x %d genes", R, adata.n_obs, adata.n_vars)
    return out


def cell_labels(adata: Any, label_key: str | None, truth: str) -> pd.Categorical | None:
    """``adata.obs[label_key]`` as categories (None without a key); errors name ``label_key``.

    ``truth``: what the labels give (for the message: "proportions", "compositions").
    """
    if label_key is None:
        return None
    if label_key not in adata.obs.columns:
        raise KeyError(
            f"`label_key={label_key!r}` not found in `adata.obs`; available columns: "
            f"{list(adata.obs.columns) or 'none'}. Pass `label_key=None` to skip the true "
            f"{truth}."
        )
    labels = pd.Categorical(adata.obs[label_key])
    if labels.isna().any():
        raise ValueError(
            f"`adata.obs[{label_key!r}]` has {int(labels.isna().sum())} missing label(s); "
            "expected a label for every cell."
        )
    return labels
