#!/usr/bin/env python
"""Semi-simulation benchmark: stemmap vs the reference STEM, Tangram and a baseline.

For every single-cell-resolution data set (``.h5ad`` with counts in ``X``, coordinates in
``obsm["spatial"]`` and labels in ``obs["celltype"]``) the script builds pseudo spots
(:func:`stemmap.simulate.pseudo_spots`, the paper's 30 × 40 grid), hides the cell
positions, runs every method in its own subprocess (with a timeout) and scores the
mapping against the truth with :mod:`stemmap.metrics`:

- hit number at K = 10, 25, 50, 200 from the predicted coordinates and, for the STEM
  family, from the SC embedding's inner-product adjacency;
- MAE in units of the grid step (geometric mean of the x and y steps);
- cell-type PCC (mean ± sd over cell types);
- training wall time and peak memory (peak RSS of the method's process, including the
  interpreter and its libraries; CUDA peak allocation when on a GPU).

Methods
-------
``stemmap``  this project (``stemmap.STEM``), run with the interpreter running this script.
``stem_ref`` the authors' reference, PyPI ``scSTEM==0.0.2``, installed unmodified into
             ``benchmarks/.envs/scstem`` by this script on first use.
``tangram``  PyPI ``tangram-sc`` in ``benchmarks/.envs/tangram``.
``tacco``    PyPI ``tacco==0.5.0`` in ``benchmarks/.envs/tacco``: ``tacco.tl.annotate(spots,
             reference, "cell", method="OT", multi_center=None)``, every cell its own category.
``moscot``   PyPI ``moscot==0.5.2`` in ``benchmarks/.envs/moscot``: its spatial mapping
             tutorial (``MappingProblem``, SC PCA, ``xy_callback="local-pca"``, defaults).
``baseline`` each cell placed at its most expression-correlated spot.

Each method environment gets ``torch==2.13.0`` first (the CPU wheel; an unpinned torch
would pull a multi-GB CUDA build). Every method gets the same seeds and epochs; the STEM
implementations get the same σ (half the mean nearest-neighbour spot distance).

Usage::

    .venv/bin/python benchmarks/run_benchmark.py                 # all data, 400 epochs
    .venv/bin/python benchmarks/run_benchmark.py --epochs 50 --methods stemmap baseline
    .venv/bin/python benchmarks/run_benchmark.py --datasets my.h5ad --device cuda

Results go to ``benchmarks/results/results.{md,csv}`` and
``benchmarks/results/<dataset>_positions.png``; inputs, outputs and logs of each run to
``benchmarks/cache/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DRIVERS = HERE / "drivers"
ENVS = HERE / ".envs"
TORCH_PIN = "torch==2.13.0"
KS = (10, 25, 50, 200)

METHODS: dict[str, dict[str, Any]] = {
    # stemmap's defaults: σ = 1 × the mean nearest-neighbour spot distance, hybrid readout,
    # spatial SC–SC adjacency
    "stemmap": {
        "driver": "stemmap_driver.py",
        "env": None,
        "label": "stemmap",
        "stem": True,
        "sigma_mult": None,  # the library's default σ
        "readouts": ["hybrid_log", "paper"],  # also saved: the 0.1 default and the paper's
    },
    # the same models read out with stemmap 0.1's hybrid readout (log-expression profile)
    "stemmap_log": {
        "from": "stemmap",
        "suffix": "hybrid_log",
        "env": None,
        "label": "stemmap, 0.1 readout (log profile)",
        "stem": True,
    },
    # the same models read out with the paper's readout (σ = 1 × NN, not the paper preset)
    "stemmap_paper_readout": {
        "from": "stemmap",
        "suffix": "paper",
        "env": None,
        "label": "stemmap, paper readout",
        "stem": True,
    },
    # the publication's settings: σ = ½ × NN, its schedule, its readout and adjacency
    "stemmap_paper": {
        "from": "stemmap_sigma05",
        "suffix": "paper",
        "env": None,
        "label": "stemmap, preset paper",
        "stem": True,
    },
    # σ = ½ × NN (the paper's) with the default hybrid readout: the σ ablation
    "stemmap_sigma05": {
        "driver": "stemmap_driver.py",
        "env": None,
        "label": "stemmap, σ = ½ × NN",
        "stem": True,
        "readouts": ["paper"],  # also saved: = preset paper (same σ and schedule)
    },
    "stem_ref": {
        "driver": "stem_reference_driver.py",
        "env": ("scstem", "scSTEM==0.0.2"),
        "label": "STEM reference (scSTEM 0.0.2)",
        "stem": True,
    },
    "tangram": {
        "driver": "tangram_driver.py",
        "env": ("tangram", "tangram-sc"),
        "label": "Tangram",
        "stem": False,
    },
    "novosparc": {
        "driver": "novosparc_driver.py",
        "env": ("novosparc", "novosparc"),
        "label": "novoSpaRc",
        "stem": False,
    },
    # TACCO's "mapping single cells into space": every cell its own category, method OT
    "tacco": {
        "driver": "tacco_driver.py",
        "env": ("tacco", "tacco==0.5.0"),
        "label": "TACCO 0.5.0 (OT, every cell its own category)",
        "stem": False,
    },
    # moscot's spatial mapping tutorial: fused GW, SC PCA vs spot coordinates, α 0.5, ε 0.01
    "moscot": {
        "driver": "moscot_driver.py",
        "env": ("moscot", "moscot==0.5.2"),
        "label": "moscot 0.5.2 (FGW, α 0.5, ε 0.01)",
        "stem": False,
    },
    "baseline": {
        "driver": "baseline_driver.py",
        "env": None,
        "label": "baseline (best-correlated spot)",
        "stem": False,
    },
}

logger = logging.getLogger("benchmark")


# ------------------------------------------------------------------------------ set-up
def default_data_dir() -> Path:
    return Path(os.environ.get("STEMMAP_SHARED_DATA", REPO.parent / "shared" / "data"))


def ensure_env(name: str, requirement: str) -> Path:
    """Create ``benchmarks/.envs/<name>`` with pinned torch, then ``requirement``."""
    env = ENVS / name
    py = env / "bin" / "python"
    marker = env / ".stemmap-bench-ready"
    if py.exists() and marker.exists() and marker.read_text().strip() == requirement:
        return py
    logger.info("creating environment %s (%s; first run only, a few minutes)", env, requirement)
    if env.exists():
        shutil.rmtree(env)
    ENVS.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", str(env)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, TORCH_PIN], check=True)  # first: keep the CPU wheel, never CUDA
    subprocess.run([*pip, TORCH_PIN, requirement], check=True)
    marker.write_text(requirement + "\n")
    return py


def machine_description(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    desc = f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores{mem}"
    try:
        import torch

        desc += f"; torch {torch.__version__}"
        if device.startswith("cuda") and torch.cuda.is_available():
            desc += f"; GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return desc + f"; Python {platform.python_version()}"


# ------------------------------------------------------------------------------- data
def prepare_dataset(
    path: Path, args: argparse.Namespace, cache: Path, split: str = "standard"
) -> dict[str, Any]:
    """Pseudo spots, driver inputs without ground truth, and the truth for scoring.

    ``split="standard"``: the paper's pseudo spots, every cell is also an SC cell;
    ``"disjoint"``: spots from a random half of the cells, the other half is the SC input.
    """
    import anndata as ad
    from scipy.spatial import cKDTree
    from stemmap import simulate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = ad.read_h5ad(path)
    spot_kw = {
        "grid": tuple(args.grid),
        "window": args.window,
        "min_cells": args.min_cells,
        "label_key": args.label_key,
    }
    if split == "disjoint":  # spots from a random half, the other half is the SC input
        sc, st = simulate.disjoint_pseudo_spots(
            adata, fraction=0.5, seed=args.split_seed, **spot_kw
        )
    else:
        sc, st = simulate.pseudo_spots(adata, **spot_kw)
    if args.noise > 0:
        sc = simulate.add_noise(sc, args.noise, seed=0)
    cache.mkdir(parents=True, exist_ok=True)
    sc_in = ad.AnnData(sc.X, obs=pd.DataFrame(index=sc.obs_names), var=sc.var[[]].copy())
    st_in = ad.AnnData(st.X, obs=pd.DataFrame(index=st.obs_names), var=st.var[[]].copy())
    st_in.obsm["spatial"] = np.asarray(st.obsm["spatial"])
    sc_in.write_h5ad(cache / "sc.h5ad")
    st_in.write_h5ad(cache / "st.h5ad")
    coords = np.asarray(st.obsm["spatial"])
    d, _ = cKDTree(coords).query(coords, k=2)
    return {
        "name": path.stem if split == "standard" else f"{path.stem}_{split}",
        "dataset": path.stem,
        "split": split,
        "sc_path": cache / "sc.h5ad",
        "st_path": cache / "st.h5ad",
        "true_coords": np.asarray(sc.obsm["spatial_true"]),
        "outside": sc.obs["spot"].isna().to_numpy(),
        "labels": sc.obs[args.label_key].astype(str).to_numpy(),
        "proportions": st.obsm["proportions"],
        "spot_coords": coords,
        "step": float(st.uns["simulation"]["step"]),
        "sigma": 0.5 * float(d[:, 1].mean()),
        "sc_names": np.asarray(sc.obs_names.astype(str)),
        "n_cells": sc.n_obs,
        "n_spots": st.n_obs,
        "n_genes": st.n_vars,
        "n_in_spots": int(st.uns["simulation"]["n_cells_in_spots"]),
    }


# ------------------------------------------------------------------------------- runs
def _from_cache(
    path: Path, row: dict[str, Any], data: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A driver's saved output as a result row (no run: wall time 0) and aligned arrays."""
    res = dict(np.load(path, allow_pickle=False))
    meta = json.loads(str(res.pop("meta")))
    row.update(
        status="ok",
        wall_s=0.0,
        train_s=meta["train_s"],
        peak_rss_mb=meta["peak_rss_mb"],
        cuda_peak_mb=meta.get("cuda_peak_mb"),
    )
    return row, align(res, data)


def run_method(
    method: str, data: dict[str, Any], seed: int, args: argparse.Namespace, cache: Path
) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    spec = METHODS[method]
    if "from" in spec:  # another readout of a model another method trained
        src = cache / f"{spec['from']}_seed{seed}.{spec['suffix']}.npz"
        row0: dict[str, Any] = {
            "dataset": data["name"],
            "split": data["split"],
            "method": method,
            "seed": seed,
        }
        if not src.exists():
            row0["status"] = f"not run: needs method {spec['from']} first in --methods"
            return row0, None
        return _from_cache(src, row0, data)
    py = Path(sys.executable) if spec["env"] is None else ensure_env(*spec["env"])
    out = cache / f"{method}_seed{seed}.npz"
    log = cache / f"{method}_seed{seed}.log"
    cmd = [
        str(py),
        str(DRIVERS / spec["driver"]),
        "--sc",
        str(data["sc_path"]),
        "--st",
        str(data["st_path"]),
        "--out",
        str(out),
        "--epochs",
        str(args.epochs),
        "--seed",
        str(seed),
        "--device",
        args.device,
    ]
    if spec["stem"] and spec.get("sigma_mult", 1.0) is not None:
        cmd += ["--sigma", repr(spec.get("sigma_mult", 1.0) * data["sigma"])]
    model_file = out.with_suffix(".model.pt")
    reread = spec["driver"] == "stemmap_driver.py" and args.reread and model_file.exists()
    side = Path(str(model_file) + ".json")
    if reread and not side.exists() and out.exists():  # keep the training time it had
        meta = json.loads(str(np.load(out, allow_pickle=False)["meta"]))
        side.write_text(json.dumps({"train_s": meta["train_s"], "setup_s": meta.get("setup_s")}))
    if reread:  # read the saved model out again with the current code: no training
        cmd += ["--load-model", str(model_file)]
    elif spec["driver"] == "stemmap_driver.py":  # save the model, for readout studies
        cmd += ["--save-model", str(model_file)]
    if spec.get("readouts"):
        cmd += ["--extra-readouts", *spec["readouts"]]
    cmd += spec.get("extra", [])
    env = dict(os.environ)
    if spec["env"] is None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO / "python" / "src"), env.get("PYTHONPATH", "")]
        ).strip(os.pathsep)
    row: dict[str, Any] = {
        "dataset": data["name"],
        "split": data["split"],
        "method": method,
        "seed": seed,
    }
    if (args.reuse or method in args.cached_only) and out.exists() and not reread:
        logger.info("%s / %s / seed %d: reusing %s", data["name"], method, seed, out)
        return _from_cache(out, row, data)
    if out.exists():
        out.unlink()
    logger.info(
        "%s / %s / seed %d: running (timeout %d s)", data["name"], method, seed, args.timeout
    )
    t0 = time.perf_counter()
    try:
        with open(log, "w") as fh:
            proc = subprocess.run(
                cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=args.timeout
            )
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        rc = None
    row["wall_s"] = time.perf_counter() - t0
    if rc is None:
        row["status"] = f"timeout after {args.timeout} s"
    elif rc != 0 or not out.exists():
        tail = log.read_text().strip().splitlines()[-1:] if log.exists() else []
        row["status"] = f"failed (exit {rc}): {tail[0][:200] if tail else ''}"
    else:
        row["status"] = "ok"
    if row["status"] != "ok":
        logger.warning(
            "%s / %s / seed %d: %s (log: %s)", data["name"], method, seed, row["status"], log
        )
        return row, None
    res = dict(np.load(out, allow_pickle=False))
    meta = json.loads(str(res.pop("meta")))
    row.update(
        train_s=meta["train_s"],
        peak_rss_mb=meta["peak_rss_mb"],
        cuda_peak_mb=meta.get("cuda_peak_mb"),
    )
    return row, align(res, data)


def align(res: dict[str, np.ndarray], data: dict[str, Any]) -> dict[str, np.ndarray]:
    """Put a driver's outputs in the order of the SC cells; fill cells it dropped."""
    names = pd.Index(res["sc_names"].astype(str))
    pos = names.get_indexer(data["sc_names"])
    ok = pos >= 0
    n_sp = data["n_spots"]
    out = {}
    c = np.full((data["n_cells"], n_sp), 1.0 / n_sp, dtype=np.float32)
    c[ok] = res["sc_to_st"][pos[ok]]
    out["sc_to_st"] = c
    xy = np.tile(data["spot_coords"].mean(axis=0), (data["n_cells"], 1))
    xy[ok] = res["coords"][pos[ok]]
    out["coords"] = xy
    if "embedding" in res:
        e = np.zeros((data["n_cells"], res["embedding"].shape[1]), dtype=np.float32)
        e[ok] = res["embedding"][pos[ok]]
        out["embedding"] = e
    if "adjacency_nn" in res:  # the driver's row indices → the data's cell order
        inv = np.full(len(names), -1, dtype=np.int64)
        inv[pos[ok]] = np.flatnonzero(ok)
        nn = np.full((data["n_cells"], res["adjacency_nn"].shape[1]), -1, dtype=np.int64)
        nn[ok] = inv[res["adjacency_nn"][pos[ok]]]
        out["adjacency_nn"] = nn
    out["n_missing"] = np.asarray(int((~ok).sum()))
    return out


def score(row: dict[str, Any], res: dict[str, np.ndarray], data: dict[str, Any]) -> None:
    from stemmap import metrics

    hn = metrics.hit_number(data["true_coords"], res["coords"], ks=KS)
    for k in KS:
        row[f"hit{k}_coords"] = hn[k]
    if "embedding" in res:
        he = metrics.hit_number(data["true_coords"], embedding=res["embedding"], ks=KS)
        for k in KS:
            row[f"hit{k}_embedding"] = he[k]
    if "adjacency_nn" in res:  # ranked lists → a sparse similarity, larger = nearer
        nn = res["adjacency_nn"]
        m, k = nn.shape
        keep = nn >= 0
        sim = sp.csr_matrix(
            (
                np.broadcast_to(np.arange(k, 0, -1, dtype=np.float32), nn.shape)[keep],
                (np.repeat(np.arange(m), k).reshape(m, k)[keep], nn[keep]),
            ),
            shape=(m, m),
        )
        ha = metrics.hit_number(
            data["true_coords"], pred_adjacency=sim, ks=[x for x in KS if x <= k]
        )
        for kk, v in ha.items():
            row[f"hit{kk}_adjacency"] = v
    elif "embedding" in res:  # the STEM family's SC–SC adjacency: embedding inner products
        for k in KS:
            row[f"hit{k}_adjacency"] = row[f"hit{k}_embedding"]
    row["mae_steps"] = metrics.mae(data["true_coords"], res["coords"], unit=data["step"])
    out = data["outside"]  # cells in no spot: their own counts are in no spot profile
    row["mae_outside_steps"] = metrics.mae(
        data["true_coords"][out], res["coords"][out], unit=data["step"]
    )
    pcc = metrics.celltype_pcc(res["sc_to_st"], data["labels"], data["proportions"])
    row["pcc_mean"] = float(pcc.mean())
    row["pcc_sd"] = float(pcc.std())
    row["pcc_n_types"] = int(pcc.notna().sum())
    row["cells_missing"] = int(res["n_missing"])


# ---------------------------------------------------------------------------- reports
def plot_positions(
    data: dict[str, Any], preds: dict[str, np.ndarray], rows: list[dict[str, Any]], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = pd.Categorical(data["labels"])
    cmap = plt.get_cmap("tab20").colors + plt.get_cmap("tab20b").colors
    cmap = cmap + plt.get_cmap("tab20c").colors
    colors = np.asarray(cmap)[np.asarray(cats.codes) % len(cmap)]
    panels = [("truth", data["true_coords"], "")] + [
        (
            m,
            xy,
            next(
                (
                    f"MAE {r['mae_steps']:.2f} steps, hit@25 {r['hit25_coords']:.1f}"
                    for r in rows
                    if r["method"] == m and "mae_steps" in r
                ),
                "",
            ),
        )
        for m, xy in preds.items()
    ]
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n + 2.6, 4.6), squeeze=False)
    for ax, (name, xy, note) in zip(axes[0], panels):
        ax.scatter(xy[:, 0], xy[:, 1], c=colors, s=2, linewidths=0, rasterized=True)
        title = "true positions" if name == "truth" else METHODS[name]["label"]
        ax.set_title(title + (f"\n{note}" if note else ""), fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=cmap[i % len(cmap)], markersize=4, label=c)
        for i, c in enumerate(cats.categories)
    ]
    fig.legend(
        handles=handles,
        loc="center right",
        fontsize=6,
        frameon=False,
        ncol=1 if len(handles) <= 26 else 2,
    )
    fig.suptitle(
        f"{data['name']}: {data['n_cells']} cells, {data['n_spots']} pseudo spots (first seed)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1 - 2.4 / (3.4 * n + 2.6), 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(values: pd.Series, digits: int = 2) -> str:
    v = values.dropna()
    if v.empty:
        return "–"
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"


def write_markdown(
    df: pd.DataFrame,
    datasets: list[dict[str, Any]],
    args: argparse.Namespace,
    machine: str,
    path: Path,
) -> None:
    lines = [
        "# Semi-simulation benchmark",
        "",
        f"Generated {dt.datetime.now().isoformat(timespec='seconds')} by "
        f"`benchmarks/run_benchmark.py` (`{' '.join(sys.argv[1:]) or 'defaults'}`).",
        "",
        f"- Machine: {machine}; device `{args.device}`. Load average (1 min) at the start "
        f"and end of the run: {args.load_start:.1f} / {os.getloadavg()[0]:.1f} (times measured "
        "on a shared machine are only comparable within one run).",
        f"- Settings: {args.epochs} epochs for every method; seeds {args.seeds}; pseudo spots "
        f"on a {args.grid[0]} × {args.grid[1]} grid, window {args.window} of the grid step, "
        f"spots with < {args.min_cells} cells dropped"
        + (f"; Gaussian noise R = {args.noise} on the SC counts" if args.noise > 0 else "")
        + ".",
        "- Hit number(K): mean over cells of |true K-NN ∩ predicted K-NN|, the cell itself "
        "excluded, ties broken at random; `coords` = from predicted coordinates; `adj` = from "
        "the SC–SC adjacency the method outputs (stemmap: `sc_adjacency()`'s default, the "
        "spatial basis for the hybrid readout; the STEM reference and the paper preset: "
        "embedding inner products); `emb` = from the SC embedding's inner products (STEM "
        "family). Random level: K²/(M−1).",
        "- MAE in grid steps (geometric mean of the x/y steps); `MAE outside spots`: over "
        "the cells that are in no pseudo spot (the others' own counts are part of a spot "
        "profile, which favours expression matching; real SC cells are never in the ST "
        "spots). PCC: mean ± sd over cell "
        "types of corr(Σ of the type's mapping rows, true proportion), types present in a "
        "spot only.",
        "- Train s: wall time of training alone; peak MB: peak RSS of the method's process "
        "(interpreter, libraries and data included). Values are mean ± sd over seeds.",
        "",
    ]
    for data in datasets:
        sub = df[df["dataset"] == data["name"]]
        m = data["n_cells"]
        if data["split"] == "disjoint":
            about = (
                f"Disjoint cells (split seed {args.split_seed}): {m} SC cells (half B) × "
                f"{data['n_genes']} genes mapped onto {data['n_spots']} pseudo spots made from "
                f"the other half (A; {data['n_in_spots']} of its cells in spots); no mapped "
                "cell is in a spot (MAE outside spots = MAE)"
            )
        else:
            about = (
                f"{m} cells × {data['n_genes']} genes, {data['n_spots']} pseudo spots holding "
                f"{data['n_in_spots']} cells ({100 * data['n_in_spots'] / m:.0f}%)"
            )
        lines += [
            f"## {data['name']}",
            "",
            about
            + f"; grid step {data['step']:.4g}; σ = {data['sigma']:.4g}. Random hit number: "
            + ", ".join(f"K={k}: {k * k / (m - 1):.2f}" for k in KS)
            + ".",
            "",
            "| method | status | "
            + " | ".join(f"hit@{k} coords" for k in KS)
            + " | "
            + " | ".join(f"hit@{k} adj" for k in KS)
            + " | hit@50 emb | MAE (steps) | MAE outside spots | cell-type PCC | train s "
            "| peak MB |",
            "|" + "---|" * (2 + 2 * len(KS) + 6),
        ]
        for method in args.methods:
            r = sub[sub["method"] == method]
            if r.empty:
                continue
            ok = r[r["status"] == "ok"]
            status = "ok" if len(ok) == len(r) else "; ".join(sorted(set(r["status"])))
            cells = [METHODS[method]["label"], status]
            for kind in ("coords", "adjacency"):
                for k in KS:
                    col = f"hit{k}_{kind}"
                    cells.append(_fmt(ok[col]) if col in ok else "–")
            cells.append(_fmt(ok["hit50_embedding"]) if "hit50_embedding" in ok else "–")
            cells.append(_fmt(ok["mae_steps"]) if "mae_steps" in ok else "–")
            cells.append(_fmt(ok["mae_outside_steps"]) if "mae_outside_steps" in ok else "–")
            if "pcc_mean" in ok and ok["pcc_mean"].notna().any():
                pm = ok["pcc_mean"].mean()
                ps = ok["pcc_sd"].mean()
                cells.append(f"{pm:.3f} ± {ps:.3f}")
            else:
                cells.append("–")
            cells.append(_fmt(ok["train_s"], 1) if "train_s" in ok else "–")
            cells.append(_fmt(ok["peak_rss_mb"], 0) if "peak_rss_mb" in ok else "–")
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"![{data['name']}]({data['name']}_positions.png)", ""]
    path.write_text("\n".join(lines))


# ------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--datasets",
        nargs="+",
        type=Path,
        default=None,
        help="single-cell-resolution .h5ad files (default: every .h5ad in "
        "$STEMMAP_SHARED_DATA or ../shared/data)",
    )
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--epochs", type=int, default=400)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per method run")
    p.add_argument("--grid", nargs=2, type=int, default=[30, 40])
    p.add_argument("--window", type=float, default=0.55)
    p.add_argument("--min-cells", type=int, default=3)
    p.add_argument("--label-key", default="celltype")
    p.add_argument(
        "--splits",
        nargs="+",
        default=["standard", "disjoint"],
        choices=["standard", "disjoint"],
        help="standard: pseudo spots from all cells, every cell mapped (the paper's); "
        "disjoint: spots from a random half of the cells, the other half mapped (no mapped "
        "cell is in a spot)",
    )
    p.add_argument("--split-seed", type=int, default=0, help="seed of the disjoint split")
    p.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="Gaussian noise level R on the SC counts (paper: 0.2-0.8)",
    )
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--cache", type=Path, default=HERE / "cache")
    p.add_argument(
        "--cached-only",
        nargs="*",
        default=[],
        metavar="METHOD",
        help="methods to take only from cached outputs (e.g. a slow reference run for one "
        "seed); seeds without a cached output are left out of the tables",
    )
    p.add_argument(
        "--reread",
        action="store_true",
        help="stemmap methods: read saved models (cache/.../<method>_seed<s>.model.pt) out "
        "again with the current code instead of training or reusing their outputs",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="reuse a method's cached output (.npz) instead of running it again; the same "
        "settings are assumed (use it to rebuild the tables or add methods or seeds)",
    )
    args = p.parse_args(argv)
    if args.datasets is None:
        d = default_data_dir()
        args.datasets = sorted(d.glob("*.h5ad"))
        if not args.datasets:
            p.error(f"no .h5ad files in {d}; pass --datasets or set STEMMAP_SHARED_DATA")
    for f in args.datasets:
        if not f.exists():
            p.error(f"--datasets: {f} not found")
    if args.epochs < 1:
        p.error(f"--epochs must be >= 1; found {args.epochs}")
    if "stem_ref" in args.methods and args.epochs <= 50:
        # The reference's loss ramp is (epoch - 50) / (epochs - 50): a division by zero at 50
        # and a weight above 1 below it. stemmap clips it; use > 50 epochs to compare.
        logger.warning(
            "--epochs %d <= 50: the reference STEM's beta ramp is ill-defined there "
            "(division by zero at 50); use more than 50 epochs",
            args.epochs,
        )
        if args.epochs == 50:
            p.error("--epochs 50 crashes the reference STEM (division by zero); use 51 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    sys.path.insert(0, str(REPO / "python" / "src"))
    args.out.mkdir(parents=True, exist_ok=True)
    machine = machine_description(args.device)
    args.load_start = os.getloadavg()[0]
    logger.info("machine: %s", machine)
    rows: list[dict[str, Any]] = []
    datasets = []
    for path, split in [(p, s) for p in args.datasets for s in args.splits]:
        cache = args.cache / (path.stem if split == "standard" else f"{path.stem}_{split}")
        data = prepare_dataset(path, args, cache, split)
        datasets.append(data)
        logger.info(
            "%s: %d cells, %d spots, %d genes",
            data["name"],
            data["n_cells"],
            data["n_spots"],
            data["n_genes"],
        )
        preds: dict[str, np.ndarray] = {}
        for method in args.methods:
            for seed in args.seeds:
                if method in args.cached_only and not (cache / f"{method}_seed{seed}.npz").exists():
                    logger.info("%s / %s / seed %d: no cached output", data["name"], method, seed)
                    continue
                row, res = run_method(method, data, seed, args, cache)
                if res is not None:
                    score(row, res, data)
                    if method not in preds:
                        preds[method] = res["coords"]
                    logger.info(
                        "%s / %s / seed %d: hit@25 %.2f, MAE %.2f steps, PCC %.3f, %.1f s",
                        data["name"],
                        method,
                        seed,
                        row["hit25_coords"],
                        row["mae_steps"],
                        row["pcc_mean"],
                        row["train_s"],
                    )
                rows.append(row)
                pd.DataFrame(rows).to_csv(args.out / "results.csv", index=False)
        plot_positions(
            data,
            preds,
            [r for r in rows if r["dataset"] == data["name"]],
            args.out / f"{data['name']}_positions.png",
        )
    df = pd.DataFrame(rows)
    df.insert(0, "machine", machine)
    df.insert(1, "device", args.device)
    df.insert(2, "epochs", args.epochs)
    df.to_csv(args.out / "results.csv", index=False)
    write_markdown(df, datasets, args, machine, args.out / "results.md")
    logger.info("wrote %s and %s", args.out / "results.md", args.out / "results.csv")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
