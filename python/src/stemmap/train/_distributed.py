"""Data-parallel training under ``torchrun``: the process's rank and the DDP wrapper."""

from __future__ import annotations

import torch


def dist_info() -> tuple[int, int]:
    """Rank and world size of this process.

    Returns
    -------
    tuple of int
        ``(rank, world size)`` when ``torch.distributed`` is initialised, else ``(0, 1)``.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def wrap_ddp(module: torch.nn.Module, device: torch.device, world: int) -> torch.nn.Module:
    """Wrap ``module`` in ``DistributedDataParallel`` when ``world > 1``.

    Parameters
    ----------
    module
        The module to train.
    device
        Its device (a CUDA device is this process's GPU).
    world
        The world size (:func:`dist_info`).

    Returns
    -------
    torch.nn.Module
        The module to call in the training steps.
    """
    if world <= 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None
    )
