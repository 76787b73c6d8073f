"""Benchmark driver: trivial baseline — each cell at its most correlated spot.

Pearson correlation over the shared genes of log-normalised expression (total 10,000 +
log1p); the mapping is one-hot on the best spot and the cell takes that spot's coordinates.
Deterministic (the seed is ignored); processed in chunks of cells.
"""

from __future__ import annotations

import driver_io as io
import numpy as np


def _zscore(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    sd = np.sqrt((x**2).sum(axis=1, keepdims=True))
    sd[sd == 0] = 1.0
    return x / sd


def main() -> None:
    args = io.parse_args(__doc__)
    sc, st = io.load(args)
    genes = io.shared_genes(sc, st)
    with io.Timer() as t:
        zst = _zscore(io.lognorm(st[:, genes].X))
        xsc = sc[:, genes].X
        best = np.empty(sc.n_obs, dtype=np.int64)
        for a in range(0, sc.n_obs, 8192):
            zsc = _zscore(io.lognorm(xsc[a : a + 8192]))
            best[a : a + 8192] = np.argmax(zsc @ zst.T, axis=1)
    mapping = np.zeros((sc.n_obs, st.n_obs), dtype=np.float32)
    mapping[np.arange(sc.n_obs), best] = 1.0
    coords = np.asarray(st.obsm["spatial"], dtype=np.float64)[best, :2]
    io.save(args.out, sc.obs_names, mapping, coords, t.seconds, method="baseline")


if __name__ == "__main__":
    main()
