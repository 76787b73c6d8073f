"""Square bins over single-cell-resolution data, thinned to a Visium-HD-like depth."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._validate import check_anndata, check_positive, check_seed, get_coords, get_matrix
from ._spots import cell_labels

logger = logging.getLogger(__name__)

#: the most grid bins (kept or not) :func:`bin_capture` lays out before refusing a bin size
MAX_GRID_BINS = 50_000_000


def _check_margin(margin: Any) -> int | None:
    if margin is None:
        return None
    if isinstance(margin, bool) or not isinstance(margin, (int, np.integer)):
        raise TypeError(
            f"`margin` must be a non-negative integer (bins) or None; found {margin!r}."
        )
    if margin < 0:
        raise ValueError(
            f"`margin` must be a non-negative integer (bins) or None; found {margin!r}."
        )
    return int(margin)


def _integer_counts(X: sp.csr_matrix, where: str) -> sp.csr_matrix:
    """Return the counts as int64 CSR; ``ValueError`` naming ``where`` unless whole and >= 0."""
    d = X.data
    if d.size and (not np.all(np.isfinite(d)) or d.min() < 0 or np.any(d != np.rint(d))):
        raise ValueError(
            f"`{where}` must hold raw counts (whole numbers >= 0): bins are thinned binomially; "
            "found non-integer or negative values. Pass `layer=` with the raw counts."
        )
    return sp.csr_matrix((np.rint(d).astype(np.int64), X.indices, X.indptr), shape=X.shape)


def _kept_bins(occupied: np.ndarray, shape: tuple[int, int], margin: int | None) -> np.ndarray:
    """Flat ids of the grid bins within ``margin`` bins (Chebyshev) of an occupied bin, sorted."""
    nx, ny = shape
    if margin is None:
        return np.arange(nx * ny, dtype=np.int64)
    if margin == 0:
        return occupied
    from scipy.ndimage import maximum_filter1d

    mask = np.zeros(nx * ny, dtype=np.uint8)
    mask[occupied] = 1
    mask = mask.reshape(nx, ny)
    size = 2 * margin + 1
    mask = maximum_filter1d(maximum_filter1d(mask, size, axis=0, mode="constant"), size, axis=1)
    return np.flatnonzero(mask.ravel())


def bin_capture(
    adata: Any,
    bin_size: float,
    *,
    umis_per_bin: float | None = None,
    capture_rate: float | None = None,
    margin: int | None = 1,
    origin: tuple[float, float] | None = None,
    spatial_key: str = "spatial",
    label_key: str | None = "celltype",
    layer: str | None = None,
    seed: int = 0,
) -> tuple[Any, Any]:
    """Capture single cells with known positions in square bins, as Visium HD does.

    A grid of square bins of side ``bin_size`` (in the units of the coordinates) is laid
    from ``origin`` (default: the lower-left corner of the cells' bounding box) over the
    bounding box. Every cell's counts are first thinned binomially with one capture rate
    ``p`` (each molecule is kept with probability ``p``, seeded by ``seed``), then each bin
    is the sum of the thinned cells whose centre falls in it (a cell on a bin's lower or
    left edge belongs to that bin). Thinning the cells rather than the bins gives the same
    bin distribution and makes captures with different ``bin_size`` (same ``origin``,
    ``capture_rate`` and ``seed``) bins of the same molecules: the bins of side ``2 s``
    are exactly the sums of 2 × 2 bins of side ``s``.

    Bins are kept as Visium HD keeps the bins under the tissue: every bin within ``margin``
    bins (Chebyshev distance on the grid) of a bin holding a cell, including bins that
    hold no cell, or whose cells lost every molecule in the thinning; bins farther out are
    dropped. Empty bins are real spots with zero counts; :class:`stemmap.STEM` drops
    all-zero spots when it prepares the data (a ``StemInputWarning``; they are listed in
    the mapping's ``dropped["st"]``).

    Depth: ``capture_rate`` if given, else ``p = umis_per_bin / (mean total counts of the
    bins holding cells, before thinning)``, capped at 1 (no thinning when the cells hold
    fewer molecules). Visium HD has a few hundred UMIs per 8 µm bin over the whole
    transcriptome; the shared data sets measure panels of 33 (osmFISH) to 351 (seqFISH)
    genes with about 180–250 counts per cell, so the default ``umis_per_bin`` of 100 is a
    thinning to about half at one cell per bin. Choose ``bin_size`` for the cells per bin
    you want: ``sqrt(tissue area / number of cells)`` gives about one cell per bin
    ("8 µm-like"), twice that side about four ("16 µm-like").

    Parameters
    ----------
    adata
        Single-cell-resolution spatial data (cells × genes) with raw counts (whole numbers)
        in ``X`` (or ``layer``), coordinates in ``obsm[spatial_key]`` and, optionally, cell
        labels in ``obs[label_key]``.
    bin_size
        Side of a bin, in coordinate units (> 0).
    umis_per_bin
        Mean counts of the bins that hold cells after thinning (default 100 when
        ``capture_rate`` is None). Give this or ``capture_rate``, not both.
    capture_rate
        The capture probability ``p`` in ``(0, 1]`` itself (recorded in
        ``st.uns["simulation"]["capture_rate"]``): pass a first capture's rate to make
        other bin sizes of the same capture.
    margin
        Keep bins within this many bins of an occupied bin (0: only bins holding cells);
        None keeps every bin of the bounding box.
    origin
        Lower-left corner of the grid; default the cells' coordinate minima. Must not lie
        above or right of any cell.
    spatial_key
        Key of the cell coordinates in ``adata.obsm`` (the first two columns are used).
    label_key
        Column of ``adata.obs`` with cell labels for the bins' true compositions; ``None``
        to skip them.
    layer
        Layer with the counts; ``None`` for ``adata.X``.
    seed
        Seed of the thinning (``numpy.random.default_rng``); same arguments and seed, same
        capture.

    Returns
    -------
    sc
        Copy of all ``M`` cells with their counts as given (not thinned: the reference):
        ``obsm["spatial_true"]`` their true coordinates (no ``obsm[spatial_key]`` is left),
        ``obs["spot"]`` (categorical) the bin each cell lies in.
    st
        ``N`` bins × genes: ``X`` the thinned summed counts (CSR, int64),
        ``obsm["spatial"]`` the bin centres, ``obs["n_cells"]``, ``obs["bin_x"]`` /
        ``obs["bin_y"]`` (grid indices), ``obs["total_counts"]``, ``obsm["proportions"]``
        (a DataFrame, bins × all label categories; rows sum to 1, all 0 for bins without
        cells: leave those out of composition scores) when ``label_key`` is set, and
        ``uns["simulation"]`` with the parameters, ``capture_rate``, ``step`` (=
        ``bin_size``, the unit of MAE in the benchmarks), the numbers of bins, of bins
        without cells (``n_bins_no_cell``) and without counts (``n_bins_no_counts``), and
        the mean cells and counts of the bins holding cells.

    Raises
    ------
    TypeError
        If ``adata`` is not an AnnData or an argument has the wrong type.
    KeyError
        If ``spatial_key``, ``label_key`` or ``layer`` is missing.
    ValueError
        If an argument is out of range, both ``umis_per_bin`` and ``capture_rate`` are
        given, the counts are not whole numbers, ``origin`` lies inside the cells' extent,
        or the grid would exceed :data:`MAX_GRID_BINS` bins.

    Examples
    --------
    >>> sc, st = bin_capture(adata, bin_size=0.07, seed=0)  # doctest: +SKIP
    >>> sc16, st16 = bin_capture(
    ...     adata, 0.14, capture_rate=st.uns["simulation"]["capture_rate"], seed=0
    ... )  # doctest: +SKIP
    """
    check_anndata(adata, "adata")
    check_positive(bin_size, "bin_size")
    if umis_per_bin is not None and capture_rate is not None:
        raise ValueError(
            f"give `umis_per_bin` or `capture_rate`, not both; found umis_per_bin={umis_per_bin!r}"
            f" and capture_rate={capture_rate!r}."
        )
    check_positive(umis_per_bin, "umis_per_bin", allow_none=True)
    check_positive(capture_rate, "capture_rate", allow_none=True)
    if capture_rate is not None and capture_rate > 1:
        raise ValueError(f"`capture_rate` must be in (0, 1]; found {capture_rate!r}.")
    margin = _check_margin(margin)
    check_seed(seed)
    bin_size = float(bin_size)

    X = get_matrix(adata, layer, "adata")
    where = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    X = _integer_counts(sp.csr_matrix(X), where)
    xy = get_coords(adata, spatial_key, "adata")[:, :2].astype(np.float64)
    if not np.all(np.isfinite(xy)):
        raise ValueError(f"`adata.obsm[{spatial_key!r}]` has missing or infinite coordinates.")
    labels = cell_labels(adata, label_key, "compositions")
    if origin is None:
        lo = xy.min(axis=0)
    else:
        lo = np.asarray(origin, dtype=np.float64).ravel()
        if lo.shape != (2,) or not np.all(np.isfinite(lo)):
            raise ValueError(f"`origin` must be two finite numbers (x, y); found {origin!r}.")
        if np.any(xy.min(axis=0) < lo):
            raise ValueError(
                f"`origin={origin!r}` lies above or right of some cells (their minima are "
                f"{xy.min(axis=0).tolist()}); the grid must start at or below every cell."
            )
    idx = np.floor((xy - lo) / bin_size).astype(np.int64)
    nx, ny = (int(v) + 1 for v in idx.max(axis=0))
    if nx * ny > MAX_GRID_BINS:
        raise ValueError(
            f"`bin_size={bin_size!r}` lays a {nx} × {ny} grid ({nx * ny:,} bins) over the cells; "
            f"at most {MAX_GRID_BINS:,} are supported. Use a larger `bin_size`."
        )
    flat_cell = idx[:, 0] * ny + idx[:, 1]
    occupied = np.unique(flat_cell)
    kept = _kept_bins(occupied, (nx, ny), margin)
    bin_of_cell = np.searchsorted(kept, flat_cell)  # every occupied bin is kept
    n_bins, m = kept.size, adata.n_obs

    A = sp.csr_matrix((np.ones(m, dtype=np.int64), (bin_of_cell, np.arange(m))), shape=(n_bins, m))
    n_cells = np.asarray(A.sum(axis=1)).ravel().astype(np.int64)
    has_cells = n_cells > 0
    raw_tot = np.asarray(A @ np.asarray(X.sum(axis=1)).ravel()).ravel()
    if capture_rate is None:
        target = 100.0 if umis_per_bin is None else float(umis_per_bin)
        mean_raw = float(raw_tot[has_cells].mean())
        p = 1.0 if mean_raw <= 0 else min(1.0, target / mean_raw)
    else:
        target, p = None, float(capture_rate)
    rng = np.random.default_rng(seed)
    thin = X.copy()
    if p < 1.0:
        thin.data = rng.binomial(thin.data, p).astype(np.int64)
    thin.eliminate_zeros()
    Xst = sp.csr_matrix(A @ thin)
    totals = np.asarray(Xst.sum(axis=1)).ravel().astype(np.int64)

    import anndata as ad

    bx, by = kept // ny, kept % ny
    names = pd.Index(
        np.char.add(np.char.add("bin_", bx.astype(str)), np.char.add("_", by.astype(str))),
        dtype=object,
    )
    st = ad.AnnData(
        X=Xst,
        obs=pd.DataFrame(
            {"n_cells": n_cells, "bin_x": bx, "bin_y": by, "total_counts": totals}, index=names
        ),
        var=adata.var.copy(),
    )
    st.obsm["spatial"] = lo + (np.column_stack([bx, by]) + 0.5) * bin_size
    if labels is not None:
        onehot = sp.csr_matrix(
            (np.ones(m), (np.arange(m), labels.codes)), shape=(m, len(labels.categories))
        )
        per_type = np.asarray((A.astype(np.float64) @ onehot).todense())
        props = per_type / np.maximum(n_cells, 1)[:, None]
        st.obsm["proportions"] = pd.DataFrame(
            props, index=st.obs_names, columns=pd.Index(labels.categories.astype(str))
        )

    sc = adata.copy()
    if layer is not None:
        sc.X = sc.layers[layer].copy()
    sc.obsm["spatial_true"] = xy
    if spatial_key in sc.obsm:
        del sc.obsm[spatial_key]
    sc.obs["spot"] = pd.Categorical.from_codes(bin_of_cell, categories=names)

    st.uns["simulation"] = {
        "method": "bin_capture",
        "bin_size": bin_size,
        "umis_per_bin": target,
        "capture_rate": p,
        "margin": margin,
        "origin": lo.tolist(),
        "grid": [nx, ny],
        "spatial_key": spatial_key,
        "label_key": label_key,
        "layer": layer,
        "seed": int(seed),
        "step": bin_size,
        "n_bins": int(n_bins),
        "n_bins_with_cells": int(has_cells.sum()),
        "n_bins_no_cell": int((~has_cells).sum()),
        "n_bins_no_counts": int((totals == 0).sum()),
        "mean_cells_per_occupied_bin": float(n_cells[has_cells].mean()),
        "mean_counts_per_occupied_bin": float(totals[has_cells].mean()),
        "n_cells_in_spots": int(m),
        "n_cells_total": int(m),
    }
    logger.info(
        "bin_capture: %d bins of side %.4g (%d hold cells, %.2f cells and %.1f counts each on "
        "average; %d without counts), capture rate %.3g",
        n_bins,
        bin_size,
        int(has_cells.sum()),
        st.uns["simulation"]["mean_cells_per_occupied_bin"],
        st.uns["simulation"]["mean_counts_per_occupied_bin"],
        st.uns["simulation"]["n_bins_no_counts"],
        p,
    )
    return sc, st
