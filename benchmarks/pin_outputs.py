"""Fingerprints of stemmap's outputs, to show that a refactor changes no number.

Trains the default and the paper runs (and the quick preset) on the package's toy data and on a
slice of the shared embryo (when present), with fixed seeds and one thread, and writes the
SHA-256 of every public output array (embeddings, history, C, Ĉ, coordinates, best spots,
confidence, top-k, deconvolution, SC–SC graph) to a JSON file. Run it on two commits and
compare the files (``--compare before.json``) to see which outputs changed.

    python benchmarks/pin_outputs.py --out after.json --compare before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import stemmap
import torch


def digest(a: object) -> str:
    if sp.issparse(a):
        a = a.tocsr()
        parts = [a.indptr, a.indices, a.data]
    else:
        parts = [np.asarray(a)]
    h = hashlib.sha256()
    for p in parts:
        p = np.ascontiguousarray(p)
        h.update(str(p.dtype).encode() + str(p.shape).encode())
        h.update(p.tobytes())
    return h.hexdigest()[:16]


def fingerprint(sc, st, label_key: str, **train) -> dict[str, str]:
    model = stemmap.STEM(sc, st, seed=0, threads=1)
    model.train(progress=False, **train)
    m = model.mapping()
    out = {
        "sc_embedding": digest(m.sc_embedding),
        "st_embedding": digest(m.st_embedding),
        "history": digest(model.history.to_numpy(dtype=float)),
        "sc_to_st": digest(m.sc_to_st),
        "st_to_sc": digest(m.st_to_sc),
        "coords": digest(m.coords),
        "best_spot": digest(m.best_spot),
        "confidence": digest(m.confidence),
        "topk_mapping": digest(m.topk_mapping(5)),
        "topk_coords": digest(m.topk_coords(5)),
        "deconvolution": digest(m.deconvolve(sc.obs[label_key]).to_numpy(dtype=float)),
        "sc_adjacency": digest(m.sc_adjacency(10)),
    }
    return out


def cases() -> dict[str, tuple]:
    """Return the toy data and the embryo slice (an error when the shared data is missing)."""
    sc, st = stemmap.datasets.toy_data(seed=0)
    found = {"toy": (sc, st, "celltype")}
    # the shared embryo (STEMMAP_SHARED_DATA or ../shared/data beside the checkout)
    cells = stemmap.datasets.load_shared("embryo2_z2")
    sc, st = stemmap.simulate.pseudo_spots(cells, grid=(15, 20), seed=0)
    found["embryo"] = (sc, st, "celltype")
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--compare", default=None)
    ap.add_argument("--epochs", type=int, default=30)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    runs = {
        "default": {"epochs": a.epochs},
        "paper": {"preset": "paper"},
        "quick": {"preset": "quick"},
    }
    res: dict[str, dict[str, str]] = {}
    for cname, (sc, st, key) in cases().items():
        for rname, kw in runs.items():
            if cname != "toy" and rname == "paper":
                continue
            res[f"{cname}/{rname}"] = fingerprint(sc, st, key, **kw)
            print(cname, rname, "done", flush=True)
    Path(a.out).write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    if a.compare:
        old = json.loads(Path(a.compare).read_text())
        changed = [
            f"{run}:{k}"
            for run in sorted(set(old) | set(res))
            for k in sorted(set(old.get(run, {})) | set(res.get(run, {})))
            if old.get(run, {}).get(k) != res.get(run, {}).get(k)
        ]
        print("changed:", ", ".join(changed) if changed else "nothing")
        return 1 if changed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
