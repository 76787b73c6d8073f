"""Verbs that interpret a mapping for R: gene attribution and the spatial analyses.

Each is a thin call of :mod:`stemmap.attribution` or :mod:`stemmap.analysis` on packed
arrays; None (an R ``NULL``) leaves an argument to the core's default.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._wire import as_int, given, pack, register, strs, table, unpack

__all__ = [
    "attribution",
    "spatial_dominant_genes",
    "axis_score",
    "axis_genes",
    "expression_trends",
    "neighbourhood_enrichment",
]


@register
def attribution(
    model: Any,
    cells: Any = None,
    target: Any = "best_spot",
    steps: Any = None,
    method: Any = None,
    batch_size: Any = None,
    device: str = "cpu",
    progress: bool = False,
) -> dict:
    """Integrated-gradient attribution of a model saved by R (see :func:`model_bytes`).

    ``steps``, ``method`` and ``batch_size`` left None (R ``NULL``) take the defaults of
    :func:`stemmap.attribution.integrated_gradients`; ``device`` is where R runs it (R
    always sends it; ``stemAttribution(device = "cpu")``).

    Parameters
    ----------
    model
        Bytes of a saved STEM.
    cells
        Model cell names to explain (default all); names the model lacks (cells the core
        dropped) are skipped.
    target
        ``"best_spot"`` or a list of model spot names (their summed probability).

    Returns
    -------
    dict
        ``x`` (packed cells × genes), ``cells``, ``genes``, ``delta`` (packed completeness
        error per cell).
    """
    import stemmap

    old_level = stemmap.settings.verbosity
    stemmap.settings.verbosity = "INFO" if progress else "WARNING"
    try:
        return _attribution(model, cells, target, steps, method, batch_size, device)
    finally:
        stemmap.settings.verbosity = old_level


def _attribution(model, cells, target, steps, method, batch_size, device) -> dict:
    from ..attribution import integrated_gradients
    from .files import load_model

    m = load_model(model, device=device)
    names = [str(c) for c in m.data.sc_names]
    if cells is None:
        keep = names
    else:
        have = set(names)
        keep = [c for c in strs(cells) if c in have]
    tgt = target if isinstance(target, str) and target == "best_spot" else strs(target)
    if not keep:
        return {
            "x": pack(np.zeros((0, len(m.data.genes)))),
            "cells": [],
            "genes": [str(g) for g in m.data.genes],
            "delta": pack(np.zeros(0)),
        }
    kw: dict[str, Any] = {}
    if steps is not None:
        kw["steps"] = int(steps)
    if method is not None:
        kw["method"] = str(method)
    if batch_size is not None:
        kw["batch_size"] = int(batch_size)
    attr, delta = integrated_gradients(m, cells=keep, target=tgt, return_delta=True, **kw)
    return {
        "x": pack(attr.to_numpy(dtype=np.float64)),
        "cells": [str(c) for c in attr.index],
        "genes": [str(g) for g in attr.columns],
        "delta": pack(np.asarray(delta, dtype=np.float64)),
    }


def _labels(x: Any) -> Any:
    return None if x is None else np.asarray(strs(x), dtype=object)


def _axis(axis: Any) -> Any:
    """Return an axis name, or a direction packed by R."""
    return unpack(axis).ravel().tolist() if isinstance(axis, dict) else axis


@register
def spatial_dominant_genes(
    values: dict,
    genes: Any,
    coords: Any = None,
    segments: Any = None,
    axis: Any = None,
    n_segments: Any = None,
    alternative: Any = None,
    min_cells: Any = None,
) -> dict:
    """:func:`stemmap.analysis.spatial_dominant_genes` on a packed cells × genes matrix."""
    from ..analysis import spatial_dominant_genes as sdg

    X = np.asarray(unpack(values), dtype=np.float64)
    xy = None if coords is None else np.asarray(unpack(coords), dtype=np.float64)
    res = sdg(
        X,
        xy,
        segments=_labels(segments),
        genes=strs(genes),
        **given(
            axis=_axis(axis),
            n_segments=as_int(n_segments),
            alternative=alternative,
            min_cells=as_int(min_cells),
        ),
    )
    res["segment"] = res["segment"].astype(str)
    return table(res)


@register
def axis_score(coords: dict, axis: Any) -> dict:
    """:func:`stemmap.analysis.axis_score` of packed (cells × 2) coordinates."""
    from ..analysis import axis_score as score

    return pack(score(np.asarray(unpack(coords), dtype=np.float64), _axis(axis)))


@register
def axis_genes(
    expr: dict, genes: Any, score: dict, groups: Any = None, min_cells: Any = None
) -> dict:
    """:func:`stemmap.analysis.axis_genes` on a packed cells × genes matrix."""
    from ..analysis import axis_genes as ag

    res = ag(
        np.asarray(unpack(expr), dtype=np.float64),
        unpack(score).ravel(),
        groups=_labels(groups),
        genes=strs(genes),
        **given(min_cells=as_int(min_cells)),
    )
    res["group"] = res["group"].astype(str)
    return table(res)


@register
def expression_trends(
    expr: dict,
    genes: Any,
    score: dict,
    groups: Any = None,
    n_knots: Any = None,
    degree: Any = None,
    n_points: Any = None,
    min_cells: Any = None,
) -> dict:
    """:func:`stemmap.analysis.expression_trends` on a packed cells × genes matrix."""
    import pandas as pd

    from ..analysis import expression_trends as et

    df = pd.DataFrame(np.asarray(unpack(expr), dtype=np.float64), columns=strs(genes))
    res = et(
        df,
        unpack(score).ravel(),
        groups=_labels(groups),
        **given(
            n_knots=as_int(n_knots),
            degree=as_int(degree),
            n_points=as_int(n_points),
            min_cells=as_int(min_cells),
        ),
    )
    res["group"] = res["group"].astype(str)
    return table(res)


@register
def neighbourhood_enrichment(
    coords: dict, labels: Any, n_neighbors: Any = None, n_perms: Any = None, seed: Any = None
) -> dict:
    """:func:`stemmap.analysis.neighbourhood_enrichment`; z-scores and counts packed."""
    from ..analysis import neighbourhood_enrichment as ne

    res = ne(
        np.asarray(unpack(coords), dtype=np.float64),
        _labels(labels),
        **given(n_neighbors=as_int(n_neighbors), n_perms=as_int(n_perms), seed=as_int(seed)),
    )
    return {
        "zscore": pack(res.zscore.to_numpy(dtype=np.float64)),
        "count": pack(res.count.to_numpy(dtype=np.float64)),
        "labels": [str(v) for v in res.zscore.index],
    }
