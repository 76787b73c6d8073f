#!/usr/bin/env python
"""Cell-type PCC study (issue #17): spot-side readouts of saved stemmap models vs TACCO.

Trains nothing. Loads the models ``run_benchmark.py`` saved
(``cache/<dataset>[_disjoint]/stemmap_seed<s>.model.pt``) and reads each out in the variants
of ``VARIANTS``, built only from stemmap's public API (``STEM.mapping``, ``STEM.embed``,
``StemMapping``): the default readout; spot-side readouts, where each spot's distribution
over cells Ĉ is formed first and C is its transpose normalised per cell (TACCO's direction:
its OT result is each spot's composition); and TACCO-style "bisection" rounds, where a
share of each spot's expression profile is explained by the current Ĉ, subtracted, and the
remainder read out again (the expression term, and optionally the spot embedding, see the
residual profile). Every variant is scored like ``run_benchmark.py`` scores a method (hit
number, MAE, MAE outside spots, cell-type PCC); TACCO's cached output is scored beside it.

Usage (after ``run_benchmark.py`` saved the models and TACCO's outputs)::

    .venv/bin/python benchmarks/bench_pcc_study.py --seeds 0 1 2

Writes ``results/issue17/pcc_study.{md,csv}``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "python" / "src"))
import bench_heldout as bh  # noqa: E402
import run_benchmark as rb  # noqa: E402

logger = logging.getLogger("pcc_study")

#: a readout to study: model → (cells × spots C in the model's cell and spot order, cells × 2
#: coordinates)
Reader = Callable[[Any], tuple[np.ndarray, np.ndarray]]


def _load(path: Path) -> Any:
    from stemmap import STEM

    return STEM.load(path, device="cpu", trust=True)  # our own cache files (any format)


def semi_sim(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    readers: dict[str, Reader],
    peers: tuple[str, ...] = (),
) -> None:
    """Score every reader on the saved models of every data set / split / seed.

    ``peers``: methods whose cached seed-0 output is scored beside them (deterministic).
    """
    if not args.datasets:
        return
    bargs = rb.parse_args(["--datasets", *map(str, args.datasets), "--seeds", "0"])
    for path in args.datasets:
        for split in args.splits:
            name = path.stem if split == "standard" else f"{path.stem}_{split}"
            cache = args.cache / name
            data = rb.prepare_dataset(path, bargs, args.tmp / name, split)
            for peer in peers:
                if (cache / f"{peer}_seed0.npz").exists():
                    row = {"data": path.stem, "split": split, "seed": 0, "variant": peer}
                    rb.score(row, rb._from_cache(cache / f"{peer}_seed0.npz", {}, data)[1], data)
                    rows.append(row)
            for seed in args.seeds:
                mpath = cache / f"stemmap_seed{seed}.model.pt"
                if not mpath.exists():
                    logger.info("%s seed %d: no saved model", name, seed)
                    continue
                model = _load(mpath)
                for vname, read in readers.items():
                    c, xy = read(model)
                    names = np.asarray(model.data.sc_names)
                    res = rb.align({"sc_names": names, "sc_to_st": c, "coords": xy}, data)
                    row = {"data": path.stem, "split": split, "seed": seed, "variant": vname}
                    rb.score(row, res, data)
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


def heldout(
    args: argparse.Namespace, rows: list[dict[str, Any]], readers: dict[str, Reader]
) -> None:
    """Median held-out-gene Spearman of every reader on the real pair's saved fold models."""
    hargs = bh.parse_args(["--folds", str(args.folds)])
    data = bh.prepare(hargs)
    genes_rows: dict[tuple[int, str], list[np.ndarray]] = {}
    for fold in range(args.folds):
        held = data["fold_of"] == fold
        fdir = args.cache / f"heldout_{hargs.st.stem}" / f"fold{fold}"
        for seed in args.seeds:
            mpath = fdir / f"stemmap_seed{seed}.model.pt"
            if not mpath.exists():
                continue
            model = _load(mpath)
            sc_order = pd.Index(model.data.sc_names).get_indexer(data["sc"].obs_names)
            spots = [n for s in model.select_slices(None) for n in s.spot_names]
            spot_order = pd.Index(spots).get_indexer(data["st"].obs_names)
            for vname, read in readers.items():
                c = read(model)[0][sc_order]  # cells in the data's order
                c[sc_order < 0] = 1.0 / c.shape[1]  # cells the model dropped: uniform
                pred = bh.predict(c[:, spot_order], data["x_sc"][:, held])
                _, spr = bh.gene_corr(pred, data["x_st"][:, held])
                genes_rows.setdefault((seed, vname), []).append(spr)
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


#: result columns → table headers (the tables show those present)
COLUMNS = {
    "hit50_coords": "hit@50",
    "hit200_coords": "hit@200",
    "mae_steps": "MAE",
    "mae_outside_steps": "MAE out",
    "pcc_mean": "PCC",
    "heldout_spearman_median": "held-out median Spearman",
    "heldout_frac_gt_0_3": "frac. > 0.3",
}


def md_tables(
    df: pd.DataFrame,
    key: str = "variant",
    cols: dict[str, str] = COLUMNS,
    extra: Callable[[pd.DataFrame], pd.Series] | None = None,
) -> list[str]:
    """One markdown table per (data, split): the mean over seeds of each ``key`` value.

    ``extra``: one more column computed from the table of means (a named Series).
    """
    lines: list[str] = []
    for (d, split), sub in df.groupby(["data", "split"], sort=False):
        use = [c for c in cols if c in sub and sub[c].notna().any()]
        g = sub.groupby(key, sort=False)
        mean, n = g[use].mean(), g.size()
        more = extra(mean) if extra is not None else None
        head = [cols[c] for c in use] + ([str(more.name)] if more is not None else [])
        lines += [
            f"## {d}, {split}",
            "",
            f"| {key} | n | " + " | ".join(head) + " |",
            "|---|---|" + "---|" * len(head),
        ]
        for v in mean.index:
            vals = [f"{mean.loc[v, c]:.3f}" if pd.notna(mean.loc[v, c]) else "–" for c in use]
            if more is not None:
                vals.append(f"{more[v]:.2f}")
            lines.append(f"| {v} | {n[v]} | " + " | ".join(vals) + " |")
        lines.append("")
    return lines


def save(
    df: pd.DataFrame, out: Path, stem: str, write: Callable[[pd.DataFrame, Path], None]
) -> None:
    """``out/<stem>.csv`` (every row) and ``out/<stem>.md`` (``write(df, path)``)."""
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / f"{stem}.csv", index=False)
    write(df, out / f"{stem}.md")
    logger.info("wrote %s", out / f"{stem}.md")


def add_data_args(p: argparse.ArgumentParser, splits: list[str], seeds: list[int]) -> None:
    """--datasets (default: osmFISH and the embryo), --splits, --seeds."""
    d = rb.default_data_dir()
    p.add_argument(
        "--datasets",
        nargs="*",
        type=Path,
        default=[d / "osmfish_cortex.h5ad", d / "embryo2_z2.h5ad"],
    )
    p.add_argument("--splits", nargs="+", default=splits)
    p.add_argument("--seeds", nargs="+", type=int, default=seeds)


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
    """A StemMapping of the model's cells on the given spot embeddings / expression."""
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


def _spot_x(model: Any) -> np.ndarray:
    return np.concatenate([s.x for s in model.select_slices(None)])


def _from_spot_side(s_hat: np.ndarray, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """C = Ĉᵀ normalised per cell (TACCO's unification), and C · Y."""
    c = s_hat.T.astype(np.float64)
    rs = c.sum(axis=1, keepdims=True)
    rs[rs <= 0] = 1.0
    c = c / rs
    return c.astype(np.float32), c @ coords


def default(model: Any, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    m = model.mapping(**kw)
    return m.sc_to_st, m.coords


def spot_side(model: Any, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    m = model.mapping(**kw)
    return _from_spot_side(m.st_to_sc, m.spot_coords)


def semi_balanced(m: Any, rho: float, iters: int = 500) -> np.ndarray:
    """Ĉ (N × M) of a plan with exact spot marginals and KL-relaxed cell marginals.

    The kernel comes from the unbalanced Ĉ (``balance=False``: softmax over cells per spot;
    its per-spot constants are absorbed by the column scaling). ``rho`` is the exponent of
    the cell-side update (TACCO's ``lamb / (lamb + ε)``): 1 = balanced (the default plan),
    0 = spot side only (each spot's softmax over cells).
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
    """TACCO-style rounds: explain a share of each spot, subtract it, read out the rest.

    ``rho_late``: rounds after the first use a semi-balanced plan (cells may stay unused);
    ``w_late``: their expression weight (default: the first round's).
    """
    st_x = _spot_x(model)
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
        return _from_spot_side(acc_s, coords)
    return acc_c.astype(np.float32), acc_c @ coords


def mix(a: Callable, b: Callable, wa: float = 0.5) -> Callable:
    def f(model: Any) -> tuple[np.ndarray, np.ndarray]:
        ca, ya = a(model)
        cb, yb = b(model)
        return (wa * ca + (1 - wa) * cb).astype(np.float32), wa * ya + (1 - wa) * yb

    return f


VARIANTS: dict[str, Callable[[Any], tuple[np.ndarray, np.ndarray]]] = {
    "default (hybrid, Hellinger, balanced)": default,
    "spot side: Ĉ balanced (= default plan)": spot_side,
    "spot side: Ĉ unbalanced": lambda m: spot_side(m, balance=False),
    "spot side: Ĉ unbalanced, T 0.5": lambda m: spot_side(m, balance=False, temperature=0.5),
    "spot side: Ĉ unbalanced, T 2": lambda m: spot_side(m, balance=False, temperature=2.0),
    "bisection (expression term only)": bisection,
    "bisection, spots re-embedded": lambda m: bisection(m, reembed=True),
    "bisection, C from the rounds' C": lambda m: bisection(m, spot_side_c=False),
    "bisection, re-embedded, C from rounds' C": lambda m: bisection(
        m, reembed=True, spot_side_c=False
    ),
    "bisection 2 rounds (½, ½), re-embedded": lambda m: bisection(
        m, reembed=True, schedule=(0.5, 0.5)
    ),
    "½ default + ½ bisection re-embedded": mix(default, lambda m: bisection(m, reembed=True)),
    "bisection 2 rounds (½, ½)": lambda m: bisection(m, schedule=(0.5, 0.5)),
    "bisection 2 rounds (⅔, ⅓)": lambda m: bisection(m, schedule=(2 / 3, 1 / 3)),
    "bisection 3 rounds (½, ¼, ¼)": lambda m: bisection(m, schedule=(0.5, 0.25, 0.25)),
    "bisection 4 rounds (¼ each)": lambda m: bisection(m, schedule=(0.25,) * 4),
    "bisection, w 1.5": lambda m: bisection(m, expression_weight=1.5),
    "bisection 2 rounds (½, ½), w 1.5": lambda m: bisection(
        m, schedule=(0.5, 0.5), expression_weight=1.5
    ),
    "default, w 1.5": lambda m: default(m, expression_weight=1.5),
    "bisection 2 rounds (½, ½), w 2": lambda m: bisection(
        m, schedule=(0.5, 0.5), expression_weight=2.0
    ),
    "bisection 2 rounds (⅔, ⅓), w 1.5": lambda m: bisection(
        m, schedule=(2 / 3, 1 / 3), expression_weight=1.5
    ),
    "bisection 2 rounds (½, ½), w 1.5 then 1": lambda m: bisection(
        m, schedule=(0.5, 0.5), expression_weight=1.5, w_late=1.0
    ),
    "bisection 2 rounds (½, ½), w 1 then 2": lambda m: bisection(
        m, schedule=(0.5, 0.5), w_late=2.0
    ),
    "bisection, w 1.5 then 1": lambda m: bisection(m, expression_weight=1.5, w_late=1.0),
    "bisection, later rounds ρ 0.5": lambda m: bisection(m, rho_late=0.5),
    "bisection, later rounds ρ 0.2": lambda m: bisection(m, rho_late=0.2),
    "bisection, later rounds ρ 0 (spot side)": lambda m: bisection(m, rho_late=0.0),
    "bisection, later rounds ρ 0.5, w 1.5": lambda m: bisection(
        m, rho_late=0.5, expression_weight=1.5
    ),
    "semi-balanced ρ 0.5 (one round)": lambda m: _from_spot_side(
        semi_balanced(m.mapping(balance=False), 0.5), m.mapping().spot_coords
    ),
}


def write(df: pd.DataFrame, path: Path, argv: list[str]) -> None:
    lines = [
        "# Cell-type PCC study: spot-side readouts of saved stemmap models",
        "",
        f"`benchmarks/bench_pcc_study.py {' '.join(argv)}`; mean over the seeds present "
        f"(n); load average at the end {os.getloadavg()[0]:.1f}. No training: every stemmap "
        "row reads the same saved models out; peers are their cached seed-0 outputs "
        "(deterministic).",
        "",
    ]
    path.write_text("\n".join(lines + md_tables(df)))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_args(p, ["standard", "disjoint"], [0, 1, 2])
    p.add_argument("--folds", type=int, default=0, help="held-out-gene folds (0: none)")
    p.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=None)
    p.add_argument("--peers", nargs="*", default=["tacco", "baseline"])
    p.add_argument("--cache", type=Path, default=HERE / "cache")
    p.add_argument("--tmp", type=Path, default=HERE / "cache" / "pcc_study")
    p.add_argument("--out", type=Path, default=HERE / "results" / "issue17")
    args = p.parse_args(argv)
    readers = {k: VARIANTS[k] for k in args.variants or VARIANTS}
    rows: list[dict[str, Any]] = []
    semi_sim(args, rows, readers, peers=tuple(args.peers))
    if args.folds:
        heldout(args, rows, readers)
    df = pd.DataFrame(rows)
    save(df, args.out, "pcc_study", lambda d, path: write(d, path, argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
