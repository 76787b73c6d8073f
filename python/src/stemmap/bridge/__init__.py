"""The Python side of the R bridge: the wire protocol and the verbs R calls.

:mod:`stemmap.bridge._wire` packs arrays and wraps every call in an envelope that R turns
into its own conditions; the verbs live in :mod:`stemmap.bridge.verbs` (train and map),
:mod:`stemmap.bridge.files` (``.h5ad``, saved models, example data) and
:mod:`stemmap.bridge.interpret` (attribution and analyses). R's side is ``R/bridge.R``.
The bridge has no defaults of its own: what R leaves ``NULL`` takes the core's
(:mod:`stemmap._defaults`).
"""

from __future__ import annotations

# importing the verb modules registers their verbs in _wire.VERBS (their @register); _wire
# imports none of them (no import circle): any import of stemmap.bridge._wire runs this
# package's __init__ first, so every verb is registered before call() can be reached
from . import files, interpret, verbs
from ._wire import ERROR_KINDS, VERBS, call, pack, unpack

__all__ = ["ERROR_KINDS", "VERBS", "call", "pack", "unpack", "verbs", "files", "interpret"]
