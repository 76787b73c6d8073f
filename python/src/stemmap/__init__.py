"""stemmap: map single cells into spatial transcriptomics with STEM.

STEM (Hao et al., Commun Biol 2024) trains one encoder on single-cell (SC) and spatial
(ST) expression so that both embeddings are spatially aware, then reads off the SC→ST and
ST→SC mappings, pseudo-coordinates, SC–SC adjacency and spot deconvolution.
"""

from __future__ import annotations

import os as _os
import sys as _sys

# Idle OpenMP worker threads sleep instead of spinning: spinning threads lose their cores to
# other jobs on a shared machine and every parallel region then waits for them (measured:
# benchmarks/results/threads.md). OpenMP reads this once, at ``import torch``, so it is set
# only when torch is not imported yet, and a value the user chose is kept.
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import analysis, attribution, datasets, metrics, plotting, simulate  # noqa: E402
from ._defaults import PRESETS  # noqa: E402
from ._estimate import estimate_resources  # noqa: E402
from ._model import STEM  # noqa: E402
from ._runtime import choose_threads  # noqa: E402
from ._settings import settings  # noqa: E402
from ._validate import StemInputWarning, StemModelFileError  # noqa: E402
from ._version import __version__  # noqa: E402
from .mapping import StemMapping  # noqa: E402

__all__ = [
    "STEM",
    "StemMapping",
    "StemInputWarning",
    "StemModelFileError",
    "PRESETS",
    "estimate_resources",
    "choose_threads",
    "settings",
    "analysis",
    "attribution",
    "datasets",
    "plotting",
    "metrics",
    "simulate",
    "__version__",
]
