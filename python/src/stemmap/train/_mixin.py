"""STEM's training methods: :meth:`~stemmap.STEM.train` and the resource estimates.

:class:`TrainingMixin` is a base class of :class:`stemmap.STEM` (as scvi-tools'
``UnsupervisedTrainingMixin`` is of its models): :meth:`train` resolves and checks its
arguments (caller → preset → table: :mod:`stemmap._resolve`), applies a preset's model keys,
plans the batches and hands the loop to :func:`stemmap.train.fit`; the model keeps the history
and the settings.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, TypeVar

import numpy as np
import torch

from .._data import SliceData, mean_nn_distance
from .._device import resolve_mixed_precision, step_seconds, training_bytes
from .._estimate import choose_batches
from .._kernels import spatial_adjacency
from .._resolve import PRESET, Resolved, resolve
from .._runtime import compute, step_threads, torch_threads
from .._validate import check_flag
from ._history import extend
from ._loop import fit
from ._schedule import Schedule

logger = logging.getLogger(__name__)

#: the model class that mixes :class:`TrainingMixin` in (``train`` returns it)
_Model = TypeVar("_Model", bound="TrainingMixin")


class TrainingMixin:
    """:meth:`train`, :meth:`memory_estimate` and :meth:`step_time_estimate` of a STEM model.

    The model provides ``data`` (:class:`~stemmap._data.PreparedData`), ``config``,
    ``device``, ``module``, ``history``, ``train_settings``, ``threads``,
    ``_sigma_default`` and ``_hidden_default`` (the mixin knows no model class: no import
    of :mod:`stemmap._model` here).
    """

    data: Any
    config: dict[str, Any]
    device: torch.device
    module: torch.nn.Module
    history: Any
    train_settings: dict[str, Any]
    is_trained: bool
    threads: int | None
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
        self: _Model,
        epochs: int | None = None,
        lr: float | None = None,
        *,
        weight_decay: float | None = None,
        lr_step: int | None = None,
        lr_gamma: float | None = None,
        warmup: int | None = None,
        cell_batch_size: int | None = None,
        spot_batch_size: int | None = None,
        progress: bool | None = None,
        preset: str | None = None,
        mixed_precision: bool | str | None = None,
    ) -> _Model:
        """Train the model (the paper's schedule by default).

        Every argument left None takes the preset's value if ``preset`` sets it, else the
        value of the defaults table (:data:`stemmap._defaults.TRAIN`, given in parentheses
        below); an argument the caller gives always wins over the preset. The values used
        and where each came from (``"caller"``, ``"preset"``, ``"default"``) are recorded
        in ``train_settings["resolved"]``.

        Parameters
        ----------
        preset
            A named set of defaults from :data:`stemmap.PRESETS` (``"paper"``, ``"fast"``,
            ``"quick"``): it sets the epochs, learning rate, its steps, warm-up and cell
            batches that the caller left None (explicit arguments win:
            ``train(preset="quick", epochs=3)`` trains 3 epochs). ``"paper"`` also restores
            the publication's other choices where the caller left them to the defaults:
            σ = ½ × the mean nearest-neighbour spot distance (when neither ``sigma`` nor
            ``sigma_scale`` was given and the model is untrained) and the paper readout of
            :meth:`mapping` (and so the embedding SC–SC adjacency). ``"quick"``, a first map
            in seconds: 80 epochs on 128-cell batches with a smaller encoder, 256-128-64 (when
            the model is untrained and ``hidden`` was not given), and :meth:`mapping` with
            expression weight 3 and 3 rounds by default; it reached TACCO's accuracy on both
            shared semi-simulations in about a quarter of TACCO's time
            (``benchmarks/results/issue17/fast_setting_quick2.md``).
        epochs
            Training epochs (paper: 400). Each epoch takes one step per ST slice, the slices
            in random order.
        lr
            AdamW learning rate (paper: 0.002).
        weight_decay
            AdamW weight decay (0.01).
        lr_step, lr_gamma
            The learning rate is multiplied by ``lr_gamma`` every ``lr_step`` epochs
            (paper: halved every 200).
        warmup
            β (weight of the transfer loss) is 0 for ``warmup`` epochs (paper: 50), then rises
            linearly to 1 at the last epoch: ``β = max((epoch - warmup) / (epochs - warmup),
            0)``. With ``epochs <= warmup`` β rises from the first epoch.
        cell_batch_size
            None (default): all cells every step, as the paper (or the preset's batches). An
            integer: a random batch of that many cells per step; C and Ĉ of a step are then
            over the batch.
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
        # every argument resolved and checked before the model is changed
        r = resolve(
            "train",
            preset,
            epochs=epochs,
            lr=lr,
            weight_decay=weight_decay,
            lr_step=lr_step,
            lr_gamma=lr_gamma,
            warmup=warmup,
            cell_batch_size=cell_batch_size,
            spot_batch_size=spot_batch_size,
            mixed_precision=mixed_precision,
        )
        if progress is not None:
            progress = check_flag(progress, "progress")
        amp = resolve_mixed_precision(r["mixed_precision"], self.device)
        if preset is not None:
            self._apply_preset_model(preset)
            self.config["preset"] = preset
        schedule = Schedule(**{k: r[k] for k in Schedule.__dataclass_fields__})
        cell_batch_size, spot_batch_size = self._plan_batches(
            r["cell_batch_size"], r["spot_batch_size"]
        )
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
            "epochs": int(schedule.epochs) + before.get("epochs", 0),
            "cell_batch_size": None if cell_batch_size is None else int(cell_batch_size),
            "spot_batch_size": None if spot_batch_size is None else int(spot_batch_size),
            "world_size": run.world,
            "preset": preset,
            "mixed_precision": amp,
            "threads": threads if self.device.type == "cpu" else None,
            "train_seconds": round(run.seconds + before.get("train_seconds", 0.0), 3),
            # this call's arguments and the model's preset keys: value and source
            "resolved": {**self.config.get("resolved", {}), **r.record()},
        }
        self.is_trained = True
        return self

    def _apply_preset_model(self, preset: str) -> None:
        """Apply a preset's σ scale and layers where the caller left them None (untrained).

        ``sigma_scale`` applies to the slices whose ``sigma`` and ``sigma_scale`` were both
        left None; ``hidden`` rebuilds the encoder (from the model's seed) if ``hidden`` was
        left None. A trained model keeps both.
        """
        if len(self.history) > 0:
            return
        m: Resolved = resolve("model", preset)  # the preset's values, else the table's
        record = m.record()
        resolved = self.config.setdefault("resolved", {})
        p_scale = m["sigma_scale"]
        if m.sources["sigma_scale"] == PRESET and any(self._sigma_default):
            for sl, dflt in zip(self.data.slices, self._sigma_default):
                if dflt:
                    sl.sigma = p_scale * mean_nn_distance(sl.coords)
                    logger.info("preset %r: slice %r sigma = %.4g", preset, sl.name, sl.sigma)
            self.config["sigma_scale"] = p_scale
            resolved["sigma_scale"] = record["sigma_scale"]
        hidden = m["hidden"]
        if m.sources["hidden"] == PRESET and self._hidden_default:
            if list(hidden) != list(self.config["hidden"]):
                self.config["hidden"] = list(hidden)
                self._build_module()
                logger.info("preset %r: encoder layers %s", preset, tuple(hidden))
            resolved["hidden"] = record["hidden"]

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
