"""From AnnData to the model's inputs: gene matching, normalisation, coordinates, σ, dropout.

Gene matching lives in :mod:`stemmap._genes`, the normalisation in
:mod:`stemmap._expression`; both are re-exported here, where callers have imported them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ._expression import (
    _normalize_log1p_inplace,
    _subset_genes,
    check_normalized,
    dense_float32,
    normalize_counts,
    normalize_log1p,
    warn_if_not_counts,
)
from ._genes import FEW_GENES, GENE_MATCH, GeneMatch, gene_key, gene_overlaps, match_genes
from ._validate import (
    MIN_SHARED_GENES,
    StemInputWarning,
    check_anndata,
    check_choice,
    check_names,
    check_unique,
    get_coords,
    get_matrix,
)

__all__ = [  # with what callers import from here (now in _genes and _expression)
    "GENE_MATCH",
    "GeneMatch",
    "PreparedData",
    "SliceData",
    "dense_float32",
    "dropout_rate",
    "gene_key",
    "gene_overlaps",
    "match_genes",
    "mean_nn_distance",
    "normalize_counts",
    "normalize_log1p",
    "prepare",
]

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
    gene_match: str = "exact"
    n_genes_renamed: int = 0  # shared genes whose SC and ST names differ (gene_match)

    @property
    def n_spots(self) -> int:
        return sum(s.x.shape[0] for s in self.slices)

    def normalized_expression(self, side: str = "sc", slice: str | None = None) -> pd.DataFrame:
        """Return the normalised values the model trains on and reads out.

        Parameters
        ----------
        side
            ``"sc"``: the cells; ``"st"``: the spots.
        slice
            With ``side="st"``: only this slice (default all, in slice order).

        Returns
        -------
        pandas.DataFrame
            Cells (or spots) × the genes used (:attr:`genes`), float32: each row scaled to
            10,000 over these genes and ``log1p``'d (the values as given with
            ``normalized=True``); cells and spots dropped as empty are not in it. A copy:
            changing it changes nothing in the model. Equal to
            :func:`stemmap._expression.normalize_counts` of the input counts.
        """
        check_choice(side, ("sc", "st"), "side")
        if side == "sc":
            if slice is not None:
                raise ValueError("`slice` is for `side='st'`; the cells have no slice.")
            return pd.DataFrame(self.sc_x.copy(), index=list(self.sc_names), columns=self.genes)
        names = [s.name for s in self.slices]
        if slice is not None and slice not in names:
            raise ValueError(f"`slice` must be one of {names}; found {slice!r}.")
        chosen = [s for s in self.slices if slice is None or s.name == slice]
        return pd.DataFrame(
            np.concatenate([s.x for s in chosen]),
            index=[n for s in chosen for n in s.spot_names],
            columns=list(self.genes),
        )


def spot_slice(
    X: Any,
    obs_names: Any,
    coords: np.ndarray,
    names: tuple[str, str, str],
    normalized: bool,
    genes: str,
) -> SliceData:
    """One slice's spots on the genes of ``X``: empty spots dropped, at least 2, log1p-normalised.

    ``names``: the slice's name, the argument's name and where X was read (for messages);
    ``genes``: which genes, for the message (``"shared"``, ``"model's"``).
    """
    slice_name, nm, where = names
    keep = np.asarray(X.sum(axis=1)).ravel() > 0
    X, spot_names, dropped = _drop_empty(X, list(map(str, obs_names)), "spots", nm)
    if len(spot_names) < 2:
        raise ValueError(f"`{nm}` has fewer than 2 non-empty spots on the {genes} genes.")
    x = dense_float32(X)
    if normalized:
        check_normalized(x, where)
    else:
        _normalize_log1p_inplace(x)
    return SliceData(slice_name, x, coords[keep], spot_names, dropped=dropped)


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
    """Compute the paper's ST dropout rate: ``1 - median(#genes/cell) / median(#genes/spot)``.

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


def _libraries(st: Any) -> tuple[list[Any], list[str] | None]:
    """Split one ST AnnData holding several Visium libraries into slices, one per library.

    The scanpy/squidpy layout keeps each library's images and scale factors in
    ``uns["spatial"][library_id]`` and says which spot is of which library in an ``obs``
    column (``library_id`` by squidpy's default; any column whose values are library ids).
    Each library has its own pixel frame, so its spots are a slice of their own. Returns the
    slices (views of ``st``) and their names, or ``[st]`` and None when there is nothing to
    split (no ``uns["spatial"]``, one library, or the spots of one library only).
    """
    libs = st.uns.get("spatial") if hasattr(st, "uns") else None
    if not isinstance(libs, dict) or len(libs) < 2:
        return [st], None
    ids = {str(k) for k in libs}
    cols = ["library_id", *(c for c in st.obs.columns if c != "library_id")]
    for col in cols:
        if col not in st.obs or st.obs[col].isna().any():
            continue
        values = st.obs[col].astype(str)
        found = list(dict.fromkeys(values))
        if not set(found) <= ids:
            continue
        if len(found) == 1:
            return [st], None
        logger.info("`st` holds %d libraries (obs[%r]): one slice each", len(found), col)
        return [st[(values == lib).to_numpy()] for lib in found], found
    warnings.warn(
        f"`st.uns['spatial']` holds {len(libs)} libraries ({sorted(ids)[:3]}...) but no "
        "`st.obs` column names each spot's library, so their spots are treated as one slice "
        "(one coordinate frame). Add `st.obs['library_id']`, or pass a list of AnnData.",
        StemInputWarning,
        stacklevel=4,
    )
    return [st], None


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
    gene_match: str = "exact",
) -> PreparedData:
    """Validate SC and ST AnnData and turn them into normalised arrays on shared genes.

    Parameters
    ----------
    sc
        Single-cell AnnData (cells × genes), raw counts in ``X`` or ``layer``.
    st
        Spatial AnnData (spots × genes) with coordinates in ``obsm[spatial_key]``, or a list of
        them (slices trained jointly). One AnnData with several libraries in the
        scanpy/squidpy layout (``uns["spatial"][library_id]`` and an ``obs`` column of library
        ids, e.g. ``obs["library_id"]``) is split into one slice per library, named by it
        (unless ``slice_names`` is given).
    spatial_key
        Key of ``st.obsm`` with the spot coordinates.
    layer, st_layer
        Layer with counts for SC and ST (``st_layer`` defaults to ``layer``).
    genes
        Genes to use (restricted to those present in both); default: all shared genes.
    normalized
        True when the data are already log1p-normalised: used as they are (no
        normalisation). Values that cannot be log1p values (any above 30, or integers
        above 20: raw counts) raise ``ValueError``; integers up to 20 warn.
    slice_names
        Names of the ST slices (default ``slice0``, ``slice1``, ... or ``st`` for one slice).
    gene_match
        How gene names are matched: ``"exact"``, ``"case"`` or ``"ensembl"``
        (:data:`GENE_MATCH`). The genes keep the SC names; nothing is renamed.

    Returns
    -------
    PreparedData
    """
    check_anndata(sc, "sc")
    st_list = list(st) if isinstance(st, (list, tuple)) else [st]
    libraries = None  # the library ids of one AnnData split into slices (_libraries())
    if len(st_list) == 1 and slice_names is None:
        check_anndata(st_list[0], "st")
        st_list, libraries = _libraries(st_list[0])
        slice_names = libraries
    if len(st_list) == 0:
        raise ValueError("`st` is an empty list; expected one AnnData or a list of slices.")
    for i, s in enumerate(st_list):
        check_anndata(s, "st" if len(st_list) == 1 else f"st[{i}]")
    st_names = ["st" if len(st_list) == 1 else f"st[{i}]" for i in range(len(st_list))]
    if libraries is not None:
        st_names = [f"st[library {n!r}]" for n in libraries]
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

    # shared genes, in SC order, order-independent matching by name (or by `gene_match`)
    genes = check_names(genes, "genes")
    if len(st_list) > 1:
        exact = set(map(str, sc.var_names))
        for s in st_list:
            exact &= set(map(str, s.var_names))
        _warn_slice_genes(sc, st_list, st_names, exact)
    sc_genes = [str(g) for g in sc.var_names]
    st_genes = [[str(g) for g in s.var_names] for s in st_list]
    gm = match_genes(sc_genes, st_genes, gene_match, genes)
    gene_list = gm.sc
    counts = gene_overlaps(sc_genes, st_genes)
    better = max(GENE_MATCH, key=lambda k: counts[k])
    # another rule shares clearly more genes: say so (error when none are shared)
    suggest = better != gene_match and counts[better] >= max(2 * counts[gene_match], FEW_GENES)
    hint = (
        f" With `gene_match={better!r}` they share {counts[better]}; pass it to match "
        f"{'case-insensitive names' if better == 'case' else 'Ensembl IDs without version'}"
        " (the objects' gene names are not changed)."
        if suggest
        else " Check that both use the same gene identifiers (symbols vs Ensembl IDs)."
    )
    if not gene_list:
        raise ValueError(
            "`sc` and `st` share no gene names"
            f"{'' if gene_match == 'exact' else f' under gene_match={gene_match!r}'} "
            f"(sc e.g. {sc_genes[:3]}, st e.g. {st_genes[0][:3]}).{hint}"
        )
    if suggest:
        warnings.warn(
            f"`sc` and `st` share only {counts[gene_match]} gene names.{hint}",
            StemInputWarning,
            stacklevel=3,
        )
    if len(gene_list) < MIN_SHARED_GENES:
        raise ValueError(
            f"`sc` and `st` share only {len(gene_list)} gene(s) {gene_list[:5]}"
            f"{' among `genes`' if genes is not None else ''}; STEM needs at least "
            f"{MIN_SHARED_GENES} shared genes to learn from."
        )
    logger.info(
        "using %d shared genes (sc has %d, st has %s)%s",
        len(gene_list),
        sc.n_vars,
        "/".join(str(s.n_vars) for s in st_list),
        f"; {gm.n_renamed} of them matched by gene_match={gene_match!r} (names differ)"
        if gene_match != "exact"
        else "",
    )

    sc_X = get_matrix(sc, layer, "sc")
    sc_where = "sc.X" if layer is None else f"sc.layers[{layer!r}]"
    if not normalized:
        warn_if_not_counts(sc_X, sc_where)
    sc_X = _subset_genes(sc_X, sc_genes, gene_list)
    sc_X, sc_cells, sc_dropped = _drop_empty(sc_X, list(map(str, sc.obs_names)), "cells", "sc")
    if len(sc_cells) == 0:
        raise ValueError("every cell of `sc` is all-zero on the shared genes.")
    sc_x = dense_float32(sc_X)  # the core's one copy of the counts, normalised in place
    if normalized:
        check_normalized(sc_x, sc_where)
    else:
        _normalize_log1p_inplace(sc_x)

    slices = []
    for s, nm, slice_name, st_gene_list in zip(st_list, st_names, slice_names, gm.st):
        coords = get_coords(s, spatial_key, nm)
        X = get_matrix(s, st_layer, nm)
        where = f"{nm}.X" if st_layer is None else f"{nm}.layers[{st_layer!r}]"
        if not normalized:
            warn_if_not_counts(X, where)
        X = _subset_genes(X, [str(g) for g in s.var_names], st_gene_list)
        slices.append(
            spot_slice(X, s.obs_names, coords, (slice_name, nm, where), normalized, "shared")
        )
    return PreparedData(gene_list, sc_x, sc_cells, slices, sc_dropped, gene_match, gm.n_renamed)
