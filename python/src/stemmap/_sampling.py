"""What one training step sees: the slice order, the cell batch, the spot patch, the MMD cells.

Every draw comes from one ``torch.Generator`` in a fixed order per step (slice order once per
epoch; then, per slice, cells, spots, MMD cells), so that the same seed gives the same
batches, and so the same model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch


class PatchSampler:
    """Spot batches of ``size`` spots, alternating two views of the slice.

    Even draws: a spatially contiguous patch (a random anchor spot and its nearest spots), at
    the slice's resolution: local structure. Odd draws: ``size`` spots spread at random over
    the whole slice, whose adjacency uses σ (and the kernel scale) widened by
    ``sqrt(n / size)``, the growth of the nearest-neighbour spacing of such a subset: the
    global layout at a coarser resolution. Patches alone lose the global layout once a patch
    is a small part of the slice.

    Parameters
    ----------
    coords
        Spot coordinates of the slice, shape (spots, 2).
    size
        Spots per draw (fewer than the slice has).
    """

    def __init__(self, coords: np.ndarray, size: int) -> None:
        from scipy.spatial import cKDTree

        self.tree = cKDTree(coords)
        self.n = coords.shape[0]
        self.size = int(size)
        self.coords = coords
        self.coarsen = float(np.sqrt(self.n / self.size))
        self.draws = 0

    def sample(self, gen: torch.Generator) -> tuple[np.ndarray, float]:
        """Draw the next batch of spots.

        Parameters
        ----------
        gen
            The generator of all training draws.

        Returns
        -------
        tuple of numpy.ndarray and float
            The sorted spot indices (``size``) and the factor σ is widened by (1 for a
            patch).
        """
        self.draws += 1
        if self.draws % 2 == 0:
            idx = torch.randperm(self.n, generator=gen)[: self.size].numpy()
            return np.sort(idx.astype(np.int64)), self.coarsen
        anchor = int(torch.randint(self.n, (1,), generator=gen))
        _, idx = self.tree.query(self.coords[anchor], k=self.size)
        return np.sort(np.asarray(idx, dtype=np.int64)), 1.0


@dataclass
class Step:
    """The draws of one training step (``None``: all of them)."""

    slice: int  #: index of the ST slice
    cells: torch.Tensor | None  #: SC cell indices (cell batch)
    spots: tuple[np.ndarray, float] | None  #: spot indices and σ factor (PatchSampler)
    mmd: torch.Tensor | None  #: positions in the cell batch used by the MMD


class BatchSampler:
    """The batches of every training step, drawn from one seeded generator.

    Parameters
    ----------
    n_cells
        SC cells.
    cell_batch_size
        Cells per step (``None`` or ``>= n_cells``: all cells every step).
    slice_coords
        Spot coordinates of each ST slice.
    spot_batch_size
        Spots per step (``None``: all spots; a slice with fewer spots is used whole);
        see :class:`PatchSampler`.
    mmd_batch
        Cells of the batch drawn for the MMD (all when the batch is not larger).
    seed
        Seed of the generator.
    """

    def __init__(
        self,
        n_cells: int,
        cell_batch_size: int | None,
        slice_coords: Sequence[np.ndarray],
        spot_batch_size: int | None,
        mmd_batch: int,
        seed: int,
    ) -> None:
        self.n_cells = n_cells
        self.batch = n_cells if cell_batch_size is None else min(int(cell_batch_size), n_cells)
        self.patches = [
            PatchSampler(c, spot_batch_size)
            if spot_batch_size and spot_batch_size < c.shape[0]
            else None
            for c in slice_coords
        ]
        self.mmd_batch = mmd_batch
        self.gen = torch.Generator().manual_seed(seed)

    def epoch(self) -> Iterator[Step]:
        """Yield the steps of one epoch: one per slice, the slices in random order.

        Yields
        ------
        Step
            The draws of the step, made when the step is reached.
        """
        gen = self.gen
        for s in torch.randperm(len(self.patches), generator=gen).tolist():
            cells = None
            if self.batch < self.n_cells:
                cells = torch.randperm(self.n_cells, generator=gen)[: self.batch]
            patch = self.patches[s]
            spots = None if patch is None else patch.sample(gen)
            mmd = None
            if self.mmd_batch < self.batch:
                mmd = torch.randperm(self.batch, generator=gen)[: self.mmd_batch]
            yield Step(s, cells, spots, mmd)
