"""Readout logits: how C is read off the embeddings (``"paper"`` / ``"hybrid"``).

The logits of cells ``rows`` over all spots are ``Z_SC Z_STᵀ`` (the paper) plus, for the
hybrid readout, ``λ R`` with R the Pearson correlation of the cells' and spots' expression
profiles (``"hellinger"`` or ``"log"``); both are divided by the temperature. They are one
matrix product of a cell side ``[Z_SC | E_SC]`` and a spot side ``[Z_ST | λ E_ST] / T``
(:func:`cell_side`, :func:`spot_side`, :func:`logits`), so a chunk of logits is one GEMM
with no temporaries. Balancing (:mod:`._balance`) adds column potentials on top; the
residual rounds of the hybrid readout (:func:`residual_expression`) change only the spot
side's expression part.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

#: Readouts of C from the trained embeddings (see :class:`stemmap.StemMapping`).
READOUTS = ("hybrid", "paper")
#: how the hybrid readout's expression term compares a cell with a spot
EXPRESSION_PROFILES = ("hellinger", "log")


def check_expression_weight(expression_weight: Any) -> None:
    """Raise ValueError unless ``expression_weight`` is a finite number ≥ 0."""
    if (
        isinstance(expression_weight, bool)
        or not isinstance(expression_weight, (int, float, np.integer, np.floating))
        or not np.isfinite(expression_weight)
        or expression_weight < 0
    ):
        raise ValueError(
            f"`expression_weight` must be a non-negative number; found {expression_weight!r}."
        )


def check_rounds(rounds: Any) -> int:
    """Return ``rounds`` as an int; ValueError unless it is a whole number ≥ 1."""
    if (
        isinstance(rounds, bool)
        or not isinstance(rounds, (int, np.integer, float, np.floating))
        or not float(rounds).is_integer()
        or rounds < 1
    ):
        raise ValueError(f"`rounds` must be a whole number >= 1; found {rounds!r}.")
    return int(rounds)


def expression_term(
    sc_expr: np.ndarray | None,
    st_expr: np.ndarray | None,
    profile: str,
    n_cells: int,
    n_spots: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-standardised expression profiles of cells and spots (their products are R).

    Parameters
    ----------
    sc_expr, st_expr
        (M × G) and (N × G) log-normalised expression on the shared genes.
    profile
        ``"hellinger"`` (square roots of the row proportions, each gene standardised within
        its modality) or ``"log"`` (the expression as given).
    n_cells, n_spots
        M and N, to check the shapes.

    Returns
    -------
    tuple of torch.Tensor
        (M × G) and (N × G) float32 rows centred and scaled to unit norm.
    """
    if sc_expr is None or st_expr is None:
        raise ValueError(
            '`readout="hybrid"` (the default) needs `sc_expr` and `st_expr`; pass them, '
            'or readout="paper" for the embeddings alone.'
        )
    esc, est = profiles(sc_expr, profile), profiles(st_expr, profile)
    if esc.shape != (n_cells, est.shape[1]) or est.shape[0] != n_spots:
        raise ValueError(
            f"`sc_expr` / `st_expr` must be ({n_cells} × G) / ({n_spots} × G); "
            f"found {tuple(esc.shape)} / {tuple(est.shape)}."
        )
    return esc, est


def profiles(x: np.ndarray, profile: str) -> torch.Tensor:
    """One modality's rows for the expression term (see :func:`expression_term`)."""
    if profile == "hellinger":
        x = hellinger_profiles(x)
    return torch.from_numpy(standardize_rows(x))


def spread_ratio(
    zsc: torch.Tensor, zst: torch.Tensor, esc: torch.Tensor, est: torch.Tensor, n_rows: int = 2048
) -> float:
    """sd(Z_SC Z_STᵀ) / sd(R): mean row standard deviations on evenly spaced cells."""
    idx = torch.from_numpy(np.unique(np.linspace(0, zsc.shape[0] - 1, n_rows).astype(int)))
    sb = (zsc[idx] @ zst.T).double().std(dim=1).mean().item()
    sr = (esc[idx] @ est.T).double().std(dim=1).mean().item()
    return sb / sr if sr > 0 else 0.0


def cell_side(zsc: torch.Tensor, esc: torch.Tensor | None) -> torch.Tensor:
    """(M × (h + G)) cell side ``[Z_SC | E_SC]`` of the logits (``Z_SC`` alone without ``esc``)."""
    return zsc if esc is None else torch.cat([zsc, esc], dim=1).contiguous()


def spot_side(
    zst: torch.Tensor, est: torch.Tensor | None, scale: float, temperature: float
) -> torch.Tensor:
    """(N × (h + G)) spot side ``[Z_ST | scale · E_ST] / temperature`` of the logits."""
    out = zst if est is None else torch.cat([zst, scale * est], dim=1)
    if temperature != 1.0:
        out = out / temperature
    return out.contiguous()


def logits(cells: torch.Tensor, spots: torch.Tensor, rows: slice | torch.Tensor) -> torch.Tensor:
    """Readout logits L of the given cells (a slice or an index tensor) over all spots.

    ``L = (Z_SC Z_STᵀ + scale · E_SC E_STᵀ) / temperature`` as one product of the two sides.
    """
    return cells[rows] @ spots.T


def proportions(x: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Log1p-normalised rows → expression proportions (float32, rows sum to 1).

    ``expm1`` undoes the log1p, whatever the normalisation total was; an all-zero row stays
    zero.
    """
    x = np.asarray(x)
    out = np.empty(x.shape, dtype=np.float32)
    for a in range(0, x.shape[0], chunk):
        # C order: the row sums must not depend on the memory layout of the input
        p = np.expm1(np.ascontiguousarray(x[a : a + chunk], dtype=np.float32))
        np.clip(p, 0.0, None, out=p)
        tot = p.sum(axis=1, keepdims=True)
        tot[tot <= 0] = 1.0
        out[a : a + chunk] = p / tot
    return out


def residual_expression(resid: np.ndarray) -> np.ndarray:
    """Spots' residual proportions, log1p-normalised (a residual round's ``st_expr``).

    ``resid`` = ``max(P_ST - Σ share · Ĉ_r P_SC, 0)``, what the earlier rounds' mapped cells
    leave unexplained; rescaled to 10⁴ per spot and log1p-transformed, so that the
    expression term reads it like any spot expression.
    """
    r = np.asarray(resid, dtype=np.float64)
    tot = r.sum(axis=1, keepdims=True)
    tot[tot <= 0] = 1.0
    return np.log1p(r / tot * 1e4).astype(np.float32)


def hellinger_profiles(x: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Log1p-normalised rows → √(row proportions), each column standardised (float32).

    ``expm1`` undoes the log1p, whatever the normalisation total was; rows are rescaled to
    proportions and square-rooted (the Hellinger / Bhattacharyya embedding of count
    profiles); then each gene is centred and scaled over the rows (a constant gene is only
    centred). Works in float32 chunks of rows.
    """
    out = proportions(x, chunk)
    np.sqrt(out, out=out)
    mu = out.mean(axis=0, dtype=np.float64)
    sd = out.std(axis=0, dtype=np.float64)
    sd[sd <= 0] = 1.0
    out -= mu.astype(np.float32)
    out /= sd.astype(np.float32)
    return out


def standardize_rows(x: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm (float32), so that inner products are Pearson r."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    nrm = np.linalg.norm(x, axis=1, keepdims=True)
    nrm[nrm == 0] = 1.0
    return np.ascontiguousarray(x / nrm, dtype=np.float32)
