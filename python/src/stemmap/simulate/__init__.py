"""Semi-simulation: pseudo-spot ST data from single-cell-resolution spatial data.

This is the benchmark of the STEM paper (Hao et al., Commun Biol 2024, Methods,
"Semi-simulation data generation" and "Adding different noise levels"). Cells of a
single-cell-resolution spatial data set (seqFISH, osmFISH, MERFISH, ...) are treated as
single-cell (SC) data without coordinates; pseudo spots are built by summing the counts of
the cells that fall in small windows on a regular grid. The true cell coordinates and the
true cell-type proportions of each spot are kept as ground truth for
:mod:`stemmap.metrics`.

Spot resolution
---------------
The paper's default for the mouse embryo is a 30 × 40 grid; other spot resolutions are
simply other grid sizes (a finer grid gives more, smaller-spaced spots; ``window`` keeps
the spot side at the same fraction of the grid step), e.g.
``pseudo_spots(adata, grid=(45, 60))`` for a 1.5× finer resolution.

Splits
------
:func:`pseudo_spots` maps every cell, a quarter of them inside the spots;
:func:`disjoint_pseudo_spots` builds the spots from a random half of the cells and maps the
other half (same tissue, no mapped cell in a spot); :func:`cross_region_pseudo_spots` builds
them from one region of the section and maps the cells of another region (no mapped cell in
a spot, nor in the spots' region: positions cannot be scored, compositions and held-out
genes can). :func:`platform_effect` gives the spots gene-wise detection factors, as a
second platform would.

Bins
----
:func:`bin_capture` captures the cells in square bins of a given side, as Visium HD does
(about one cell per bin at an "8 µm-like" side, four at a "16 µm-like" one), with counts
thinned binomially to a sequencing-like depth and the empty bins under the tissue kept.
"""

from __future__ import annotations

from ._bins import bin_capture
from ._regions import cross_region_pseudo_spots, platform_effect
from ._spots import add_noise, disjoint_pseudo_spots, pseudo_spots

__all__ = [
    "pseudo_spots",
    "disjoint_pseudo_spots",
    "cross_region_pseudo_spots",
    "platform_effect",
    "add_noise",
    "bin_capture",
]
