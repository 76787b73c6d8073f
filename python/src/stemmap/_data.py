"""From AnnData to the model's inputs: gene matching, normalisation, coordinates, σ, dropout."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from ._validate import (
    MIN_SHARED_GENES,
    StemInputWarning,
    check_anndata,
    check_names,
    check_unique,
    get_coords,
    get_matrix,
    warn_if_counts,
    warn_if_not_counts,
)

logger = logging.getLogger(__name__)


@dataclass
class SliceData:
    """One ST slice, ready for the model."""

    name: str
    x: np.ndarray  # (N × H) float32, normalised
    coords: np.ndarray  # (N × 2) float64
    spot_names: list[str]
    sigma: float = float("nan")
    dropped: list[str] = field(default_factory=list)


@dataclass
class PreparedData:
    """SC and ST inputs on a common gene axis."""

    genes: list[str]
    sc_x: np.ndarray  # (M × H) float32, normalised
    sc_names: list[str]
    slices: list[SliceData]
    sc_dropped: list[str] = field(default_factory=list)

    @property
    def n_spots(self) -> int:
        return sum(s.x.shape[0] for s in self.slices)


def normalize_log1p(X: np.ndarray | sp.csr_matrix, target: float = 1e4) -> np.ndarray:
    """Scale each row to ``target`` total counts, then ``log1p``; returns dense float32."""
    if sp.issparse(X):
        X = X.toarray()
    X = np.asarray(X, dtype=np.float32)
    totals = X.sum(axis=1, keepdims=True)
    totals[totals == 0] = 1.0
    return np.log1p(X / totals * np.float32(target)).astype(np.float32)


def _subset_genes(X: Any, var_names: Sequence[str], genes: Sequence[str]) -> Any:
    pos = {g: i for i, g in enumerate(var_names)}
    idx = np.fromiter((pos[g] for g in genes), dtype=np.int64, count=len(genes))
    return X[:, idx]


def _drop_empty(
    X: Any, names: list[str], what: str, where: str
) -> tuple[Any, list[str], list[str]]:
    totals = np.asarray(X.sum(axis=1)).ravel()
    empty = totals <= 0
    if not empty.any():
        return X, names, []
    dropped = [n for n, e in zip(names, empty) if e]
    keep = ~empty
    warnings.warn(
        f"{int(empty.sum())} {what} in `{where}` have no counts on the shared genes and were "
        f"dropped (e.g. {dropped[:3]}); they are listed in the result's `dropped` field.",
        StemInputWarning,
        stacklevel=4,
    )
    return X[keep], [n for n, k in zip(names, keep) if k], dropped


def mean_nn_distance(coords: np.ndarray) -> float:
    """Mean distance from each spot to its nearest other spot."""
    if coords.shape[0] < 2:
        raise ValueError("at least 2 spots are needed to compute nearest-neighbour distances")
    d, _ = cKDTree(coords).query(coords, k=2)
    nn = d[:, 1]
    nn = nn[nn > 0]
    if nn.size == 0:
        raise ValueError("all spot coordinates are identical; cannot build a spatial adjacency.")
    return float(nn.mean())


def dropout_rate(sc_x: np.ndarray, st_xs: Sequence[np.ndarray]) -> float:
    """The paper's ST dropout rate: ``1 - median(#genes per cell) / median(#genes per spot)``.

    Clipped to ``[0, 0.95]``.
    """
    n_sc = np.median((sc_x > 0).sum(axis=1))
    n_st = np.median(np.concatenate([(x > 0).sum(axis=1) for x in st_xs]))
    if n_st <= 0:
        return 0.0
    return float(np.clip(1.0 - n_sc / n_st, 0.0, 0.95))


def _check_spot_names_across_slices(st_list: Sequence[Any], st_names: Sequence[str]) -> None:
    """Spot names must be unique over all slices: the mapping indexes spots by name."""
    seen: dict[str, str] = {}
    for s, nm in zip(st_list, st_names):
        for spot in map(str, s.obs_names):
            if spot in seen:
                raise ValueError(
                    f"spot name {spot!r} is in both `{seen[spot]}` and `{nm}`; spot names must be "
                    "unique over all slices (the mapping indexes spots by name). Prefix them with "
                    f"the slice, e.g. `{nm}.obs_names = '{nm}_' + {nm}.obs_names`."
                )
            seen[spot] = nm


def _warn_slice_genes(
    sc: Any, st_list: Sequence[Any], st_names: Sequence[str], shared: set[str]
) -> None:
    """Several slices with different gene sets: only the genes of all of them are used; say so."""
    sc_genes = set(map(str, sc.var_names))
    lost = []
    for s, nm in zip(st_list, st_names):
        n_own = len(sc_genes & set(map(str, s.var_names)))
        if n_own > len(shared):
            lost.append(f"`{nm}` shares {n_own} genes with `sc`")
    if lost:
        warnings.warn(
            f"the ST slices have different genes: {'; '.join(lost)}, but only the {len(shared)} "
            "genes in `sc` and every slice are used. Subset the slices to common genes to "
            "silence this.",
            StemInputWarning,
            stacklevel=4,
        )


def prepare(
    sc: Any,
    st: Any,
    *,
    spatial_key: str = "spatial",
    layer: str | None = None,
    st_layer: str | None = None,
    genes: Sequence[str] | None = None,
    normalized: bool = False,
    slice_names: Sequence[str] | None = None,
) -> PreparedData:
    """Validate SC and ST AnnData and turn them into normalised arrays on shared genes.

    Parameters
    ----------
    sc
        Single-cell AnnData (cells × genes), raw counts in ``X`` or ``layer``.
    st
        Spatial AnnData (spots × genes) with coordinates in ``obsm[spatial_key]``, or a list of
        them (slices trained jointly).
    spatial_key
        Key of ``st.obsm`` with the spot coordinates.
    layer, st_layer
        Layer with counts for SC and ST (``st_layer`` defaults to ``layer``).
    genes
        Genes to use (restricted to those present in both); default: all shared genes.
    normalized
        True when the data are already normalised (log1p); skips normalisation.
    slice_names
        Names of the ST slices (default ``slice0``, ``slice1``, ... or ``st`` for one slice).

    Returns
    -------
    PreparedData
    """
    check_anndata(sc, "sc")
    st_list = list(st) if isinstance(st, (list, tuple)) else [st]
    if len(st_list) == 0:
        raise ValueError("`st` is an empty list; expected one AnnData or a list of slices.")
    for i, s in enumerate(st_list):
        check_anndata(s, "st" if len(st_list) == 1 else f"st[{i}]")
    st_names = ["st" if len(st_list) == 1 else f"st[{i}]" for i in range(len(st_list))]
    if slice_names is None:
        slice_names = ["st"] if len(st_list) == 1 else [f"slice{i}" for i in range(len(st_list))]
    slice_names = [str(s) for s in slice_names]
    if len(slice_names) != len(st_list) or len(set(slice_names)) != len(slice_names):
        raise ValueError(
            f"`slice_names` must be {len(st_list)} unique names; found {list(slice_names)}."
        )
    st_layer = layer if st_layer is None else st_layer

    check_unique(sc.var_names, "gene", "sc")
    check_unique(sc.obs_names, "cell", "sc")
    for s, nm in zip(st_list, st_names):
        check_unique(s.var_names, "gene", nm)
        check_unique(s.obs_names, "spot", nm)
        if s.n_obs < 2:
            raise ValueError(f"`{nm}` has {s.n_obs} spot(s); STEM needs at least 2 spots.")
    _check_spot_names_across_slices(st_list, st_names)

    # shared genes, in SC order, order-independent matching by name
    shared = set(map(str, sc.var_names))
    for s in st_list:
        shared &= set(map(str, s.var_names))
    if len(st_list) > 1:
        _warn_slice_genes(sc, st_list, st_names, shared)
    genes = check_names(genes, "genes")
    if genes is not None:
        missing = [g for g in genes if g not in shared]
        if len(missing) == len(genes):
            raise ValueError(
                f"none of the {len(genes)} genes in `genes` are in both `sc` and `st` "
                f"(e.g. {missing[:3]}); check the gene identifiers."
            )
        if missing:
            warnings.warn(
                f"{len(missing)} of the {len(genes)} genes in `genes` are not in both `sc` and "
                f"`st` and are ignored (e.g. {missing[:3]}).",
                StemInputWarning,
                stacklevel=3,
            )
        shared &= set(genes)
    sc_genes = [str(g) for g in sc.var_names]
    gene_list = [g for g in sc_genes if g in shared]
    if not gene_list:
        raise ValueError(
            "`sc` and `st` share no gene names "
            f"(sc e.g. {sc_genes[:3]}, st e.g. {list(map(str, st_list[0].var_names[:3]))}). "
            "Check that both use the same gene identifiers (symbols vs Ensembl IDs, case)."
        )
    if len(gene_list) < MIN_SHARED_GENES:
        raise ValueError(
            f"`sc` and `st` share only {len(gene_list)} gene(s) {gene_list[:5]}"
            f"{' among `genes`' if genes is not None else ''}; STEM needs at least "
            f"{MIN_SHARED_GENES} shared genes to learn from."
        )
    logger.info(
        "using %d shared genes (sc has %d, st has %s)",
        len(gene_list),
        sc.n_vars,
        "/".join(str(s.n_vars) for s in st_list),
    )

    sc_X = get_matrix(sc, layer, "sc")
    sc_where = "sc.X" if layer is None else f"sc.layers[{layer!r}]"
    if normalized:
        warn_if_counts(sc_X, sc_where)
    else:
        warn_if_not_counts(sc_X, sc_where)
    sc_X = _subset_genes(sc_X, sc_genes, gene_list)
    sc_X, sc_cells, sc_dropped = _drop_empty(sc_X, list(map(str, sc.obs_names)), "cells", "sc")
    if len(sc_cells) == 0:
        raise ValueError("every cell of `sc` is all-zero on the shared genes.")
    sc_x = np.asarray(sc_X.toarray() if sp.issparse(sc_X) else sc_X, dtype=np.float32)
    if not normalized:
        sc_x = normalize_log1p(sc_x)

    slices = []
    for s, nm, slice_name in zip(st_list, st_names, slice_names):
        coords = get_coords(s, spatial_key, nm)
        X = get_matrix(s, st_layer, nm)
        where = f"{nm}.X" if st_layer is None else f"{nm}.layers[{st_layer!r}]"
        if normalized:
            warn_if_counts(X, where)
        else:
            warn_if_not_counts(X, where)
        X = _subset_genes(X, [str(g) for g in s.var_names], gene_list)
        spot_names = list(map(str, s.obs_names))
        totals = np.asarray(X.sum(axis=1)).ravel()
        keep = totals > 0
        X, spot_names, dropped = _drop_empty(X, spot_names, "spots", nm)
        coords = coords[keep]
        if len(spot_names) < 2:
            raise ValueError(f"`{nm}` has fewer than 2 non-empty spots on the shared genes.")
        x = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float32)
        if not normalized:
            x = normalize_log1p(x)
        slices.append(SliceData(slice_name, x, coords, spot_names, dropped=dropped))
    return PreparedData(gene_list, sc_x, sc_cells, slices, sc_dropped)
