"""The user-facing STEM model: validates AnnData, picks the device, trains, saves, maps."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import __version__
from ._data import PreparedData, SliceData, dropout_rate, mean_nn_distance, prepare
from ._defaults import ATTRIBUTION, MAPPING, MODEL, PRESETS, TRAIN
from ._device import (
    available_memory,
    fmt_seconds,
    plan_batches,
    resolve_device,
    step_seconds,
    training_bytes,
)
from ._kernels import KERNELS, spatial_adjacency
from ._module import STEMModule
from ._progress import progress_bar
from ._runtime import compute
from ._validate import (
    check_choice,
    check_flag,
    check_nonnegative,
    check_positive,
    check_seed,
    check_threads,
    check_train_args,
)
from .mapping import StemMapping

logger = logging.getLogger(__name__)


class STEM:
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
        Encoder layer sizes; the last is the embedding size.
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
        other busy job). Bit-identical results need the same device and thread count.
        Measurements: ``benchmarks/results/threads.md``.

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
        hidden: Sequence[int] = MODEL["hidden"],
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
        check_positive(sigma_scale, "sigma_scale", allow_none=True)
        check_nonnegative(alpha, "alpha")
        check_seed(seed)
        normalized = check_flag(normalized, "normalized")
        hidden = _check_hidden(hidden)
        check_positive(mmd_batch, "mmd_batch", integer=True, minimum=2)
        check_positive(n_neighbors, "n_neighbors", integer=True)
        check_positive(scale, "scale", allow_none=True)
        if dropout is not None:
            if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.number)):
                raise TypeError(f"`dropout` must be a number in [0, 1) or None; found {dropout!r}.")
            if not (0 <= dropout < 1):
                raise ValueError(f"`dropout` must be in [0, 1); found {dropout!r}.")
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
        sigmas = _per_slice(sigma, n_sl, "sigma")
        # slices whose σ follows the default scale (a paper preset may still set it to ½ × NN)
        self._sigma_default = [s is None and sigma_scale is None for s in sigmas]
        scale_ = MODEL["sigma_scale"] if sigma_scale is None else float(sigma_scale)
        for sl, s in zip(self.data.slices, sigmas):
            sl.sigma = scale_ * mean_nn_distance(sl.coords) if s is None else float(s)
        if dropout is None:
            dropout = dropout_rate(self.data.sc_x, [s.x for s in self.data.slices])
        self.config: dict[str, Any] = {
            "spatial_key": spatial_key,
            "layer": layer,
            "alpha": float(alpha),
            "hidden": list(hidden),
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
        torch.manual_seed(int(seed))
        self.module = STEMModule(len(self.data.genes), hidden, dropout).to(self.device)
        self.history = pd.DataFrame(
            columns=["epoch", "loss", "extract", "trans", "mmd", "beta", "lr"]
        )
        self.train_settings: dict[str, Any] = {}
        self.is_trained = False

    # ----------------------------------------------------------------- train
    def _adjacency(
        self, sl: SliceData, idx: np.ndarray | None = None, coarsen: float = 1.0
    ) -> torch.Tensor:
        c = self.config
        scale = (c["scale"] if c["scale"] is not None else sl.sigma) * coarsen
        coords = sl.coords if idx is None else sl.coords[idx]
        return spatial_adjacency(
            coords,
            c["kernel"],
            sigma=sl.sigma * coarsen,
            scale=scale,
            k=min(c["n_neighbors"], coords.shape[0]),
            device=self.device,
        )

    @compute
    def train(
        self,
        epochs: int = TRAIN["epochs"],
        lr: float = TRAIN["lr"],
        *,
        weight_decay: float = TRAIN["weight_decay"],
        lr_step: int = TRAIN["lr_step"],
        lr_gamma: float = TRAIN["lr_gamma"],
        warmup: int = TRAIN["warmup"],
        cell_batch_size: int | None = TRAIN["cell_batch_size"],
        spot_batch_size: int | None = TRAIN["spot_batch_size"],
        progress: bool | None = None,
        preset: str | None = None,
        mixed_precision: bool = TRAIN["mixed_precision"],
    ) -> STEM:
        """Train the model (the paper's schedule by default).

        Parameters
        ----------
        preset
            A named schedule from :data:`stemmap.PRESETS` (``"paper"``, ``"fast"``); it sets
            the epochs, learning rate, its steps, warm-up and cell batches, overriding those
            arguments. ``"paper"`` also restores the publication's other choices where the
            caller left them to the defaults: σ = ½ × the mean nearest-neighbour spot distance
            (when neither ``sigma`` nor ``sigma_scale`` was given and the model is untrained)
            and the paper readout of :meth:`mapping` (and so the embedding SC–SC adjacency).
        epochs
            Training epochs (paper: 400). Each epoch takes one step per ST slice, the slices
            in random order.
        lr
            AdamW learning rate (paper: 0.002).
        weight_decay
            AdamW weight decay.
        lr_step, lr_gamma
            The learning rate is multiplied by ``lr_gamma`` every ``lr_step`` epochs
            (paper: halved every 200).
        warmup
            β (weight of the transfer loss) is 0 for ``warmup`` epochs, then rises linearly to
            1 at the last epoch: ``β = max((epoch - warmup) / (epochs - warmup), 0)``. With
            ``epochs <= warmup`` β rises from the first epoch.
        cell_batch_size
            None (default): all cells every step, as the paper. An integer: a random batch of
            that many cells per step; C and Ĉ of a step are then over the batch.
        spot_batch_size
            None (default): all spots of a slice every step. An integer: steps alternate a
            spatially contiguous patch of that many spots (a random anchor spot and its
            nearest spots; local structure) and as many spots spread at random over the
            slice with σ widened by √(spots / patch) (the global layout at a coarser
            resolution), the adjacency renormalised over the chosen spots. Patches alone lost
            the global layout at 100,000 cells × 5,000 spots (MAE 29 grid steps, random
            level); alternating gave 4.15 (``benchmarks/results/scale_accuracy.md``).
            When neither is given and one full-batch step would not fit in memory, both are
            chosen automatically (with a message).
        progress
            Show a progress bar with the loss terms (default: ``stemmap.settings.progress``).
        mixed_precision
            Run the forward pass under ``torch.autocast`` with bfloat16 matrix products (losses,
            softmaxes and the optimiser stay in float32). Meant for GPUs with bfloat16 units
            (A100, H100/H200), where it is faster and halves activation memory; on a CPU it is
            usually slower. Off by default: float32 everywhere.

        Returns
        -------
        STEM
            ``self``, trained; the loss history is in :attr:`history`.

        Notes
        -----
        With batches, each step minimises the same three losses restricted to a random set of
        cells and a spatial patch of spots: an unbiased estimate of neither full-batch loss,
        but of the losses of random sub-problems of the same form, whose optimum embeds the
        same spatial structure (the benchmark compares the two on the shared data). Under
        ``torchrun`` (``torch.distributed`` initialised), the module is wrapped in
        ``DistributedDataParallel`` and every process draws its own batches.
        """
        if preset is not None:
            check_choice(preset, list(PRESETS), "preset")
            p = PRESETS[preset]
            epochs, lr, lr_step, lr_gamma = p["epochs"], p["lr"], p["lr_step"], p["lr_gamma"]
            warmup, cell_batch_size = p["warmup"], p["cell_batch_size"]
            p_scale = p.get("sigma_scale")
            if p_scale is not None and len(self.history) == 0 and any(self._sigma_default):
                for sl, dflt in zip(self.data.slices, self._sigma_default):
                    if dflt:
                        sl.sigma = p_scale * mean_nn_distance(sl.coords)
                        logger.info("preset %r: slice %r sigma = %.4g", preset, sl.name, sl.sigma)
                self.config["sigma_scale"] = p_scale
            self.config["preset"] = preset
        if progress is not None:
            progress = check_flag(progress, "progress")
        check_train_args(
            epochs=epochs,
            lr=lr,
            weight_decay=weight_decay,
            lr_step=lr_step,
            lr_gamma=lr_gamma,
            warmup=warmup,
            cell_batch_size=cell_batch_size,
            spot_batch_size=spot_batch_size,
        )
        amp = check_flag(mixed_precision, "mixed_precision")
        m = self.data.sc_x.shape[0]
        cell_batch_size, spot_batch_size = self._plan_batches(cell_batch_size, spot_batch_size)
        bs = m if cell_batch_size is None else min(int(cell_batch_size), m)
        dev = self.device
        rank, world = _dist_info()
        net: torch.nn.Module = self.module
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(
                self.module, device_ids=[dev.index] if dev.type == "cuda" else None
            )
        x_sc_all = torch.from_numpy(self.data.sc_x).to(dev)
        x_st = [torch.from_numpy(s.x).to(dev) for s in self.data.slices]
        patches = [
            _PatchSampler(s.coords, spot_batch_size)
            if spot_batch_size and spot_batch_size < s.x.shape[0]
            else None
            for s in self.data.slices
        ]
        S = [self._adjacency(s) if p is None else None for s, p in zip(self.data.slices, patches)]
        opt = torch.optim.AdamW(self.module.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=lr_step, gamma=lr_gamma)
        gen = torch.Generator().manual_seed(
            self.config["seed"] + len(self.history) + 100_003 * rank
        )
        torch.manual_seed(self.config["seed"] + 7919 * len(self.history) + 100_003 * rank)
        alpha, n_mmd = self.config["alpha"], self.config["mmd_batch"]
        w = warmup if epochs > warmup else 0
        start = len(self.history)
        rows: list[list[Any]] = []
        pending: list[tuple[int, torch.Tensor, float, float]] = []
        t0 = time.perf_counter()
        self.module.train()
        show = progress if rank == 0 else False
        with progress_bar(total=epochs, desc="STEM training", enable=show, unit="epoch") as bar:
            for ep in range(epochs):
                beta = max((ep - w) / max(epochs - w, 1), 0.0) if w else (ep + 1) / epochs
                sums = torch.zeros(4, dtype=torch.float64, device=dev)
                for s in torch.randperm(len(x_st), generator=gen).tolist():
                    if bs < m:
                        x_sc = x_sc_all[torch.randperm(m, generator=gen)[:bs].to(dev)]
                    else:
                        x_sc = x_sc_all
                    if patches[s] is None:
                        xs, Ss = x_st[s], S[s]
                    else:
                        pidx, coarsen = patches[s].sample(gen)
                        xs = x_st[s][torch.from_numpy(pidx).to(dev)]
                        Ss = self._adjacency(self.data.slices[s], pidx, coarsen)
                    mmd_idx = None
                    if n_mmd < bs:
                        mmd_idx = torch.randperm(bs, generator=gen)[:n_mmd].to(dev)
                    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                        losses = net(x_sc, xs, Ss, mmd_idx)
                    losses = {k: v.float() for k, v in losses.items()}
                    loss = losses["extract"] + alpha * losses["mmd"] + beta * losses["trans"]
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    # accumulated on the device: no host sync per step
                    sums += torch.stack(
                        [loss, losses["extract"], losses["trans"], losses["mmd"]]
                    ).detach()
                pending.append((start + ep + 1, sums / len(x_st), beta, sched.get_last_lr()[0]))
                sched.step()
                bar.update(1)
                if ep % 10 == 0 or ep == epochs - 1:
                    # one host read per logged epoch for all epochs since the last one
                    vals = torch.stack([p[1] for p in pending]).cpu().numpy()
                    for (e, _, b, lr_e), v in zip(pending, vals):
                        if not np.isfinite(v[0]):
                            raise FloatingPointError(
                                f"training diverged at epoch {e} (loss {v[0]}); lower `lr` or "
                                "check the input for extreme values."
                            )
                        rows.append([e, *v.tolist(), b, lr_e])
                    pending.clear()
                    last = rows[-1]
                    bar.set_postfix(
                        loss=f"{last[1]:.3f}",
                        extract=f"{last[2]:.3f}",
                        trans=f"{last[3]:.3f}",
                        mmd=f"{last[4]:.3f}",
                        refresh=False,
                    )
        elapsed = time.perf_counter() - t0
        new = pd.DataFrame(rows, columns=self.history.columns)
        self.history = (
            new if self.history.empty else pd.concat([self.history, new], ignore_index=True)
        )
        self.train_settings = {
            "epochs": int(epochs) + self.train_settings.get("epochs", 0),
            "lr": float(lr),
            "weight_decay": float(weight_decay),
            "lr_step": int(lr_step),
            "lr_gamma": float(lr_gamma),
            "warmup": int(warmup),
            "cell_batch_size": None if cell_batch_size is None else int(cell_batch_size),
            "spot_batch_size": None if spot_batch_size is None else int(spot_batch_size),
            "world_size": world,
            "preset": preset,
            "mixed_precision": amp,
            "train_seconds": round(elapsed + self.train_settings.get("train_seconds", 0.0), 3),
        }
        if rank == 0:
            logger.info(
                "trained %d epochs in %.1f s (%.3f s/epoch); final loss %.4f",
                epochs,
                elapsed,
                elapsed / epochs,
                rows[-1][1],
            )
        self.is_trained = True
        return self

    def _step_shape(
        self, cell_batch_size: int | None, spot_batch_size: int | None
    ) -> tuple[int, int, int, tuple[int, ...]]:
        """(cells, spots, genes, hidden) of one step with the given batch sizes."""
        m = self.data.sc_x.shape[0]
        n = max(s.x.shape[0] for s in self.data.slices)
        bc = m if cell_batch_size is None else min(cell_batch_size, m)
        bn = n if spot_batch_size is None else min(spot_batch_size, n)
        return bc, bn, len(self.data.genes), tuple(self.config["hidden"])

    def memory_estimate(
        self, cell_batch_size: int | None = None, spot_batch_size: int | None = None
    ) -> int:
        """Approximate peak bytes of one training step with the given batch sizes."""
        m, n, g, hidden = self._step_shape(None, None)
        return training_bytes(m, n, g, hidden, cell_batch_size, spot_batch_size)

    def step_time_estimate(
        self, cell_batch_size: int | None = None, spot_batch_size: int | None = None
    ) -> float:
        """Rough seconds of one training step with the given batch sizes on this device."""
        return step_seconds(*self._step_shape(cell_batch_size, spot_batch_size), self.device)

    def _plan_batches(
        self, cell_batch_size: int | None, spot_batch_size: int | None
    ) -> tuple[int | None, int | None]:
        """Check the step fits in memory; pick batch sizes when the caller gave none
        (:func:`stemmap.estimate_resources` explains the rule)."""
        m, n, g, hidden = self._step_shape(None, None)
        plan = plan_batches(
            m,
            n,
            g,
            hidden,
            self.device,
            cell_batch_size,
            spot_batch_size,
            free=available_memory(self.device),
        )
        if plan["reason"]:
            logger.warning(
                "a full-batch step (%d cells x %d spots) %s; training on batches of %d cells "
                "and %d-spot patches instead (about %s per step). Pass cell_batch_size=%d and "
                "spot_batch_size=%d to force full batches.",
                m,
                n,
                plan["reason"],
                plan["cell_batch_size"] or m,
                plan["spot_batch_size"] or n,
                fmt_seconds(plan["step_seconds"]),
                m,
                n,
            )
        return plan["cell_batch_size"], plan["spot_batch_size"]

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
        expression_weight: float = MAPPING["expression_weight"],
        expression_profile: str = MAPPING["expression_profile"],
        balance: bool | None = None,
        temperature: float = MAPPING["temperature"],
        spot_weights: Any = None,
    ) -> StemMapping:
        """Read the mapping off the trained embeddings.

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
        expression_weight, expression_profile, balance, temperature, spot_weights
            See :class:`StemMapping` (``balance`` defaults to True for ``"hybrid"`` and False
            for ``"paper"``; ``expression_profile`` is ``"hellinger"`` by default, ``"log"``
            gives stemmap 0.1's hybrid readout).

        Returns
        -------
        StemMapping
        """
        if not self.is_trained:
            logger.warning("the model has not been trained; the mapping reflects random weights")
        if readout is None:  # the preset's readout, else the table's
            preset = PRESETS.get(self.config.get("preset") or "", {})
            readout = preset.get("readout", MAPPING["readout"])
        slices = self.select_slices(slice)
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
            settings=self.settings,
            dropped={
                "sc": list(self.data.sc_dropped),
                "st": [n for s in slices for n in s.dropped],
            },
            sc_expr=self.data.sc_x if readout == "hybrid" else None,
            st_expr=x_st if readout == "hybrid" else None,
            readout=readout,
            expression_weight=expression_weight,
            expression_profile=expression_profile,
            balance=balance,
            temperature=temperature,
            spot_weights=spot_weights,
            threads=self.threads,
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


class _PatchSampler:
    """Spot batches of ``size`` spots, alternating two views of the slice.

    Even draws: a spatially contiguous patch (a random anchor spot and its nearest spots), at
    the slice's resolution: local structure. Odd draws: ``size`` spots spread at random over
    the whole slice, whose adjacency uses σ (and the kernel scale) widened by
    ``sqrt(n / size)``, the growth of the nearest-neighbour spacing of such a subset: the
    global layout at a coarser resolution. Patches alone lose the global layout once a patch
    is a small part of the slice.
    """

    def __init__(self, coords: np.ndarray, size: int) -> None:
        from scipy.spatial import cKDTree

        self.tree = cKDTree(coords)
        self.n = coords.shape[0]
        self.size = int(size)
        self.coords = coords
        self.coarsen = float(np.sqrt(self.n / self.size))
        self.draws = 0

    def sample(self, gen: torch.Generator) -> tuple[np.ndarray, float]:
        self.draws += 1
        if self.draws % 2 == 0:
            idx = torch.randperm(self.n, generator=gen)[: self.size].numpy()
            return np.sort(idx.astype(np.int64)), self.coarsen
        anchor = int(torch.randint(self.n, (1,), generator=gen))
        _, idx = self.tree.query(self.coords[anchor], k=self.size)
        return np.sort(np.asarray(idx, dtype=np.int64)), 1.0


def _dist_info() -> tuple[int, int]:
    """(rank, world size) when torch.distributed is initialised, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _check_hidden(hidden: Any) -> tuple[int, ...]:
    """Encoder layer sizes: a non-empty sequence of positive whole numbers."""
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence | np.ndarray):
        raise TypeError(f"`hidden` must be a list of positive layer sizes; found {hidden!r}.")
    vals = list(hidden)
    ok = all(
        not isinstance(h, bool)
        and isinstance(h, (int, float, np.number))
        and np.isfinite(h)
        and h >= 1
        and float(h) == int(h)
        for h in vals
    )
    if not vals or not ok:
        raise ValueError(f"`hidden` must be positive whole layer sizes; found {hidden!r}.")
    return tuple(int(h) for h in vals)


def _per_slice(value: Any, n: int, name: str) -> list[Any]:
    if value is None or isinstance(value, (int, float, np.number)):
        if value is not None:
            check_positive(value, name)
        return [value] * n
    vals = list(value)
    if len(vals) != n:
        raise ValueError(
            f"`{name}` must be a number or one value per slice ({n}); found {len(vals)}."
        )
    for v in vals:
        check_positive(v, name)
    return vals
