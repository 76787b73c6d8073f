"""The ``stemmap`` command line: ``map``, ``demo``, ``benchmark``, ``info``.

Exit codes: 0 success, 2 bad usage or bad input (missing file, wrong content, an output
that would overwrite an input), 1 other errors, 130 interrupted. Errors are one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

from ._data import GENE_MATCH
from ._defaults import MAPPING, MODEL, PRESETS, TRAIN
from ._resolve import resolve_run, split
from ._version import __version__
from .mapping import READOUTS

logger = logging.getLogger(__name__)


class CLIError(Exception):
    """A user-facing error: printed without a traceback, exit code 2."""


def _read_h5ad(path: str, what: str):
    import anndata as ad

    p = Path(path)
    if not p.exists():
        raise CLIError(f"--{what}: file not found: {p}")
    try:
        return ad.read_h5ad(p)
    except Exception as e:  # h5py/anndata raise many types for a bad file
        raise CLIError(
            f"--{what}: {p} is not a readable .h5ad file ({type(e).__name__}: {e})"
        ) from e


#: options of ``map`` and ``demo`` that set the run's argument of the same name (``--x-y`` ->
#: ``x_y``) and their types. All default to None, "not given": the run resolves it (caller →
#: preset → the defaults table, :mod:`stemmap._resolve`); help in _HELP
_COMMON: dict[str, type] = {
    "--epochs": int,
    "--lr": float,
    "--alpha": float,
    "--sigma": float,
    "--sigma-scale": float,
    "--device": str,
    "--seed": int,
    "--cell-batch-size": int,
    "--spot-batch-size": int,
    "--threads": int,
}
_HELP = {
    "--epochs": f"training epochs (default: the preset's, else {TRAIN['epochs']})",
    "--lr": f"learning rate (default: the preset's, else {TRAIN['lr']:g})",
    "--alpha": f"MMD weight (default {MODEL['alpha']:g})",
    "--sigma": "Gaussian kernel σ (default: --sigma-scale × the mean nearest-neighbour spot "
    "distance)",
    "--sigma-scale": "default σ in mean nearest-neighbour spot distances (default: the "
    f"preset's, else {MODEL['sigma_scale']:g}; paper: {PRESETS['paper']['sigma_scale']:g})",
    "--device": f"auto (CUDA if available), cpu, cuda, cuda:N (default {MODEL['device']})",
    "--seed": f"random seed (default {MODEL['seed']})",
    "--cell-batch-size": "cells per step (default: the preset's, else all; large data: chosen "
    "automatically)",
    "--spot-batch-size": "spots per step, as spatial patches (default: all)",
    "--threads": "torch CPU threads (default: every usable CPU, idle threads sleeping; 1 can be "
    "faster on a machine busy with other jobs when torch threads spin)",
}
#: the other options that are arguments of the run (model, training, mapping)
_RUN_OPTIONS = ("preset", "readout", "rounds", "expression_weight")


def _add_common(p: argparse.ArgumentParser) -> None:
    for flag, type_ in _COMMON.items():
        p.add_argument(flag, type=type_, default=None, help=_HELP[flag])
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=None,
        help="named defaults for the options not given (an option given wins): paper = the "
        "publication's schedule, σ and readout; fast = a shorter schedule on cell batches; "
        "quick = a first map in seconds (80 epochs on 128-cell batches, a 256-128-64 encoder, "
        "readout with expression weight 3 and 3 rounds)",
    )
    p.add_argument(
        "--readout",
        choices=list(READOUTS),
        default=None,
        help="mapping readout: hybrid (embeddings + expression correlation, balanced) or paper "
        "(softmax of embedding inner products); default: the preset's, else "
        f"{MAPPING['readout']}",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="rounds of the hybrid readout (default: the preset's, else "
        f"{MAPPING['rounds']}: the second maps what each spot's expression keeps unexplained; "
        "cells are placed by the first; 1: one round)",
    )
    p.add_argument(
        "--expression-weight",
        type=float,
        default=None,
        help="weight of the hybrid readout's expression term relative to the embeddings' "
        f"(default: the preset's, else {MAPPING['expression_weight']:g}; 0: embeddings only)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")


def _options(a: argparse.Namespace) -> dict[str, Any]:
    """Return the options that are arguments of the run, by name (None: not given)."""
    names = (*(flag[2:].replace("-", "_") for flag in _COMMON), *_RUN_OPTIONS)
    return {n: getattr(a, n) for n in names}


def _run_args(a: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Return the options given, by group of the run (:func:`stemmap._resolve.split`)."""
    return split(_options(a))


def _resolve_run(a: argparse.Namespace) -> dict[str, Any]:
    """Resolve and check every option of the run before any data is read (one validation)."""
    given = _options(a)
    return resolve_run(given.pop("preset"), **given)


def _model_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    """Arguments of ``STEM()`` given as options (the rest: its defaults)."""
    parts = _run_args(a)
    return {**parts["model"], **parts["other"]}


def _init_distributed(a: argparse.Namespace) -> int:
    """Under torchrun (WORLD_SIZE > 1): join the process group; returns this process's rank."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = torch.cuda.is_available() and a.device != "cpu"
        dist.init_process_group("nccl" if cuda else "gloo")
        if cuda:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            a.device = f"cuda:{local}"
    return dist.get_rank()


def _train_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    """Arguments of ``STEM.train()`` given as options (``preset`` included), and ``progress``."""
    return {**_run_args(a)["train"], "progress": not a.quiet}


def _mapping_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    """Arguments of ``STEM.mapping()`` given as options."""
    return _run_args(a)["mapping"]


def _same_file(a: Path, b: Path) -> bool:
    """Tell whether two paths name the same file (symlinks and hard links included)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _map_outputs(a: argparse.Namespace) -> dict[str, Path]:
    """Check the output paths of ``map`` before any data is read or trained on.

    Refuses an output that would overwrite an input (or another output), a folder, or a
    file in a folder that cannot be made or written.
    """
    from ._io import check_output_path

    out = Path(a.out)
    if not a.out or out.name in ("", ".", ".."):
        raise CLIError(f"--out: give a file name such as results.h5ad; found {a.out!r}.")
    outs = {"--out": out, "--out (spots)": out.with_name(out.stem + "_st.h5ad")}
    if a.save_model:
        outs["--save-model"] = Path(a.save_model)
    inputs = {"--sc": Path(a.sc), "--st": Path(a.st)}
    for what, p in outs.items():
        for iname, ip in inputs.items():
            if _same_file(p, ip):
                raise CLIError(f"{what}: {p} is the input file {iname}; refusing to overwrite it.")
    names = list(outs)
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            if _same_file(outs[x], outs[y]):
                raise CLIError(f"{y}: {outs[y]} is also the {x} output; give another path.")
    for what, p in outs.items():
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.exists():
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise CLIError(f"{what}: cannot create folder {parent} ({e.strerror}).") from None
        try:
            check_output_path(p, what)
        except OSError as e:
            raise CLIError(str(e)) from None
    return outs


def cmd_map(a: argparse.Namespace) -> int:
    """Map SC cells onto ST spots and write the results as .h5ad.

    Every output path and ``--label-key`` are checked before training. The outputs are
    written to temporary files in their target folders and renamed at the end, so a failure
    or an interrupt leaves all of them or none (earlier files of the same names untouched).

    Under ``torchrun --nproc_per_node N stemmap map ...`` the training runs data-parallel
    (DistributedDataParallel; gloo on CPU, NCCL on GPUs) and rank 0 writes the outputs.
    """
    import stemmap

    from ._io import replace_with, temp_path_for

    outs = _map_outputs(a)
    _resolve_run(a)  # every option checked before reading data; _error_line() names it
    rank = _init_distributed(a)
    sc = _read_h5ad(a.sc, "sc")
    st = _read_h5ad(a.st, "st")
    label = a.label_key
    if label is not None and label not in sc.obs:
        raise CLIError(
            f"--label-key: {label!r} is not a column of the SC file's obs "
            f"(available: {list(sc.obs.columns)})"
        )
    model = stemmap.STEM(
        sc,
        st,
        spatial_key=a.spatial_key,
        layer=a.layer,
        normalized=a.normalized,
        gene_match=a.gene_match,
        **_model_kwargs(a),
    )
    model.train(**_train_kwargs(a))
    if rank != 0:
        return 0
    m = model.mapping(**_mapping_kwargs(a))
    sc_out, st_out = m.to_anndata(sc, st, label_key=label)
    sc_out.uns["stem_history"] = model.history
    tmps: dict[str, Path] = {}
    try:
        for what, p in outs.items():
            tmps[what] = temp_path_for(p, suffix=".tmp.h5ad")
        sc_out.write_h5ad(tmps["--out"])
        st_out.write_h5ad(tmps["--out (spots)"])
        if "--save-model" in outs:
            model.save(tmps["--save-model"])
        for what, tmp in tmps.items():
            replace_with(tmp, outs[what])
    finally:
        for tmp in tmps.values():
            if tmp.exists():
                tmp.unlink()
    logger.info(
        "wrote %s (cells: X_stem, stem_spatial, stem_best_spot, stem_confidence) and %s "
        "(spots: X_stem%s)",
        outs["--out"],
        outs["--out (spots)"],
        ", stem_deconvolution" if label else "",
    )
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    """Semi-simulate Visium-like spots, map, evaluate and plot (:func:`stemmap._demo.run_demo`)."""
    from ._demo import run_demo

    run = _resolve_run(a)
    model_kw, train_kw = _model_kwargs(a), _train_kwargs(a)
    # the report names the values used: the resolved epochs, the model's alpha and seed
    shown = {k: MODEL[k] for k in ("alpha", "seed") if getattr(a, k) is None}
    a = argparse.Namespace(**{**vars(a), **shown, "epochs": run["train"]["epochs"]})
    run_demo(a, model_kw, train_kw)
    return 0


def cmd_benchmark(a: argparse.Namespace) -> int:
    """Run the peer benchmark of a source checkout (``benchmarks/run_benchmark.py``)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        script = parent / "benchmarks" / "run_benchmark.py"
        if script.exists():
            import runpy

            sys.argv = [str(script), *a.args]
            runpy.run_path(str(script), run_name="__main__")
            return 0
    raise CLIError(
        "benchmarks/run_benchmark.py not found: run `stemmap benchmark` from a "
        "source checkout of stemmap (the peer benchmark is not installed with the package)"
    )


def cmd_info(a: argparse.Namespace) -> int:
    """Print the versions, the device and the shared-data folder as JSON."""
    import torch

    import stemmap

    info = {
        "stemmap": __version__,
        "python": sys.version.split()[0],
        "torch": str(torch.__version__),
        "cuda": torch.cuda.is_available(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "shared_data": str(stemmap.datasets.shared_data_dir()),
    }
    print(json.dumps(info, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the ``stemmap`` command and its sub-commands.

    Returns
    -------
    argparse.ArgumentParser
        The parser; each sub-command sets ``func``, the function that runs it.
    """
    p = argparse.ArgumentParser(
        prog="stemmap", description="Map single cells into spatial transcriptomics with STEM."
    )
    sub = p.add_subparsers(dest="command", required=True)
    pm = sub.add_parser("map", help="map SC cells (.h5ad) onto ST spots (.h5ad)")
    pm.add_argument("--sc", required=True, help="single-cell .h5ad (raw counts)")
    pm.add_argument("--st", required=True, help="spatial .h5ad (raw counts, coordinates in obsm)")
    pm.add_argument(
        "--out", required=True, help="output .h5ad for cells (spots go to <out>_st.h5ad)"
    )
    pm.add_argument(
        "--spatial-key", default=MODEL["spatial_key"], help="obsm key of spot coordinates"
    )
    pm.add_argument("--layer", default=None, help="layer with counts (default X)")
    pm.add_argument("--label-key", default=None, help="SC obs column to deconvolve spots by")
    pm.add_argument("--normalized", action="store_true", help="data already normalised (log1p)")
    pm.add_argument(
        "--gene-match",
        choices=list(GENE_MATCH),
        default=MODEL["gene_match"],
        help="how SC and ST gene names are matched: exact (default), case (case-insensitive: "
        "GAPDH = Gapdh) or ensembl (Ensembl IDs without version suffix); names are not changed",
    )
    pm.add_argument("--save-model", default=None, help="also save the trained model here")
    _add_common(pm)
    pm.set_defaults(func=cmd_map)
    pd_ = sub.add_parser("demo", help="semi-simulate, map, evaluate and plot (the main job)")
    pd_.add_argument("--out", default="out/demo", help="output folder")
    pd_.add_argument("--dataset", default="embryo2_z2", help="shared data set name")
    _add_common(pd_)
    pd_.set_defaults(func=cmd_demo)
    pb = sub.add_parser("benchmark", help="run benchmarks/run_benchmark.py (source checkout)")
    pb.add_argument("args", nargs=argparse.REMAINDER, help="arguments for run_benchmark.py")
    pb.set_defaults(func=cmd_benchmark)
    pi = sub.add_parser("info", help="versions, device and data location")
    pi.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the ``stemmap`` command line.

    Parameters
    ----------
    argv
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 success, 2 bad usage or input, 1 other errors, 130 interrupted.
    """
    args = build_parser().parse_args(argv)
    import stemmap

    if getattr(args, "quiet", False):
        stemmap.settings.progress = False
        stemmap.settings.verbosity = logging.WARNING
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # pragma: no cover - outputs were cleaned up by cmd_map
        print(f"stemmap {args.command}: interrupted; no output written", file=sys.stderr)
        return 130
    except Exception as e:  # one line, never a traceback
        _error_line(args.command, e)
        return 2 if isinstance(e, _USER_ERRORS) else 1


#: exceptions that mean bad input or settings (exit 2); anything else exits 1
_USER_ERRORS = (CLIError, ValueError, TypeError, KeyError, OSError, MemoryError, ArithmeticError)


#: Python argument names the CLI sets from an option of the same name (`x_y` -> --x-y)
_OPTION_ARGS = (
    *(flag[2:].replace("-", "_") for flag in _COMMON),
    "spatial_key",
    *_RUN_OPTIONS,
)


def _error_line(command: str, e: BaseException) -> None:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    msg = " ".join(str(msg).split()) or type(e).__name__
    for name in _OPTION_ARGS:  # name the option the user typed, not the Python argument
        msg = msg.replace(f"`{name}`", "--" + name.replace("_", "-"))
    if not isinstance(e, _USER_ERRORS):
        msg = f"{type(e).__name__}: {msg}"
    print(f"stemmap {command}: error: {msg}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    with warnings.catch_warnings():
        sys.exit(main())
