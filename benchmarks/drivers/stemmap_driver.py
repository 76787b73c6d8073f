"""Benchmark driver: stemmap (this project's STEM) through its public API."""

from __future__ import annotations

import driver_io as io


def main() -> None:
    args = io.parse_args(__doc__)
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
    m = model.mapping()
    io.save(
        args.out,
        m.sc_names,
        m.sc_to_st,
        m.coords,
        t.seconds,
        embedding=m.sc_embedding,
        setup_s=setup.seconds,
        method="stemmap",
        version=stemmap.__version__,
    )


if __name__ == "__main__":
    main()
