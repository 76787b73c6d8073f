"""Benchmark driver: TACCO (PyPI tacco), single cells mapped onto the spots by OT.

TACCO's recipe for "mapping single cells into space": every cell is its own annotation
category, its counts being the category's profile in ``reference.varm["cell"]`` (genes ×
cells), and the spots are annotated with ``tacco.tl.annotate(spots, reference, "cell",
method="OT", multi_center=None)`` (TACCO's defaults otherwise: its platform
normalisation and its OT settings). Both inputs are raw counts on the shared genes, as TACCO
expects. The result (spots × cells, each spot's composition) is transposed and
normalised per cell into the SC→ST matrix; coordinates are its product with the spot
coordinates (the benchmark's unification). TACCO is deterministic (the seed is ignored) and
runs on the CPU (``--device`` and ``--epochs`` are not used). Cells without counts on the
shared genes are left out (the benchmark fills them with a uniform mapping).
"""

from __future__ import annotations

from importlib.metadata import version as _version

import driver_io as io
import numpy as np


def main() -> None:
    args = io.parse_args(__doc__)
    sc, st = io.load(args)
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp
    import tacco as tc

    genes = io.shared_genes(sc, st)
    sc, st = sc[:, genes].copy(), st[:, genes].copy()
    x_sc = sc.X.toarray() if sp.issparse(sc.X) else np.asarray(sc.X)
    # a cell without counts on the shared genes has no profile (TACCO's distances would be
    # NaN): left out, as stemmap drops it too; the benchmark fills left-out cells uniformly
    nonzero = x_sc.sum(axis=1) > 0
    sc, x_sc = sc[nonzero], x_sc[nonzero]
    spots = ad.AnnData(
        sp.csr_matrix(st.X, dtype=np.float32),
        obs=pd.DataFrame(index=st.obs_names.astype(str)),
        var=pd.DataFrame(index=pd.Index(genes)),
    )
    reference = ad.AnnData(
        sp.csr_matrix(x_sc, dtype=np.float32),
        obs=pd.DataFrame(index=sc.obs_names.astype(str)),
        var=pd.DataFrame(index=pd.Index(genes)),
    )
    reference.varm["cell"] = pd.DataFrame(
        x_sc.T.astype(np.float64), index=pd.Index(genes), columns=reference.obs_names
    )
    with io.Timer() as t:
        comp = tc.tl.annotate(
            spots, reference, annotation_key="cell", method="OT", multi_center=None, verbose=0
        )
    comp = comp.reindex(index=spots.obs_names, columns=reference.obs_names).fillna(0.0)
    plan = comp.to_numpy(dtype=np.float64).T  # cells × spots
    rs = plan.sum(axis=1, keepdims=True)
    dropped = int((rs[:, 0] <= 0).sum())
    rs[rs <= 0] = 1.0
    mapping = plan / rs
    coords = np.asarray(st.obsm["spatial"], dtype=np.float64)[:, :2]
    io.save(
        args.out,
        reference.obs_names,
        mapping,
        mapping @ coords,
        t.seconds,
        method="TACCO",
        version=_version("tacco"),
        settings={"method": "OT", "multi_center": None, "annotation": "every cell"},
        cells_without_mass=dropped,
        cells_without_counts=int((~nonzero).sum()),
    )


if __name__ == "__main__":
    main()
