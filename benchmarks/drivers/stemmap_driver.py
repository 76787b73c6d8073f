"""Benchmark driver: stemmap (this project's STEM) through its public API.

``--save-model`` also saves the trained model (and its training time in ``<model>.json``);
``--load-model`` reads a saved model out again without training (the reported training
time is the saved one), so that readout changes can be re-scored on the same models.
Readouts: ``hybrid`` (default), ``paper``, ``hybrid_log`` (the hybrid readout with
``expression_profile="log"``, stemmap 0.1's default).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import driver_io as io
import numpy as np

#: readout name → model.mapping() arguments
READOUTS = {
    "hybrid": {"readout": "hybrid"},
    "paper": {"readout": "paper"},
    "hybrid_log": {"readout": "hybrid", "expression_profile": "log"},
}


def _extra(p) -> None:
    p.add_argument(
        "--readout", default=None, help="mapping readout (hybrid, paper; default: the model's)"
    )
    p.add_argument("--adjacency-k", type=int, default=200, help="SC–SC neighbours to save")
    p.add_argument("--extra-readouts", nargs="*", default=[], help="also save these readouts")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: stemmap's)")
    p.add_argument(
        "--mixed-precision",
        choices=("auto", "on", "off"),
        default="auto",
        help="bfloat16 matrix products in training (default: stemmap's, auto)",
    )
    p.add_argument(
        "--save-model", default=None, help="also save the trained model here (STEM.save)"
    )
    p.add_argument(
        "--load-model", default=None, help="read this saved model out instead of training"
    )


def main() -> None:
    args = io.parse_args(__doc__, extra=_extra)
    sc, st = io.load(args)
    import stemmap

    mixed = {"auto": "auto", "on": True, "off": False}[args.mixed_precision]
    if args.load_model:
        model = stemmap.STEM.load(args.load_model, device=args.device)
        side = Path(args.load_model + ".json")
        saved = json.loads(side.read_text()) if side.exists() else {}
        train_s, setup_s = saved.get("train_s", math.nan), saved.get("setup_s", math.nan)
    else:
        with io.Timer() as setup:
            model = stemmap.STEM(
                sc,
                st,
                spatial_key="spatial",
                sigma=args.sigma,
                alpha=0.5,
                device=args.device,
                seed=args.seed,
                threads=args.threads,
            )
        with io.Timer() as t:
            if args.preset:
                model.train(preset=args.preset, progress=False, mixed_precision=mixed)
            else:
                model.train(epochs=args.epochs, lr=0.002, progress=False, mixed_precision=mixed)
        train_s, setup_s = t.seconds, setup.seconds
    if args.save_model and not args.load_model:
        model.save(args.save_model)
        Path(args.save_model + ".json").write_text(
            json.dumps({"train_s": train_s, "setup_s": setup_s})
        )
    for i, readout in enumerate([args.readout, *args.extra_readouts]):
        with io.Timer() as tm:
            m = model.mapping(**READOUTS.get(readout, {"readout": readout}))
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
            train_s,
            embedding=m.sc_embedding,
            adjacency_nn=nn,
            setup_s=setup_s,
            reread=bool(args.load_model),
            readout_s=tm.seconds,
            adjacency_s=ta.seconds,
            readout=readout or m.readout,
            mapping_settings=m.settings.get("mapping"),
            sigma=[float(s) for s in model.settings["sigma"]],
            preset=args.preset,
            method="stemmap",
            mixed_precision=model.train_settings.get("mixed_precision"),
            version=stemmap.__version__,
        )


if __name__ == "__main__":
    main()
