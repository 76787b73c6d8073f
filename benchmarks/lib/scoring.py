"""Scores: the metrics table of a mapping (:mod:`stemmap.metrics`) and held-out genes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial import cKDTree
from scipy.stats import rankdata

#: the hit-number neighbourhood sizes of every table
KS = (10, 25, 50, 200)


def nn_similarity(nn: np.ndarray) -> sp.csr_matrix:
    """Turn ranked neighbour lists (cells × K, nearest first, -1 = none) into a similarity.

    Parameters
    ----------
    nn
        Row indices of each cell's K nearest other cells.

    Returns
    -------
    scipy.sparse.csr_matrix
        Cells × cells, K for the nearest down to 1 for the K-th: larger = nearer.
    """
    m, k = nn.shape
    keep = nn >= 0
    return sp.csr_matrix(
        (
            np.broadcast_to(np.arange(k, 0, -1, dtype=np.float32), nn.shape)[keep],
            (np.repeat(np.arange(m), k).reshape(m, k)[keep], nn[keep]),
        ),
        shape=(m, m),
    )


def score(row: dict[str, Any], res: dict[str, np.ndarray], data: dict[str, Any]) -> None:
    """Add the benchmark's metrics of one aligned driver output to a result row.

    Parameters
    ----------
    row
        The result row (updated): ``hit<K>_coords``, ``hit<K>_embedding``,
        ``hit<K>_adjacency``, ``mae_steps``, ``mae_outside_steps``, ``pcc_mean``, ``jsd_mean``,
        ``pcc_sd``, ``pcc_n_types`` and ``cells_missing``.
    res
        :func:`lib.runner.align`'s output.
    data
        :func:`lib.data.prepare_dataset`'s result (the truth).
    """
    from stemmap import metrics

    true = data["true_coords"]
    hn = metrics.hit_number(true, res["coords"], ks=KS)
    for k in KS:
        row[f"hit{k}_coords"] = hn[k]
    if "embedding" in res:
        he = metrics.hit_number(true, embedding=res["embedding"], ks=KS)
        for k in KS:
            row[f"hit{k}_embedding"] = he[k]
    if "adjacency_nn" in res:  # ranked lists → a sparse similarity, larger = nearer
        k = res["adjacency_nn"].shape[1]
        sim = nn_similarity(res["adjacency_nn"])
        ha = metrics.hit_number(true, pred_adjacency=sim, ks=[x for x in KS if x <= k])
        for kk, v in ha.items():
            row[f"hit{kk}_adjacency"] = v
    elif "embedding" in res:  # the STEM family's SC–SC adjacency: embedding inner products
        for k in KS:
            row[f"hit{k}_adjacency"] = row[f"hit{k}_embedding"]
    row["mae_steps"] = metrics.mae(true, res["coords"], unit=data["step"])
    out = data["outside"]  # cells in no spot: their own counts are in no spot profile
    row["mae_outside_steps"] = metrics.mae(true[out], res["coords"][out], unit=data["step"])
    pcc = metrics.celltype_pcc(res["sc_to_st"], data["labels"], data["proportions"])
    row["pcc_mean"] = float(pcc.mean())
    row["pcc_sd"] = float(pcc.std())
    row["pcc_n_types"] = int(pcc.notna().sum())
    row["jsd_mean"] = float(
        metrics.composition_jsd(res["sc_to_st"], data["labels"], data["proportions"]).mean()
    )
    row["cells_missing"] = int(res["n_missing"])


def evaluate(
    name: str,
    xy: np.ndarray | None,
    mapping: np.ndarray | None,
    embedding: np.ndarray | None,
    truth: tuple,
    adjacency: Any = None,
) -> dict[str, Any]:
    """Score one readout of an in-process model (the readout studies).

    Parameters
    ----------
    name
        The row's ``readout``.
    xy
        Pseudo-coordinates: ``hit<K>``, ``mae``, ``mae_outside``.
    mapping
        Cells × spots mapping: ``pcc`` (mean cell-type PCC).
    embedding
        SC embedding: ``hit<K>`` of its inner-product adjacency.
    truth
        :func:`lib.data.truth_for`'s tuple.
    adjacency
        An SC–SC similarity matrix: ``hit<K>`` of it.

    Returns
    -------
    dict
        The row (hit numbers with seed 0).
    """
    from stemmap import metrics

    true, unit, labels, props, outside = truth
    row: dict[str, Any] = {"readout": name}
    if xy is not None:
        h = metrics.hit_number(true, xy, ks=KS, seed=0)
        row.update({f"hit{k}": h[k] for k in KS})
        row["mae"] = metrics.mae(true, xy, unit=unit)
        row["mae_outside"] = metrics.mae(true[outside], xy[outside], unit=unit)
    if embedding is not None:
        h = metrics.hit_number(true, embedding=embedding, ks=KS, seed=0)
        row.update({f"hit{k}": h[k] for k in KS})
    if adjacency is not None:
        h = metrics.hit_number(true, pred_adjacency=adjacency, ks=KS, seed=0)
        row.update({f"hit{k}": h[k] for k in KS})
    if mapping is not None:
        row["pcc"] = float(metrics.celltype_pcc(mapping, labels, props).mean())
    return row


# --------------------------------------------------------------- held-out genes
def gene_corr(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return per-column Pearson and Spearman correlations (NaN for a constant column)."""

    def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = a - a.mean(axis=0)
        b = b - b.mean(axis=0)
        den = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, (a * b).sum(axis=0) / den, np.nan)

    return pearson(pred, truth), pearson(rankdata(pred, axis=0), rankdata(truth, axis=0))


def predict(mapping_cells_spots: np.ndarray, x_sc: np.ndarray) -> np.ndarray:
    """Predict spots × genes: rows of the spots × cells mapping normalised to sum 1."""
    a = np.asarray(mapping_cells_spots, dtype=np.float64).T
    rs = a.sum(axis=1, keepdims=True)
    empty = rs[:, 0] <= 0
    a[empty] = 1.0  # a spot no cell was mapped to predicts the mean cell
    rs[empty] = a.shape[1]
    return (a / rs) @ x_sc


def corr_baseline(x_sc: np.ndarray, x_st: np.ndarray, k: int = 50, tau: float = 0.05) -> np.ndarray:
    """Weigh cells × spots: each spot's k most correlated cells, ∝ exp(r / tau)."""
    z = [x - x.mean(axis=1, keepdims=True) for x in (x_sc, x_st)]
    z = [x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) for x in z]
    r = z[1] @ z[0].T  # spots × cells
    k = min(k, r.shape[1])
    top = np.argpartition(-r, k - 1, axis=1)[:, :k]
    w = np.zeros_like(r)
    rows = np.arange(r.shape[0])[:, None]
    rt = r[rows, top]
    w[rows, top] = np.exp((rt - rt.max(axis=1, keepdims=True)) / tau)
    return w.T


def spatial_control(coords: np.ndarray, truth: np.ndarray, k: int = 6) -> np.ndarray:
    """Predict each spot's value by the mean of its k nearest other spots."""
    _, idx = cKDTree(coords).query(coords, k=k + 1)
    return truth[idx[:, 1:]].mean(axis=1)


def summarise_heldout(genes: pd.DataFrame) -> pd.DataFrame:
    """Summarise per method and seed: median/mean Spearman, Pearson, fraction > 0.3."""
    g = genes.groupby(["method", "seed"], sort=False)
    out = g.agg(
        spearman_median=("spearman", "median"),
        spearman_mean=("spearman", "mean"),
        pearson_median=("pearson", "median"),
        pearson_mean=("pearson", "mean"),
        frac_spearman_gt_0_3=("spearman", lambda s: float((s > 0.3).mean())),
        n_genes=("spearman", "size"),
        n_nan=("spearman", lambda s: int(s.isna().sum())),
        fit_s=("fit_s", "sum"),
    )
    return out.reset_index()
