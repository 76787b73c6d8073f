"""Gene attribution of STEM mappings: integrated gradients of C_{i,m} w.r.t. a cell's genes.

The paper (Hao et al. 2024, Methods, "Attribution function") explains where STEM puts a cell
by integrated gradients (IG, Sundararajan et al. 2017) with a zero baseline:

    W_ij = x_ij · ∫₀¹ ∂F(α·x_i)/∂x_ij dα,    F(x) = C_{i,m} = softmax_m(E(x) · Z_STᵀ),

with m the cell's best spot, E the trained encoder and Z_ST the (fixed) spot embeddings.
This is the network's own mapping (``model.mapping(readout="paper")``); the expression term
of the default hybrid readout is not attributed.
Stacking W_i over cells gives the (M × H) attribution profile used to find spatial dominant
genes (:func:`stemmap.analysis.spatial_dominant_genes`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ._defaults import ATTRIBUTION

logger = logging.getLogger(__name__)

__all__ = ["integrated_gradients", "path_weights", "METHODS"]

#: Quadrature rules for the path integral over α ∈ [0, 1].
METHODS = (
    "riemann_trapezoid",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "gausslegendre",
)


def path_weights(steps: int, method: str = "riemann_trapezoid") -> tuple[np.ndarray, np.ndarray]:
    """Points α_k in [0, 1] and weights w_k with ``Σ_k w_k g(α_k) ≈ ∫₀¹ g(α) dα``.

    Parameters
    ----------
    steps
        Number of points (≥ 2 for the trapezoid rule, ≥ 1 otherwise).
    method
        One of :data:`METHODS`.

    Returns
    -------
    tuple of numpy.ndarray
        ``(alphas, weights)``, both of length ``steps``.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise TypeError(f"`steps` must be an integer; found {steps!r}.")
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)}; found {method!r}.")
    n = int(steps)
    if n < (2 if method == "riemann_trapezoid" else 1):
        raise ValueError(f"`steps` must be at least 2 for {method!r}; found {steps!r}.")
    if method == "riemann_trapezoid":
        a = np.linspace(0.0, 1.0, n)
        w = np.full(n, 1.0 / (n - 1))
        w[[0, -1]] *= 0.5
    elif method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n)
        a, w = (x + 1.0) / 2.0, w / 2.0
    else:
        off = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
        a = (np.arange(n) + off) / n
        w = np.full(n, 1.0 / n)
    return a, w


def _positions(
    values: Any, names: Sequence[str], arg: str, what: str, *, negative: bool = False
) -> np.ndarray:
    """Positions among ``names`` of a selection: names, integer indices or a boolean mask.

    Parameters
    ----------
    values
        The selection (array-like).
    names
        Names of all items (their number bounds the indices).
    arg, what
        Argument name and item kind, for errors (``"cells"``, ``"cell"``).
    negative
        Accept negative indices, counted from the end.

    Returns
    -------
    numpy.ndarray
        int64 positions, in the order given.
    """
    n = len(names)
    arr = np.asarray(values)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ValueError(
                f"a boolean `{arg}` must have one entry per {what} ({n}); found {arr.shape}."
            )
        return np.flatnonzero(arr)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < (-n if negative else 0) or arr.max() >= n):
            raise ValueError(
                f"`{arg}` {what} indices must lie in [0, {n}); found {arr.min()}..{arr.max()}."
            )
        return arr.astype(np.int64) % n if negative else arr.astype(np.int64)
    if arr.dtype.kind in "UO":
        pos = pd.Index(names).get_indexer(arr.astype(str))
        if (pos < 0).any():
            bad = arr[pos < 0][:3].tolist()
            raise ValueError(f"`{arg}` holds names that are not model {what}s, e.g. {bad}.")
        return pos.astype(np.int64)
    raise TypeError(
        f"`{arg}` must be {what} names, integer indices or a boolean mask; found {arr.dtype}."
    )


def _cell_index(model: Any, cells: Any) -> np.ndarray:
    if cells is None:
        return np.arange(model.data.sc_x.shape[0])
    if isinstance(cells, (str, int, np.integer)):
        cells = [cells]
    return _positions(cells, model.data.sc_names, "cells", "cell", negative=True)


def integrated_gradients(
    model: Any,
    cells: Any = None,
    target: Any = "best_spot",
    steps: int = ATTRIBUTION["steps"],
    *,
    method: str = ATTRIBUTION["method"],
    batch_size: int = ATTRIBUTION["batch_size"],
    slice: str | None = None,
    return_delta: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.Series]:
    """Integrated-gradient attribution of each cell's mapping to its genes (zero baseline).

    For cell i with normalised input x_i (``model.data.sc_x``), ``F(x) = Σ_{j∈T_i} C_ij(x)``
    where ``C_i(x) = softmax(E(x) · Z_STᵀ)`` over the spots and ``T_i`` is the target (by
    default the cell's best spot m, so ``F = C_{i,m}`` as in the paper). The attribution
    of gene g is ``x_ig · Σ_k w_k ∂F/∂x_g(α_k x_i)`` (a quadrature of the IG path integral).
    By completeness, each row sums to ``F(x_i) − F(0)`` up to the quadrature error, which
    ``return_delta`` exposes.

    The spot embeddings Z_ST are computed once (eval mode, no dropout) and held fixed, so only
    the cell side is differentiated. The path points of ``batch_size`` cells go through the
    encoder in one batch (``steps × batch_size`` rows); because every row's F depends on its
    own input only (the encoder has LayerNorm, no batch statistics), one backward pass of
    ``ΣF`` gives all per-row gradients.

    This is a short own implementation rather than captum's ``IntegratedGradients``: captum
    is not a dependency of stemmap (it would be one more install for ~40 lines of work),
    and the batched form here fixes Z_ST outside the graph and differentiates the softmax
    over spots directly. The quadrature rules match captum's names.

    Parameters
    ----------
    model
        A trained :class:`stemmap.STEM`.
    cells
        Cells to explain: names, integer indices or a boolean mask over
        ``model.data.sc_names`` (default: all cells).
    target
        ``"best_spot"`` (default): each cell's most probable spot (argmax of its row of C).
        An int or spot name: that spot for every cell. A sequence of indices/names or a
        boolean mask over spots: the summed probability of that set of spots (a region).
        A 2-D array (cells × spots): per-cell weights W, ``F_i = Σ_j W_ij C_ij``.
    steps
        Points on the path from the zero baseline to x.
    method
        Quadrature rule, one of :data:`METHODS` (``"riemann_trapezoid"`` default;
        ``"gausslegendre"`` converges fastest for smooth F).
    batch_size
        Cells per forward/backward pass; memory grows as ``steps × batch_size × (genes +
        hidden + spots)``.
    slice
        With several ST slices: restrict C to this slice's spots (as ``model.mapping(slice)``).
    return_delta
        Also return the completeness error ``Σ_g W_ig − (F(x_i) − F(0))`` per cell.

    Returns
    -------
    pandas.DataFrame
        (cells × genes) float32 attributions, indexed by cell name with gene columns.
    pandas.Series
        Only with ``return_delta``: the completeness error per cell.

    Examples
    --------
    >>> import stemmap
    >>> sc, st = stemmap.datasets.toy_data(seed=0)
    >>> model = stemmap.STEM(sc, st, hidden=(64, 32, 16)).train(epochs=20, progress=False)
    >>> attr = stemmap.attribution.integrated_gradients(model, steps=20)
    >>> attr.shape
    (300, 40)
    """
    if not hasattr(model, "module") or not hasattr(model, "data"):
        raise TypeError(f"`model` must be a stemmap.STEM; found {type(model).__name__}.")
    alphas, weights = path_weights(steps, method)
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"`batch_size` must be a positive integer; found {batch_size!r}.")
    if not getattr(model, "is_trained", True):
        logger.warning("the model has not been trained; attributions reflect random weights")
    slices = model.select_slices(slice)
    spot_names = [n for s in slices for n in s.spot_names]
    n_spots = len(spot_names)
    idx = _cell_index(model, cells)
    x_all = model.data.sc_x[idx]
    n = len(idx)

    # target → per-cell spot index (gather) or weights over spots
    per_cell: np.ndarray | None = None
    W: np.ndarray | None = None
    if isinstance(target, str) and target == "best_spot":
        z_st_np = model.embed(np.concatenate([s.x for s in slices]))
        z_sc_np = model.embed(x_all)
        per_cell = np.argmax(z_sc_np @ z_st_np.T, axis=1) if n else np.zeros(0, dtype=np.int64)
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        per_cell = np.full(n, int(_positions([int(target)], spot_names, "target", "spot")[0]))
    elif isinstance(target, str):
        per_cell = np.full(n, int(_positions([target], spot_names, "target", "spot")[0]))
    elif isinstance(target, (Sequence, np.ndarray, pd.Series, pd.Index)):
        arr = np.asarray(target)
        if arr.ndim == 2:
            if arr.shape != (n, n_spots):
                raise ValueError(
                    f"a 2-D `target` must be (cells × spots) = ({n}, {n_spots}); found {arr.shape}."
                )
            W = arr.astype(np.float32)
        else:
            sel = _positions(arr, spot_names, "target", "spot")
            if sel.size == 0:
                raise ValueError("`target` selects no spots.")
            W = np.zeros((1, n_spots), dtype=np.float32)
            W[0, sel] = 1.0
    else:
        raise TypeError(
            "`target` must be 'best_spot', a spot index or name, a set of spots, or a "
            f"(cells × spots) weight matrix; found {type(target).__name__}."
        )

    dev = model.device
    module = model.module
    was_training = module.training
    module.eval()
    t0 = time.perf_counter()
    z_st = torch.from_numpy(model.embed(np.concatenate([s.x for s in slices]))).to(dev)
    a_t = torch.as_tensor(alphas, dtype=torch.float32, device=dev)
    w_t = torch.as_tensor(weights, dtype=torch.float32, device=dev)
    n_steps = len(alphas)
    attr = np.empty((n, x_all.shape[1]), dtype=np.float32)
    delta = np.empty(n, dtype=np.float64)

    def f_of(x: torch.Tensor, rows: Any, reps: int) -> torch.Tensor:
        logp = torch.log_softmax(module.embed(x) @ z_st.T, dim=1)
        if per_cell is not None:
            tgt = torch.as_tensor(per_cell[rows], device=dev).repeat(reps)
            return logp.gather(1, tgt[:, None])[:, 0].exp()
        Wb = torch.as_tensor(W if W.shape[0] == 1 else W[rows], device=dev)
        if Wb.shape[0] > 1:
            Wb = Wb.repeat(reps, 1)
        return (logp.exp() * Wb).sum(dim=1)

    try:
        for a in range(0, n, batch_size):
            b = min(a + batch_size, n)
            rows = np.s_[a:b]
            xb = torch.from_numpy(np.ascontiguousarray(x_all[a:b])).to(dev)
            with torch.enable_grad():
                path = (a_t[:, None, None] * xb[None]).reshape(-1, xb.shape[1])
                path.requires_grad_(True)
                F = f_of(path, rows, n_steps)
                (g,) = torch.autograd.grad(F.sum(), path)
            avg = (w_t[:, None, None] * g.reshape(n_steps, b - a, -1)).sum(dim=0)
            ab = (xb * avg).detach()
            attr[a:b] = ab.cpu().numpy()
            if return_delta:
                with torch.no_grad():
                    f1 = f_of(xb, rows, 1).double()
                    f0 = f_of(torch.zeros_like(xb), rows, 1).double()
                delta[a:b] = (ab.double().sum(dim=1) - (f1 - f0)).cpu().numpy()
    finally:
        module.train(was_training)
    logger.info(
        "integrated gradients: %d cells x %d genes, %d steps (%s) in %.2f s",
        n,
        x_all.shape[1],
        n_steps,
        method,
        time.perf_counter() - t0,
    )
    cell_names = np.asarray(model.data.sc_names, dtype=object)[idx]
    out = pd.DataFrame(
        attr, index=pd.Index(cell_names, name="cell"), columns=list(model.data.genes)
    )
    if return_delta:
        return out, pd.Series(delta, index=out.index, name="delta")
    return out
