"""Benchmark driver: cell2location (PyPI cell2location 0.1.5), cell-type abundances per spot.

cell2location's documented two steps, on the CPU:

1. Reference regression (``cell2location.models.RegressionModel``) of the SC counts on the
   SC cell types (``obs["celltype"]`` of the SC input: the reference annotation a user has;
   no position or spot composition), on all SC genes, with the tutorial's settings
   (``batch_size=2500``, ``train_size=1``, ``lr=0.002``; ``--ref-epochs``, default 250),
   posterior means of the per-type expression (``means_per_cluster_mu_fg``) as signatures.
2. The spatial model (``cell2location.models.Cell2location``) on the genes shared with the
   spots, ``N_cells_per_location`` = the mean number of cells per spot of the data
   (``uns["mean_cells_per_spot"]`` of the ST input; the tutorial's "from histology"),
   ``detection_alpha=20``, full batch, ``train_size=1``, ``--epochs`` epochs (the tutorial's
   30,000 is for a GPU), posterior means of the abundances (``means_cell_abundance_w_sf``;
   1,000 posterior samples).

cell2location estimates abundances, not a cell mapping. The output's ``sc_to_st`` spreads each
spot's abundance of a type evenly over the SC cells of that type (cell c, spot s:
``w[s, type(c)] / n_type(c)``), so that a spot's type composition is cell2location's and the
benchmark's held-out-gene prediction (row-normalised spots × cells mapping × the cells'
expression) is the abundance-weighted mean of the type means. The coordinates derived from it
are not a placement (the benchmark does not score them). The abundances themselves are saved
as ``abundance`` (spots × types) with ``types``.

The reference signatures depend only on the SC input, the seed and ``--ref-epochs``: with
``$STEMMAP_BENCH_C2L_REF_CACHE`` set they are cached there under a hash of these (the
held-out-gene folds share one SC input), and the cached fit's time is added to the reported
training time.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib.metadata import version as _version
from pathlib import Path

import driver_io as io
import numpy as np


def _extra(p) -> None:
    p.add_argument("--ref-epochs", type=int, default=250, help="reference regression epochs")
    p.add_argument("--detection-alpha", type=float, default=20.0)
    p.add_argument("--label-key", default="celltype", help="SC cell types in obs")
    p.add_argument(
        "--samples", type=int, default=1000, help="posterior samples for the exported means"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: the model is small, and two threads on a loaded "
        "2-core machine spin)",
    )
    p.add_argument(
        "--checkpoints",
        nargs="*",
        type=int,
        default=[],
        help="also save the abundances after these many epochs (< --epochs) as "
        "<out>.e<N>.npz: training goes on from there (the epoch study)",
    )


def _signatures(sc, args) -> tuple:
    """Fit the reference regression (or read it from the cache): genes × types, seconds."""
    import pandas as pd
    import scipy.sparse as sp

    x = sc.X.toarray() if sp.issparse(sc.X) else np.asarray(sc.X)
    labels = sc.obs[args.label_key].astype(str).to_numpy()
    key = hashlib.sha1()
    for part in (x.astype(np.int64).tobytes(), "\n".join(labels).encode()):
        key.update(part)
    key.update("\n".join(map(str, sc.var_names)).encode())
    key.update(f"{args.seed}/{args.ref_epochs}/{args.samples}".encode())
    cache = os.environ.get("STEMMAP_BENCH_C2L_REF_CACHE")
    path = Path(cache) / f"ref_{key.hexdigest()[:16]}.csv" if cache else None
    if path is not None and path.exists():
        meta = json.loads(path.with_suffix(".json").read_text())
        return pd.read_csv(path, index_col=0), meta["ref_s"], True
    import anndata as ad
    from cell2location.models import RegressionModel

    ref = ad.AnnData(
        sp.csr_matrix(x.astype(np.float32)),
        obs=pd.DataFrame({"celltype": pd.Categorical(labels)}, index=sc.obs_names.astype(str)),
        var=pd.DataFrame(index=sc.var_names.astype(str)),
    )
    with io.Timer() as t:
        RegressionModel.setup_anndata(adata=ref, labels_key="celltype")
        mod = RegressionModel(ref)
        mod.train(
            max_epochs=args.ref_epochs,
            batch_size=2500,
            train_size=1,
            lr=0.002,
            accelerator="cpu",
            enable_progress_bar=False,
        )
        ref = mod.export_posterior(
            ref, sample_kwargs={"num_samples": args.samples, "batch_size": 2500}
        )
    factors = ref.uns["mod"]["factor_names"]
    varm = ref.varm["means_per_cluster_mu_fg"]
    sig = varm[[f"means_per_cluster_mu_fg_{f}" for f in factors]].copy()
    sig.columns = list(factors)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        sig.to_csv(path)
        path.with_suffix(".json").write_text(json.dumps({"ref_s": t.seconds}))
    return sig, t.seconds, False


def main() -> None:
    args = io.parse_args(__doc__, extra=_extra)
    sc, st = io.load(args)
    import anndata as ad
    import pandas as pd
    import pyro
    import scipy.sparse as sp
    from cell2location.models import Cell2location

    if args.label_key not in sc.obs:
        raise SystemExit(f"cell2location needs SC cell types in obs[{args.label_key!r}]")
    import torch

    torch.set_num_threads(args.threads)
    pyro.set_rng_seed(args.seed)  # seeds torch, numpy and random
    sig, ref_s, ref_cached = _signatures(sc, args)
    genes = [g for g in map(str, st.var_names) if g in set(sig.index)]
    if not genes:
        raise SystemExit("no shared genes between the signatures and the spots")
    n_cells = float(st.uns.get("mean_cells_per_spot", np.nan))
    if not np.isfinite(n_cells) or n_cells <= 0:
        raise SystemExit("the ST input has no uns['mean_cells_per_spot'] (N cells per spot)")
    xs = st[:, genes].X
    xs = xs.toarray() if sp.issparse(xs) else np.asarray(xs)
    vis = ad.AnnData(
        sp.csr_matrix(np.rint(xs).astype(np.float32)),
        obs=pd.DataFrame(index=st.obs_names.astype(str)),
        var=pd.DataFrame(index=pd.Index(genes)),
    )
    pyro.clear_param_store()
    Cell2location.setup_anndata(adata=vis)
    mod = Cell2location(
        vis,
        cell_state_df=sig.loc[genes],
        N_cells_per_location=n_cells,
        detection_alpha=args.detection_alpha,
    )
    stops = sorted({e for e in args.checkpoints if 0 < e < args.epochs}) + [args.epochs]
    done, spent = 0, 0.0
    for stop in stops:
        with io.Timer() as t:
            mod.train(
                max_epochs=stop - done,
                batch_size=None,
                train_size=1,
                accelerator="cpu",
                enable_progress_bar=False,
            )
            exported = mod.export_posterior(
                vis.copy(), sample_kwargs={"num_samples": args.samples, "batch_size": vis.n_obs}
            )
        spent += t.seconds
        done = stop
        out = args.out if stop == args.epochs else args.out.replace(".npz", f".e{stop}.npz")
        _save(out, sc, st, args, exported, mod, stop, spent, ref_s, ref_cached, len(genes), n_cells)


def _save(out, sc, st, args, vis, mod, epochs, spent, ref_s, ref_cached, n_genes, n_cells):
    """Write the abundances as the benchmark's output (mapping spread over each type's cells)."""
    import pandas as pd

    ab = vis.obsm["means_cell_abundance_w_sf"]
    types = [str(c).replace("meanscell_abundance_w_sf_", "") for c in ab.columns]
    w = ab.to_numpy(dtype=np.float64)  # spots × types
    elbo = mod.history.get("elbo_train") if hasattr(mod, "history") else None
    e = np.asarray([] if elbo is None else elbo, dtype=np.float64).ravel()
    labels = sc.obs[args.label_key].astype(str).to_numpy()
    col = pd.Index(types).get_indexer(labels)
    n_type = pd.Series(labels).value_counts()
    mapping = np.zeros((sc.n_obs, st.n_obs), dtype=np.float64)
    ok = col >= 0
    mapping[ok] = (w[:, col[ok]] / n_type.loc[labels[ok]].to_numpy()[None, :]).T
    rs = mapping.sum(axis=1, keepdims=True)
    rs[rs <= 0] = 1.0
    coords = (mapping / rs) @ np.asarray(st.obsm["spatial"], dtype=np.float64)[:, :2]
    io.save(
        out,
        sc.obs_names,
        mapping,
        coords,
        spent + ref_s,
        method="cell2location",
        version=_version("cell2location"),
        pyro=_version("pyro-ppl"),
        scvi=_version("scvi-tools"),
        settings={
            "epochs": epochs,
            "ref_epochs": args.ref_epochs,
            "N_cells_per_location": n_cells,
            "detection_alpha": args.detection_alpha,
            "samples": args.samples,
            "genes": n_genes,
        },
        spatial_s=spent,
        ref_s=ref_s,
        ref_cached=ref_cached,
        elbo_last=[float(v) for v in e[-5:]],
    )
    data = dict(np.load(out, allow_pickle=False))
    data["abundance"] = w.astype(np.float32)
    data["types"] = np.asarray(types)
    np.savez(out, **data)


if __name__ == "__main__":
    main()
