"""Benchmark driver: stemmap (this project's STEM) through its public API."""

from __future__ import annotations

import driver_io as io
import numpy as np


def _extra(p) -> None:
    p.add_argument(
        "--readout", default=None, help="mapping readout (hybrid, paper; default: the model's)"
    )
    p.add_argument("--adjacency-k", type=int, default=200, help="SC–SC neighbours to save")
    p.add_argument("--extra-readouts", nargs="*", default=[], help="also save these readouts")
    p.add_argument(
        "--save-model", default=None, help="also save the trained model here (STEM.save)"
    )


def main() -> None:
    args = io.parse_args(__doc__, extra=_extra)
    sc, st = io.load(args)
    import stemmap

    with io.Timer() as setup:
        model = stemmap.STEM(
            sc,
            st,
            spatial_key="spatial",
            sigma=args.sigma,
            alpha=0.5,
            device=args.device,
            seed=args.seed,
        )
    with io.Timer() as t:
        if args.preset:
            model.train(preset=args.preset, progress=False)
        else:
            model.train(epochs=args.epochs, lr=0.002, progress=False)
    if args.save_model:
        model.save(args.save_model)
    for i, readout in enumerate([args.readout, *args.extra_readouts]):
        with io.Timer() as tm:
            m = model.mapping(readout=readout)
            c, xy = m.sc_to_st, m.coords
        with io.Timer() as ta:  # the SC–SC adjacency the mapping gives by default
            A = m.sc_adjacency(k=args.adjacency_k, weighted=True)
            order = np.argsort(-A.data.reshape(-1, args.adjacency_k), axis=1, kind="stable")
            nn = np.take_along_axis(A.indices.reshape(-1, args.adjacency_k), order, axis=1)
        out = args.out if i == 0 else args.out.replace(".npz", f".{readout}.npz")
        io.save(
            out,
            m.sc_names,
            c,
            xy,
            t.seconds,
            embedding=m.sc_embedding,
            adjacency_nn=nn,
            setup_s=setup.seconds,
            readout_s=tm.seconds,
            adjacency_s=ta.seconds,
            readout=m.readout,
            sigma=[float(s) for s in model.settings["sigma"]],
            preset=args.preset,
            method="stemmap",
            version=stemmap.__version__,
        )


if __name__ == "__main__":
    main()
