#!/usr/bin/env python
"""Readout and σ ablations on the shared semi-simulations (issue: beyond the paper).

For each dataset, σ (in units of the mean nearest-neighbour spot distance) and seed, trains
``stemmap.STEM(sc, st, seed=s, sigma=f * nn)`` for ``--epochs`` epochs (or loads it from
``--models`` when saved there before) and reads the mapping off it in several ways, all
through the public API (``model.mapping(...)``):

- ``paper``: C = softmax(Z_SC Z_STᵀ), coordinates C·Y (the publication);
- ``paper, balanced``: the same logits, Sinkhorn-balanced over spots;
- ``hybrid w, unbalanced``: embedding logits + w-weighted expression correlation, softmax;
- ``hybrid w``: the same, balanced (the default readout is w = 1);
- adjacency rows: hit number from the SC embedding (the paper's SC–SC adjacency) and from
  the Bhattacharyya affinity of mapping rows (``sc_adjacency(basis="mapping")``);
- the most-correlated-spot baseline as a floor.

Writes ``results/readout.md`` and ``results/readout.csv`` (mean ± sd over seeds).

Usage::

    .venv/bin/python benchmarks/bench_readout.py --epochs 200 --seeds 0 1 2 --sigma 0.5 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from lib import report
from lib.data import semi_simulation, truth_for
from lib.environments import CACHE, RESULTS
from lib.scoring import KS, evaluate

#: what the table's numbers are
METRICS = (
    "pseudo spots on the 30 × 40 grid. Mean ± sd over seeds. hit@K from coordinates (or from "
    "the adjacency for the `adjacency` rows), MAE in grid steps over all cells and over the "
    "cells outside every spot (their counts are in no spot profile: the leak-free part of the "
    "semi-simulation), PCC = mean cell-type PCC of Σ C rows vs true proportions."
)
#: the table's columns
COLS = [f"hit{k}" for k in KS] + ["mae", "mae_outside", "pcc"]


def readouts(model, truth) -> list[dict]:
    from stemmap.baselines import best_correlated_spot

    rows = []
    specs = [
        ("paper", {"readout": "paper"}),
        ("paper, balanced", {"readout": "paper", "balance": True}),
        ("hybrid w=1, unbalanced", {"readout": "hybrid", "balance": False}),
        ("hybrid w=0.5", {"readout": "hybrid", "expression_weight": 0.5}),
        ("hybrid w=1 (default)", {"readout": "hybrid"}),
        ("hybrid w=2", {"readout": "hybrid", "expression_weight": 2.0}),
    ]
    for name, kw in specs:
        t0 = time.perf_counter()
        m = model.mapping(**kw)
        C = m.sc_to_st
        row = evaluate(name, m.coords, C, None, truth)
        row["readout_s"] = time.perf_counter() - t0
        rows.append(row)
        if name == "paper":
            rows.append(evaluate("adjacency: embedding (paper)", None, None, m.sc_embedding, truth))
        if name == "hybrid w=1 (default)":
            rows.append(evaluate("adjacency: mapping rows (hybrid)", None, None, np.sqrt(C), truth))
            nn = float(
                np.mean(
                    np.sort(
                        np.linalg.norm(m.spot_coords[:, None] - m.spot_coords[None], axis=2), axis=1
                    )[:, 1]
                )
            )
            for bw in (0.5, 1.0, 2.0):  # the spatial basis, bandwidth in spot spacings
                A = m.sc_adjacency(max(KS), weighted=True, basis="spatial", bandwidth=bw * nn)
                rows.append(
                    evaluate(
                        f"adjacency: spatial, b = {bw} × NN", None, None, None, truth, adjacency=A
                    )
                )
    best = best_correlated_spot(model.data.sc_x, model.data.slices[0].x)
    rows.append(evaluate("baseline: most correlated spot", m.spot_coords[best], None, None, truth))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["embryo2_z2", "osmfish_cortex"])
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--sigma", nargs="+", type=float, default=[0.5, 1.0], help="× mean NN")
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", type=Path, default=CACHE / "readout_models")
    p.add_argument("--out", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    import stemmap
    from stemmap.metrics import mean_nn_distance

    stemmap.settings.progress = False
    a.models.mkdir(parents=True, exist_ok=True)
    rows = []
    for ds in a.datasets:
        sc, st = semi_simulation(ds)
        nn = mean_nn_distance(np.asarray(st.obsm["spatial"]))
        for f in a.sigma:
            for seed in a.seeds:
                path = a.models / f"{ds}_f{f}_s{seed}_e{a.epochs}.stem"  # safe format (issue 16)
                if path.exists():
                    model = stemmap.STEM.load(path, device=a.device)
                    how = "loaded"
                else:
                    model = stemmap.STEM(sc, st, seed=seed, sigma=f * nn, device=a.device)
                    model.train(epochs=a.epochs)
                    model.save(path)
                    how = "trained"
                for r in readouts(model, truth_for(model, sc, st)):
                    r.update(dataset=ds, sigma=f, seed=seed)
                    report.record(rows, r, ds, f, seed, how)
    df = report.frame(rows, a.out / "readout.csv")
    run = f"{a.epochs} epochs, seeds {a.seeds}, σ = {a.sigma} × mean NN spot distance"
    lines = report.heading(
        "Readout and σ ablations",
        f"`benchmarks/bench_readout.py`: {run}, device {a.device}; {METRICS}",
    )
    for ds in a.datasets:
        for f in a.sigma:
            sub = df[(df.dataset == ds) & (df.sigma == f)]
            cells = [
                [name] + [report.mean_sd(g[c] if c in g else [], ".3g", ".2g") for c in COLS]
                for name, g in sub.groupby("readout", sort=False)
            ]
            table = report.table(["readout", *COLS], cells)
            lines += [f"## {ds}, σ = {f:g} × NN", "", *table, ""]
    (a.out / "readout.md").write_text("\n".join(lines))
    print("wrote", a.out / "readout.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
