#!/usr/bin/env python
"""Training ablations at stemmap's defaults: ST dropout, the β warm-up and the MMD batch.

For each dataset, seed and variant, trains stemmap (σ = 1 × NN, hybrid readout, spatial
SC–SC adjacency: the defaults) for ``--epochs`` epochs and scores the pseudo-coordinates
(hit@50, MAE, MAE outside spots), the SC–SC graph (hit@50) and the cell-type PCC, on the
semi-simulation of ``run_benchmark.py``. Variants: the defaults; no ST dropout; 1.5 × the
paper's dropout rate; no β warm-up (β rises from the first epoch); MMD on 4,000 cells
instead of 1,000. Writes ``results/ablations.md`` (mean ± sd over seeds).

Usage::

    .venv/bin/python benchmarks/bench_ablations.py --epochs 200 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lib import report
from lib.data import semi_simulation, truth_for
from lib.environments import RESULTS

VARIANTS = ["defaults", "dropout 0", "dropout × 1.5", "no β warm-up", "MMD batch 4000"]


def run(sc, st, seed: int, variant: str, epochs: int, device: str) -> dict:
    import stemmap
    from stemmap import metrics

    kw: dict = {"seed": seed, "device": device}
    if variant == "dropout 0":
        kw["dropout"] = 0.0
    elif variant == "MMD batch 4000":
        kw["mmd_batch"] = 4000
    model = stemmap.STEM(sc, st, **kw)
    if variant == "dropout × 1.5":
        model = stemmap.STEM(sc, st, dropout=min(0.9, 1.5 * model.config["dropout"]), **kw)
    model.train(epochs=epochs, warmup=0 if variant == "no β warm-up" else 50)
    true, unit, labels, props, outside = truth_for(model, sc, st)
    m = model.mapping()
    xy = m.coords
    adj = m.sc_adjacency(50, weighted=True)
    return {
        "hit50": metrics.hit_number(true, xy, ks=(50,))[50],
        "hit50_adj": metrics.hit_number(true, pred_adjacency=adj, ks=(50,))[50],
        "mae": metrics.mae(true, xy, unit=unit),
        "mae_outside": metrics.mae(true[outside], xy[outside], unit=unit),
        "pcc": float(metrics.celltype_pcc(m.sc_to_st, labels, props).mean()),
        "dropout": model.config["dropout"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["embryo2_z2", "osmfish_cortex"])
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=RESULTS / "ablations.md")
    p.add_argument(
        "--from-csv",
        nargs="+",
        type=Path,
        default=None,
        help="no training: tabulate the rows of these CSVs (earlier or partial runs) instead",
    )
    a = p.parse_args(argv)
    import pandas as pd
    import stemmap

    stemmap.settings.progress = False
    rows = []
    if a.from_csv:
        rows = pd.concat([pd.read_csv(f) for f in a.from_csv]).to_dict("records")
        a.datasets = list(dict.fromkeys(r["dataset"] for r in rows))
        a.variants = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
        a.seeds = sorted({int(r["seed"]) for r in rows})
    for ds in a.datasets if not a.from_csv else []:
        sc, st = semi_simulation(ds)
        for variant in a.variants:
            for seed in a.seeds:
                r = run(sc, st, seed, variant, a.epochs, a.device)
                r.update(dataset=ds, variant=variant, seed=seed)
                report.record(rows, r)
                report.write_csv(pd.DataFrame(rows), a.out.with_suffix(".csv"))
    df = pd.DataFrame(rows)
    cols = ["hit50", "hit50_adj", "mae", "mae_outside", "pcc", "dropout"]
    lines = [
        "# Training ablations at the defaults",
        "",
        f"`benchmarks/bench_ablations.py`: {a.epochs} epochs, seeds {a.seeds}, device "
        f"{a.device}; σ = 1 × NN, hybrid readout, spatial SC–SC adjacency (the defaults). "
        "hit50 = hit number@50 of the pseudo-coordinates, hit50_adj = of the SC–SC graph; MAE "
        "in grid steps; PCC = mean cell-type PCC. Mean ± sd over seeds (n = seeds run).",
        "",
    ]
    for ds in a.datasets:
        cells = []
        for variant in a.variants:
            g = df[(df.dataset == ds) & (df.variant == variant)]
            if not g.empty:
                cells.append([variant, len(g)] + [report.mean_sd(g[c], ".3g", ".2g") for c in cols])
        lines += [f"## {ds}", "", *report.table(["variant", "n", *cols], cells), ""]
    report.write_report(a.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
