"""Verbs that interpret a mapping for R: gene attribution and the spatial analyses.

Each is a thin call of :mod:`stemmap.attribution` or :mod:`stemmap.analysis` on packed
arrays; None (an R ``NULL``) leaves an argument to the core's default. The expression R's
analyses read is normalised here, by the core's own functions (:func:`expression`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._wire import given, pack, register, strs, table, unpack

__all__ = [
    "expression",
    "model_expression",
    "attribution",
    "spatial_dominant_genes",
    "axis_score",
    "axis_genes",
    "expression_trends",
    "neighbourhood_enrichment",
]


@register
def expression(x: dict, normalized: Any = False) -> dict:
    """Normalise counts sent by R exactly as the core did for the model it trained.

    Calls the core's one normalisation, :func:`stemmap._expression.normalize_counts` (what
    :func:`stemmap._data.prepare` does, bit for bit), on the matrix laid out as
    :func:`stemmap.bridge.verbs.run_stem` lays it out, so the values are the model's own.

    Parameters
    ----------
    x
        Packed genes × cells counts (dense or sparse) of the genes the core used (R sends
        them in the model's gene order; ``metadata(sc)$STEM$genes``).
    normalized
        The ``normalized`` setting of the run: the values are taken as they are.

    Returns
    -------
    dict
        Packed cells × genes values (float32 values as float64).
    """
    import scipy.sparse as sp

    from .._expression import normalize_counts

    mat = unpack(x)
    # observations in rows, as run_stem() hands the counts to the core
    mat = mat.T.tocsr() if sp.issparse(mat) else np.ascontiguousarray(np.asarray(mat).T)
    genes = [str(i) for i in range(mat.shape[1])]  # R sends exactly the model's genes, in order
    out = normalize_counts(mat, genes, genes, normalized=bool(normalized), where="sc")
    return pack(out.astype(np.float64))


@register
def model_expression(model: Any) -> dict:
    """Return the normalised SC values a model saved by R was trained on (for checks).

    Parameters
    ----------
    model
        Bytes of a saved STEM (``runSTEM(keep_model = TRUE)``).

    Returns
    -------
    dict
        ``x`` (packed cells × genes, the model's ``data.sc_x``), ``genes``, ``cells``.
    """
    from .files import load_model

    m = load_model(model, "cpu")
    return {
        "x": pack(np.asarray(m.data.sc_x, dtype=np.float64)),
        "genes": [str(g) for g in m.data.genes],
        "cells": [str(c) for c in m.data.sc_names],
    }


@register
def attribution(
    model: Any, cells: Any = None, target: Any = None, progress: Any = None, **options: Any
) -> dict:
    """Integrated-gradient attribution of a model saved by R (see :func:`model_bytes`).

    ``options`` (``steps``, ``method``, ``batch_size``) left None (R ``NULL``) take the
    defaults of :func:`stemmap.attribution.integrated_gradients`, and ``device`` those of
    :meth:`stemmap.STEM.load` (R sends ``stemAttribution(device = "cpu")``).

    Parameters
    ----------
    model
        Bytes of a saved STEM.
    cells
        Model cell names to explain (default all); names the model lacks (cells the core
        dropped) are skipped.
    target
        ``"best_spot"`` or a list of model spot names (their summed probability); None:
        the core's default.
    progress
        Show the core's messages.
    **options
        See above.

    Returns
    -------
    dict
        ``x`` (packed cells × genes), ``cells``, ``genes``, ``delta`` (packed completeness
        error per cell).
    """
    import stemmap

    from ..attribution import integrated_gradients
    from .files import load_model
    from .verbs import _verbosity

    kw = _options(options)
    with _verbosity(stemmap, bool(progress)):
        m = load_model(model, kw.pop("device", None))
        names = [str(c) for c in m.data.sc_names]
        have = set(names)
        keep = names if cells is None else [c for c in strs(cells) if c in have]
        if not keep:
            return {
                "x": pack(np.zeros((0, len(m.data.genes)))),
                "cells": [],
                "genes": [str(g) for g in m.data.genes],
                "delta": pack(np.zeros(0)),
            }
        if target is not None and target != "best_spot":
            kw["target"] = strs(target)
        elif target is not None:
            kw["target"] = target
        attr, delta = integrated_gradients(m, cells=keep, return_delta=True, **kw)
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


def _options(options: dict) -> dict:
    """Return the options R set (None: the core's default), R whole numbers as ``int``."""
    out = given(**options)
    return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in out.items()}


@register
def spatial_dominant_genes(
    values: dict, genes: Any, coords: Any = None, segments: Any = None, **options: Any
) -> dict:
    """:func:`stemmap.analysis.spatial_dominant_genes` on a packed cells × genes matrix.

    ``options`` (``axis``, ``n_segments``, ``alternative``, ``min_cells``) left None take
    the core's defaults.
    """
    from ..analysis import spatial_dominant_genes as sdg

    X = np.asarray(unpack(values), dtype=np.float64)
    xy = None if coords is None else np.asarray(unpack(coords), dtype=np.float64)
    options["axis"] = _axis(options.get("axis"))
    res = sdg(X, xy, segments=_labels(segments), genes=strs(genes), **_options(options))
    res["segment"] = res["segment"].astype(str)
    return table(res)


@register
def axis_score(coords: dict, axis: Any) -> dict:
    """:func:`stemmap.analysis.axis_score` of packed (cells × 2) coordinates."""
    from ..analysis import axis_score as score

    return pack(score(np.asarray(unpack(coords), dtype=np.float64), _axis(axis)))


@register
def axis_genes(expr: dict, genes: Any, score: dict, groups: Any = None, **options: Any) -> dict:
    """:func:`stemmap.analysis.axis_genes` on a packed cells × genes matrix (``min_cells``)."""
    from ..analysis import axis_genes as ag

    X = np.asarray(unpack(expr), dtype=np.float64)
    res = ag(
        X, unpack(score).ravel(), groups=_labels(groups), genes=strs(genes), **_options(options)
    )
    res["group"] = res["group"].astype(str)
    return table(res)


@register
def expression_trends(
    expr: dict, genes: Any, score: dict, groups: Any = None, **options: Any
) -> dict:
    """:func:`stemmap.analysis.expression_trends` on a packed cells × genes matrix.

    ``options`` (``n_knots``, ``degree``, ``n_points``, ``min_cells``) left None take the
    core's defaults.
    """
    import pandas as pd

    from ..analysis import expression_trends as et

    df = pd.DataFrame(np.asarray(unpack(expr), dtype=np.float64), columns=strs(genes))
    res = et(df, unpack(score).ravel(), groups=_labels(groups), **_options(options))
    res["group"] = res["group"].astype(str)
    return table(res)


@register
def neighbourhood_enrichment(coords: dict, labels: Any, **options: Any) -> dict:
    """:func:`stemmap.analysis.neighbourhood_enrichment` (``n_neighbors``, ``n_perms``, ``seed``).

    Z-scores and counts are packed.
    """
    from ..analysis import neighbourhood_enrichment as ne

    xy = np.asarray(unpack(coords), dtype=np.float64)
    res = ne(xy, _labels(labels), **_options(options))
    return {
        "zscore": pack(res.zscore.to_numpy(dtype=np.float64)),
        "count": pack(res.count.to_numpy(dtype=np.float64)),
        "labels": [str(v) for v in res.zscore.index],
    }
