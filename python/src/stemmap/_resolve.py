"""The one argument resolver: explicit argument → preset → the defaults table.

Every user-facing argument of :meth:`stemmap.STEM.train` and :meth:`stemmap.STEM.mapping`,
and the keys a preset may set on the model (``sigma_scale``, ``hidden``), defaults to
``None``, which means "not given". :func:`resolve` fills each such argument from, in order,

1. the caller (any value other than ``None``),
2. the preset (:data:`stemmap._defaults.PRESETS`),
3. the defaults table (:data:`~stemmap._defaults.TRAIN`, :data:`~stemmap._defaults.MAPPING`,
   :data:`~stemmap._defaults.MODEL`),

validates the resolved set at once (before anything is trained or changed) and records, per
key, the value and where it came from (``"caller"``, ``"preset"`` or ``"default"``; the
model's, the training's and the mapping's records are ``settings["resolved"]``). A preset
never overrides what the caller typed.

Python (:class:`stemmap.STEM`), the command line (:mod:`stemmap.cli`) and the R bridge
(:mod:`stemmap.bridge.verbs`) resolve through here: they pass what the caller gave and keep
no defaults of their own. :func:`resolve_run` resolves a whole run (model, training,
mapping, SC–SC graph) before any data is read; :func:`split` sorts a flat set of arguments
into the groups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._defaults import MAPPING, MODEL, PRESET_MODEL_KEYS, PRESETS, TRAIN
from ._validate import (
    check_anndata,
    check_choice,
    check_hidden,
    check_nonnegative,
    check_positive,
)
from ._validate import check_train_args as _check_train
from .mapping import EXPRESSION_PROFILES, READOUTS
from .mapping._readout import check_expression_weight, check_rounds

__all__ = [
    "CALLER",
    "DEFAULT",
    "GROUPS",
    "PRESET",
    "Resolved",
    "check_preset",
    "resolve",
    "resolve_run",
    "split",
]

#: where a resolved value came from
CALLER, PRESET, DEFAULT = "caller", "preset", "default"


def _check_mixed_precision(value: Any) -> None:
    if not (isinstance(value, str) and value == "auto") and not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`mixed_precision` must be True, False or 'auto'; found {value!r}.")


#: every check of a resolved value, by key (the checks of :mod:`stemmap._validate` and of the
#: readout); each raises TypeError/ValueError naming the argument, and may return the value
#: converted (``hidden`` as a tuple of ints, ``rounds`` as an int)
CHECKS: dict[str, Callable[[Any], Any]] = {
    **{k: (lambda v, k=k: _check_train(**{k: v})) for k in TRAIN if k != "mixed_precision"},
    "mixed_precision": _check_mixed_precision,
    "sigma_scale": lambda v: check_positive(v, "sigma_scale"),
    "hidden": check_hidden,
    "readout": lambda v: check_choice(v, READOUTS, "readout"),
    "expression_weight": check_expression_weight,
    "rounds": check_rounds,
    "expression_profile": lambda v: check_choice(v, EXPRESSION_PROFILES, "expression_profile"),
    "temperature": lambda v: check_positive(v, "temperature"),
    "adjacency_k": lambda v: check_nonnegative(v, "adjacency_k"),
    "st": lambda v: check_anndata(v, "st"),
}

#: arguments of a group without a table value, whose None keeps its meaning (``st`` of
#: ``STEM.mapping()``: the training spots); a caller's value is checked and recorded (an
#: AnnData by its shape) like the others; nothing is recorded for them when not given
UNTABLED: dict[str, tuple[str, ...]] = {"mapping": ("st",)}

#: the resolved groups: the table each falls back to and its keys
#:
#: * ``model``: the keys of ``STEM()`` that a preset may set (its other arguments have
#:   their table values as signature defaults and check themselves);
#: * ``train``: ``STEM.train()``;
#: * ``mapping``: ``STEM.mapping()`` (``balance``, ``spot_weights``, ``slice`` and ``st`` have
#:   no table value: None is their meaning; ``st`` is checked and recorded here, UNTABLED);
#: * ``graph``: the SC–SC graph's neighbours (``adjacency_k``, R and the bridge).
GROUPS: dict[str, tuple[Mapping[str, Any], tuple[str, ...]]] = {
    "model": (MODEL, tuple(PRESET_MODEL_KEYS)),
    "train": (TRAIN, tuple(TRAIN)),
    "mapping": (
        MAPPING,
        ("readout", "expression_weight", "rounds", "expression_profile", "temperature"),
    ),
    "graph": (MAPPING, ("adjacency_k",)),
}


def _builtin(v: Any) -> Any:
    """Return a value as builtins for the settings (tuples as lists, numpy scalars as numbers)."""
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_builtin(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if hasattr(v, "n_obs") and hasattr(v, "n_vars"):  # an AnnData: its shape, not the data
        return f"AnnData ({v.n_obs} x {v.n_vars})"
    return v


@dataclass(frozen=True)
class Resolved:
    """The resolved arguments of one group, where each came from, and the preset.

    Attributes
    ----------
    values
        ``{key: value}`` for every key of the group.
    sources
        ``{key: "caller" | "preset" | "default"}``.
    preset
        The preset resolved against (None: none).
    """

    values: dict[str, Any]
    sources: dict[str, str]
    preset: str | None = None

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def record(self) -> dict[str, dict[str, Any]]:
        """Return ``{key: {"value": value, "source": source}}`` as builtins (for settings)."""
        return {
            k: {"value": _builtin(v), "source": self.sources[k]} for k, v in self.values.items()
        }


def check_preset(preset: Any) -> None:
    """Raise ``ValueError`` unless ``preset`` is None or a name in :data:`PRESETS`."""
    if preset is not None:
        check_choice(preset, list(PRESETS), "preset")


def resolve(group: str, preset: str | None = None, **given: Any) -> Resolved:
    """Resolve and validate the arguments of one group: caller → preset → table.

    Parameters
    ----------
    group
        ``"model"``, ``"train"``, ``"mapping"`` or ``"graph"`` (:data:`GROUPS`).
    preset
        The preset's name, or None.
    **given
        The caller's arguments of the group; None means "not given".

    Returns
    -------
    Resolved
        Every key of the group, resolved and checked.

    Raises
    ------
    ValueError, TypeError
        A bad preset name or a bad value, naming the argument (checked before anything is
        done with them).
    """
    table, keys = GROUPS[group]
    untabled = UNTABLED.get(group, ())
    unknown = sorted(set(given) - set(keys) - set(untabled))
    if unknown:
        raise TypeError(f"not arguments of the {group} group: {unknown}")
    check_preset(preset)
    chosen = PRESETS.get(preset or "", {})
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for k in keys:
        if given.get(k) is not None:
            values[k], sources[k] = given[k], CALLER
        elif k in chosen:
            values[k], sources[k] = chosen[k], PRESET
        else:
            values[k], sources[k] = table[k], DEFAULT
        if values[k] is not None:
            checked = CHECKS[k](values[k])  # some checks return the value converted
            values[k] = values[k] if checked is None else checked
    for k in untabled:
        if given.get(k) is not None:
            CHECKS[k](given[k])
            values[k], sources[k] = given[k], CALLER
    return Resolved(values, sources, preset)


def split(given: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Sort a run's arguments into the groups; the rest (``STEM()``'s other arguments) is ``"other"``.

    Keys whose value is None (not given) are left out.

    Parameters
    ----------
    given
        Arguments by name (``preset`` goes to ``"train"``).

    Returns
    -------
    dict
        ``{"model": {...}, "train": {...}, "mapping": {...}, "graph": {...}, "other": {...}}``.
    """
    out: dict[str, dict[str, Any]] = {g: {} for g in (*GROUPS, "other")}
    home = {k: g for g, (_, keys) in GROUPS.items() for k in keys}
    home["preset"] = "train"
    for k, v in given.items():
        if v is not None:
            out[home.get(k, "other")][k] = v
    return out


def resolve_run(preset: str | None = None, **given: Any) -> dict[str, Resolved]:
    """Resolve and validate every group of a whole run at once (the CLI and the R bridge).

    Called before any data is read or trained on, so that a bad value (or preset) fails
    first. Arguments outside the groups are ignored (``STEM()`` checks its own).

    Parameters
    ----------
    preset
        The preset's name, or None.
    **given
        The run's arguments by name; None means "not given".

    Returns
    -------
    dict
        ``{group: Resolved}`` for every group of :data:`GROUPS`.
    """
    parts = split(given)
    return {g: resolve(g, preset, **parts[g]) for g in GROUPS}
