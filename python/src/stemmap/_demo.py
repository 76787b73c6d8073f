"""``stemmap demo``: simulate spots, map, score, plot and report.

The spots are semi-simulated from real (or generated) single-cell spatial data; the mapping
is scored against the cells' true positions and a baseline (the most correlated spot).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def _evaluate(model, m, sc, st, seconds: float) -> dict[str, Any]:
    from . import metrics
    from .baselines import best_correlated_spot

    true = np.asarray(sc.obsm["spatial_true"])
    keep = sc.obs_names.isin(m.sc_names)
    true = true[keep]
    step = float(st.uns["simulation"]["step"])
    ks = (10, 25, 50, 200)
    ks = tuple(k for k in ks if k < len(true))
    res: dict[str, Any] = {"train_seconds": round(seconds, 1)}
    res["stemmap"] = {
        "MAE (grid steps)": metrics.mae(true, m.coords, unit=step),
        **{f"hit@{k}": v for k, v in metrics.hit_number(true, m.coords, ks=ks).items()},
        **{
            f"hit@{k} (embedding)": v
            for k, v in metrics.hit_number(true, embedding=m.sc_embedding, ks=ks).items()
        },
    }
    adj = m.sc_adjacency(k=max(ks), weighted=True)
    res["stemmap"].update(
        {
            f"hit@{k} (SC–SC adjacency)": v
            for k, v in metrics.hit_number(true, pred_adjacency=adj, ks=ks).items()
        }
    )
    best = best_correlated_spot(model.data.sc_x, model.data.slices[0].x)
    base = m.spot_coords[best]
    res["baseline (most correlated spot)"] = {
        "MAE (grid steps)": metrics.mae(true, base, unit=step),
        **{f"hit@{k}": v for k, v in metrics.hit_number(true, base, ks=ks).items()},
    }
    if "proportions" in st.obsm and "celltype" in sc.obs:
        labels = sc.obs["celltype"][keep].astype(str).to_numpy()
        props = st.obsm["proportions"].loc[m.spot_names]
        pcc = metrics.celltype_pcc(m.sc_to_st, labels, props)
        res["stemmap"]["cell-type PCC (mean)"] = float(np.nanmean(pcc))
        res["stemmap"]["cell-type PCC (sd)"] = float(np.nanstd(pcc))
    return res


def run_demo(
    a: argparse.Namespace, model_kwargs: dict[str, Any], train_kwargs: dict[str, Any]
) -> None:
    """Semi-simulate spots from single-cell spatial data, map, evaluate, plot and report.

    Parameters
    ----------
    a
        The ``demo`` options (``--out``, ``--dataset``, ``--seed``, ``--readout``...).
    model_kwargs, train_kwargs
        Arguments of :class:`stemmap.STEM` and :meth:`stemmap.STEM.train` from the options.
    """
    import matplotlib

    matplotlib.use("Agg")
    import stemmap

    from . import plotting

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        tissue = stemmap.datasets.load_shared(a.dataset)
        source = f"shared data set {a.dataset}"
        grid = (30, 40)
    except FileNotFoundError as e:
        logger.info("%s; using a generated tissue instead", e)
        tissue = stemmap.datasets.synthetic_tissue(n_cells=3000, n_genes=80, seed=a.seed)
        source = "generated tissue (stemmap.datasets.synthetic_tissue)"
        grid = (20, 12)
    sc, st = stemmap.simulate.pseudo_spots(tissue, grid=grid)
    model = stemmap.STEM(sc, st, **model_kwargs)
    t0 = time.perf_counter()
    model.train(**train_kwargs)
    seconds = time.perf_counter() - t0
    m = model.mapping(readout=a.readout, rounds=a.rounds, expression_weight=a.expression_weight)
    res = _evaluate(model, m, sc, st, seconds)
    keep = sc.obs_names.isin(m.sc_names)
    labels = sc.obs["celltype"][keep].astype(str).to_numpy()
    figs = {
        "positions.png": plotting.positions(
            m.coords,
            labels,
            true_coords=sc.obsm["spatial_true"][keep],
            title=f"STEM ({a.epochs} epochs)",
        ),
        "loss.png": plotting.loss_curve(model.history, alpha=a.alpha),
        "deconvolution.png": plotting.deconvolution(
            m.spot_coords, m.deconvolve(labels), true=st.obsm["proportions"].loc[m.spot_names]
        ),
    }
    for name, fig in figs.items():
        fig.savefig(out / name, dpi=110)
    sc_out, st_out = m.to_anndata(sc, st, label_key="celltype")
    sc_out.write_h5ad(out / "sc_mapped.h5ad")
    (out / "metrics.json").write_text(json.dumps(res, indent=2))
    lines = [
        "# stemmap demo",
        "",
        f"Data: {source}; {sc.n_obs} cells × {sc.n_vars} genes; {st.n_obs} pseudo spots "
        f"({grid[0]} × {grid[1]} grid, windows of 55% of the step, ≥ 3 cells).",
        f"Model: STEM, {a.epochs} epochs, seed {a.seed}, device {model.device}, "
        f"{m.readout} readout; training took {seconds:.1f} s.",
        "",
        "| metric | stemmap | baseline (most correlated spot) |",
        "|---|---|---|",
    ]
    base = res["baseline (most correlated spot)"]
    for k, v in res["stemmap"].items():
        b = base.get(k)
        lines.append(f"| {k} | {v:.3f} | {'' if b is None else f'{b:.3f}'} |")
    lines += [
        "",
        "Figures: positions.png (true vs reconstructed positions by cell type), "
        "loss.png (loss terms and β per epoch), deconvolution.png (estimated vs true "
        "proportions per spot).",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(
        f"wrote {out}/: report.md metrics.json positions.png loss.png deconvolution.png sc_mapped.h5ad"
    )
