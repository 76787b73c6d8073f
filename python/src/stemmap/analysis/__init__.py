"""Downstream analyses of STEM mappings: spatial dominant genes, axes, neighbourhoods.

* :func:`spatial_dominant_genes` — per spatial segment, genes whose attribution (or
  expression: DEGs) is higher than in the rest of the tissue (Wilcoxon rank-sum + BH FDR),
  as the paper's SDG analysis along the embryo's anterior–posterior axis.
* :func:`transfer_score`, :func:`order_along`, :func:`expression_trends`,
  :func:`axis_genes` — move a spot score (e.g. a liver zonation score) to cells, order
  cells along it and find/fit genes that vary along it, per cell type (the paper's liver
  PV–CV analysis).
* :func:`neighbourhood_enrichment` — label co-localisation z-scores on a kNN graph of
  (reconstructed) positions, as ``squidpy.gr.nhood_enrichment``.
* :func:`plot_segment_heatmap`, :func:`plot_expression_trends` — figures (matplotlib).
"""

from ._axis import axis_genes, expression_trends, order_along, transfer_score
from ._common import axis_score, bh_fdr, segment_along
from ._nhood import NhoodEnrichment, neighbourhood_enrichment
from ._plots import plot_expression_trends, plot_segment_heatmap
from ._sdg import spatial_dominant_genes, top_genes

__all__ = [
    "bh_fdr",
    "axis_score",
    "segment_along",
    "spatial_dominant_genes",
    "top_genes",
    "transfer_score",
    "order_along",
    "expression_trends",
    "axis_genes",
    "neighbourhood_enrichment",
    "NhoodEnrichment",
    "plot_segment_heatmap",
    "plot_expression_trends",
]
