"""Running things: drivers in their environments, child processes, competing load.

A driver run (:func:`run_method`) is a subprocess with a timeout; the driver writes its
mapping, training time and peak RSS to an ``.npz`` (``drivers/driver_io.py``), which is read
back here, aligned to the data's cells and cached for ``--reuse``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .environments import DRIVERS, python_for
from .methods import METHODS

logger = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """How methods are run.

    Parameters
    ----------
    epochs
        Epochs of every method.
    device
        ``"cpu"`` or ``"cuda[:i]"``.
    timeout
        Seconds per method run.
    reuse
        Reuse a method's cached output instead of running it again.
    reread
        stemmap methods: read their saved models out again with the current code.
    cached_only
        Methods taken only from cached outputs.
    """

    epochs: int = 400
    device: str = "cpu"
    timeout: int = 3600
    reuse: bool = False
    reread: bool = False
    cached_only: list[str] = field(default_factory=list)


def load_average() -> float:
    """Return the 1-minute load average (the machine is shared: reports state it)."""
    return os.getloadavg()[0]


def driver_command(
    name: str,
    sc_path: Path,
    st_path: Path,
    out: Path,
    epochs: int,
    seed: int,
    device: str,
    sigma: float | None,
) -> list[str]:
    """Build the command line of a method's driver (its environment built on first use).

    Parameters
    ----------
    name
        A method of :data:`lib.methods.METHODS` with a driver.
    sc_path, st_path, out
        Driver inputs and output ``.npz``.
    epochs, seed, device
        Passed on (a method with its own ``epochs`` gets those).
    sigma
        The data's σ (half the mean NN spot distance); STEM methods get ``sigma_mult`` × it.

    Returns
    -------
    list of str
        The command, with the method's extra arguments.
    """
    spec = METHODS[name]
    cmd = [str(python_for(spec)), str(DRIVERS / spec.driver)]
    cmd += ["--sc", str(sc_path), "--st", str(st_path), "--out", str(out)]
    epochs = spec.epochs if spec.epochs is not None else epochs
    cmd += ["--epochs", str(epochs), "--seed", str(seed), "--device", device]
    if spec.stem and spec.sigma_mult is not None and sigma is not None:
        cmd += ["--sigma", repr(spec.sigma_mult * sigma)]
    return cmd


def read_output(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a driver's output: its ``meta`` (train time, peak memory...) and its arrays."""
    res = dict(np.load(path, allow_pickle=False))
    return json.loads(str(res.pop("meta"))), res


def _timings(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "train_s": meta["train_s"],
        "peak_rss_mb": meta["peak_rss_mb"],
        "cuda_peak_mb": meta.get("cuda_peak_mb"),
    }


def _from_cache(
    path: Path, row: dict[str, Any], data: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a saved output as a result row (no run: wall time 0) and aligned arrays."""
    meta, res = read_output(path)
    row.update(status="ok", wall_s=0.0, **_timings(meta))
    return row, align(res, data)


def run_method(
    name: str, data: dict[str, Any], seed: int, opts: RunOptions, cache: Path
) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """Run one method on one data set with one seed (or take its cached output).

    Parameters
    ----------
    name
        A method of :data:`lib.methods.METHODS`.
    data
        :func:`lib.data.prepare_dataset`'s (or :func:`lib.data.fold_inputs`') result.
    seed
        The method's seed.
    opts
        Epochs, device, timeout and caching.
    cache
        Folder of the outputs (``<method>_seed<seed>.npz``) and logs.

    Returns
    -------
    tuple
        The result row (``status``, ``train_s``, ``peak_rss_mb``, ``wall_s``...) and the
        outputs aligned to the data's cells (:func:`align`), or None when it did not run.
    """
    spec = METHODS[name]
    row: dict[str, Any] = {
        "dataset": data["name"],
        "split": data["split"],
        "method": name,
        "seed": seed,
    }
    if spec.source is not None:  # another readout of a model another method trained
        src = cache / f"{spec.source[0]}_seed{seed}.{spec.source[1]}.npz"
        if not src.exists():
            row["status"] = f"not run: needs method {spec.source[0]} first in --methods"
            return row, None
        return _from_cache(src, row, data)
    out = cache / f"{name}_seed{seed}.npz"
    log = cache / f"{name}_seed{seed}.log"
    cmd = driver_command(
        name, data["sc_path"], data["st_path"], out, opts.epochs, seed, opts.device, data["sigma"]
    )
    model_file = out.with_suffix(".model.pt")
    is_stemmap = spec.driver == "stemmap_driver.py"
    reread = is_stemmap and opts.reread and model_file.exists()
    side = Path(str(model_file) + ".json")
    if reread and not side.exists() and out.exists():  # keep the training time it had
        meta, _ = read_output(out)
        side.write_text(json.dumps({"train_s": meta["train_s"], "setup_s": meta.get("setup_s")}))
    if reread:  # read the saved model out again with the current code: no training
        cmd += ["--load-model", str(model_file)]
    elif is_stemmap:  # save the model, for readout studies
        cmd += ["--save-model", str(model_file)]
    if spec.readouts:
        cmd += ["--extra-readouts", *spec.readouts]
    cmd += list(spec.extra)
    if (opts.reuse or name in opts.cached_only) and out.exists() and not reread:
        logger.info("%s / %s / seed %d: reusing %s", data["name"], name, seed, out)
        return _from_cache(out, row, data)
    if out.exists():
        out.unlink()
    logger.info("%s / %s / seed %d: running (timeout %d s)", data["name"], name, seed, opts.timeout)
    t0 = time.perf_counter()
    try:
        with open(log, "w") as fh:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=opts.timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        rc = None
    row["wall_s"] = time.perf_counter() - t0
    if rc is None:
        row["status"] = f"timeout after {opts.timeout} s"
    elif rc != 0 or not out.exists():
        tail = log.read_text().strip().splitlines()[-1:] if log.exists() else []
        row["status"] = f"failed (exit {rc}): {tail[0][:200] if tail else ''}"
    else:
        row["status"] = "ok"
    if row["status"] != "ok":
        logger.warning(
            "%s / %s / seed %d: %s (log: %s)", data["name"], name, seed, row["status"], log
        )
        return row, None
    meta, res = read_output(out)
    row.update(_timings(meta))
    return row, align(res, data)


def align(res: dict[str, np.ndarray], data: dict[str, Any]) -> dict[str, np.ndarray]:
    """Put a driver's outputs in the order of the data's cells; fill cells it dropped.

    Parameters
    ----------
    res
        Arrays of a driver output (``sc_names``, ``sc_to_st``, ``coords``, optionally
        ``embedding`` and ``adjacency_nn``).
    data
        The data set (``sc_names``, ``n_cells``, ``n_spots``, ``spot_coords``).

    Returns
    -------
    dict
        The same arrays in the data's cell order; a dropped cell gets a uniform mapping row,
        the mean spot position and a zero embedding; ``n_missing`` counts them.
    """
    names = pd.Index(res["sc_names"].astype(str))
    pos = names.get_indexer(data["sc_names"])
    ok = pos >= 0
    n_sp = data["n_spots"]
    out = {}
    c = np.full((data["n_cells"], n_sp), 1.0 / n_sp, dtype=np.float32)
    c[ok] = res["sc_to_st"][pos[ok]]
    out["sc_to_st"] = c
    xy = np.tile(data["spot_coords"].mean(axis=0), (data["n_cells"], 1))
    xy[ok] = res["coords"][pos[ok]]
    out["coords"] = xy
    if "embedding" in res:
        e = np.zeros((data["n_cells"], res["embedding"].shape[1]), dtype=np.float32)
        e[ok] = res["embedding"][pos[ok]]
        out["embedding"] = e
    if "adjacency_nn" in res:  # the driver's row indices → the data's cell order
        inv = np.full(len(names), -1, dtype=np.int64)
        inv[pos[ok]] = np.flatnonzero(ok)
        nn = np.full((data["n_cells"], res["adjacency_nn"].shape[1]), -1, dtype=np.int64)
        nn[ok] = inv[res["adjacency_nn"][pos[ok]]]
        out["adjacency_nn"] = nn
    out["n_missing"] = np.asarray(int((~ok).sum()))
    return out


def run_child(
    cmd: list[str],
    timeout: float,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run a process that prints one ``RESULT <json>`` line; return that dict.

    Parameters
    ----------
    cmd
        The command.
    timeout
        Seconds before it is stopped.
    env
        Its environment (default: this one's).
    preexec_fn
        Called in the child before it starts (e.g. a memory limit).

    Returns
    -------
    dict
        ``status`` ``"ok"`` and the result's keys, or ``status`` saying how it failed (the
        last line of its error output; ``exit`` the exit code).
    """
    try:
        r = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, preexec_fn=preexec_fn
        )
    except subprocess.TimeoutExpired:
        return {"status": f"timeout after {timeout:g} s"}
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    if r.returncode != 0 or not line:
        err = (r.stderr.strip().splitlines() or ["?"])[-1]
        return {"status": f"failed (exit {r.returncode}): {err[:200]}", "exit": r.returncode}
    return {"status": "ok", **json.loads(line[-1][len("RESULT ") :])}


def print_result(result: dict[str, Any]) -> None:
    """Print a child's result as the ``RESULT <json>`` line :func:`run_child` reads."""
    print("RESULT " + json.dumps(result, default=str), flush=True)


def peak_rss_gb() -> float:
    """Return the peak resident memory of this process in GiB (Linux ``ru_maxrss``: KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def busy_loops(n: int, seconds: float) -> list[subprocess.Popen]:
    """Start ``n`` single-threaded busy loops, each ending by itself after ``seconds``."""
    code = f"import time\nend = time.time() + {seconds:.0f}\nwhile time.time() < end:\n    pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


@contextlib.contextmanager
def competing(n: int, seconds: float) -> Iterator[list[subprocess.Popen]]:
    """``n`` busy loops beside the block (bounded in time), stopped after it; none if n = 0."""
    procs = busy_loops(n, seconds)
    try:
        if procs:
            time.sleep(1.0)  # let them take their cores
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


def batch_plan(
    model: Any, cell_batch_size: int | None = None, spot_batch_size: int | None = None
) -> tuple[int | None, int | None]:
    """Return the batches a model trains on (:func:`stemmap.estimate_resources`'s plan).

    Parameters
    ----------
    model
        A :class:`stemmap.STEM`.
    cell_batch_size, spot_batch_size
        Batch sizes asked for (None: chosen by the plan).

    Returns
    -------
    tuple
        ``(cell_batch_size, spot_batch_size)``, None meaning all.
    """
    import stemmap

    plan = stemmap.estimate_resources(
        len(model.data.sc_names),
        max(s.x.shape[0] for s in model.data.slices),
        len(model.data.genes),
        hidden=tuple(model.config["hidden"]),
        device=str(model.device),
        cell_batch_size=cell_batch_size,
        spot_batch_size=spot_batch_size,
    )
    return plan["cell_batch_size"], plan["spot_batch_size"]


def next_time(hhmm: str | None) -> dt.datetime | None:
    """Return the next time it is ``HH:MM`` UTC (a ``--deadline`` past midnight is tomorrow's)."""
    if hhmm is None:
        return None
    h, m = map(int, hhmm.split(":"))
    now = dt.datetime.now(dt.timezone.utc)
    at = now.replace(hour=h, minute=m, second=0, microsecond=0)
    return at if at > now else at + dt.timedelta(days=1)
