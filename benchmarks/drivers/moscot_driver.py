"""Benchmark driver: moscot (PyPI moscot), spatial mapping by fused Gromov-Wasserstein.

moscot's spatial mapping tutorial: SC and ST log-normalised (normalize_total + log1p, the
benchmark's preprocessing for every method), the SC data's PCA (scanpy, 30 components or
fewer) as the SC side of the quadratic term, the spot coordinates as the ST side,
``MappingProblem(adata_sc, adata_sp).prepare(sc_attr={"attr": "obsm", "key": "X_pca"},
xy_callback="local-pca").solve()`` with moscot's defaults (α 0.5, ε 0.01, balanced); the
linear term is the local PCA of the shared genes. The transport matrix (spots × cells) is
transposed and normalised per cell into the SC→ST matrix; coordinates are its product
with the spot coordinates. Runs on the CPU with JAX (``--epochs`` is not used); the seed
seeds numpy (moscot's solvers are deterministic).
"""

from __future__ import annotations

import os
from importlib.metadata import version as _version

import driver_io as io
import numpy as np

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def main() -> None:
    args = io.parse_args(__doc__)
    np.random.seed(args.seed)  # noqa: NPY002
    sc, st = io.load(args)
    import anndata as ad
    import pandas as pd
    import scanpy as scp
    from moscot.problems.space import MappingProblem

    genes = io.shared_genes(sc, st)
    adata_sc = ad.AnnData(
        io.lognorm(sc.X), obs=pd.DataFrame(index=sc.obs_names), var=pd.DataFrame(index=sc.var_names)
    )
    adata_sp = ad.AnnData(
        io.lognorm(st[:, genes].X),
        obs=pd.DataFrame(index=st.obs_names),
        var=pd.DataFrame(index=pd.Index(genes)),
    )
    adata_sp.obsm["spatial"] = np.asarray(st.obsm["spatial"], dtype=np.float64)[:, :2]
    n_pcs = int(min(30, adata_sc.n_obs - 1, adata_sc.n_vars - 1))
    with io.Timer() as t:
        scp.pp.pca(adata_sc, n_comps=n_pcs, random_state=args.seed)
        mp = MappingProblem(adata_sc=adata_sc, adata_sp=adata_sp)
        mp = mp.prepare(sc_attr={"attr": "obsm", "key": "X_pca"}, xy_callback="local-pca")
        mp = mp.solve()
        sol = next(iter(mp.solutions.values()))
        plan = np.asarray(sol.transport_matrix, dtype=np.float64)  # spots × cells
    plan = plan.T
    if not np.all(np.isfinite(plan)):
        raise SystemExit("moscot returned a non-finite transport matrix")
    rs = plan.sum(axis=1, keepdims=True)
    rs[rs <= 0] = 1.0
    mapping = plan / rs
    io.save(
        args.out,
        adata_sc.obs_names,
        mapping,
        mapping @ adata_sp.obsm["spatial"],
        t.seconds,
        method="moscot",
        version=_version("moscot"),
        ott_version=_version("ott-jax"),
        settings={"alpha": 0.5, "epsilon": 0.01, "n_pcs": n_pcs, "xy_callback": "local-pca"},
        converged=bool(getattr(sol, "converged", True)),
    )


if __name__ == "__main__":
    main()
