"""The training loop of :meth:`stemmap.STEM.train`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import torch

from .._progress import progress_bar
from .._sampling import BatchSampler
from ._distributed import dist_info, wrap_ddp
from ._history import READ_EVERY, LossLog
from ._schedule import Schedule

logger = logging.getLogger(__name__)


@dataclass
class Run:
    """What one call of :func:`fit` did."""

    rows: list[list[Any]]  #: new history rows (:data:`~stemmap.train._history.COLUMNS`)
    seconds: float  #: wall time of the loop
    world: int  #: processes that trained together (1 without ``torch.distributed``)


def fit(
    model: Any,
    schedule: Schedule,
    *,
    cell_batch_size: int | None,
    spot_batch_size: int | None,
    progress: bool | None,
    mixed_precision: bool,
) -> Run:
    """Train ``model.module`` for ``schedule.epochs`` epochs.

    Each epoch takes one step per ST slice, the slices in random order. A step minimises
    ``extract + alpha * mmd + beta * trans`` on the step's cells and spots
    (:class:`~stemmap._sampling.BatchSampler`). The seeds continue from the epochs trained
    before, so two calls of ``train`` differ from one longer call only by the schedule.

    Parameters
    ----------
    model
        A :class:`stemmap.STEM`: its ``module``, ``device``, ``data``, ``config``
        (``seed``, ``alpha``, ``mmd_batch``), ``history`` (its length) and ``_adjacency``.
    schedule
        Epochs, optimiser and β warm-up.
    cell_batch_size, spot_batch_size
        Cells and spots per step (``None``: all); checked and planned by the caller.
    progress
        Show a progress bar (``None``: ``stemmap.settings.progress``); rank 0 only.
    mixed_precision
        The encoder under ``torch.autocast`` with bfloat16, and Ŝ = Ĉ C in bfloat16 (the
        other loss terms in float32).

    Returns
    -------
    Run
        The history rows, the seconds taken and the world size.

    Raises
    ------
    FloatingPointError
        The loss stopped being finite.
    """
    dev, data = model.device, model.data
    rank, world = dist_info()
    net = wrap_ddp(model.module, dev, world)
    x_sc_all = torch.from_numpy(data.sc_x).to(dev)
    x_st = [torch.from_numpy(s.x).to(dev) for s in data.slices]
    start = len(model.history)
    seed = model.config["seed"]
    sampler = BatchSampler(
        data.sc_x.shape[0],
        cell_batch_size,
        [s.coords for s in data.slices],
        spot_batch_size,
        model.config["mmd_batch"],
        seed=seed + start + 100_003 * rank,
    )
    S = [model._adjacency(s) if p is None else None for s, p in zip(data.slices, sampler.patches)]
    opt = schedule.optimizer(model.module.parameters())
    torch.manual_seed(seed + 7919 * start + 100_003 * rank)
    alpha, epochs = model.config["alpha"], schedule.epochs
    log = LossLog(start)
    low = torch.bfloat16 if mixed_precision else None  # Ŝ's product under mixed precision
    t0 = time.perf_counter()
    model.module.train()
    show = progress if rank == 0 else False
    with progress_bar(total=epochs, desc="STEM training", enable=show, unit="epoch") as bar:
        for ep in range(epochs):
            beta = schedule.beta(ep)
            opt.lr = schedule.lr_at(ep)
            sums = torch.zeros(4, dtype=torch.float64, device=dev)
            for step in sampler.epoch():
                s = step.slice
                x_sc = x_sc_all if step.cells is None else x_sc_all[step.cells.to(dev)]
                if step.spots is None:
                    xs, Ss = x_st[s], S[s]
                else:
                    pidx, coarsen = step.spots
                    xs = x_st[s][torch.from_numpy(pidx).to(dev)]
                    Ss = model._adjacency(data.slices[s], pidx, coarsen)
                mmd_idx = None if step.mmd is None else step.mmd.to(dev)
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=mixed_precision):
                    losses = net(x_sc, xs, Ss, mmd_idx, low)
                losses = {k: v.float() for k, v in losses.items()}
                loss = losses["extract"] + alpha * losses["mmd"] + beta * losses["trans"]
                opt.zero_grad()
                loss.backward()
                opt.step()
                # accumulated on the device: no host sync per step
                sums += torch.stack(
                    [loss, losses["extract"], losses["trans"], losses["mmd"]]
                ).detach()
            log.add(ep, sums / len(x_st), beta, opt.lr)
            bar.update(1)
            if ep % READ_EVERY == 0 or ep == epochs - 1:
                last = log.read()  # one host read for all epochs since the last one
                bar.set_postfix(
                    loss=f"{last[1]:.3f}",
                    extract=f"{last[2]:.3f}",
                    trans=f"{last[3]:.3f}",
                    mmd=f"{last[4]:.3f}",
                    refresh=False,
                )
    elapsed = time.perf_counter() - t0
    if rank == 0:
        logger.info(
            "trained %d epochs in %.1f s (%.3f s/epoch); final loss %.4f",
            epochs,
            elapsed,
            elapsed / epochs,
            log.rows[-1][1],
        )
    return Run(log.rows, elapsed, world)
