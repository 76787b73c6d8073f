"""Benchmark driver: novoSpaRc (PyPI novosparc), mapping cells onto the known spots.

SC and ST are restricted to the shared genes and normalize_total + log1p'd (the paper's
preprocessing for every method). The spots are novoSpaRc's target locations and their
expression is the reference atlas, with every shared gene a marker, so the transport
plan mixes the atlas (linear) term with the Gromov-Wasserstein structural term
(cell-cell expression graph vs spot-spot physical graph, 5 nearest neighbours each,
novoSpaRc's default). ``alpha_linear`` = 0.8 weights the atlas: the pseudo spots are
measured on the same genes as the cells, so the atlas is the strong signal, while the
structural term assumes that expression neighbours are spatial neighbours, which holds
only loosely for mixed tissues. ``epsilon`` (entropic regularisation) starts at 5e-3,
the value of novoSpaRc's tutorials; on numerical errors it is raised ten-fold, as
novoSpaRc's own ``search_epsilon`` intends (its check reads stdout, but current POT
reports the error as a Python warning, so the search is done here).

novoSpaRc iterates to its own tolerance (at most 1,000 outer iterations, not exposed by
``Tissue.reconstruct``), so ``--epochs`` is not used. It runs on the CPU with numpy
(``--device`` is ignored) and starts from the deterministic product coupling; numpy is
seeded with ``--seed`` anyway. The transport plan (cells × spots) normalised per cell is
the SC→ST matrix, and the coordinates are its product with the spot coordinates.
"""

from __future__ import annotations

import warnings

import driver_io as io
import numpy as np

ALPHA_LINEAR = 0.8
EPSILON = 5e-3
MAX_EPSILON = 5e-1
NUM_NEIGHBORS = 5


def _reconstruct(tissue: object, epsilon: float) -> float:
    """Run ``tissue.reconstruct``; raise epsilon ten-fold on numerical errors."""
    while True:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tissue.reconstruct(alpha_linear=ALPHA_LINEAR, epsilon=epsilon, search_epsilon=False)
        failed = any("numerical errors" in str(w.message) for w in caught)
        failed = failed or not np.all(np.isfinite(tissue.gw)) or tissue.gw.sum() <= 0
        if not failed or epsilon * 10 > MAX_EPSILON:
            return epsilon
        print(f"novosparc driver: numerical errors at epsilon {epsilon:.1e}, retrying")
        epsilon *= 10


def main() -> None:
    args = io.parse_args(__doc__)
    np.random.seed(args.seed)  # noqa: NPY002 (novoSpaRc draws from the global RNG)
    sc, st = io.load(args)
    import novosparc

    genes = io.shared_genes(sc, st)
    sc, st = sc[:, genes].copy(), st[:, genes].copy()
    sc.X = io.lognorm(sc.X).astype(np.float64)
    atlas = io.lognorm(st.X).astype(np.float64)
    locations = np.asarray(st.obsm["spatial"], dtype=np.float64)[:, :2]
    with io.Timer() as t:
        tissue = novosparc.cm.Tissue(dataset=sc, locations=locations)
        tissue.setup_reconstruction(
            atlas_matrix=atlas,
            markers_to_use=np.arange(len(genes)),
            num_neighbors_s=NUM_NEIGHBORS,
            num_neighbors_t=NUM_NEIGHBORS,
        )
        epsilon = _reconstruct(tissue, EPSILON)
    gw = np.asarray(tissue.gw, dtype=np.float64)
    if not np.all(np.isfinite(gw)):
        raise SystemExit("novoSpaRc returned a non-finite transport plan")
    rs = gw.sum(axis=1, keepdims=True)
    rs[rs == 0] = 1.0
    mapping = gw / rs
    io.save(
        args.out,
        sc.obs_names,
        mapping,
        mapping @ locations,
        t.seconds,
        method="novoSpaRc",
        version=getattr(novosparc, "__version__", "?"),
        alpha_linear=ALPHA_LINEAR,
        epsilon=epsilon,
    )


if __name__ == "__main__":
    main()
