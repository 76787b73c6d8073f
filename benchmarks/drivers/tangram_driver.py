"""Benchmark driver: Tangram (PyPI tangram-sc), cells mode, default settings.

SC and ST are normalize_total + log1p'd (the paper's preprocessing for every method),
all shared genes are training genes, ``num_epochs`` = the benchmark's epochs. Tangram's
mapping (cells × spots; each spot's column sums to 1) is the SC→ST matrix; coordinates are
its row-normalised product with the spot coordinates (the paper's unification).
"""

from __future__ import annotations

import logging

import driver_io as io
import numpy as np


def main() -> None:
    args = io.parse_args(__doc__)
    sc, st = io.load(args)
    import tangram as tg

    logging.getLogger().setLevel(logging.WARNING)
    genes = io.shared_genes(sc, st)
    sc, st = sc[:, genes].copy(), st[:, genes].copy()
    sc.X = io.lognorm(sc.X)
    st.X = io.lognorm(st.X)
    tg.pp_adatas(sc, st, genes=None)
    with io.Timer() as t:
        ad_map = tg.map_cells_to_space(
            sc,
            st,
            mode="cells",
            density_prior="rna_count_based",
            num_epochs=args.epochs,
            device=args.device,
            random_state=args.seed,
            verbose=False,
        )
    mapping = np.asarray(ad_map.X, dtype=np.float64)
    coords = np.asarray(st.obsm["spatial"], dtype=np.float64)[:, :2]
    rs = mapping.sum(axis=1, keepdims=True)
    rs[rs == 0] = 1.0
    io.save(
        args.out,
        ad_map.obs_names,
        mapping,
        (mapping / rs) @ coords,
        t.seconds,
        method="Tangram",
        version=getattr(tg, "__version__", "?"),
    )


if __name__ == "__main__":
    main()
