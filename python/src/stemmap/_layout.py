"""The one AnnData layout of a STEM mapping, and the one settings sanitiser.

:meth:`stemmap.StemMapping.to_anndata` and R's ``writeSTEMh5ad()`` (through
:mod:`stemmap.bridge`) write the single-cell (SC) side of a mapping under the same keys;
R's ``readSTEMh5ad()`` reads them back. The naming table is data (:data:`TABLE`): the R
package's documentation is checked against it.

=================  ======  ===================  ==========================================
field              slot    key                  what
=================  ======  ===================  ==========================================
embedding          obsm    ``X_stem``           cell embedding (cells × d)
coords             obsm    ``stem_spatial``     pseudo-coordinates (cells × 2)
best_spot          obs     ``stem_best_spot``   each cell's most probable spot
confidence         obs     ``stem_confidence``  probability of that spot
best_slice         obs     ``stem_best_slice``  slice of the best spot (several slices)
settings           uns     ``stem``             settings (:func:`settings_to_uns`)
mapping            obsm    ``stem_mapping``     cell × spot mapping (R: top-k or dense)
spots              uns     ``stem_spots``       spot ``names``, ``slice``, ``embedding``
history            uns     ``stem_history``     loss per epoch (a DataFrame)
=================  ======  ===================  ==========================================

The last three are written by R (which holds them with the mapping); ``to_anndata``
writes the first six. Files written by stemmap 0.1's ``writeSTEMh5ad()`` (``X`` = the
mapping, ``obsm["STEM"]``, ``obsm["STEM_spatial"]``, ``varm["STEM"]``, JSON settings in
``uns["stem"]["settings"]``) are read through :data:`LEGACY_01`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "TABLE",
    "LEGACY_01",
    "key",
    "obsm_embedding",
    "obsm_coords",
    "obs_best_spot",
    "obs_confidence",
    "obs_best_slice",
    "uns_settings",
    "settings_to_uns",
    "settings_from_uns",
    "to_builtins",
]

#: (field, AnnData slot, key, description): the SC side of a mapping in AnnData.
TABLE: tuple[tuple[str, str, str, str], ...] = (
    ("embedding", "obsm", "X_stem", "cell embedding (cells x d)"),
    ("coords", "obsm", "stem_spatial", "pseudo-coordinates (cells x 2)"),
    ("best_spot", "obs", "stem_best_spot", "each cell's most probable spot"),
    ("confidence", "obs", "stem_confidence", "probability of the best spot"),
    ("best_slice", "obs", "stem_best_slice", "slice of the best spot (several slices)"),
    ("settings", "uns", "stem", "training and mapping settings"),
    ("mapping", "obsm", "stem_mapping", "cell x spot mapping (cells x spots)"),
    ("spots", "uns", "stem_spots", "spot names, slice and embedding"),
    ("history", "uns", "stem_history", "loss per epoch"),
)

#: Where stemmap 0.1's ``writeSTEMh5ad()`` put each field (read-only support).
LEGACY_01: dict[str, tuple[str, str]] = {
    "embedding": ("obsm", "STEM"),
    "coords": ("obsm", "STEM_spatial"),
    "best_spot": ("obs", "stem_best_spot"),
    "confidence": ("obs", "stem_confidence"),
    "mapping": ("X", ""),
    "spot_embedding": ("varm", "STEM"),
    "spot_slice": ("var", "stem_slice"),
    "settings": ("uns", "stem"),  # {"settings": JSON text, "history": DataFrame}
}

_KEYS = {field: (slot, k) for field, slot, k, _ in TABLE}


def key(field: str) -> str:
    """Return the AnnData key of one field of :data:`TABLE`.

    Parameters
    ----------
    field
        A field name, e.g. ``"embedding"``.

    Returns
    -------
    str
        Its key in its slot, e.g. ``"X_stem"``.
    """
    return _KEYS[field][1]


obsm_embedding = key("embedding")
obsm_coords = key("coords")
obs_best_spot = key("best_spot")
obs_confidence = key("confidence")
obs_best_slice = key("best_slice")
uns_settings = key("settings")

_NONE = "None"  # h5ad stores no None


def _clean(v: Any, h5ad: bool) -> Any:
    """Sanitise (the one sanitiser): settings as h5ad can store them, or as builtins for R."""
    if isinstance(v, dict):
        return {str(k): _clean(w, h5ad) for k, w in v.items()}
    if v is None:
        return _NONE if h5ad else None
    if isinstance(v, (list, tuple)):
        if h5ad:
            return np.asarray([_NONE if x is None else x for x in v])
        return [_clean(w, h5ad) for w in v]
    if isinstance(v, np.ndarray):
        return v if h5ad else [_clean(w, h5ad) for w in v.tolist()]
    if isinstance(v, np.generic):
        return v if h5ad else v.item()
    if h5ad or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def settings_to_uns(d: dict[str, Any]) -> dict[str, Any]:
    """Return settings in a form h5ad can store (``None`` as ``"None"``, sequences as arrays).

    Parameters
    ----------
    d
        Settings, e.g. :attr:`stemmap.StemMapping.settings`.

    Returns
    -------
    dict
        The value for ``adata.uns["stem"]``.
    """
    return _clean(dict(d), h5ad=True)


def to_builtins(v: Any) -> Any:
    """Return settings (or any nested value) as Python builtins, for R.

    Numpy scalars and arrays become numbers and lists, tuples lists, anything else
    unknown its ``str``.

    Parameters
    ----------
    v
        A value.

    Returns
    -------
    Any
        The same value made of ``dict``, ``list``, ``str``, numbers, ``bool`` and ``None``.
    """
    return _clean(v, h5ad=False)


def settings_from_uns(u: Any) -> Any:
    """Inverse of :func:`settings_to_uns` as builtins (``"None"`` back to ``None``).

    Parameters
    ----------
    u
        ``adata.uns["stem"]`` as read from a file.

    Returns
    -------
    Any
        The settings as builtins.
    """
    b = to_builtins(u)

    def none(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: none(w) for k, w in x.items()}
        if isinstance(x, list):
            return [none(w) for w in x]
        return None if x == _NONE else x

    return none(b)
