"""Training of :class:`stemmap.STEM`: the loop, the schedule and β warm-up, DDP, the history.

* :class:`TrainingMixin` (``_mixin.py``): :meth:`stemmap.STEM.train` (resolves and checks
  its arguments through :mod:`stemmap._resolve`, applies a preset's model keys, plans the
  batches, calls :func:`fit`, records the history and settings) and the resource estimates;
* :func:`fit` (``_loop.py``): the loop;
* :class:`Schedule` (``_schedule.py``): epochs, AdamW and its step learning rate, β warm-up;
* ``_distributed.py``: rank, world size and the ``DistributedDataParallel`` wrapper;
* ``_history.py``: the loss history's columns and the epoch log read from the device.

The batches (cells, spot patches, MMD cells) are drawn beside the data code, in
:mod:`stemmap._sampling`.
"""

from ._distributed import dist_info
from ._history import COLUMNS, empty_history, extend
from ._loop import Run, fit
from ._mixin import TrainingMixin
from ._schedule import Schedule

__all__ = [
    "COLUMNS",
    "Run",
    "Schedule",
    "TrainingMixin",
    "dist_info",
    "empty_history",
    "extend",
    "fit",
]
