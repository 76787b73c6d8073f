"""Model files: a format that cannot run code when it is read.

A model file (``STEM.save()``) is a zip archive (stored, not compressed) of

* ``stemmap-model.json`` (first member): the format name and version, the stemmap version,
  the settings, the loss history, and the gene, cell, spot and slice names;
* ``arrays/*.npy``: the weights and the prepared inputs, as NumPy arrays read with
  ``allow_pickle=False`` (numbers only; an object array is refused, nothing is unpickled).

Reading checks the archive, then the format name and version, then the settings' keys and
names (:mod:`stemmap._filecheck`) before any array is read, then every array's shape against
the names; every failure is a one-line :class:`~stemmap._validate.StemModelFileError` (or
``FileNotFoundError`` / ``IsADirectoryError``) naming the path.

Files of stemmap 0.1 (``torch.save`` pickles, format ``stemmap-model/1``) can run arbitrary
code when they are unpickled, so they are read only with ``trust=True`` (documented as unsafe:
only for files you wrote yourself); saving the loaded model writes the safe format.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ._filecheck import check_arrays, check_manifest
from ._genes import check_model_genes
from ._validate import StemModelFileError, check_path
from ._version import __version__

logger = logging.getLogger(__name__)

FORMAT = "stemmap-model"
FORMAT_VERSION = 2
LEGACY_FORMAT = "stemmap-model/1"
_MANIFEST = "stemmap-model.json"


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (tuple, set)):
        return list(v)
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"cannot store {type(v).__name__} in a model file")


def check_output_path(path: str | Path, what: str) -> Path:
    """Check that ``path`` can be written: not a folder, in an existing, writable folder.

    Raises ``IsADirectoryError`` / ``FileNotFoundError`` / ``PermissionError`` naming ``what``
    (the argument) and the path.
    """
    check_path(path, what.lstrip("-").replace("-", "_"))
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{what}: {p} is a folder; give a file name.")
    parent = p.parent if str(p.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise NotADirectoryError(f"{what}: cannot write {p}: {parent} is a file, not a folder.")
    if not parent.is_dir():
        raise FileNotFoundError(f"{what}: cannot write {p}: folder {parent} does not exist.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{what}: cannot write {p}: folder {parent} is not writable.")
    return p


def temp_path_for(path: Path, suffix: str = ".tmp") -> Path:
    """Make an empty temporary file next to ``path`` (same folder: a rename is atomic)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    return Path(tmp)


def replace_with(tmp: Path, dest: Path) -> None:
    """Rename ``tmp`` onto ``dest`` (atomic in one folder).

    The file gets the permissions ``dest`` had, or those a new file gets (umask), not the
    private ones of a temporary file.
    """
    if dest.exists():
        mode = dest.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)
    os.replace(tmp, dest)


def write_model(path: str | Path, blob: dict[str, Any]) -> None:
    """Write a model (see :func:`model_blob`) to ``path`` atomically, in the safe format."""
    p = check_output_path(path, "path")
    arrays: dict[str, np.ndarray] = {}
    manifest = {k: v for k, v in blob.items() if k not in ("state_dict", "sc_x", "slices")}
    manifest.update(format=FORMAT, format_version=FORMAT_VERSION, stemmap_version=__version__)
    state_keys = []
    for i, (k, v) in enumerate(blob["state_dict"].items()):
        arrays[f"arrays/state_dict/{i}.npy"] = np.asarray(v.detach().cpu().numpy())
        state_keys.append(k)
    manifest["state_dict_keys"] = state_keys
    arrays["arrays/sc_x.npy"] = np.asarray(blob["sc_x"])
    slices = []
    for i, s in enumerate(blob["slices"]):
        arrays[f"arrays/slices/{i}/x.npy"] = np.asarray(s["x"])
        arrays[f"arrays/slices/{i}/coords.npy"] = np.asarray(s["coords"])
        slices.append({k: v for k, v in s.items() if k not in ("x", "coords")})
    manifest["slices"] = slices
    text = json.dumps(manifest, default=_json_default)
    tmp = temp_path_for(p)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            zf.writestr(_MANIFEST, text)
            for name, arr in arrays.items():
                with zf.open(name, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.ascontiguousarray(arr), allow_pickle=False)
        replace_with(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_model(path: str | Path, trust: bool = False) -> dict[str, Any]:
    """Read a model file into the dict :func:`write_model` takes (tensors as ``torch.Tensor``).

    Parameters
    ----------
    path
        A file written by ``STEM.save()``.
    trust
        Also read stemmap 0.1 files (PyTorch pickles). **Unsafe**: unpickling runs any code
        the file contains; use it only for files you wrote yourself, then save them again.
    """
    import torch

    check_path(path)
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a folder, not a stemmap model file.")
    if not p.exists():
        raise FileNotFoundError(f"stemmap model file not found: {p}")
    if not zipfile.is_zipfile(p):
        raise StemModelFileError(
            f"{p} is not a stemmap model file (not a zip archive: truncated, or another format)."
        )
    try:
        with zipfile.ZipFile(p) as zf:
            names = set(zf.namelist())
            if _MANIFEST not in names:
                if any(n.endswith("data.pkl") for n in names):
                    if trust:
                        return _read_legacy(p)
                    raise StemModelFileError(
                        f"{p} is not a stemmap model file in the safe format: it is a PyTorch "
                        "pickle (stemmap 0.1's format, or another file), and reading it can run "
                        "arbitrary code. Only if you wrote "
                        "it yourself: load it with `STEM.load(path, trust=True)` and save it "
                        "again in the safe format."
                    )
                raise StemModelFileError(f"{p} is not a stemmap model file (no {_MANIFEST}).")
            manifest = json.loads(zf.read(_MANIFEST).decode("utf-8"))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise StemModelFileError(f"{p} is not a stemmap model file (unknown format).")
            version = manifest.get("format_version")
            if not isinstance(version, int) or version > FORMAT_VERSION or version < 2:
                raise StemModelFileError(
                    f"{p} has model format version {version!r}; this stemmap "
                    f"({__version__}) reads version {FORMAT_VERSION}. Upgrade stemmap."
                )

            check_manifest(manifest, p, "state_dict_keys")

            def arr(name: str) -> np.ndarray:
                with zf.open(name) as fh:
                    return np.lib.format.read_array(fh, allow_pickle=False)

            keys = manifest.pop("state_dict_keys")
            blob = dict(manifest)
            blob["state_dict"] = {
                k: torch.from_numpy(arr(f"arrays/state_dict/{i}.npy")) for i, k in enumerate(keys)
            }
            blob["sc_x"] = arr("arrays/sc_x.npy")
            blob["slices"] = [
                {
                    **s,
                    "x": arr(f"arrays/slices/{i}/x.npy"),
                    "coords": arr(f"arrays/slices/{i}/coords.npy"),
                }
                for i, s in enumerate(manifest["slices"])
            ]
    except StemModelFileError:
        raise
    except (zipfile.BadZipFile, ValueError, KeyError, EOFError, OSError, TypeError) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise StemModelFileError(
            f"{p} is a damaged or truncated stemmap model file ({type(e).__name__}: {detail})."
        ) from None
    check_arrays(blob, p)
    return blob


def _read_legacy(p: Path) -> dict[str, Any]:
    """Read a stemmap 0.1 file (``torch.save`` pickle); runs pickled code: ``trust=True`` only."""
    import torch

    logger.warning(
        "reading %s with trust=True: a PyTorch pickle (stemmap 0.1 format); save it again to "
        "convert it to the safe format",
        p,
    )
    try:
        blob = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # torch/pickle raise many types for a bad file
        raise StemModelFileError(f"{p} could not be read ({type(e).__name__}).") from None
    if not isinstance(blob, dict) or blob.get("format") != LEGACY_FORMAT:
        raise StemModelFileError(f"{p} is not a stemmap model file (saved with STEM.save()).")
    check_manifest(blob, p, "state_dict")
    check_arrays(blob, p)
    return blob


def model_blob(model: Any) -> dict[str, Any]:
    """Everything :func:`write_model` stores of a :class:`stemmap.STEM`."""
    d = model.data
    return {
        "config": model.config,
        "train_settings": model.train_settings,
        "is_trained": model.is_trained,
        "state_dict": {k: v.detach().cpu() for k, v in model.module.state_dict().items()},
        "history": model.history.to_dict(orient="list"),
        "genes": d.genes,
        "sc_x": d.sc_x,
        "sc_names": d.sc_names,
        "sc_dropped": d.sc_dropped,
        "slices": [
            {
                "name": s.name,
                "x": s.x,
                "coords": s.coords,
                "spot_names": s.spot_names,
                "sigma": s.sigma,
                "dropped": s.dropped,
            }
            for s in d.slices
        ],
    }


def load_model(
    cls: Any,
    path: str | Path,
    device: Any = "auto",
    sc: Any = None,
    st: Any = None,
    trust: bool = False,
) -> Any:
    """``cls`` (:class:`stemmap.STEM`) from a model file; see :meth:`stemmap.STEM.load`."""
    import pandas as pd

    from ._data import PreparedData, SliceData, mean_nn_distance, prepare
    from ._defaults import PAPER_SIGMA_SCALE
    from ._device import resolve_device
    from ._module import STEMModule

    device = resolve_device(device)
    if (sc is None) != (st is None):
        raise ValueError("pass both `sc` and `st` to map new data, or neither.")
    blob = read_model(path, trust=trust)
    self = cls.__new__(cls)
    self.threads = None  # a runtime choice (main's STEM.threads), not saved
    self.device = device
    self.config = blob["config"]
    self.train_settings = blob["train_settings"]
    self.is_trained = blob["is_trained"]
    self.history = pd.DataFrame(blob["history"])
    genes = list(blob["genes"])
    if sc is None:
        slices = [
            SliceData(
                s["name"],
                np.asarray(s["x"]),
                np.asarray(s["coords"]),
                list(s["spot_names"]),
                float(s["sigma"]),
                list(s["dropped"]),
            )
            for s in blob["slices"]
        ]
        self.data = PreparedData(
            genes,
            np.asarray(blob["sc_x"]),
            list(blob["sc_names"]),
            slices,
            list(blob["sc_dropped"]),
        )
    else:
        for obj, nm in ((sc, "sc"), *((s, "st") for s in (st if isinstance(st, list) else [st]))):
            check_model_genes(nm, genes, set(map(str, getattr(obj, "var_names", []))))
        self.data = prepare(
            sc,
            st,
            spatial_key=self.config["spatial_key"],
            layer=self.config["layer"],
            genes=genes,
            normalized=self.config["normalized"],
        )
        order = {g: i for i, g in enumerate(self.data.genes)}
        idx = [order[g] for g in genes]
        self.data.sc_x = self.data.sc_x[:, idx]
        for s in self.data.slices:
            s.x = s.x[:, idx]
            s.sigma = self.config.get("sigma_scale", PAPER_SIGMA_SCALE) * mean_nn_distance(s.coords)
        self.data.genes = genes
    self._sigma_default = [False] * len(self.data.slices)  # a saved model keeps its σ
    self._hidden_default = False  # ... and its layers
    self.module = STEMModule(len(genes), self.config["hidden"], self.config["dropout"])
    try:
        self.module.load_state_dict(blob["state_dict"])
    except RuntimeError as e:
        raise StemModelFileError(
            f"{path} is a damaged stemmap model file (weights do not fit its settings: "
            f"{str(e).splitlines()[0]})."
        ) from None
    self.module.to(self.device)
    return self
