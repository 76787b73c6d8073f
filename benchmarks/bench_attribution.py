#!/usr/bin/env python
"""Runtime of integrated-gradient attribution on the seqFISH embryo, and the SDG figure.

Steps: ``load_shared("embryo2_z2")`` (7,661 cells × 351 genes) → ``pseudo_spots`` (the
paper's 30 × 40 grid, 495 spots) → ``STEM`` (paper architecture 512-256-128) → ``train``
(``--epochs``, default 50: enough for timing and a usable mapping) → IG (``--steps``,
default 50, trapezoid) timed for 2,000 cells, for all cells, and for ``--n-large`` cells
(the data replicated to 10,000 cells). Then spatial dominant genes along the
anterior–posterior axis (the embryo's y axis: brain at low y, tail at high y) in 10
quantile segments of the true positions, the same test on expression (DEGs), and the
figure ``docs/figures/embryo_sdg_ap.png``.

Usage::

    .venv/bin/python benchmarks/bench_attribution.py
    .venv/bin/python benchmarks/bench_attribution.py --epochs 50 --n-large 10000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import stemmap
import torch
from stemmap import analysis, attribution

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--n-small", type=int, default=2000)
    ap.add_argument("--n-large", type=int, default=10000, help="0 to skip")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--figure", default=str(ROOT / "docs" / "figures" / "embryo_sdg_ap.png"))
    ap.add_argument("--json", default=None, help="write the numbers here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    stemmap.settings.progress = False
    out: dict = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "device": args.device,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
    }

    adata = stemmap.datasets.load_shared("embryo2_z2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc, st = stemmap.simulate.pseudo_spots(adata)
        model = stemmap.STEM(sc, st, seed=0, device=args.device)
    t = time.perf_counter()
    model.train(epochs=args.epochs)
    out["train_s"] = round(time.perf_counter() - t, 2)
    out["cells"], out["genes"], out["spots"] = (
        model.data.sc_x.shape[0],
        len(model.data.genes),
        model.data.n_spots,
    )
    m = model.mapping()
    true = sc.obsm["spatial_true"]
    out["mapping_pcc_y"] = round(float(np.corrcoef(m.coords[:, 1], true[:, 1])[0, 1]), 3)
    print(json.dumps(out))

    def timed(cells, **kw):
        t0 = time.perf_counter()
        res = attribution.integrated_gradients(
            model, cells, steps=args.steps, batch_size=args.batch_size, **kw
        )
        return res, time.perf_counter() - t0

    _, t_small = timed(np.arange(args.n_small))
    out[f"ig_{args.n_small}_s"] = round(t_small, 2)
    attr, t_all = timed(None, return_delta=True)
    attr, delta = attr
    out[f"ig_all_{out['cells']}_s"] = round(t_all, 2)
    gap = attr.sum(axis=1) - delta
    out["completeness_rel_err_median"] = round(
        float(np.median(np.abs(delta) / np.abs(gap).clip(1e-12))), 4
    )
    print(json.dumps(out))
    if args.n_large:
        d = model.data
        keep_x, keep_n = d.sc_x, d.sc_names
        reps = int(np.ceil(args.n_large / keep_x.shape[0]))
        d.sc_x = np.tile(keep_x, (reps, 1))[: args.n_large]
        d.sc_names = [f"{n}#{r}" for r in range(reps) for n in keep_n][: args.n_large]
        try:
            _, t_large = timed(None)
        finally:
            d.sc_x, d.sc_names = keep_x, keep_n
        out[f"ig_{args.n_large}_s"] = round(t_large, 2)
        out[f"ig_{args.n_large}_extrapolated_s"] = round(t_small * args.n_large / args.n_small, 2)
        print(json.dumps(out))

    # spatial dominant genes along the anterior–posterior (y) axis, vs expression DEGs
    t = time.perf_counter()
    sdg = analysis.spatial_dominant_genes(attr, true, axis="y", n_segments=10)
    deg = analysis.spatial_dominant_genes(
        model.data.sc_x, true, axis="y", n_segments=10, genes=model.data.genes
    )
    out["sdg_test_s"] = round(time.perf_counter() - t, 2)
    out["n_sdg_fdr05"] = int(sdg.loc[sdg["padj"] < 0.05, "gene"].nunique())
    out["n_deg_fdr05"] = int(deg.loc[deg["padj"] < 0.05, "gene"].nunique())
    top_s = sdg.groupby("segment").head(5)
    top_d = deg.groupby("segment").head(5)
    both = top_s.merge(top_d, on=["segment", "gene"])
    out["top5_overlap_sdg_deg"] = f"{len(both)}/{len(top_s)}"
    out["top_sdg_per_segment"] = sdg.groupby("segment").head(1)["gene"].tolist()
    # the same along the reconstructed positions
    sdg_rec = analysis.spatial_dominant_genes(attr, m.coords, axis="y", n_segments=10)
    a = set(map(tuple, top_s[["segment", "gene"]].to_numpy()))
    b = set(map(tuple, sdg_rec.groupby("segment").head(5)[["segment", "gene"]].to_numpy()))
    out["top5_overlap_true_vs_reconstructed"] = f"{len(a & b)}/{len(a)}"
    print(json.dumps(out))

    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        seg = analysis.segment_along(true[:, 1], 10)
        genes = analysis.top_genes(sdg, n=2)
        fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), gridspec_kw={"width_ratios": [1, 1.2]})
        analysis.plot_segment_heatmap(attr, seg, genes=genes, ax=axes[0])
        axes[0].set_title("IG attribution, top-2 SDGs per segment\n(segment 0 = anterior)")
        show = list(dict.fromkeys([genes[0], genes[len(genes) // 2], genes[-1]]))

        expr = pd.DataFrame(model.data.sc_x, columns=model.data.genes)
        tr = analysis.expression_trends(expr, true[:, 1], n_knots=4, genes=show)
        analysis.plot_expression_trends(tr, ax=axes[1])
        axes[1].set_xlabel("anterior–posterior position (y)")
        axes[1].set_ylabel("log-normalised expression (spline fit)")
        axes[1].set_title("expression trends of SDGs along the axis")
        fig.tight_layout()
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.figure, dpi=110)
        out["figure"] = str(Path(args.figure).relative_to(ROOT))
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
