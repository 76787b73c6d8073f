"""Benchmark driver: stemmap (this project's STEM) through its public API."""

from __future__ import annotations

import driver_io as io


def _extra(p) -> None:
    p.add_argument("--readout", default="hybrid", help="mapping readout (hybrid, paper)")
    p.add_argument("--extra-readouts", nargs="*", default=[], help="also save these readouts")


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
    for readout in [args.readout, *args.extra_readouts]:
        with io.Timer() as tm:
            m = model.mapping(readout=readout)
            c, xy = m.sc_to_st, m.coords
        out = args.out if readout == args.readout else args.out.replace(".npz", f".{readout}.npz")
        io.save(
            out,
            m.sc_names,
            c,
            xy,
            t.seconds,
            embedding=m.sc_embedding,
            setup_s=setup.seconds,
            readout_s=tm.seconds,
            readout=readout,
            method="stemmap",
            version=stemmap.__version__,
        )


if __name__ == "__main__":
    main()
