"""Data the package makes itself, and access to real single-cell-resolution data sets."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["synthetic_tissue", "toy_data", "shared_data_dir", "load_shared"]


def synthetic_tissue(
    n_cells: int = 1500,
    n_genes: int = 60,
    n_types: int = 5,
    seed: int = 0,
) -> Any:
    """Generate a single-cell-resolution spatial data set with spatially patterned genes.

    Cells sit uniformly in a 2 × 1 rectangle. Cell types occupy bands along x (with some
    mixing); every gene's mean varies smoothly with position (a random mix of a few spatial
    waves) and with cell type, and counts are Poisson. This gives data where position is
    recoverable from expression, as in real tissue.

    Parameters
    ----------
    n_cells, n_genes, n_types
        Size of the data set.
    seed
        Random seed.

    Returns
    -------
    anndata.AnnData
        Raw counts in ``X``, true coordinates in ``obsm["spatial"]``, labels in
        ``obs["celltype"]`` (the same layout as the shared real data sets).
    """
    import anndata as ad

    rng = np.random.default_rng(seed)
    xy = rng.uniform([0.0, 0.0], [2.0, 1.0], size=(n_cells, 2))
    band = np.clip(
        (xy[:, 0] / 2.0 * n_types + rng.normal(0, 0.35, n_cells)).astype(int), 0, n_types - 1
    )
    labels = np.array([f"type{t}" for t in band])
    n_waves = 6
    freqs = rng.uniform(0.5, 2.5, size=(n_waves, 2)) * np.pi
    phases = rng.uniform(0, 2 * np.pi, size=n_waves)
    waves = np.sin(xy @ freqs.T + phases)  # cells × waves
    load = rng.normal(0, 1.0, size=(n_waves, n_genes))
    type_eff = rng.normal(0, 0.8, size=(n_types, n_genes))
    log_mu = 0.5 + 0.7 * waves @ load / np.sqrt(n_waves) + type_eff[band]
    counts = rng.poisson(np.exp(log_mu)).astype(np.float32)
    obs = pd.DataFrame(
        {"celltype": pd.Categorical(labels)}, index=[f"cell{i}" for i in range(n_cells)]
    )
    var = pd.DataFrame(index=[f"gene{j}" for j in range(n_genes)])
    adata = ad.AnnData(counts, obs=obs, var=var)
    adata.obsm["spatial"] = xy
    return adata


def toy_data(seed: int = 0, n_cells: int = 300, n_genes: int = 40, grid: tuple[int, int] = (8, 6)):
    """Make a tiny (SC, ST) pair for examples and tests: pseudo spots of a synthetic tissue.

    Returns
    -------
    tuple of anndata.AnnData
        ``(sc, st)`` as :func:`stemmap.simulate.pseudo_spots` returns them.
    """
    from .simulate import pseudo_spots

    tissue = synthetic_tissue(n_cells=n_cells, n_genes=n_genes, seed=seed)
    return pseudo_spots(tissue, grid=grid, window=0.9, min_cells=2)


def shared_data_dir() -> Path | None:
    """Folder of the real data sets: ``$STEMMAP_SHARED_DATA`` or ``../shared/data`` beside the repo."""
    env = os.environ.get("STEMMAP_SHARED_DATA")
    if env:
        p = Path(env)
        return p if p.is_dir() else None
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent / "shared" / "data"
        if cand.is_dir():
            return cand
        cand = parent.parent / "shared" / "data"
        if (parent / ".git").exists() and cand.is_dir():
            return cand
    return None


def load_shared(name: str = "embryo2_z2") -> Any:
    """Read a shared real data set (``embryo2_z2`` or ``osmfish_cortex``).

    Raises
    ------
    FileNotFoundError
        When the data folder is not there (set ``STEMMAP_SHARED_DATA``).
    """
    import anndata as ad

    d = shared_data_dir()
    if d is None or not (d / f"{name}.h5ad").exists():
        raise FileNotFoundError(
            f"shared data set {name!r} not found; set STEMMAP_SHARED_DATA to the folder holding "
            f"{name}.h5ad (looked in {d or 'STEMMAP_SHARED_DATA / ../shared/data'})."
        )
    return ad.read_h5ad(d / f"{name}.h5ad")
