"""What a model file must hold, checked when it is read (:func:`stemmap._io.read_model`).

A file that passes the format check may still be edited or damaged so that it loads and then
gives wrong answers (cell names one short: a cell gets its neighbour's embedding) or fails
deep inside torch (an expression matrix one gene short). Every key, name list and array
shape is checked against the others here; each failure is one
:class:`~stemmap._validate.StemModelFileError` naming the file and what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._validate import StemModelFileError

#: keys of the file's settings (``stemmap-model.json``) besides the arrays
MANIFEST_KEYS = (
    "config",
    "train_settings",
    "is_trained",
    "history",
    "genes",
    "sc_names",
    "sc_dropped",
    "slices",
)
#: settings of the model (``config``) that loading, mapping and training read
CONFIG_KEYS = (
    "spatial_key",
    "layer",
    "alpha",
    "hidden",
    "seed",
    "normalized",
    "dropout",
    "kernel",
    "scale",
    "n_neighbors",
    "mmd_batch",
)
#: keys of each slice in the settings
SLICE_KEYS = ("name", "spot_names", "sigma", "dropped")


def _damaged(p: Path | str, what: str) -> StemModelFileError:
    return StemModelFileError(f"{p} is a damaged stemmap model file: {what}.")


def _names(value: Any, what: str, p: Path | str, unique: bool = True) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _damaged(p, f"{what} must be a list of names; found {type(value).__name__}")
    if unique and len(set(value)) != len(value):
        raise _damaged(p, f"{what} has repeated names")
    return list(value)


def check_manifest(m: Mapping[str, Any], p: Path | str, weights_key: str) -> None:
    """Check the keys and names of a model file's settings, before any array is read.

    ``weights_key`` is ``"state_dict_keys"`` (safe format: the names of the weight arrays)
    or ``"state_dict"`` (stemmap 0.1 pickles: the weights themselves).
    """
    missing = [k for k in (*MANIFEST_KEYS, weights_key) if k not in m]
    if missing:
        raise _damaged(p, f"no {', '.join(repr(k) for k in missing)} in its settings")
    config = m["config"]
    if not isinstance(config, dict):
        raise _damaged(p, f"'config' must be a dict; found {type(config).__name__}")
    missing = [k for k in CONFIG_KEYS if k not in config]
    if missing:
        raise _damaged(p, f"no {', '.join(repr(k) for k in missing)} in its 'config'")
    hidden, dropout = config["hidden"], config["dropout"]
    if (
        not isinstance(hidden, (list, tuple))
        or not hidden
        or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden)
    ):
        raise _damaged(p, f"'hidden' must be a list of layer sizes; found {hidden!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise _damaged(p, f"'dropout' must be a number in [0, 1); found {dropout!r}")
    if not isinstance(m["train_settings"], dict):
        raise _damaged(p, "'train_settings' must be a dict")
    if not isinstance(m["is_trained"], bool):
        raise _damaged(p, f"'is_trained' must be true or false; found {m['is_trained']!r}")
    history = m["history"]
    if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
        raise _damaged(p, "'history' must be a dict of columns")
    if len({len(v) for v in history.values()}) > 1:
        raise _damaged(p, "the columns of 'history' differ in length")
    genes = _names(m["genes"], "'genes'", p)
    if not genes:
        raise _damaged(p, "'genes' is empty")
    _names(m["sc_names"], "'sc_names'", p)
    _names(m["sc_dropped"], "'sc_dropped'", p, unique=False)
    if weights_key == "state_dict_keys":
        _names(m["state_dict_keys"], "'state_dict_keys'", p)
    slices = m["slices"]
    if not isinstance(slices, list) or not slices:
        raise _damaged(p, "'slices' must be a non-empty list")
    names = []
    for i, s in enumerate(slices):
        if not isinstance(s, dict):
            raise _damaged(p, f"slice {i} must be a dict; found {type(s).__name__}")
        missing = [k for k in SLICE_KEYS if k not in s]
        if missing:
            raise _damaged(p, f"no {', '.join(repr(k) for k in missing)} in slice {i}")
        names.append(s["name"])
        _names(s["spot_names"], f"'spot_names' of slice {i}", p)
        _names(s["dropped"], f"'dropped' of slice {i}", p, unique=False)
        sigma = s["sigma"]
        if (
            isinstance(sigma, bool)
            or not isinstance(sigma, (int, float))
            or not math.isfinite(sigma)
            or sigma <= 0
        ):
            raise _damaged(p, f"'sigma' of slice {i} must be a positive number; found {sigma!r}")
    _names(names, "the slice names", p)


def _matrix(a: Any, what: str, shape: tuple[int, int], p: Path | str) -> None:
    a = np.asarray(a)
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.number):
        raise _damaged(p, f"{what} must be a 2-D numeric array; found {a.dtype} of shape {a.shape}")
    if a.shape != shape:
        raise _damaged(
            p, f"{what} is {a.shape[0]} × {a.shape[1]}, its names say {shape[0]} × {shape[1]}"
        )
    if a.size and not np.isfinite(a).all():
        raise _damaged(p, f"{what} has NaN/Inf values")


def check_arrays(blob: Mapping[str, Any], p: Path | str) -> None:
    """Check the arrays of a read model file against its names (rows, genes, coordinates)."""
    n_genes = len(blob["genes"])
    _matrix(blob["sc_x"], "the cells' expression (sc_x)", (len(blob["sc_names"]), n_genes), p)
    for i, s in enumerate(blob["slices"]):
        n = len(s["spot_names"])
        _matrix(s["x"], f"the spots' expression of slice {i}", (n, n_genes), p)
        _matrix(s["coords"], f"the coordinates of slice {i}", (n, 2), p)
    weights = blob["state_dict"]
    if not isinstance(weights, Mapping):
        raise _damaged(p, "'state_dict' must map weight names to arrays")
    for k, v in weights.items():
        a = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
        if not np.issubdtype(a.dtype, np.number):
            raise _damaged(p, f"weight {k!r} must be numeric; found {a.dtype}")
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            raise _damaged(p, f"weight {k!r} has NaN/Inf values")
