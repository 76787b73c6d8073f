"""Benchmark driver: the authors' reference STEM (PyPI scSTEM 0.0.2), used unmodified.

Follows the package README's workflow: scanpy normalize_total + log1p on SC and ST, the
README's dropout rate (1 − median genes per cell / median genes per spot), ``SOmodel`` with
``train_wholedata``, then SC→ST = softmax(Z_SC Z_STᵀ) and coordinates = SC→ST · Y_ST.
σ is passed in (the benchmark gives every STEM implementation the same σ) and α = 0.5.
"""

from __future__ import annotations

import tempfile

import driver_io as io
import numpy as np


def main() -> None:
    args = io.parse_args(__doc__)
    sc, st = io.load(args)
    import torch
    from STEM.model import SOmodel
    from STEM.utils import seed_all
    from torch.nn import functional as F

    genes = io.shared_genes(sc, st)
    sc, st = sc[:, genes].copy(), st[:, genes].copy()
    n_sc = float(np.median(np.asarray((sc.X > 0).sum(axis=1)).ravel()))
    n_st = float(np.median(np.asarray((st.X > 0).sum(axis=1)).ravel()))
    dp = float(min(max(1.0 - n_sc / n_st, 0.0), 0.99))
    xsc = torch.tensor(io.lognorm(sc.X))
    xst = torch.tensor(io.lognorm(st.X))
    coords = np.asarray(st.obsm["spatial"], dtype=np.float64)[:, :2]
    if args.sigma is None:
        from scipy.spatial import cKDTree

        d, _ = cKDTree(coords).query(coords, k=2)
        args.sigma = 0.5 * float(d[:, 1].mean())

    class Opt:
        pass

    opt = Opt()
    outdir = tempfile.mkdtemp(prefix="scstem_")
    for k, v in dict(
        device=args.device,
        outf=outdir,
        n_genes=len(genes),
        no_bn=False,
        lr=0.002,
        sigma=args.sigma,
        alpha=0.5,
        verbose=False,
        mmdbatch=1000,
        dp=dp,
    ).items():
        setattr(opt, k, v)
    seed_all(args.seed)
    model = SOmodel(opt)
    model.togpu()
    with io.Timer() as t:
        model.train_wholedata(args.epochs, xsc, xst, torch.tensor(coords).float())
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
    model.modeleval()
    with torch.no_grad():
        zsc = model.netE(xsc.to(args.device))
        zst = model.netE(xst.to(args.device))
        sc2st = F.softmax(zsc @ zst.t(), dim=1).cpu().numpy()
    io.save(
        args.out,
        sc.obs_names,
        sc2st,
        sc2st.astype(np.float64) @ coords,
        t.seconds,
        embedding=zsc.cpu().numpy(),
        method="STEM reference (scSTEM 0.0.2)",
        sigma=args.sigma,
        dropout=dp,
    )


if __name__ == "__main__":
    main()
