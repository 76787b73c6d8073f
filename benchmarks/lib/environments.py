"""Where things are, and the method environments (``benchmarks/.envs/<name>``)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

from .methods import Method

logger = logging.getLogger(__name__)

#: the ``benchmarks/`` folder
BENCH = Path(__file__).resolve().parent.parent
#: the repository root
REPO = BENCH.parent
#: the drivers (one process per method run)
DRIVERS = BENCH / "drivers"
#: the method environments (git-ignored)
ENVS = BENCH / ".envs"
#: results committed to the repository
RESULTS = BENCH / "results"
#: driver inputs, outputs and logs (git-ignored)
CACHE = BENCH / "cache"
#: torch, installed first into every environment: the CPU wheel, never a multi-GB CUDA build
TORCH_PIN = "torch==2.13.0"


def ensure_env(name: str, requirement: str) -> Path:
    """Create ``benchmarks/.envs/<name>`` with pinned torch, then ``requirement``.

    Parameters
    ----------
    name
        Folder name under ``benchmarks/.envs``.
    requirement
        The pip requirement of the method (e.g. ``"tacco==0.5.0"``); several requirements
        separated by spaces are installed together (e.g. ``"cell2location==0.1.5
        pyro-ppl>=1.8,<1.9"``).

    Returns
    -------
    Path
        The environment's Python. An environment that exists and was built for the same
        requirement (its ``.stemmap-bench-ready`` marker) is reused as it is.
    """
    env = ENVS / name
    py = env / "bin" / "python"
    marker = env / ".stemmap-bench-ready"
    if py.exists() and marker.exists() and marker.read_text().strip() == requirement:
        return py
    logger.info("creating environment %s (%s; first run only, a few minutes)", env, requirement)
    if env.exists():
        shutil.rmtree(env)
    ENVS.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", str(env)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, TORCH_PIN], check=True)  # first: keep the CPU wheel, never CUDA
    subprocess.run([*pip, TORCH_PIN, *requirement.split()], check=True)
    marker.write_text(requirement + "\n")
    return py


def python_for(method: Method) -> Path:
    """Return the interpreter of a method's driver (its environment, built on first use).

    Parameters
    ----------
    method
        An entry of :data:`lib.methods.METHODS` with a driver.

    Returns
    -------
    Path
        This interpreter for methods without an environment, else the environment's.
    """
    return Path(sys.executable) if method.env is None else ensure_env(*method.env)


def check_stemmap() -> str:
    """Say which stemmap the benchmarks use; warn when it is not this repository's core.

    Returns
    -------
    str
        ``"stemmap <version> (<folder>)"``.
    """
    import stemmap

    where = Path(stemmap.__file__).resolve().parent
    if REPO / "python" / "src" not in where.parents:
        logger.warning(
            "stemmap is imported from %s, not from this repository (%s): install it with "
            "`pip install -e python` into the interpreter running the benchmarks",
            where,
            REPO / "python" / "src",
        )
    return f"stemmap {stemmap.__version__} ({where})"
