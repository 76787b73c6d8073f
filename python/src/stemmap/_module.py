"""The STEM network and its losses: tensors in, losses out (no AnnData, no device logic)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ._defaults import MODEL

EPS = 1e-7


class Encoder(nn.Module):
    """Shared MLP encoder: H → 512 → 256 → 128 (LayerNorm + ReLU after the hidden layers)."""

    def __init__(self, n_genes: int, hidden: Sequence[int] = MODEL["hidden"]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d_in = n_genes
        for i, d_out in enumerate(hidden):
            layers.append(nn.Linear(d_in, d_out))
            if i < len(hidden) - 1:
                layers += [nn.LayerNorm(d_out), nn.ReLU()]
            d_in = d_out
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def soft_cross_entropy(target: torch.Tensor, log_pred: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-Σ_j target_ij · log_pred_ij``."""
    return -(target * log_pred).sum(dim=1).mean()


def _sq_dist(a: torch.Tensor, b: torch.Tensor, sa: torch.Tensor, sb: torch.Tensor) -> torch.Tensor:
    """Pairwise squared distances from one matrix product (``sa``, ``sb``: squared norms)."""
    return (sa[:, None] + sb[None, :] - 2.0 * (a @ b.T)).clamp_min(0.0)


def gaussian_mmd(
    x: torch.Tensor, y: torch.Tensor, n_kernels: int = 5, mul: float = 2.0
) -> torch.Tensor:
    """Multi-bandwidth Gaussian-kernel MMD² between samples ``x`` and ``y``.

    Five bandwidths spaced by factors of ``mul``, the middle one the mean pairwise squared
    distance of the pooled sample (not back-propagated). Only the three blocks the statistic
    uses are formed (x–x, y–y, x–y; the y–x block is the transpose of x–y), each from one
    matrix product, never an (n × n × h) tensor. With ``mul = 2`` the five kernels are powers
    of the widest one, ``exp(-d²/(2⁴b))^(2^i)``: one ``exp`` and four squarings instead of
    five ``exp`` (equal up to float rounding; benchmarks/results/speed.md).
    """
    sx = (x * x).sum(dim=1)
    sy = (y * y).sum(dim=1)
    dxx = _sq_dist(x, x, sx, sx)
    dyy = _sq_dist(y, y, sy, sy)
    dxy = _sq_dist(x, y, sx, sy)
    nx, ny = x.shape[0], y.shape[0]
    n = nx + ny
    with torch.no_grad():
        total = dxx.sum() + dyy.sum() + 2.0 * dxy.sum()
    bw = total / (n * n - n) / (mul ** (n_kernels // 2))

    def kernel_sum(d2: torch.Tensor) -> torch.Tensor:
        if mul == 2.0:
            t = torch.exp(-d2 / (bw * mul ** (n_kernels - 1)))
            k = t
            for _ in range(n_kernels - 1):
                t = t * t
                k = k + t
            return k
        return sum(torch.exp(-d2 / (bw * mul**i)) for i in range(n_kernels))

    return kernel_sum(dxx).mean() + kernel_sum(dyy).mean() - 2.0 * kernel_sum(dxy).mean()


class STEMModule(nn.Module):
    """Encoder plus the spatial-information and domain-alignment losses of STEM.

    Parameters
    ----------
    n_genes
        Input genes H.
    hidden
        Layer sizes of the encoder; the last one is the embedding size h.
    st_dropout
        Dropout rate on the ST input during training (evens out the sparsity gap).
    """

    def __init__(
        self, n_genes: int, hidden: Sequence[int] = MODEL["hidden"], st_dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.encoder = Encoder(n_genes, hidden)
        self.st_dropout = nn.Dropout(st_dropout)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(
        self,
        x_sc: torch.Tensor,
        x_st: torch.Tensor,
        S: torch.Tensor,
        mmd_idx: torch.Tensor | None = None,
        product_dtype: torch.dtype | None = None,
    ) -> dict[str, torch.Tensor]:
        """Loss terms for one step.

        Parameters
        ----------
        x_sc
            (M × H) normalised SC expression (all cells, or a cell batch).
        x_st
            (N × H) normalised ST expression of one slice.
        S
            (N × N) ground-truth adjacency of that slice, rows summing to 1.
        mmd_idx
            Indices of the SC rows used in the MMD (a random batch of ≤ 1,000).
        product_dtype
            Under mixed precision (the caller's ``torch.autocast``) the float type of Ŝ = Ĉ C,
            the largest product of the losses (probabilities, accumulated in float32); the
            other loss terms always run in float32.

        Returns
        -------
        dict
            ``extract``, ``trans``, ``mmd`` (scalars).
        """
        z_st = self.encoder(self.st_dropout(x_st))
        z_sc = self.encoder(x_sc)
        # the losses in float32 even under mixed precision (the encoder's products and Ŝ in
        # bfloat16): logits, softmaxes, logs and the MMD's distances (a difference of large
        # terms) lose too much in bfloat16 (a higher learning rate then diverged on toy data)
        with torch.autocast(z_sc.device.type, enabled=False):
            z_st, z_sc = z_st.float(), z_sc.float()
            # spatial-information module: S̃ = row-softmax(Z_st Z_stᵀ)
            l_extract = soft_cross_entropy(S, F.log_softmax(z_st @ z_st.T, dim=1))
            # domain alignment: C = row-softmax(B), Ĉ = row-softmax(Bᵀ), Ŝ = Ĉ C
            B = z_sc @ z_st.T
            C = torch.softmax(B, dim=1)
            C_hat = torch.softmax(B, dim=0).T
            if product_dtype is None:
                S_hat = C_hat @ C
            else:
                S_hat = (C_hat.to(product_dtype) @ C.to(product_dtype)).float()
            l_trans = soft_cross_entropy(S, torch.log(S_hat + EPS))
            z_mmd = z_sc if mmd_idx is None else z_sc[mmd_idx]
            l_mmd = gaussian_mmd(z_st, z_mmd)
        return {"extract": l_extract, "trans": l_trans, "mmd": l_mmd}
