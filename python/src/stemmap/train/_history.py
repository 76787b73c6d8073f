"""The loss history: one row per epoch, read from the device every few epochs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

#: columns of :attr:`stemmap.STEM.history`: the epoch (counted over all ``train`` calls),
#: the total loss and its terms (means over the epoch's steps), β and the learning rate
COLUMNS = ("epoch", "loss", "extract", "trans", "mmd", "beta", "lr")
#: epochs between two reads of the losses from the device (and the divergence check)
READ_EVERY = 10


def empty_history() -> pd.DataFrame:
    """Make an empty loss history.

    Returns
    -------
    pandas.DataFrame
        No rows, the columns :data:`COLUMNS`.
    """
    return pd.DataFrame(columns=list(COLUMNS))


def extend(history: pd.DataFrame, rows: list[list[Any]]) -> pd.DataFrame:
    """``history`` with ``rows`` appended.

    Parameters
    ----------
    history
        The history so far (may be empty).
    rows
        New rows in the order of :data:`COLUMNS`.

    Returns
    -------
    pandas.DataFrame
        A new frame; ``history`` is not changed.
    """
    new = pd.DataFrame(rows, columns=history.columns)
    return new if history.empty else pd.concat([history, new], ignore_index=True)


class LossLog:
    """Epoch losses kept on the device and read to the host every :data:`READ_EVERY` epochs.

    Parameters
    ----------
    start
        Epochs trained before (the first new row is epoch ``start + 1``).
    """

    def __init__(self, start: int) -> None:
        self.start = start
        self.rows: list[list[Any]] = []
        self.pending: list[tuple[int, torch.Tensor, float, float]] = []

    def add(self, epoch: int, means: torch.Tensor, beta: float, lr: float) -> None:
        """Record epoch ``epoch`` (0-based in this call) without reading the device.

        Parameters
        ----------
        epoch
            The epoch in this call of ``train``.
        means
            Mean loss, extract, trans and mmd terms of the epoch (a device tensor).
        beta, lr
            β and the learning rate of the epoch.
        """
        self.pending.append((self.start + epoch + 1, means, beta, lr))

    def read(self) -> list[Any]:
        """Read the pending epochs from the device (one transfer) into :attr:`rows`.

        Returns
        -------
        list
            The last row.

        Raises
        ------
        FloatingPointError
            A loss is not finite: training diverged.
        """
        vals = torch.stack([p[1] for p in self.pending]).cpu().numpy()
        for (e, _, b, lr_e), v in zip(self.pending, vals):
            if not np.isfinite(v[0]):
                raise FloatingPointError(
                    f"training diverged at epoch {e} (loss {v[0]}); lower `lr` or "
                    "check the input for extreme values."
                )
            self.rows.append([e, *v.tolist(), b, lr_e])
        self.pending.clear()
        return self.rows[-1]
