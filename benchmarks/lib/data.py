"""Benchmark data: the shared data sets, pseudo spots, splits, folds and driver inputs.

Pseudo spots and the disjoint split come from :mod:`stemmap.simulate`, the shared data from
:mod:`stemmap.datasets`; this module only arranges them for the drivers (``.h5ad`` inputs
without ground truth) and keeps the truth for scoring.
"""

from __future__ import annotations

import argparse
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial import cKDTree

from .environments import REPO


def data_dir() -> Path:
    """Return the shared data folder: stemmap's (``$STEMMAP_SHARED_DATA`` or ``../shared/data``).

    Returns
    -------
    Path
        :func:`stemmap.datasets.shared_data_dir`, or ``../shared/data`` beside the repository
        when that finds none (the path then does not exist; callers say so).
    """
    import stemmap

    return stemmap.datasets.shared_data_dir() or REPO.parent / "shared" / "data"


def add_data_args(
    p: argparse.ArgumentParser,
    splits: list[str],
    seeds: list[int],
    split_choices: list[str] | None = None,
) -> None:
    """Add ``--datasets`` (default: osmFISH and the embryo), ``--splits`` and ``--seeds``.

    Parameters
    ----------
    p
        The parser.
    splits, seeds
        The defaults of ``--splits`` and ``--seeds``.
    split_choices
        The splits ``--splits`` accepts (default: any).
    """
    d = data_dir()
    p.add_argument(
        "--datasets",
        nargs="*",
        type=Path,
        default=[d / "osmfish_cortex.h5ad", d / "embryo2_z2.h5ad"],
    )
    p.add_argument("--splits", nargs="+", default=splits, choices=split_choices)
    p.add_argument("--seeds", nargs="+", type=int, default=seeds)


def read_h5ad(path: Path | str) -> Any:
    """Read an ``.h5ad`` file without anndata's warnings."""
    import anndata as ad

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.read_h5ad(path)


def dense(x: Any) -> np.ndarray:
    """Return a dense array of a (possibly sparse) matrix."""
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def semi_simulation(name: str, **kwargs: Any) -> tuple[Any, Any]:
    """Build the paper's pseudo spots (30 × 40 grid) of a shared data set.

    Parameters
    ----------
    name
        A shared data set (``"embryo2_z2"``, ``"osmfish_cortex"``).
    **kwargs
        Passed to :func:`stemmap.simulate.pseudo_spots`.

    Returns
    -------
    tuple
        ``(sc, st)`` AnnData: the cells (truth in ``obsm["spatial_true"]``) and the spots.
    """
    import stemmap

    return stemmap.simulate.pseudo_spots(stemmap.datasets.load_shared(name), **kwargs)


def synthetic(cells: int, spots: int, genes: int) -> tuple[Any, Any]:
    """Generate ``cells`` synthetic cells and pseudo spots on a grid of about ``spots``.

    Parameters
    ----------
    cells, spots, genes
        Sizes (:func:`stemmap.datasets.synthetic_tissue`, seed 0).

    Returns
    -------
    tuple
        ``(sc, st)`` as :func:`semi_simulation` (window 0.9, spots with >= 1 cell).
    """
    import stemmap

    tissue = stemmap.datasets.synthetic_tissue(n_cells=cells, n_genes=genes, seed=0)
    # a 2 × 1 tissue: a gx × gy grid with gx = 2 gy gives gx·gy ≈ spots / coverage
    gy = max(2, int(round(math.sqrt(spots / 2.0))))
    return stemmap.simulate.pseudo_spots(
        tissue, grid=(2 * gy, gy), window=0.9, min_cells=1, label_key="celltype"
    )


def truth_for(model: Any, sc: Any, st: Any) -> tuple:
    """Return the ground truth aligned to the cells a trained model kept.

    Parameters
    ----------
    model
        A :class:`stemmap.STEM` trained on ``sc`` and ``st``.
    sc, st
        The semi-simulation (:func:`semi_simulation`).

    Returns
    -------
    tuple
        ``(coords, unit, labels, proportions, outside)``: true coordinates, the grid step,
        cell types, spots' true type proportions and which cells are in no spot.
    """
    keep = sc.obs_names.get_indexer(model.data.sc_names)
    return (
        np.asarray(sc.obsm["spatial_true"])[keep],
        float(st.uns["simulation"]["step"]),
        sc.obs["celltype"].astype(str).to_numpy()[keep],
        st.obsm["proportions"],
        sc.obs["spot"].isna().to_numpy()[keep],
    )


@dataclass
class SimSettings:
    """How ``run_benchmark.py`` builds its semi-simulations (the paper's by default).

    Parameters
    ----------
    grid
        Pseudo-spot grid (x, y).
    window
        Spot window in grid steps.
    min_cells
        Spots with fewer cells are dropped.
    label_key
        Cell-type column of ``obs``.
    split_seed
        Seed of the disjoint split.
    noise
        Gaussian noise level R on the SC counts (0: none).
    platform_sigma
        σ of the gene-wise log-normal factors of the ``*_platform`` splits
        (:func:`stemmap.simulate.platform_effect`, seed ``split_seed``, Poisson-resampled).
    """

    grid: tuple[int, int] = (30, 40)
    window: float = 0.55
    min_cells: int = 3
    label_key: str = "celltype"
    split_seed: int = 0
    noise: float = 0.0
    platform_sigma: float = 0.5


def case_name(path: Path, split: str) -> str:
    """Name a data set × split as the tables and the cache do."""
    return path.stem if split == "standard" else f"{path.stem}_{split}"


#: the splits :func:`prepare_dataset` builds
SPLITS = ("standard", "disjoint", "cross_region", "disjoint_platform", "cross_region_platform")


def prepare_dataset(
    path: Path, sim: SimSettings, cache: Path, split: str = "standard"
) -> dict[str, Any]:
    """Build pseudo spots, write driver inputs without ground truth, keep the truth.

    Parameters
    ----------
    path
        A single-cell-resolution ``.h5ad`` (counts, ``obsm["spatial"]``, cell types).
    sim
        Grid, window, noise, split seed and platform σ.
    cache
        Folder of the driver inputs ``sc.h5ad`` and ``st.h5ad`` (created).
    split
        ``"standard"``: the paper's pseudo spots, every cell is also an SC cell;
        ``"disjoint"``: spots from a random half of the cells, the other half is the SC input;
        ``"cross_region"``: spots from one half of the section (cut on the shorter axis), the
        SC input is the cells of the other half (:func:`stemmap.simulate.cross_region_pseudo_spots`:
        positions cannot be scored); ``"<split>_platform"``: that split with gene-wise
        log-normal factors on the spots (:func:`stemmap.simulate.platform_effect`).

    Returns
    -------
    dict
        Paths of the inputs, the truth (coordinates, labels, proportions, cells outside
        spots), the grid step, σ (half the mean nearest-neighbour spot distance), sizes,
        ``positions`` (whether placements can be scored) and the AnnData ``sc`` / ``st``.
        The SC input carries the SC cell types (``obs[label_key]``, the annotation a user
        has; drivers that need labels read it) and the ST input the mean number of cells per
        spot (``uns["mean_cells_per_spot"]``, cell2location's ``N_cells_per_location``).
    """
    from stemmap import simulate

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    adata = read_h5ad(path)
    spot_kw = {
        "grid": tuple(sim.grid),
        "window": sim.window,
        "min_cells": sim.min_cells,
        "label_key": sim.label_key,
    }
    base = split.removesuffix("_platform")
    if base == "disjoint":  # spots from a random half, the other half is the SC input
        sc, st = simulate.disjoint_pseudo_spots(adata, fraction=0.5, seed=sim.split_seed, **spot_kw)
    elif base == "cross_region":  # spots from one half of the section, SC from the other
        sc, st = simulate.cross_region_pseudo_spots(adata, fraction=0.5, **spot_kw)
    else:
        sc, st = simulate.pseudo_spots(adata, **spot_kw)
    if split.endswith("_platform"):
        st = simulate.platform_effect(st, sigma=sim.platform_sigma, seed=sim.split_seed)
    if sim.noise > 0:
        sc = simulate.add_noise(sc, sim.noise, seed=0)
    coords = np.asarray(st.obsm["spatial"])
    labels = sc.obs[sim.label_key].astype(str).to_numpy()
    n_per_spot = float(st.obs["n_cells"].mean())
    paths = write_inputs(
        sc.X,
        sc.obs_names,
        sc.var_names,
        st.X,
        st.obs_names,
        coords,
        cache,
        sc_obs=pd.DataFrame({sim.label_key: labels}, index=sc.obs_names),
        st_uns={"mean_cells_per_spot": n_per_spot},
    )
    d, _ = cKDTree(coords).query(coords, k=2)
    return {
        "name": case_name(path, split),
        "dataset": path.stem,
        "split": split,
        **paths,
        "true_coords": np.asarray(sc.obsm["spatial_true"]),
        "outside": sc.obs["spot"].isna().to_numpy(),
        "labels": labels,
        "label_key": sim.label_key,
        "proportions": st.obsm["proportions"],
        "spot_coords": coords,
        "step": float(st.uns["simulation"]["step"]),
        "sigma": 0.5 * float(d[:, 1].mean()),
        "sc_names": np.asarray(sc.obs_names.astype(str)),
        "n_cells": sc.n_obs,
        "n_spots": st.n_obs,
        "n_genes": st.n_vars,
        "n_in_spots": int(st.uns["simulation"]["n_cells_in_spots"]),
        "mean_cells_per_spot": n_per_spot,
        "positions": base != "cross_region",
        "simulation": dict(st.uns["simulation"]),
        "sc": sc,
        "st": st,
    }


def semisim_folds(
    data: dict[str, Any], folds: int = 5, fold_seed: int = 0, min_spots: int = 5
) -> dict[str, Any]:
    """Split a semi-simulation's genes into held-out folds (``heldout-genes.md``).

    Genes with counts in >= 1 SC cell and >= ``min_spots`` spots, ``folds`` folds drawn as
    :func:`heldout_data` draws them (``numpy.random.default_rng(fold_seed)``); the
    log-normalised SC and spot expression (log1p of 10,000 × counts / the row's total over
    all genes of the data set) of those genes.

    Parameters
    ----------
    data
        :func:`prepare_dataset`'s result.
    folds, fold_seed, min_spots
        The protocol's k = 5, fold seed 0 and 5 spots.

    Returns
    -------
    dict
        ``genes``, ``fold_of``, ``x_sc`` (cells × genes), ``x_st`` (spots × genes),
        ``folds``, ``fold_seed``.
    """
    sc, st = data["sc"], data["st"]
    c_sc, c_st = dense(sc.X), dense(st.X)
    ok = ((c_sc > 0).sum(axis=0) >= 1) & ((c_st > 0).sum(axis=0) >= min_spots)
    idx = np.flatnonzero(ok)
    rng = np.random.default_rng(fold_seed)
    fold_of = np.empty(idx.size, dtype=np.int64)
    fold_of[rng.permutation(idx.size)] = np.arange(idx.size) % folds
    return {
        "genes": [str(g) for g in np.asarray(sc.var_names)[idx]],
        "fold_of": fold_of,
        "x_sc": lognorm(c_sc[:, idx], c_sc.sum(axis=1)),
        "x_st": lognorm(c_st[:, idx], c_st.sum(axis=1)),
        "folds": folds,
        "fold_seed": fold_seed,
    }


def semisim_fold_inputs(
    data: dict[str, Any], folds: dict[str, Any], fold: int, cache: Path
) -> dict[str, Any]:
    """Write the driver inputs of one held-out fold of a semi-simulation.

    The SC input keeps all genes, the ST input loses the genes of ``fold``.

    Parameters
    ----------
    data
        :func:`prepare_dataset`'s result.
    folds
        :func:`semisim_folds`'s result.
    fold
        The held-out fold.
    cache
        Folder of the inputs (and of the drivers' outputs).

    Returns
    -------
    dict
        ``data`` with the fold's input paths and name (what :func:`lib.runner.run_method`
        needs).
    """
    held = {g for g, f in zip(folds["genes"], folds["fold_of"]) if f == fold}
    st = data["st"]
    keep = [g for g in map(str, st.var_names) if g not in held]
    sc = data["sc"]
    paths = write_inputs(
        sc.X,
        sc.obs_names,
        sc.var_names,
        st[:, keep].X,
        st.obs_names,
        data["spot_coords"],
        cache,
        st_genes=keep,
        sc_obs=pd.DataFrame({data["label_key"]: data["labels"]}, index=sc.obs_names),
        st_uns={"mean_cells_per_spot": data["mean_cells_per_spot"]},
    )
    return {**data, **paths, "name": f"{data['name']} fold {fold}"}


def write_inputs(
    sc_x: Any,
    sc_names: Any,
    sc_genes: Any,
    st_x: Any,
    st_names: Any,
    coords: np.ndarray,
    cache: Path,
    st_genes: Any = None,
    sc_obs: pd.DataFrame | None = None,
    st_uns: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the driver inputs ``sc.h5ad`` and ``st.h5ad``: counts, names, spot coordinates.

    Parameters
    ----------
    sc_x, sc_names, sc_genes
        SC counts, cell names, gene names.
    st_x, st_names, coords
        Spot counts, spot names, spot coordinates (``obsm["spatial"]``).
    cache
        Folder to write to (created).
    st_genes
        Gene names of ``st_x`` (default: ``sc_genes``).
    sc_obs
        Columns for the SC input's ``obs`` (e.g. the SC cell types), indexed by cell.
    st_uns
        Entries for the ST input's ``uns`` (e.g. the mean number of cells per spot).

    Returns
    -------
    dict
        ``{"sc_path": ..., "st_path": ...}``.
    """
    import anndata as ad

    cache.mkdir(parents=True, exist_ok=True)
    obs = pd.DataFrame(index=pd.Index(sc_names))
    if sc_obs is not None:
        obs = pd.concat([obs, sc_obs.set_axis(obs.index)], axis=1)
    sc_in = ad.AnnData(sc_x, obs=obs)
    sc_in.var_names = pd.Index(sc_genes)
    st_in = ad.AnnData(st_x, obs=pd.DataFrame(index=pd.Index(st_names)))
    st_in.var_names = pd.Index(sc_genes if st_genes is None else st_genes)
    st_in.obsm["spatial"] = np.asarray(coords)
    st_in.uns.update(st_uns or {})
    for adata, name in ((sc_in, "sc.h5ad"), (st_in, "st.h5ad")):
        # written beside and renamed: a driver of a parallel run reading it never sees a
        # half-written file
        tmp = cache / f".{os.getpid()}.tmp.{name}"
        adata.write_h5ad(tmp)
        os.replace(tmp, cache / name)
    return {"sc_path": cache / "sc.h5ad", "st_path": cache / "st.h5ad"}


def spot_totals(st_path: Path) -> pd.Series:
    """Return the total counts of each spot of a driver input, indexed by spot name."""
    st = read_h5ad(st_path)
    return pd.Series(dense(st.X).sum(axis=1), index=st.obs_names.astype(str))


# --------------------------------------------------------------- held-out genes
def lognorm(counts: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """log1p(10,000 · counts / total) per row."""
    t = np.asarray(totals, dtype=np.float64).copy()
    t[t <= 0] = 1.0
    return np.log1p(counts.astype(np.float64) / t[:, None] * 1e4)


def _totals(adata: Any) -> np.ndarray:
    if "nUMI" in adata.obs:
        return adata.obs["nUMI"].to_numpy(dtype=np.float64)
    return dense(adata.X).sum(axis=1)


def heldout_pair() -> tuple[Path, Path]:
    """Return the default real pair of the held-out-gene benchmark: (SC, ST) paths."""
    d = data_dir()
    return d / "hippocampus_visium_ref_sc.h5ad", d / "hippocampus_visium_st.h5ad"


def heldout_data(
    sc_path: Path, st_path: Path, folds: int, fold_seed: int, min_spots: int
) -> dict[str, Any]:
    """Read a real SC/ST pair and split its shared genes into folds (held-out genes).

    Parameters
    ----------
    sc_path, st_path
        The SC reference and the spots (``.h5ad``; ``obs["nUMI"]`` used as totals if there).
    folds, fold_seed
        Number of gene folds and the seed of the split.
    min_spots
        Genes need counts in >= 1 cell and >= ``min_spots`` spots.

    Returns
    -------
    dict
        ``sc``, ``st``, ``genes``, ``n_shared``, ``fold_of`` (fold of each gene), ``x_sc``,
        ``x_st`` (log-normalised, genes of ``genes``), ``coords`` and ``sigma``.
    """
    sc = read_h5ad(sc_path)
    st = read_h5ad(st_path)
    shared = [g for g in st.var_names if g in set(sc.var_names)]
    c_sc = dense(sc[:, shared].X)
    c_st = dense(st[:, shared].X)
    ok = ((c_sc > 0).sum(axis=0) >= 1) & ((c_st > 0).sum(axis=0) >= min_spots)
    genes = [g for g, o in zip(shared, ok) if o]
    rng = np.random.default_rng(fold_seed)
    fold_of = np.empty(len(genes), dtype=np.int64)
    fold_of[rng.permutation(len(genes))] = np.arange(len(genes)) % folds
    coords = np.asarray(st.obsm["spatial"], dtype=np.float64)[:, :2]
    d, _ = cKDTree(coords).query(coords, k=2)
    return {
        "sc": sc,
        "st": st,
        "genes": genes,
        "n_shared": len(shared),
        "fold_of": fold_of,
        "x_sc": lognorm(dense(sc[:, genes].X), _totals(sc)),
        "x_st": lognorm(dense(st[:, genes].X), _totals(st)),
        "coords": coords,
        "sigma": 0.5 * float(d[:, 1].mean()),
    }


def fold_inputs(data: dict[str, Any], fold: int, cache: Path) -> dict[str, Any]:
    """Write the driver inputs of one fold: SC with all genes, ST with the training genes.

    ``data`` is :func:`heldout_data`'s result; ``fold`` and ``cache`` as in
    :func:`semisim_fold_inputs`. Returns what :func:`lib.runner.run_method` needs of a data set.
    """
    sc, st = data["sc"], data["st"]
    train = [g for g, f in zip(data["genes"], data["fold_of"]) if f != fold]
    paths = write_inputs(
        sp.csr_matrix(dense(sc.X)),
        sc.obs_names,
        sc.var_names,
        sp.csr_matrix(dense(st[:, train].X)),
        st.obs_names,
        data["coords"],
        cache,
        st_genes=train,
    )
    return {
        "name": f"heldout fold {fold}",
        "split": "heldout",
        **paths,
        "sigma": data["sigma"],
        "sc_names": np.asarray(sc.obs_names.astype(str)),
        "n_cells": sc.n_obs,
        "n_spots": st.n_obs,
        "spot_coords": data["coords"],
    }
