"""The SC↔ST mapping read off trained STEM embeddings (:class:`StemMapping`), in parts.

* ``_mapping`` — :class:`StemMapping`: state, public properties, the one pass over C.
* ``_readout`` — readout logits (``"paper"`` / ``"hybrid"``; Hellinger and log profiles).
* ``_balance`` — Sinkhorn balancing of C: the column potentials.
* ``_transfer`` — deconvolution, spot aggregates, transfer of spot values to cells.
* ``_graph`` — the SC–SC graph (exact and spatial-candidate search) and the spot kernel.
* ``_export`` — :meth:`StemMapping.to_anndata` and the ``uns`` form of the settings.
* ``_values`` — checks of values passed in (per cell, per spot, k) and of memory.
"""

from __future__ import annotations

from ._mapping import StemMapping
from ._readout import EXPRESSION_PROFILES, READOUTS

__all__ = ["EXPRESSION_PROFILES", "READOUTS", "StemMapping"]
