"""The SC↔ST mapping read off trained STEM embeddings (:class:`StemMapping`), in parts.

* ``_mapping`` — :class:`StemMapping`: names, public properties, the outputs' cache.
* ``_engine`` — the readout engine: the rounds, the balancing and the rows of C_r, C, Ĉ
  (the only owner of the readout's state).
* ``_readout`` — readout logits (``"paper"`` / ``"hybrid"``; Hellinger and log profiles).
* ``_balance`` — Sinkhorn balancing of C: the column potentials.
* ``_rounds`` — the residual rounds' spot profiles and Ĉ_r P_SC.
* ``_transfer`` — deconvolution, spot aggregates, transfer of spot values to cells.
* ``_graph`` — the SC–SC graph (exact and spatial-candidate search) and the spot kernel.
* ``_export`` — :meth:`StemMapping.to_anndata` and the ``uns`` form of the settings.
* ``_view`` — the Protocol the three modules above are written against (they only read).
* ``_values`` — checks of values passed in (per cell, per spot, k), of finiteness, of memory.
"""

from __future__ import annotations

from ._mapping import StemMapping
from ._readout import EXPRESSION_PROFILES, READOUTS

__all__ = ["EXPRESSION_PROFILES", "READOUTS", "StemMapping"]
