"""Readout studies of saved stemmap models, and the spot-side / bisection readouts.

The studies train nothing: they load the models that ``run_benchmark.py`` and
``bench_heldout.py`` saved beside their stemmap outputs
(``cache/<dataset>[_disjoint]/stemmap_seed<s>.model.pt``,
``cache/heldout_<st>/fold<i>/stemmap_seed<s>.model.pt``), read each out with every
:data:`Reader` of a study and score it like the benchmarks score a method
(:func:`semi_simulation_rows`, :func:`heldout_rows`).

The readouts of issue #17 (cell-type PCC) are built only from stemmap's public API
(``STEM.mapping``, ``STEM.embed``, ``StemMapping``): spot-side readouts, where each spot's
distribution over cells Ĉ is formed first and C is its transpose normalised per cell
(:func:`from_spot_side`, TACCO's direction), and TACCO-style bisection rounds
(:func:`bisection`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data import SimSettings, case_name, heldout_data, heldout_pair, prepare_dataset
from .runner import align, read_output
from .scoring import gene_corr, predict, score

logger = logging.getLogger(__name__)

#: a readout to study: model → (cells × spots C in the model's cell and spot order, cells × 2
#: coordinates)
Reader = Callable[[Any], tuple[np.ndarray, np.ndarray]]
#: the readers of a study: fixed, or made for the folder of the saved models (their driver
#: inputs ``sc.h5ad`` and ``st.h5ad`` lie beside them)
Readers = Mapping[str, Reader] | Callable[[Path], Mapping[str, Reader]]

#: result columns → table headers of the studies (a table shows those present)
COLUMNS = {
    "hit50_coords": "hit@50",
    "hit200_coords": "hit@200",
    "mae_steps": "MAE",
    "mae_outside_steps": "MAE out",
    "pcc_mean": "PCC",
    "jsd_mean": "JSD",
    "heldout_spearman_median": "held-out median Spearman",
    "heldout_frac_gt_0_3": "frac. > 0.3",
}


def load_saved(path: Path) -> Any:
    """Load a saved model on the CPU (``trust``: the benchmarks' own cache files, any format)."""
    from stemmap import STEM

    return STEM.load(path, device="cpu", trust=True)


def _readers_for(readers: Readers, folder: Path) -> Mapping[str, Reader]:
    return readers(folder) if callable(readers) else readers


def semi_simulation_rows(
    datasets: Sequence[Path],
    splits: Sequence[str],
    seeds: Sequence[int],
    cache: Path,
    tmp: Path,
    readers: Readers,
    peers: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Score every reader on the saved models of every data set, split and seed.

    Parameters
    ----------
    datasets, splits, seeds
        The semi-simulations (:func:`lib.data.prepare_dataset`, default settings) and the
        seeds of the saved models.
    cache
        ``run_benchmark.py``'s cache: ``<cache>/<case>/stemmap_seed<s>.model.pt``.
    tmp
        Folder of the rebuilt driver inputs (``<tmp>/<case>``).
    readers
        Name → :data:`Reader`, or a function of the models' folder that returns them.
    peers
        Methods whose cached seed-0 output (``<method>_seed0.npz``) is scored beside them
        (deterministic methods).

    Returns
    -------
    list of dict
        One row per case, seed and reader (``data``, ``split``, ``seed``, ``variant`` and
        :func:`lib.scoring.score`'s columns), the peers' first in each case.
    """
    rows: list[dict[str, Any]] = []
    for path in datasets:
        for split in splits:
            name = case_name(path, split)
            folder = cache / name
            data = prepare_dataset(path, SimSettings(), tmp / name, split)
            for peer in peers:
                if (folder / f"{peer}_seed0.npz").exists():
                    row = {"data": path.stem, "split": split, "seed": 0, "variant": peer}
                    score(row, align(read_output(folder / f"{peer}_seed0.npz")[1], data), data)
                    rows.append(row)
            use = None
            for seed in seeds:
                mpath = folder / f"stemmap_seed{seed}.model.pt"
                if not mpath.exists():
                    logger.info("%s seed %d: no saved model", name, seed)
                    continue
                model = load_saved(mpath)
                use = _readers_for(readers, folder) if use is None else use
                names = np.asarray(model.data.sc_names)
                for vname, read in use.items():
                    c, xy = read(model)
                    res = align({"sc_names": names, "sc_to_st": c, "coords": xy}, data)
                    row = {"data": path.stem, "split": split, "seed": seed, "variant": vname}
                    score(row, res, data)
                    rows.append(row)
                    logger.info(
                        "%s s%d %-40s hit@50 %.2f hit@200 %.1f MAE %.2f out %.2f PCC %.3f",
                        name,
                        seed,
                        vname,
                        row["hit50_coords"],
                        row["hit200_coords"],
                        row["mae_steps"],
                        row["mae_outside_steps"],
                        row["pcc_mean"],
                    )
    return rows


def heldout_rows(
    cache: Path, folds: int, seeds: Sequence[int], readers: Readers
) -> list[dict[str, Any]]:
    """Score every reader on ``bench_heldout.py``'s saved fold models (the real Visium pair).

    Parameters
    ----------
    cache
        ``bench_heldout.py``'s cache: ``<cache>/heldout_<st>/fold<i>/stemmap_seed<s>.model.pt``
        (folds it did not run are skipped).
    folds
        The number of gene folds it used (fold seed 0, genes in >= 5 spots).
    seeds
        Seeds of the saved models.
    readers
        Name → :data:`Reader`, or a function of the fold's folder that returns them.

    Returns
    -------
    list of dict
        One row per seed and reader: median and mean Spearman of the held-out genes of all
        folds, the fraction above 0.3 and the number of folds.
    """
    sc_path, st_path = heldout_pair()
    data = heldout_data(sc_path, st_path, folds, fold_seed=0, min_spots=5)
    genes_rows: dict[tuple[int, str], list[np.ndarray]] = {}
    for fold in range(folds):
        held = data["fold_of"] == fold
        fdir = cache / f"heldout_{st_path.stem}" / f"fold{fold}"
        if not (fdir / "st.h5ad").exists():  # a fold bench_heldout did not run
            continue
        use = None
        for seed in seeds:
            mpath = fdir / f"stemmap_seed{seed}.model.pt"
            if not mpath.exists():
                continue
            model = load_saved(mpath)
            use = _readers_for(readers, fdir) if use is None else use
            sc_order = pd.Index(model.data.sc_names).get_indexer(data["sc"].obs_names)
            spots = [n for s in model.select_slices(None) for n in s.spot_names]
            spot_order = pd.Index(spots).get_indexer(data["st"].obs_names)
            for vname, read in use.items():
                c = read(model)[0][sc_order]  # cells in the data's order
                c[sc_order < 0] = 1.0 / c.shape[1]  # cells the model dropped: uniform
                pred = predict(c[:, spot_order], data["x_sc"][:, held])
                _, spr = gene_corr(pred, data["x_st"][:, held])
                genes_rows.setdefault((seed, vname), []).append(spr)
    rows = []
    for (seed, vname), parts in genes_rows.items():
        s = np.concatenate(parts)
        rows.append(
            {
                "data": "hippocampus_visium",
                "split": "heldout",
                "seed": seed,
                "variant": vname,
                "heldout_spearman_median": float(np.nanmedian(s)),
                "heldout_spearman_mean": float(np.nanmean(s)),
                "heldout_frac_gt_0_3": float(np.mean(s > 0.3)),
                "n_folds": len(parts),
            }
        )
        logger.info("heldout seed %d %-32s median Spearman %.3f", seed, vname, np.nanmedian(s))
    return rows


def study_rows(
    args: argparse.Namespace,
    readers: Readers,
    folds: int,
    semi: bool = True,
    peers: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Score the readers on the semi-simulations and on the held-out genes.

    Parameters
    ----------
    args
        A study's arguments: ``datasets``, ``splits``, ``seeds``, ``cache`` and ``tmp``
        (:func:`semi_simulation_rows`).
    readers
        Name → :data:`Reader`, or a function of the models' folder that returns them.
    folds
        Held-out-gene folds (:func:`heldout_rows`); 0: none.
    semi
        Score the semi-simulations.
    peers
        Methods scored beside them in the semi-simulations.

    Returns
    -------
    list of dict
        The semi-simulation rows, then the held-out-gene rows.
    """
    rows = []
    if semi:
        rows += semi_simulation_rows(
            args.datasets, args.splits, args.seeds, args.cache, args.tmp, readers, peers
        )
    if folds:
        rows += heldout_rows(args.cache, folds, args.seeds, readers)
    return rows


# --------------------------------------------------------------- spot-side readouts
#: TACCO's bisection schedule (bisections=4, divisor=3): the share of each round
BISECTION = (1 / 3, 2 / 9, 4 / 27, 8 / 81, 8 / 81, 8 / 81)


def _profiles(x: np.ndarray) -> np.ndarray:
    """log1p-normalised rows → expression proportions (rows sum to 1)."""
    p = np.clip(np.expm1(x.astype(np.float64)), 0.0, None)
    t = p.sum(axis=1, keepdims=True)
    t[t <= 0] = 1.0
    return p / t


def _log1p(p: np.ndarray) -> np.ndarray:
    t = p.sum(axis=1, keepdims=True)
    t[t <= 0] = 1.0
    return np.log1p(p / t * 1e4).astype(np.float32)


def _mapping(model: Any, z_st: np.ndarray, st_x: np.ndarray, **kw: Any) -> Any:
    """Return a StemMapping of the model's cells on given spot embeddings / expression."""
    from stemmap import StemMapping

    slices = model.select_slices(None)
    return StemMapping(
        model.embed(model.data.sc_x),
        z_st,
        np.concatenate([s.coords for s in slices]),
        model.data.sc_names,
        [n for s in slices for n in s.spot_names],
        [s.name for s in slices for _ in s.spot_names],
        sc_expr=model.data.sc_x,
        st_expr=st_x,
        **kw,
    )


def from_spot_side(s_hat: np.ndarray, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return C = Ĉᵀ normalised per cell (TACCO's unification) and C · Y.

    Parameters
    ----------
    s_hat
        Spots × cells Ĉ (each spot's distribution over cells).
    coords
        Spots × 2 coordinates Y.

    Returns
    -------
    tuple
        Cells × spots C (float32) and the cells' coordinates.
    """
    c = s_hat.T.astype(np.float64)
    rs = c.sum(axis=1, keepdims=True)
    rs[rs <= 0] = 1.0
    c = c / rs
    return c.astype(np.float32), c @ coords


def semi_balanced(m: Any, rho: float, iters: int = 500) -> np.ndarray:
    """Return Ĉ (N × M) of a plan with exact spot marginals and KL-relaxed cell marginals.

    The kernel comes from the unbalanced Ĉ (``balance=False``: softmax over cells per spot;
    its per-spot constants are absorbed by the column scaling).

    Parameters
    ----------
    m
        An unbalanced :class:`stemmap.StemMapping` (its ``st_to_sc``).
    rho
        The exponent of the cell-side update (TACCO's ``lamb / (lamb + ε)``): 1 = balanced
        (the default plan), 0 = spot side only (each spot's softmax over cells).
    iters
        Scaling iterations.

    Returns
    -------
    numpy.ndarray
        Spots × cells, rows summing to 1.
    """
    k = m.st_to_sc.T.astype(np.float64)  # M × N
    n_c, n_s = k.shape
    r, w = np.full(n_c, 1.0 / n_c), np.full(n_s, 1.0 / n_s)
    a, b = np.ones(n_c), np.ones(n_s)
    for _ in range(iters):
        a = (r / np.maximum(k @ b, 1e-300)) ** rho
        b = w / np.maximum(k.T @ a, 1e-300)
    p = a[:, None] * k * b[None, :]
    return (p / p.sum(axis=0, keepdims=True)).T


def bisection(
    model: Any,
    reembed: bool = False,
    schedule: tuple[float, ...] = BISECTION,
    spot_side_c: bool = True,
    rho_late: float | None = None,
    w_late: float | None = None,
    **kw: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Read out in TACCO-style rounds: explain a share of each spot, subtract it, go on.

    Each round reads out the spots' residual expression profiles (the expression term, and
    with ``reembed`` the spot embedding, see the residual), adds its share of Ĉ and removes
    that share of the explained cells' profiles from the residual.

    Parameters
    ----------
    model
        A trained :class:`stemmap.STEM`.
    reembed
        Embed the residual profiles for the rounds after the first.
    schedule
        The share of each round (TACCO's bisection schedule by default).
    spot_side_c
        C from the accumulated Ĉ (:func:`from_spot_side`); False: the rounds' C summed.
    rho_late
        Rounds after the first use a semi-balanced plan (:func:`semi_balanced`; cells may
        stay unused).
    w_late
        Their expression weight (default: the first round's).
    **kw
        :class:`stemmap.StemMapping` arguments (e.g. ``expression_weight``).

    Returns
    -------
    tuple
        Cells × spots C and the cells' coordinates, in the model's order.
    """
    st_x = np.concatenate([s.x for s in model.select_slices(None)])
    p_sc = _profiles(model.data.sc_x)
    resid = _profiles(st_x)
    z_st0 = model.embed(st_x)
    acc_s = acc_c = None
    coords = None
    for i, share in enumerate(schedule):
        x_r = st_x if i == 0 else _log1p(resid)
        z_r = z_st0 if (i == 0 or not reembed) else model.embed(x_r)
        if i == 1 and w_late is not None:
            kw = {**kw, "expression_weight": w_late}
        if i > 0 and rho_late is not None:
            m = _mapping(model, z_r, x_r, balance=False, **kw)
            s = semi_balanced(m, rho_late)
        else:
            m = _mapping(model, z_r, x_r, **kw)
            s = m.st_to_sc.astype(np.float64)  # N × M, rows sum to 1
        acc_s = share * s if acc_s is None else acc_s + share * s
        if not spot_side_c:
            c = m.sc_to_st.astype(np.float64)
            acc_c = share * c if acc_c is None else acc_c + share * c
        coords = m.spot_coords
        resid = np.clip(resid - share * (s @ p_sc), 0.0, None)
    if spot_side_c:
        return from_spot_side(acc_s, coords)
    return acc_c.astype(np.float32), acc_c @ coords
