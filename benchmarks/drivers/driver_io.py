"""Shared input/output of the benchmark drivers.

Every driver runs as its own process (possibly in its own virtual environment) and needs
only numpy, scipy and anndata from here. Protocol::

    python <driver>.py --sc SC.h5ad --st ST.h5ad --out OUT.npz --epochs E --seed S \
        --device cpu [--sigma SIGMA]

Inputs hold raw counts in ``X``; ``ST.h5ad`` has the spot coordinates in
``obsm["spatial"]``. No ground truth (cell coordinates, labels, proportions) is given to
a driver. The output ``.npz`` holds ``sc_names`` (cells in the order of the other arrays),
``sc_to_st`` (cells × spots mapping), ``coords`` (cells × 2), optionally ``embedding``
(cells × h), optionally ``adjacency_nn`` (cells × K: each cell's K nearest other cells in
the method's SC–SC adjacency, nearest first, as row indices of the same order), and ``meta``
(a JSON string with train time and peak memory).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from typing import Any

import numpy as np


def parse_args(description: str, extra: Any = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--sc", required=True, help="single-cell counts (.h5ad)")
    p.add_argument("--st", required=True, help="spot counts with obsm['spatial'] (.h5ad)")
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--epochs", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--sigma", type=float, default=None, help="adjacency kernel sigma (STEM)")
    p.add_argument("--preset", default=None, help="stemmap training preset (stemmap driver)")
    p.add_argument(
        "--timing-only",
        action="store_true",
        help="write only the cell names and meta (time, memory), not the mapping (scaling runs)",
    )
    if extra is not None:
        extra(p)  # driver-specific options
    return p.parse_args()


def load(args: argparse.Namespace) -> tuple[Any, Any]:
    import anndata as ad

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc = ad.read_h5ad(args.sc)
        st = ad.read_h5ad(args.st)
    return sc, st


def shared_genes(sc: Any, st: Any) -> list[str]:
    genes = [g for g in st.var_names if g in set(sc.var_names)]
    if not genes:
        raise SystemExit("no shared genes between SC and ST")
    return genes


def lognorm(x: Any) -> np.ndarray:
    """Log-normalise counts: total 10,000 per row, log1p, dense float32 (scanpy-like)."""
    import scipy.sparse as sp

    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    x = x.astype(np.float64)
    tot = x.sum(axis=1, keepdims=True)
    tot[tot == 0] = 1.0
    return np.log1p(x / tot * 1e4).astype(np.float32)


def peak_rss_mb() -> float:
    """Peak resident memory of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)


def cuda_peak_mb() -> float | None:
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return torch.cuda.max_memory_allocated() / 2**20
    except ImportError:
        pass
    return None


class Timer:
    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.t0


def save(
    path: str,
    sc_names: Any,
    sc_to_st: np.ndarray,
    coords: np.ndarray,
    train_s: float,
    embedding: np.ndarray | None = None,
    adjacency_nn: np.ndarray | None = None,
    **meta: Any,
) -> None:
    meta = dict(meta)
    meta.update(train_s=float(train_s), peak_rss_mb=peak_rss_mb(), cuda_peak_mb=cuda_peak_mb())
    if "--timing-only" in sys.argv:
        np.savez(path, sc_names=np.asarray([str(s) for s in sc_names]), meta=json.dumps(meta))
        print(f"driver: wrote {path} (timing only): {json.dumps(meta)}")
        return
    arrays = {
        "sc_names": np.asarray([str(s) for s in sc_names]),
        "sc_to_st": np.asarray(sc_to_st, dtype=np.float32),
        "coords": np.asarray(coords, dtype=np.float64),
        "meta": np.asarray(json.dumps(meta)),
    }
    if embedding is not None:
        arrays["embedding"] = np.asarray(embedding, dtype=np.float32)
    if adjacency_nn is not None:
        arrays["adjacency_nn"] = np.asarray(adjacency_nn, dtype=np.int64)
    np.savez(path, **arrays)
    print(f"driver: wrote {path}: {json.dumps(meta)}")
