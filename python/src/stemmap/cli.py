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
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ._data import GENE_MATCH
from ._defaults import MAPPING, MODEL, PRESETS, TRAIN
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


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--epochs", type=int, default=TRAIN["epochs"], help="training epochs (%(default)s)"
    )
    p.add_argument("--lr", type=float, default=TRAIN["lr"], help="learning rate (%(default)s)")
    p.add_argument("--alpha", type=float, default=MODEL["alpha"], help="MMD weight (%(default)s)")
    p.add_argument(
        "--sigma",
        type=float,
        default=None,
        help="Gaussian kernel σ (default: --sigma-scale × the mean nearest-neighbour spot distance)",
    )
    p.add_argument(
        "--sigma-scale",
        type=float,
        default=None,
        help=f"default σ in mean nearest-neighbour spot distances (default {MODEL['sigma_scale']:g}"
        f"; paper: {PRESETS['paper']['sigma_scale']:g})",
    )
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=None,
        help="named settings (overrides --epochs/--lr): paper = the publication's schedule, "
        "σ and readout; fast = a shorter schedule on cell batches",
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
        "--device",
        default=MODEL["device"],
        help="auto (CUDA if available), cpu, cuda, cuda:N (%(default)s)",
    )
    p.add_argument("--seed", type=int, default=MODEL["seed"], help="random seed (%(default)s)")
    p.add_argument(
        "--cell-batch-size",
        type=int,
        default=None,
        help="cells per step (default: all; large data: chosen automatically)",
    )
    p.add_argument(
        "--spot-batch-size",
        type=int,
        default=None,
        help="spots per step, as spatial patches (default: all)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: every usable CPU, idle threads sleeping; 1 can be "
        "faster on a machine busy with other jobs when torch threads spin)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")


def _model_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    if a.sigma_scale is not None and a.sigma_scale <= 0:
        raise CLIError(f"--sigma-scale must be positive; found {a.sigma_scale}")
    return {
        "alpha": a.alpha,
        "sigma": a.sigma,
        "sigma_scale": a.sigma_scale,
        "device": a.device,
        "seed": a.seed,
        "threads": a.threads,
    }


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
    return {
        "epochs": a.epochs,
        "lr": a.lr,
        "progress": not a.quiet,
        "cell_batch_size": a.cell_batch_size,
        "spot_batch_size": a.spot_batch_size,
        "preset": a.preset,
    }


def _same_file(a: Path, b: Path) -> bool:
    """True when two paths name the same file (symlinks and hard links included)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _map_outputs(a: argparse.Namespace) -> dict[str, Path]:
    """The output paths of ``map``, checked before any data is read or trained on.

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
    from ._validate import check_train_args

    outs = _map_outputs(a)
    train_kwargs = _train_kwargs(a)
    try:
        check_train_args(
            epochs=a.epochs,
            lr=a.lr,
            cell_batch_size=a.cell_batch_size,
            spot_batch_size=a.spot_batch_size,
        )
    except (TypeError, ValueError) as e:  # _error_line() names the option
        raise CLIError(str(e)) from None
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
    model.train(**train_kwargs)
    if rank != 0:
        return 0
    m = model.mapping(readout=a.readout)
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


def _evaluate(model, m, sc, st, seconds: float) -> dict[str, Any]:
    from . import metrics
    from .baselines import best_correlated_spot

    true = np.asarray(sc.obsm["spatial_true"])
    keep = sc.obs_names.isin(m.sc_names)
    true = true[keep]
    step = float(st.uns["simulation"]["step"])
    ks = (10, 25, 50, 200)
    ks = tuple(k for k in ks if k < len(true))
    res: dict[str, Any] = {"train_seconds": round(seconds, 1)}
    res["stemmap"] = {
        "MAE (grid steps)": metrics.mae(true, m.coords, unit=step),
        **{f"hit@{k}": v for k, v in metrics.hit_number(true, m.coords, ks=ks).items()},
        **{
            f"hit@{k} (embedding)": v
            for k, v in metrics.hit_number(true, embedding=m.sc_embedding, ks=ks).items()
        },
    }
    adj = m.sc_adjacency(k=max(ks), weighted=True)
    res["stemmap"].update(
        {
            f"hit@{k} (SC–SC adjacency)": v
            for k, v in metrics.hit_number(true, pred_adjacency=adj, ks=ks).items()
        }
    )
    best = best_correlated_spot(model.data.sc_x, model.data.slices[0].x)
    base = m.spot_coords[best]
    res["baseline (most correlated spot)"] = {
        "MAE (grid steps)": metrics.mae(true, base, unit=step),
        **{f"hit@{k}": v for k, v in metrics.hit_number(true, base, ks=ks).items()},
    }
    if "proportions" in st.obsm and "celltype" in sc.obs:
        labels = sc.obs["celltype"][keep].astype(str).to_numpy()
        props = st.obsm["proportions"].loc[m.spot_names]
        pcc = metrics.celltype_pcc(m.sc_to_st, labels, props)
        res["stemmap"]["cell-type PCC (mean)"] = float(np.nanmean(pcc))
        res["stemmap"]["cell-type PCC (sd)"] = float(np.nanstd(pcc))
    return res


def cmd_demo(a: argparse.Namespace) -> int:
    """Semi-simulate Visium-like spots from real (or generated) single-cell spatial data, map, evaluate, plot."""
    import matplotlib

    matplotlib.use("Agg")
    import stemmap

    from . import plotting

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        tissue = stemmap.datasets.load_shared(a.dataset)
        source = f"shared data set {a.dataset}"
        grid = (30, 40)
    except FileNotFoundError as e:
        logger.info("%s; using a generated tissue instead", e)
        tissue = stemmap.datasets.synthetic_tissue(n_cells=3000, n_genes=80, seed=a.seed)
        source = "generated tissue (stemmap.datasets.synthetic_tissue)"
        grid = (20, 12)
    sc, st = stemmap.simulate.pseudo_spots(tissue, grid=grid)
    model = stemmap.STEM(sc, st, **_model_kwargs(a))
    t0 = time.perf_counter()
    model.train(**_train_kwargs(a))
    seconds = time.perf_counter() - t0
    m = model.mapping(readout=a.readout)
    res = _evaluate(model, m, sc, st, seconds)
    keep = sc.obs_names.isin(m.sc_names)
    labels = sc.obs["celltype"][keep].astype(str).to_numpy()
    figs = {
        "positions.png": plotting.positions(
            m.coords,
            labels,
            true_coords=sc.obsm["spatial_true"][keep],
            title=f"STEM ({a.epochs} epochs)",
        ),
        "loss.png": plotting.loss_curve(model.history, alpha=a.alpha),
        "deconvolution.png": plotting.deconvolution(
            m.spot_coords, m.deconvolve(labels), true=st.obsm["proportions"].loc[m.spot_names]
        ),
    }
    for name, fig in figs.items():
        fig.savefig(out / name, dpi=110)
    sc_out, st_out = m.to_anndata(sc, st, label_key="celltype")
    sc_out.write_h5ad(out / "sc_mapped.h5ad")
    (out / "metrics.json").write_text(json.dumps(res, indent=2))
    lines = [
        "# stemmap demo",
        "",
        f"Data: {source}; {sc.n_obs} cells × {sc.n_vars} genes; {st.n_obs} pseudo spots "
        f"({grid[0]} × {grid[1]} grid, windows of 55% of the step, ≥ 3 cells).",
        f"Model: STEM, {a.epochs} epochs, seed {a.seed}, device {model.device}, "
        f"{m.readout} readout; training took {seconds:.1f} s.",
        "",
        "| metric | stemmap | baseline (most correlated spot) |",
        "|---|---|---|",
    ]
    base = res["baseline (most correlated spot)"]
    for k, v in res["stemmap"].items():
        b = base.get(k)
        lines.append(f"| {k} | {v:.3f} | {'' if b is None else f'{b:.3f}'} |")
    lines += [
        "",
        "Figures: positions.png (true vs reconstructed positions by cell type), "
        "loss.png (loss terms and β per epoch), deconvolution.png (estimated vs true "
        "proportions per spot).",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(
        f"wrote {out}/: report.md metrics.json positions.png loss.png deconvolution.png sc_mapped.h5ad"
    )
    return 0


def cmd_benchmark(a: argparse.Namespace) -> int:
    """The full peer benchmark lives in the repository's benchmarks/ folder."""
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
    import torch

    import stemmap

    info = {
        "stemmap": stemmap.__version__,
        "python": sys.version.split()[0],
        "torch": str(torch.__version__),
        "cuda": torch.cuda.is_available(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "shared_data": str(stemmap.datasets.shared_data_dir()),
    }
    print(json.dumps(info, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
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
    "epochs",
    "lr",
    "alpha",
    "sigma",
    "sigma_scale",
    "device",
    "seed",
    "cell_batch_size",
    "spot_batch_size",
    "spatial_key",
    "preset",
    "readout",
    "threads",
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
