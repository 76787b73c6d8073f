"""Every user-facing default of stemmap and its named presets: the one table.

The model (:class:`~stemmap.STEM`, :meth:`~stemmap.STEM.train`, :meth:`~stemmap.STEM.mapping`,
:class:`~stemmap.StemMapping`), the resource planner, the command line and the R bridge take
their defaults from here. The R package's arguments default to ``NULL``, which means "the value
in this table" (an argument left ``NULL`` is not sent to Python), and its test
``tests/testthat/test-defaults.R`` compares every R argument with this table through
:func:`table`. Change a default here and nowhere else.

Each group is keyed by the argument names of the function that uses it (and of R's
``runSTEM()``, which takes them all):

* :data:`MODEL`: ``stemmap.STEM(...)``.
* :data:`TRAIN`: ``STEM.train(...)``.
* :data:`MAPPING`: ``STEM.mapping(...)`` / ``StemMapping(...)``, and ``adjacency_k``, the
  neighbours per cell of the SC–SC graph (``StemMapping.sc_adjacency(k=)``, R's
  ``adjacency_k``; R stores the graph by default).
* :data:`ATTRIBUTION`: :func:`stemmap.attribution.integrated_gradients`.
* :data:`ANALYSIS`: the spatial analyses of :mod:`stemmap.analysis`, one group per function.

:data:`PRESETS` are named sets of defaults for :meth:`STEM.train` (``preset=``). An argument
the caller gives always wins; one left ``None`` takes the preset's value, else this table's
(:mod:`stemmap._resolve`, which also records where each value came from): the schedule keys
set the train arguments; the model keys (:data:`PRESET_MODEL_KEYS`: ``sigma_scale``,
``hidden``) apply where the caller left them ``None`` and the model is untrained (σ of such
slices, the encoder's layers); the mapping keys (:data:`PRESET_MAPPING_KEYS`: ``readout``,
``expression_weight``, ``rounds``) become the defaults of :meth:`STEM.mapping` (the readout
also sets the SC–SC adjacency basis).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

__all__ = [
    "ANALYSIS",
    "ATTRIBUTION",
    "MAPPING",
    "MODEL",
    "PAPER_SIGMA_SCALE",
    "PRESETS",
    "PRESET_MAPPING_KEYS",
    "PRESET_MODEL_KEYS",
    "TRAIN",
    "table",
]

#: σ in units of the mean nearest-neighbour spot distance in the publication (½); stemmap's
#: default is ``MODEL["sigma_scale"]`` (1: better on both shared benchmark datasets,
#: ``benchmarks/results/results.md``).
PAPER_SIGMA_SCALE = 0.5

#: ``stemmap.STEM(...)``. ``sigma_scale`` is used where the caller gives neither ``sigma`` nor
#: ``sigma_scale`` (``STEM(sigma_scale=None)``), so that ``preset="paper"`` can still apply
#: the paper's scale.
MODEL: MappingProxyType[str, Any] = MappingProxyType(
    {
        "spatial_key": "spatial",
        "alpha": 0.5,
        "hidden": (512, 256, 128),
        "device": "auto",
        "seed": 0,
        "normalized": False,
        "gene_match": "exact",
        "kernel": "gaussian",
        "n_neighbors": 6,
        "mmd_batch": 1000,
        "sigma_scale": 1.0,
        # None: every CPU the process may use (stemmap._runtime.choose_threads)
        "threads": None,
    }
)

#: ``STEM.train(...)``: the paper's schedule (AdamW, lr halved every 200 epochs, β warm-up).
TRAIN: MappingProxyType[str, Any] = MappingProxyType(
    {
        "epochs": 400,
        "lr": 0.002,
        "weight_decay": 0.01,
        "lr_step": 200,
        "lr_gamma": 0.5,
        "warmup": 50,
        "cell_batch_size": None,
        "spot_batch_size": None,
        # "auto": bfloat16 matrix products where the device has bfloat16 units (CPUs with
        # AVX512-BF16 or AMX, CUDA GPUs of compute capability ≥ 8); float32 elsewhere
        # (stemmap._device.native_bf16; benchmarks/results/mixed_precision.md)
        "mixed_precision": "auto",
    }
)

#: ``STEM.mapping(...)`` / ``StemMapping(...)`` and the SC–SC graph. ``readout`` is the
#: default of a model trained without a preset that sets one (``benchmarks/results/
#: readout.md``: the hybrid readout was more accurate on both shared datasets).
MAPPING: MappingProxyType[str, Any] = MappingProxyType(
    {
        "readout": "hybrid",
        # the expression term's spread relative to the embeddings' (1.5 with 2 rounds:
        # benchmarks/results/issue17)
        "expression_weight": 1.5,
        # residual rounds of the balanced hybrid readout (StemMapping(rounds=))
        "rounds": 2,
        # the hybrid readout's expression term: square-rooted proportions, genes standardised
        # within each modality (benchmarks/results/readout_study.md); "log" = stemmap 0.1's
        "expression_profile": "hellinger",
        "temperature": 1.0,
        "adjacency_k": 15,
    }
)

#: :func:`stemmap.attribution.integrated_gradients`.
ATTRIBUTION: MappingProxyType[str, Any] = MappingProxyType(
    {
        "steps": 50,
        "method": "riemann_trapezoid",
        "batch_size": 128,
    }
)

#: :mod:`stemmap.analysis`, by function. ``n_segments`` is not here: Python's
#: ``spatial_dominant_genes`` uses 10 segments, R's ``stemSpatialDominantGenes()`` 3 (an
#: open decision; both kept as they were).
ANALYSIS: MappingProxyType[str, Any] = MappingProxyType(
    {
        "spatial_dominant_genes": MappingProxyType(
            {"axis": "x", "alternative": "greater", "min_cells": 3}
        ),
        "axis_genes": MappingProxyType({"min_cells": 10}),
        "expression_trends": MappingProxyType(
            {"n_knots": 3, "degree": 3, "n_points": 50, "min_cells": 10}
        ),
        "neighbourhood_enrichment": MappingProxyType(
            {"n_neighbors": 10, "n_perms": 200, "seed": 0}
        ),
    }
)

#: Named defaults for ``STEM.train(preset=...)``: each sets the arguments the caller left None
#: (a plain dict: ``stemmap.PRESETS``).
PRESETS: dict[str, dict[str, Any]] = {
    # The paper's / reference implementation's schedule (the defaults of train()), σ = ½ × the
    # mean NN spot distance and the paper readout, so that results can be compared with the
    # publication.
    "paper": {
        "epochs": 400,
        "lr": 0.002,
        "lr_step": 200,
        "lr_gamma": 0.5,
        "warmup": 50,
        "cell_batch_size": None,
        "sigma_scale": PAPER_SIGMA_SCALE,
        "readout": "paper",
    },
    # A shorter schedule on cell batches: see benchmarks/results/speed.md for its accuracy
    # against the paper schedule and the reference implementation.
    "fast": {
        "epochs": 200,
        "lr": 0.004,
        "lr_step": 100,
        "lr_gamma": 0.5,
        "warmup": 25,
        "cell_batch_size": 2048,
    },
    # A first map in seconds: 80 epochs on 128-cell batches (such small steps train on one
    # thread) with a smaller encoder, 256-128-64 (the steps take about half the time), read
    # out with expression weight 3 (a briefly trained embedding carries less; the few-gene
    # osmFISH needs it) and 3 rounds (cells are still placed by round 1; the third round
    # raises the cell-type PCC). On both semi-simulations, standard and disjoint cells, it
    # reached TACCO's accuracy in about a quarter of TACCO's time, measured in the same run
    # (benchmarks/results/issue17/fast_setting_quick2.md).
    "quick": {
        "epochs": 80,
        "lr": 0.004,
        "lr_step": 40,
        "lr_gamma": 0.5,
        "warmup": 10,
        "cell_batch_size": 128,
        "hidden": (256, 128, 64),
        "expression_weight": 3.0,
        "rounds": 3,
    },
}

#: the keys of a preset that set the model where the caller left them to the default and the
#: model is untrained (``STEM(sigma_scale=None)``, ``STEM(hidden=None)``)
#: the sparse readout at bin scale (``mapping/_sparse.py``): above ``entries`` cells × spots,
#: each cell keeps its ``kept`` largest entries of C and ``sample`` drawn bins of its tail,
#: one pass over the cells per round. Where the CPU multiplies bfloat16 natively the pass
#: chooses ``kept + margin`` candidates in bfloat16 and keeps the ``kept`` largest of their
#: float32 values (twice as fast, the same maps: benchmarks/results/issue28/scaling.md).
#: ``rank`` > 0 would take the expression term on the spots' ``rank`` main profile axes
#: (on a trained 12,000 x 4,799 synthetic map 64 axes raised the MAE from 0.0374 to 0.0530:
#: 0 = every gene, as exact)
SPARSE_READOUT: MappingProxyType[str, int] = MappingProxyType(
    {"entries": 2**32, "kept": 256, "sample": 128, "rank": 0, "margin": 64}
)

PRESET_MODEL_KEYS = ("sigma_scale", "hidden")
#: the keys of a preset that are the defaults of ``STEM.mapping()`` for a model trained with it
PRESET_MAPPING_KEYS = ("readout", "expression_weight", "rounds")


def table() -> dict[str, Any]:
    """Return the whole table as plain builtins (tuples as lists), e.g. for the R package.

    Returns
    -------
    dict
        ``{"model": {...}, "train": {...}, "mapping": {...}, "attribution": {...},
        "analysis": {function: {...}}, "presets": {...}, "paper_sigma_scale": 0.5}``.
    """

    def plain(d: Any) -> Any:
        if isinstance(d, (dict, MappingProxyType)):
            return {str(k): plain(v) for k, v in d.items()}
        if isinstance(d, (list, tuple)):
            return [plain(v) for v in d]
        return d

    return {
        "model": plain(MODEL),
        "train": plain(TRAIN),
        "mapping": plain(MAPPING),
        "attribution": plain(ATTRIBUTION),
        "analysis": plain(ANALYSIS),
        "presets": plain(PRESETS),
        "paper_sigma_scale": PAPER_SIGMA_SCALE,
    }
