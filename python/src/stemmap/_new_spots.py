"""New spots for a trained model: :func:`prepare_spots` (``STEM.mapping(st=)``).

A trained encoder embeds any spots measured on its genes, e.g. the finer bins of the capture
it was trained on; they are matched, normalised and checked as :func:`._data.prepare` does for
the training spots.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._data import SliceData, spot_slice
from ._expression import (
    _subset_genes,
    warn_if_not_counts,
)
from ._genes import check_model_genes, match_genes
from ._validate import check_anndata, check_unique, get_coords, get_matrix


def prepare_spots(
    st: Any,
    genes: Sequence[str],
    *,
    spatial_key: str = "spatial",
    layer: str | None = None,
    normalized: bool = False,
    gene_match: str = "exact",
    name: str = "st",
) -> SliceData:
    """Prepare new spots for a trained model: its genes, in its order, normalised as it was.

    Parameters
    ----------
    st
        Spatial AnnData (spots × genes) with coordinates in ``obsm[spatial_key]``; it must
        have every gene of ``genes`` (matched by ``gene_match``).
    genes
        The model's genes (``model.data.genes``).
    spatial_key, layer, normalized, gene_match
        As :func:`prepare` (the model's settings).
    name
        How errors and the result name the spots.

    Returns
    -------
    SliceData
        The spots' normalised expression, coordinates and names (all-zero spots dropped
        and listed in ``dropped``, with a ``StemInputWarning``, as :func:`prepare` does).

    Raises
    ------
    TypeError, KeyError, ValueError
        ``st`` is no AnnData, lacks coordinates or genes of the model, or has fewer than 2
        non-empty spots.
    """
    check_anndata(st, name)
    check_unique(st.var_names, "gene", name)
    check_unique(st.obs_names, "spot", name)
    genes = [str(g) for g in genes]
    st_genes = [str(g) for g in st.var_names]
    gm = match_genes(genes, [st_genes], gene_match)
    found = dict(zip(gm.sc, gm.st[0]))
    check_model_genes(name, genes, found, f", gene_match={gene_match!r}")
    coords = get_coords(st, spatial_key, name)
    X = get_matrix(st, layer, name)
    where = f"{name}.X" if layer is None else f"{name}.layers[{layer!r}]"
    if not normalized:
        warn_if_not_counts(X, where)
    X = _subset_genes(X, st_genes, [found[g] for g in genes])
    return spot_slice(X, st.obs_names, coords, (name, name, where), normalized, "model's")
