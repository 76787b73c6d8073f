"""The training schedule: AdamW with a step learning rate, and the β warm-up."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ._optim import AdamW


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

    def optimizer(self, params: Iterable[torch.nn.Parameter]) -> AdamW:
        """AdamW over ``params`` at the first epoch's learning rate (see :meth:`lr_at`).

        Parameters
        ----------
        params
            The parameters to train.

        Returns
        -------
        AdamW
            :class:`~stemmap.train._optim.AdamW` (the arithmetic of
            ``torch.optim.AdamW(foreach=True)`` without importing ``torch.optim``).
        """
        return AdamW(params, lr=self.lr, weight_decay=self.weight_decay)

    def lr_at(self, epoch: int) -> float:
        """Learning rate of ``epoch`` (0-based): ``lr`` times ``lr_gamma`` per ``lr_step`` epochs.

        The factor is applied once per completed step, by repeated multiplication (as
        ``torch.optim.lr_scheduler.StepLR``), so the rates are the same numbers. ``epoch``
        is counted as in :meth:`beta`; returns the rate as a float.
        """
        lr = self.lr
        for _ in range(epoch // self.lr_step):
            lr *= self.lr_gamma
        return lr

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
