"""Ground-truth spatial adjacency S (N × N, rows sum to 1) from spot coordinates."""

from __future__ import annotations

import numpy as np
import torch

KERNELS = ("gaussian", "exponential", "knn")


def spatial_adjacency(
    coords: np.ndarray,
    kernel: str = "gaussian",
    *,
    sigma: float | None = None,
    scale: float | None = None,
    k: int | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Row-normalised spatial adjacency of spots.

    Parameters
    ----------
    coords
        (N × 2) spot coordinates.
    kernel
        ``"gaussian"`` (``exp(-d²/2σ²)``, the paper's default), ``"exponential"``
        (``exp(-d/l)``) or ``"knn"`` (1 for each spot's ``k`` nearest spots, itself included).
    sigma, scale, k
        The kernel's parameter (σ, l, K).
    device, dtype
        Where the returned tensor lives.

    Returns
    -------
    torch.Tensor
        (N × N) matrix whose rows sum to 1. Computed once per slice.
    """
    Y = torch.as_tensor(np.asarray(coords, dtype=np.float64), device=device)
    d2 = torch.cdist(Y, Y).pow(2)
    if kernel == "gaussian":
        if sigma is None or not sigma > 0:
            raise ValueError(f"`sigma` must be a positive number; found {sigma!r}")
        # Subtracting each row's minimum (0, the diagonal) keeps exp() from underflowing
        # for tiny σ; the constant 1/(sqrt(2π)σ) cancels in the row normalisation.
        logits = -d2 / (2.0 * sigma**2)
        S = torch.softmax(logits, dim=1)
    elif kernel == "exponential":
        if scale is None or not scale > 0:
            raise ValueError(f"`scale` must be a positive number; found {scale!r}")
        S = torch.softmax(-d2.sqrt() / scale, dim=1)
    elif kernel == "knn":
        n = Y.shape[0]
        if k is None or not 1 <= int(k) <= n:
            raise ValueError(f"`k` must be an integer in [1, {n}] for the knn kernel; found {k!r}")
        idx = torch.topk(-d2, int(k), dim=1).indices
        S = torch.zeros_like(d2)
        S.scatter_(1, idx, 1.0)
        S = S / S.sum(dim=1, keepdim=True)
    else:
        raise ValueError(f"`kernel` must be one of {list(KERNELS)}; found {kernel!r}")
    return S.to(dtype)
