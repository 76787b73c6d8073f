"""The training schedule: AdamW with a step learning rate, and the β warm-up."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Schedule:
    """Epochs, optimiser settings and the warm-up of β, the weight of the transfer loss.

    Parameters
    ----------
    epochs
        Training epochs.
    lr
        AdamW learning rate.
    weight_decay
        AdamW weight decay.
    lr_step, lr_gamma
        The learning rate is multiplied by ``lr_gamma`` every ``lr_step`` epochs.
    warmup
        Epochs with β = 0 before it rises linearly to 1 (see :meth:`beta`).
    """

    epochs: int
    lr: float
    weight_decay: float
    lr_step: int
    lr_gamma: float
    warmup: int

    def beta(self, epoch: int) -> float:
        """Weight of the transfer loss at ``epoch`` (0-based).

        β is 0 for ``warmup`` epochs, then rises linearly to 1 at the last epoch:
        ``β = max((epoch - warmup) / (epochs - warmup), 0)``. With ``epochs <= warmup`` β
        rises from the first epoch: ``(epoch + 1) / epochs``.

        Parameters
        ----------
        epoch
            The epoch, counted from 0 in this call of ``train``.

        Returns
        -------
        float
            β in [0, 1].
        """
        w = self.warmup if self.epochs > self.warmup else 0
        if w:
            return max((epoch - w) / max(self.epochs - w, 1), 0.0)
        return (epoch + 1) / self.epochs

    def optimizer(
        self, params: Iterable[torch.nn.Parameter]
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.StepLR]:
        """AdamW over ``params`` and its step learning-rate schedule.

        Parameters
        ----------
        params
            The parameters to train.

        Returns
        -------
        tuple
            The optimiser and its ``StepLR`` scheduler (stepped once per epoch).
        """
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        return opt, torch.optim.lr_scheduler.StepLR(
            opt, step_size=self.lr_step, gamma=self.lr_gamma
        )

    def settings(self) -> dict[str, Any]:
        """Return the schedule as plain numbers (for :attr:`stemmap.STEM.train_settings`).

        Returns
        -------
        dict
            ``epochs``, ``lr``, ``weight_decay``, ``lr_step``, ``lr_gamma``, ``warmup``.
        """
        d = asdict(self)
        types = {"lr": float, "weight_decay": float, "lr_gamma": float}
        return {k: types.get(k, int)(v) for k, v in d.items()}
