"""STEM's training methods: :meth:`~stemmap.STEM.train` and the resource estimates.

:class:`TrainingMixin` is a base class of :class:`stemmap.STEM` (as scvi-tools'
``UnsupervisedTrainingMixin`` is of its models): :meth:`train` checks its arguments, applies
a preset, plans the batches and hands the loop to :func:`stemmap.train.fit`; the model keeps
the history and the settings.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._data import SliceData, mean_nn_distance
from .._defaults import PRESETS, TRAIN
from .._device import choose_batches, resolve_mixed_precision, step_seconds, training_bytes
from .._kernels import spatial_adjacency
from .._runtime import compute, step_threads, torch_threads
from .._validate import check_choice, check_flag, check_train_args
from ._history import extend
from ._loop import fit
from ._schedule import Schedule

if TYPE_CHECKING:
    from .._model import STEM

logger = logging.getLogger(__name__)


class TrainingMixin:
    """:meth:`train`, :meth:`memory_estimate` and :meth:`step_time_estimate` of a STEM model.

    The model provides ``data`` (:class:`~stemmap._data.PreparedData`), ``config``,
    ``device``, ``module``, ``history``, ``train_settings`` and ``_sigma_default``.
    """

    data: Any
    config: dict[str, Any]
    device: torch.device
    module: torch.nn.Module
    history: Any
    train_settings: dict[str, Any]
    is_trained: bool
    _sigma_default: list[bool]
    _hidden_default: bool

    def _build_module(self) -> None: ...

    def _adjacency(
        self, sl: SliceData, idx: np.ndarray | None = None, coarsen: float = 1.0
    ) -> torch.Tensor:
        """Ground-truth adjacency of slice ``sl`` (or of its spots ``idx``, σ × ``coarsen``)."""
        c = self.config
        scale = (c["scale"] if c["scale"] is not None else sl.sigma) * coarsen
        coords = sl.coords if idx is None else sl.coords[idx]
        return spatial_adjacency(
            coords,
            c["kernel"],
            sigma=sl.sigma * coarsen,
            scale=scale,
            k=min(c["n_neighbors"], coords.shape[0]),
            device=self.device,
        )

    @compute
    def train(
        self,
        epochs: int = TRAIN["epochs"],
        lr: float = TRAIN["lr"],
        *,
        weight_decay: float = TRAIN["weight_decay"],
        lr_step: int = TRAIN["lr_step"],
        lr_gamma: float = TRAIN["lr_gamma"],
        warmup: int = TRAIN["warmup"],
        cell_batch_size: int | None = TRAIN["cell_batch_size"],
        spot_batch_size: int | None = TRAIN["spot_batch_size"],
        progress: bool | None = None,
        preset: str | None = None,
        mixed_precision: bool | str = TRAIN["mixed_precision"],
    ) -> STEM:
        """Train the model (the paper's schedule by default).

        Parameters
        ----------
        preset
            A named schedule from :data:`stemmap.PRESETS` (``"paper"``, ``"fast"``,
            ``"quick"``); it sets the epochs, learning rate, its steps, warm-up and cell
            batches, overriding those arguments. ``"paper"`` also restores the publication's
            other choices where the caller left them to the defaults: σ = ½ × the mean
            nearest-neighbour spot distance (when neither ``sigma`` nor ``sigma_scale`` was
            given and the model is untrained) and the paper readout of :meth:`mapping` (and
            so the embedding SC–SC adjacency). ``"quick"``, a first map in seconds: 80
            epochs on 128-cell batches with a smaller encoder, 256-128-64 (when the model is
            untrained and ``hidden`` was not given), and :meth:`mapping` with expression weight
            3 and 3 rounds by default; it reached TACCO's accuracy on both shared
            semi-simulations in about a quarter of TACCO's time
            (``benchmarks/results/issue17/fast_setting_quick2.md``).
        epochs
            Training epochs (paper: 400). Each epoch takes one step per ST slice, the slices
            in random order.
        lr
            AdamW learning rate (paper: 0.002).
        weight_decay
            AdamW weight decay.
        lr_step, lr_gamma
            The learning rate is multiplied by ``lr_gamma`` every ``lr_step`` epochs
            (paper: halved every 200).
        warmup
            β (weight of the transfer loss) is 0 for ``warmup`` epochs, then rises linearly to
            1 at the last epoch: ``β = max((epoch - warmup) / (epochs - warmup), 0)``. With
            ``epochs <= warmup`` β rises from the first epoch.
        cell_batch_size
            None (default): all cells every step, as the paper. An integer: a random batch of
            that many cells per step; C and Ĉ of a step are then over the batch.
        spot_batch_size
            None (default): all spots of a slice every step. An integer: steps alternate a
            spatially contiguous patch of that many spots (a random anchor spot and its
            nearest spots; local structure) and as many spots spread at random over the
            slice with σ widened by √(spots / patch) (the global layout at a coarser
            resolution), the adjacency renormalised over the chosen spots. Patches alone lost
            the global layout at 100,000 cells × 5,000 spots (MAE 29 grid steps, random
            level); alternating gave 4.15 (``benchmarks/results/scale_accuracy.md``).
            When neither is given and one full-batch step would not fit in memory, both are
            chosen automatically (with a message).
        progress
            Show a progress bar with the loss terms (default: ``stemmap.settings.progress``).
        mixed_precision
            Run the forward pass under ``torch.autocast`` with bfloat16 matrix products (losses,
            softmaxes and the optimiser stay in float32). ``"auto"`` (default): on where the
            device has bfloat16 matrix units (CPUs with AVX512-BF16 or AMX, e.g. AMD Zen 4 and
            Intel Sapphire Rapids; CUDA GPUs from the A100 on), where it is about 2× faster
            with the same accuracy (3 seeds on both shared datasets:
            ``benchmarks/results/mixed_precision.md``); off elsewhere, where bfloat16 is
            emulated and slower. False: float32 everywhere (the choice is recorded in
            ``train_settings["mixed_precision"]``).

        Returns
        -------
        STEM
            ``self``, trained; the loss history is in :attr:`history`.

        Notes
        -----
        With batches, each step minimises the same three losses restricted to a random set of
        cells and a spatial patch of spots: an unbiased estimate of neither full-batch loss,
        but of the losses of random sub-problems of the same form, whose optimum embeds the
        same spatial structure (the benchmark compares the two on the shared data). Under
        ``torchrun`` (``torch.distributed`` initialised), the module is wrapped in
        ``DistributedDataParallel`` and every process draws its own batches.
        """
        if preset is not None:
            check_choice(preset, list(PRESETS), "preset")
            p = PRESETS[preset]
            epochs, lr, lr_step, lr_gamma = p["epochs"], p["lr"], p["lr_step"], p["lr_gamma"]
            warmup, cell_batch_size = p["warmup"], p["cell_batch_size"]
            self._apply_preset_sigma(preset)
            self._apply_preset_hidden(preset)
            self.config["preset"] = preset
        if progress is not None:
            progress = check_flag(progress, "progress")
        schedule = Schedule(epochs, lr, weight_decay, lr_step, lr_gamma, warmup)
        check_train_args(
            **vars(schedule), cell_batch_size=cell_batch_size, spot_batch_size=spot_batch_size
        )
        amp = resolve_mixed_precision(mixed_precision, self.device)
        cell_batch_size, spot_batch_size = self._plan_batches(cell_batch_size, spot_batch_size)
        bc, bn, g, _ = self._step_shape(cell_batch_size, spot_batch_size)
        small = step_threads(self.threads, self.device, bc + bn, g)
        with torch_threads(small) if small is not None else contextlib.nullcontext():
            threads = torch.get_num_threads()
            run = fit(
                self,
                schedule,
                cell_batch_size=cell_batch_size,
                spot_batch_size=spot_batch_size,
                progress=progress,
                mixed_precision=amp,
            )
        self.history = extend(self.history, run.rows)
        before = self.train_settings
        self.train_settings = {
            **schedule.settings(),
            "epochs": int(epochs) + before.get("epochs", 0),
            "cell_batch_size": None if cell_batch_size is None else int(cell_batch_size),
            "spot_batch_size": None if spot_batch_size is None else int(spot_batch_size),
            "world_size": run.world,
            "preset": preset,
            "mixed_precision": amp,
            "threads": threads if self.device.type == "cpu" else None,
            "train_seconds": round(run.seconds + before.get("train_seconds", 0.0), 3),
        }
        self.is_trained = True
        return self

    def _apply_preset_sigma(self, preset: str) -> None:
        """Apply a preset's σ scale to slices whose σ was left to the default (untrained)."""
        p_scale = PRESETS[preset].get("sigma_scale")
        if p_scale is None or len(self.history) > 0 or not any(self._sigma_default):
            return
        for sl, dflt in zip(self.data.slices, self._sigma_default):
            if dflt:
                sl.sigma = p_scale * mean_nn_distance(sl.coords)
                logger.info("preset %r: slice %r sigma = %.4g", preset, sl.name, sl.sigma)
        self.config["sigma_scale"] = p_scale

    def _apply_preset_hidden(self, preset: str) -> None:
        """Rebuild the encoder with a preset's layers if they were left to the default (untrained)."""
        hidden = PRESETS[preset].get("hidden")
        if hidden is None or len(self.history) > 0 or not self._hidden_default:
            return
        if list(hidden) != list(self.config["hidden"]):
            self.config["hidden"] = list(hidden)
            self._build_module()
            logger.info("preset %r: encoder layers %s", preset, tuple(hidden))

    def _step_shape(
        self, cell_batch_size: int | None, spot_batch_size: int | None
    ) -> tuple[int, int, int, tuple[int, ...]]:
        """(cells, spots, genes, hidden) of one step with the given batch sizes."""
        m = self.data.sc_x.shape[0]
        n = max(s.x.shape[0] for s in self.data.slices)
        bc = m if cell_batch_size is None else min(cell_batch_size, m)
        bn = n if spot_batch_size is None else min(spot_batch_size, n)
        return bc, bn, len(self.data.genes), tuple(self.config["hidden"])

    def memory_estimate(
        self, cell_batch_size: int | None = None, spot_batch_size: int | None = None
    ) -> int:
        """Approximate peak bytes of one training step with the given batch sizes."""
        m, n, g, hidden = self._step_shape(None, None)
        return training_bytes(m, n, g, hidden, cell_batch_size, spot_batch_size)

    def step_time_estimate(
        self, cell_batch_size: int | None = None, spot_batch_size: int | None = None
    ) -> float:
        """Rough seconds of one training step with the given batch sizes on this device."""
        return step_seconds(*self._step_shape(cell_batch_size, spot_batch_size), self.device)

    def _plan_batches(
        self, cell_batch_size: int | None, spot_batch_size: int | None
    ) -> tuple[int | None, int | None]:
        """Batch sizes to train with (:func:`stemmap._device.choose_batches`)."""
        m, n, g, hidden = self._step_shape(None, None)
        return choose_batches(m, n, g, hidden, self.device, cell_batch_size, spot_batch_size)
