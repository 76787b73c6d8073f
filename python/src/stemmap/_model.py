"""The user-facing STEM model: validates AnnData, picks the device, trains, saves, maps.

Training (:meth:`STEM.train` and the resource estimates) comes from
:class:`stemmap.train.TrainingMixin`, the loop from :func:`stemmap.train.fit`; the losses from
:class:`stemmap._module.STEMModule`; model files from :mod:`stemmap._io`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ._data import PreparedData, SliceData, dropout_rate, mean_nn_distance, prepare
from ._defaults import ATTRIBUTION, MODEL
from ._device import resolve_device
from ._kernels import KERNELS
from ._module import STEMModule
from ._new_spots import prepare_spots
from ._resolve import DEFAULT, resolve
from ._runtime import compute
from ._validate import (
    check_choice,
    check_dropout,
    check_flag,
    check_nonnegative,
    check_positive,
    check_seed,
    check_threads,
    per_slice,
)
from ._version import __version__
from .mapping import StemMapping
from .train import TrainingMixin, empty_history

logger = logging.getLogger(__name__)


class STEM(TrainingMixin):
    """STEM: spatially aware embeddings mapping single cells (SC) into spatial data (ST).

    Parameters
    ----------
    sc
        Single-cell AnnData (cells × genes) with raw counts in ``X`` or ``layer``.
    st
        Spatial AnnData (spots × genes) with raw counts and coordinates in
        ``obsm[spatial_key]``, or a list of them (slices trained jointly, each with its own
        adjacency).
    spatial_key
        ``st.obsm`` key of the spot coordinates.
    layer
        Layer of ``sc`` and ``st`` holding counts (default ``X``).
    genes
        Genes to use (default: all genes shared by SC and ST, matched by name).
    gene_match
        How SC and ST gene names are matched: ``"exact"`` (default), ``"case"``
        (case-insensitive: ``GAPDH`` = ``Gapdh``) or ``"ensembl"`` (Ensembl IDs without their
        version suffix: ``ENSMUSG00000057666.3`` = ``ENSMUSG00000057666``). The genes keep
        their SC names; the objects are not changed. How many genes matched only by the rule
        is logged and stored in :attr:`settings` (``genes_matched_by_rule``).
    sigma
        Gaussian-kernel σ of the ground-truth adjacency. Default: ``sigma_scale`` × the mean
        nearest-neighbour spot distance of each slice. A list sets one σ per slice.
    alpha
        Weight of the MMD loss (paper: 0.5).
    hidden
        Encoder layer sizes; the last is the embedding size. Default (None): (512, 256, 128),
        or the layers of the preset the untrained model is first trained with, if it sets
        them (``preset="quick"``: (256, 128, 64)).
    device
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    seed
        Random seed (weights, dropout, MMD batches, slice order). Same seed and device →
        same mapping.
    normalized
        True when ``X`` is already normalised (total-count + log1p); skips normalisation.
    dropout
        ST input dropout rate during training. Default: the paper's formula
        ``1 - median(genes per cell) / median(genes per spot)``.
    kernel
        Ground-truth adjacency kernel: ``"gaussian"`` (paper), ``"exponential"``, ``"knn"``.
    scale
        Length scale l of the exponential kernel (default: σ's default).
    n_neighbors
        K of the knn kernel (default 6).
    mmd_batch
        SC cells drawn for the MMD each step (paper: 1,000).
    slice_names
        Names of the ST slices.
    sigma_scale
        σ in units of the mean nearest-neighbour spot distance when ``sigma`` is None.
        Default (None): 1.0, which was better than the paper's 0.5 on both shared benchmark
        datasets over 3 seeds (hit number, MAE, PCC, SC–SC adjacency;
        ``benchmarks/results/results.md``), or 0.5 when the model is trained with
        ``preset="paper"``.
    threads
        Torch (CPU) threads for training and the readout; the caller's setting is restored
        afterwards. Default (None): every CPU the process may use (affinity, cgroup quota),
        with idle OpenMP threads sleeping rather than spinning (``import stemmap`` sets
        ``OMP_WAIT_POLICY=PASSIVE`` unless torch was imported first; then one thread fewer per
        other busy job); small training steps (at most 800 cells + spots) run on one thread,
        which was up to 2× faster (``benchmarks/results/threads_small.md``;
        ``train_settings["threads"]`` records the count). Bit-identical results need the
        same device and thread count. Measurements: ``benchmarks/results/threads.md``.

    Examples
    --------
    >>> import stemmap
    >>> sc, st = stemmap.datasets.toy_data(seed=0)
    >>> model = stemmap.STEM(sc, st, seed=0)
    >>> model.train(epochs=20, progress=False)
    >>> m = model.mapping()
    >>> m.coords.shape
    (300, 2)
    """

    def __init__(
        self,
        sc: Any,
        st: Any,
        spatial_key: str = MODEL["spatial_key"],
        layer: str | None = None,
        genes: Sequence[str] | None = None,
        sigma: float | Sequence[float] | None = None,
        alpha: float = MODEL["alpha"],
        hidden: Sequence[int] | None = None,
        device: str | torch.device = MODEL["device"],
        seed: int = MODEL["seed"],
        normalized: bool = MODEL["normalized"],
        dropout: float | None = None,
        kernel: str = MODEL["kernel"],
        scale: float | None = None,
        n_neighbors: int = MODEL["n_neighbors"],
        mmd_batch: int = MODEL["mmd_batch"],
        slice_names: Sequence[str] | None = None,
        sigma_scale: float | None = None,
        threads: int | None = MODEL["threads"],
        gene_match: str = MODEL["gene_match"],
    ) -> None:
        check_choice(kernel, KERNELS, "kernel")
        #: torch threads for training and readout (None: every usable CPU; see Notes)
        self.threads = check_threads(threads)
        # the keys a preset may set: the caller's, else the table's (resolved and checked)
        own = resolve("model", sigma_scale=sigma_scale, hidden=hidden)
        check_nonnegative(alpha, "alpha")
        check_seed(seed)
        normalized = check_flag(normalized, "normalized")
        #: the layers follow the default (a preset may still set them before training)
        self._hidden_default = own.sources["hidden"] == DEFAULT
        check_positive(mmd_batch, "mmd_batch", integer=True, minimum=2)
        check_positive(n_neighbors, "n_neighbors", integer=True)
        check_positive(scale, "scale", allow_none=True)
        check_dropout(dropout)
        self.device = resolve_device(device)
        self.data: PreparedData = prepare(
            sc,
            st,
            spatial_key=spatial_key,
            layer=layer,
            genes=genes,
            normalized=normalized,
            slice_names=slice_names,
            gene_match=gene_match,
        )
        n_sl = len(self.data.slices)
        sigmas = per_slice(sigma, n_sl, "sigma")
        # slices whose σ follows the default scale (a paper preset may still set it to ½ × NN)
        self._sigma_default = [s is None and sigma_scale is None for s in sigmas]
        scale_ = float(own["sigma_scale"])
        for sl, s in zip(self.data.slices, sigmas):
            sl.sigma = scale_ * mean_nn_distance(sl.coords) if s is None else float(s)
        if dropout is None:
            dropout = dropout_rate(self.data.sc_x, [s.x for s in self.data.slices])
        self.config: dict[str, Any] = {
            "spatial_key": spatial_key,
            "layer": layer,
            "alpha": float(alpha),
            "hidden": list(own["hidden"]),
            "seed": int(seed),
            "normalized": bool(normalized),
            "dropout": float(dropout),
            "kernel": kernel,
            "scale": scale,
            "n_neighbors": int(n_neighbors),
            "mmd_batch": int(mmd_batch),
            "sigma_scale": scale_,
            "preset": None,
            "gene_match": gene_match,
            "genes_matched_by_rule": int(self.data.n_genes_renamed),
            # value and source ("caller" / "default"; "preset" once a preset sets it)
            "resolved": own.record(),
        }
        for sl in self.data.slices:
            logger.info("slice %r: %d spots, sigma = %.4g", sl.name, sl.x.shape[0], sl.sigma)
        logger.info(
            "%d cells x %d genes; ST input dropout = %.3f; device = %s",
            self.data.sc_x.shape[0],
            len(self.data.genes),
            dropout,
            self.device,
        )
        self._build_module()
        self.history = empty_history()
        self.train_settings: dict[str, Any] = {}
        self.is_trained = False

    def _build_module(self) -> None:
        """(Re)build the network from ``config`` (``hidden``, ``dropout``), seeded by ``seed``."""
        c = self.config
        torch.manual_seed(c["seed"])
        self.module = STEMModule(len(self.data.genes), tuple(c["hidden"]), c["dropout"]).to(
            self.device
        )

    # --------------------------------------------------------------- outputs
    @property
    def settings(self) -> dict[str, Any]:
        """Everything needed to report or reproduce this run."""
        return {
            **self.config,
            **self.train_settings,
            "genes_used": len(self.data.genes),
            "n_cells": int(self.data.sc_x.shape[0]),
            "n_spots": self.data.n_spots,
            "slices": [s.name for s in self.data.slices],
            "sigma": [float(s.sigma) for s in self.data.slices],
            "device": str(self.device),
            "stemmap_version": __version__,
            "torch_version": str(torch.__version__),
        }

    def select_slices(self, slice: str | None = None) -> list[SliceData]:
        """All slices (``slice=None``) or the one named ``slice``."""
        slices = self.data.slices
        if slice is None:
            return slices
        names = [s.name for s in slices]
        if slice not in names:
            raise ValueError(f"`slice` must be one of {names}; found {slice!r}.")
        return [s for s in slices if s.name == slice]

    @torch.no_grad()
    @compute
    def embed(self, x: np.ndarray, batch_size: int = 16384) -> np.ndarray:
        """Embeddings of normalised expression rows (eval mode, no dropout)."""
        self.module.eval()
        out = []
        for a in range(0, x.shape[0], batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(x[a : a + batch_size])).to(self.device)
            out.append(self.module.embed(xb).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.config["hidden"][-1]), np.float32)

    @compute
    def mapping(
        self,
        slice: str | None = None,
        readout: str | None = None,
        *,
        expression_weight: float | None = None,
        expression_profile: str | None = None,
        balance: bool | None = None,
        temperature: float | None = None,
        spot_weights: Any = None,
        rounds: int | None = None,
        st: Any = None,
    ) -> StemMapping:
        """Read the mapping off the trained embeddings.

        Every argument left None takes the value of the preset the model was trained with,
        if it sets one, else the table's (:data:`stemmap._defaults.MAPPING`); an argument
        the caller gives always wins. The values used and where each came from are recorded
        in the mapping's ``settings["resolved"]``.

        Parameters
        ----------
        slice
            With several slices: restrict to this slice (C is then normalised over its spots
            and pseudo-coordinates are in its frame). Default: all spots.
        readout
            ``"hybrid"`` (default): logits of the embeddings plus the cells' expression
            correlation with each spot (weighted by ``expression_weight``), balanced over
            spots; more accurate on both shared benchmarks (hit number, MAE, cell-type PCC;
            ``benchmarks/results/readout.md``). ``"paper"``: the publication's
            ``C = softmax(Z_SC Z_STᵀ)``. Default (None): ``"paper"`` for a model trained
            with ``preset="paper"``, else ``"hybrid"``.
        expression_weight, expression_profile, balance, temperature, spot_weights, rounds
            See :class:`StemMapping` (``balance`` defaults to True for ``"hybrid"`` and False
            for ``"paper"``; ``expression_profile`` is ``"hellinger"`` by default, ``"log"``
            gives stemmap 0.1's hybrid readout; ``temperature`` is 1 by default).
            ``expression_weight`` and ``rounds`` default (None) to the values of the preset
            the model was trained with, if it sets them (``preset="quick"``: 3 and 3), else to
            the table's (1.5 and 2).
        st
            Other spots to read out on (an AnnData with all of the model's genes and
            coordinates in ``obsm[spatial_key]``, e.g. finer bins of the same capture): the
            trained encoder embeds them and the mapping is onto them (all-zero spots
            dropped). Default (None): the spots trained on. Not with ``slice``.

        Returns
        -------
        StemMapping
        """
        # None: the value of the preset the model was trained with, else the table's
        r = resolve(
            "mapping",
            self.config.get("preset"),
            readout=readout,
            expression_weight=expression_weight,
            rounds=rounds,
            expression_profile=expression_profile,
            temperature=temperature,
            st=st,
        )
        st = r.values.get("st")
        if st is not None and slice is not None:
            raise ValueError("give `st` (other spots) or `slice` (a training slice), not both.")
        if not self.is_trained:
            logger.warning("the model has not been trained; the mapping reflects random weights")
        readout = r["readout"]
        settings = self.settings
        settings["resolved"] = {**settings.get("resolved", {}), **r.record()}
        if st is None:
            slices = self.select_slices(slice)
        else:  # other spots, prepared as the model's were
            kw = {k: self.config[k] for k in ("spatial_key", "layer", "normalized")}
            gm = self.config.get("gene_match", "exact")
            slices = [prepare_spots(st, self.data.genes, gene_match=gm, **kw)]
        z_sc = self.embed(self.data.sc_x)
        x_st = np.concatenate([s.x for s in slices])
        z_st = self.embed(x_st)
        return StemMapping(
            z_sc,
            z_st,
            np.concatenate([s.coords for s in slices]),
            self.data.sc_names,
            [n for s in slices for n in s.spot_names],
            [s.name for s in slices for _ in s.spot_names],
            settings=settings,
            dropped={
                "sc": list(self.data.sc_dropped),
                "st": [n for s in slices for n in s.dropped],
            },
            sc_expr=self.data.sc_x if readout == "hybrid" else None,
            st_expr=x_st if readout == "hybrid" else None,
            readout=readout,
            expression_weight=r["expression_weight"],
            expression_profile=r["expression_profile"],
            balance=balance,
            temperature=r["temperature"],
            spot_weights=spot_weights,
            threads=self.threads,
            rounds=r["rounds"],
        )

    @compute
    def attribution(
        self,
        cells: Any = None,
        target: Any = "best_spot",
        steps: int = ATTRIBUTION["steps"],
        **kwargs: Any,
    ) -> pd.DataFrame:
        """Integrated-gradient gene attribution of each cell's mapping (cells × genes DataFrame).

        See :func:`stemmap.attribution.integrated_gradients` for the arguments.
        """
        from .attribution import integrated_gradients

        return integrated_gradients(self, cells, target=target, steps=steps, **kwargs)

    # ------------------------------------------------------------ save/load
    def save(self, path: str | Path) -> None:
        """Save weights, settings, history and the prepared inputs (reload without retraining).

        The file is a zip of JSON settings and NumPy arrays that cannot run code when read
        (see :mod:`stemmap._io`); it is written to a temporary file next to ``path`` and
        renamed, so ``path`` is either the old file or the complete new one.
        """
        from ._io import model_blob, write_model

        write_model(path, model_blob(self))
        logger.info("saved model to %s", path)

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str | torch.device = "auto",
        sc: Any = None,
        st: Any = None,
        *,
        trust: bool = False,
    ) -> STEM:
        """Load a saved model (on CPU or GPU) without retraining.

        Parameters
        ----------
        path
            File written by :meth:`save`.
        device
            Where to put the model.
        sc, st
            Optional new data to map with the trained encoder; their genes must include all
            genes the model was trained on.
        trust
            Also read model files of stemmap 0.1 (PyTorch pickles). **Unsafe**: reading such
            a file runs any code it contains. Use it only for files you wrote yourself, and
            :meth:`save` the model again to convert it.

        Raises
        ------
        FileNotFoundError, IsADirectoryError
            ``path`` does not exist or is a folder.
        stemmap.StemModelFileError
            (a ``ValueError``) ``path`` is not a stemmap model file, is truncated or damaged,
            has a newer format version, or is an old pickle file and ``trust`` is False.
        """
        from ._io import load_model

        return load_model(cls, path, device=device, sc=sc, st=st, trust=check_flag(trust, "trust"))

    def __repr__(self) -> str:
        d = self.data
        state = "trained" if self.is_trained else "untrained"
        return (
            f"STEM({d.sc_x.shape[0]} cells, {d.n_spots} spots in {len(d.slices)} slice(s), "
            f"{len(d.genes)} genes, {state}, device={self.device})"
        )
