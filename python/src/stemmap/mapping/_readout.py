"""Readout logits: how C is read off the embeddings (``"paper"`` / ``"hybrid"``).

The logits of cells ``rows`` over all spots are ``Z_SC Z_STᵀ`` (the paper) plus, for the
hybrid readout, ``λ R`` with R the Pearson correlation of the cells' and spots' expression
profiles (``"hellinger"`` or ``"log"``); both are divided by the temperature. They are one
matrix product of a cell side ``[Z_SC | E_SC]`` and a spot side ``[Z_ST | λ E_ST] / T``
(:func:`cell_side`, :func:`spot_side`, :func:`logits`), so a chunk of logits is one GEMM
with no temporaries. Balancing (:mod:`._balance`) adds column potentials on top; the
residual rounds of the hybrid readout (:mod:`._rounds`) change only the spot
side's expression part.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._values import INPUTS, check_finite

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


#: the most residual rounds (:func:`check_rounds`): each round takes ``1 / rounds`` of C, and
#: on the shared semi-simulations the gain is in rounds 2-3 (``benchmarks/results/issue17``)
MAX_ROUNDS = 20


def check_rounds(rounds: Any) -> int:
    """Return ``rounds`` as an int; ValueError unless it is a whole number in [1, 20]."""
    if (
        isinstance(rounds, bool)
        or not isinstance(rounds, (int, np.integer, float, np.floating))
        or not np.isfinite(rounds)
        or not float(rounds).is_integer()
        or not 1 <= rounds <= MAX_ROUNDS
    ):
        raise ValueError(
            f"`rounds` must be a whole number >= 1 and <= {MAX_ROUNDS} (residual readout "
            f"rounds); found {rounds!r}."
        )
    return int(rounds)


def expression_term(
    sc_expr: np.ndarray | None,
    st_expr: np.ndarray | None,
    profile: str,
    n_cells: int,
    n_spots: int,
    keep: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None, np.ndarray | None]:
    """Row-standardised expression profiles of cells and spots (their products are R).

    The expression proportions are computed once (:func:`proportions`), for the
    ``"hellinger"`` profiles and, with ``keep``, for the residual rounds.

    Parameters
    ----------
    sc_expr, st_expr
        (M × G) and (N × G) log-normalised expression on the shared genes.
    profile
        ``"hellinger"`` (square roots of the row proportions, each gene standardised within
        its modality) or ``"log"`` (the expression as given).
    n_cells, n_spots
        M and N, to check the shapes.
    keep
        Return the proportions of cells and spots too (else None).

    Returns
    -------
    tuple
        (M × G) and (N × G) float32 tensors of rows centred and scaled to unit norm, then
        the (M × G) and (N × G) float32 proportions P_SC and P_ST (or None).
    """
    if sc_expr is None or st_expr is None:
        raise ValueError(
            '`readout="hybrid"` (the default) needs `sc_expr` and `st_expr`; pass them, '
            'or readout="paper" for the embeddings alone.'
        )
    sc_shape, st_shape = np.shape(sc_expr), np.shape(st_expr)
    if (
        len(sc_shape) != 2
        or len(st_shape) != 2
        or sc_shape != (n_cells, st_shape[1])
        or st_shape[0] != n_spots
    ):
        raise ValueError(
            f"`sc_expr` / `st_expr` must be ({n_cells} × G) / ({n_spots} × G); "
            f"found {sc_shape} / {st_shape}."
        )
    need = keep or profile == "hellinger"
    psc = proportions(sc_expr, what="sc_expr") if need else None
    pst = proportions(st_expr, what="st_expr") if need else None
    hel = profile == "hellinger"
    esc = profiles(psc if hel else sc_expr, profile)
    est = profiles(pst if hel else st_expr, profile)
    check_finite(esc, "sc_expr", "cells")
    check_finite(est, "st_expr", "spots")
    return esc, est, (psc if keep else None), (pst if keep else None)


def profiles(x: np.ndarray, profile: str) -> torch.Tensor:
    """One modality's rows for the expression term (see :func:`expression_term`).

    ``x``: the expression proportions for ``"hellinger"`` (a new array is returned), the
    log-normalised expression for ``"log"``.
    """
    if profile == "hellinger":
        x = hellinger_of_proportions(np.sqrt(x))
    return torch.from_numpy(standardize_rows(x))


def spread_ratio(
    zsc: torch.Tensor, zst: torch.Tensor, esc: torch.Tensor, est: torch.Tensor, n_rows: int = 2048
) -> float:
    """sd(Z_SC Z_STᵀ) / sd(R): mean row standard deviations on evenly spaced cells."""
    idx = torch.from_numpy(np.unique(np.linspace(0, zsc.shape[0] - 1, n_rows).astype(int)))
    sb = _mean_row_sd(zsc[idx], zst)
    sr = _mean_row_sd(esc[idx], est)
    return sb / sr if sr > 0 else 0.0


#: rows of a product a :func:`spread_ratio` chunk holds (2²⁶ entries: 256 MB of float32;
#: at 5·10⁵ bins the 2048 rows at once took 4 GB, and 8 GB more as float64)
SPREAD_ENTRIES = 2**26


def _mean_row_sd(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over the rows of ``a @ b.T`` of their standard deviations (float64), in chunks."""
    step = max(1, SPREAD_ENTRIES // max(b.shape[0], 1))
    if step >= a.shape[0]:  # one product, as before the chunks (small problems bitwise)
        return (a @ b.T).double().std(dim=1).mean().item()
    sds = [(a[i : i + step] @ b.T).double().std(dim=1) for i in range(0, a.shape[0], step)]
    return torch.cat(sds).mean().item()


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


def max_row_norm(x: torch.Tensor) -> float:
    """Return the largest Euclidean norm of a row of ``x`` (float64, chunks of 65536 rows)."""
    top = 0.0
    for a in range(0, x.shape[0], 65536):
        top = max(top, float(torch.linalg.vector_norm(x[a : a + 65536].double(), dim=1).max()))
    return top


def check_logit_bound(cell_norm: float, spots: torch.Tensor) -> None:
    """FloatingPointError when the logits of the two sides could overflow float32.

    Every logit is an inner product of a cell row and a spot row, so (Cauchy–Schwarz) it is
    at most the product of their norms; below a tenth of float32's largest value no logit,
    and no partial sum of one, can be infinite.
    """
    bound = cell_norm * max_row_norm(spots)
    if not bound < 0.1 * float(torch.finfo(torch.float32).max):
        raise FloatingPointError(
            f"the readout logits could overflow float32 (row norms of the cell and spot "
            f"sides up to {cell_norm:.3g} and {bound / max(cell_norm, 1e-300):.3g}): the "
            "embeddings are extreme. Check the input for extreme values."
        )


def proportions(x: np.ndarray, chunk: int = 65536, what: str = "expression") -> np.ndarray:
    """Log1p-normalised rows → expression proportions (float32, rows sum to 1).

    ``expm1`` undoes the log1p, whatever the normalisation total was; an all-zero row stays
    zero. A NaN or Inf, or a value whose ``expm1`` overflows float32 (raw counts taken for
    log1p-normalised values), is a FloatingPointError naming ``what``.
    """
    x = np.asarray(x)
    out = np.empty(x.shape, dtype=np.float32)
    for a in range(0, x.shape[0], chunk):
        # C order: the row sums must not depend on the memory layout of the input
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is raised below
            p = np.expm1(np.ascontiguousarray(x[a : a + chunk], dtype=np.float32))
        np.clip(p, 0.0, None, out=p)
        tot = p.sum(axis=1, keepdims=True)
        if not np.isfinite(tot).all():
            _not_proportions(x, what)
        tot[tot <= 0] = 1.0
        out[a : a + chunk] = p / tot
    return out


def _not_proportions(x: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        raise FloatingPointError(
            f"{INPUTS.get(what, what)} has {int(bad.sum())} non-finite value(s) (NaN or Inf); the "
            "readout needs finite log1p-normalised expression."
        )
    raise FloatingPointError(
        f"{INPUTS.get(what, what)} has values up to {float(np.max(x)):.4g}, too large for "
        "log1p-normalised expression (turning them back into proportions overflows): were "
        "raw counts passed with `normalized=True`?"
    )


def residual_expression(resid: np.ndarray) -> np.ndarray:
    """Spots' residual proportions, log1p-normalised (a ``"log"`` residual round's expression).

    ``resid`` = ``max(P_ST - Σ share · Ĉ_r P_SC, 0)``, what the earlier rounds' mapped cells
    leave unexplained; rescaled to 10⁴ per spot and log1p-transformed, so that the
    expression term reads it like any spot expression.
    """
    r = np.asarray(resid, dtype=np.float64)
    tot = r.sum(axis=1, keepdims=True)
    tot[tot <= 0] = 1.0
    return np.log1p(r / tot * 1e4).astype(np.float32)


def residual_proportions(resid: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Spots' residual ``resid`` rescaled to proportions (float32; a ``"hellinger"`` round's).

    Float64 in chunks of rows (each row alone), as :func:`standardize_rows`.
    """
    out = np.empty(np.shape(resid), dtype=np.float32)
    for a in range(0, out.shape[0], chunk):
        r = np.asarray(resid[a : a + chunk], dtype=np.float64)
        tot = r.sum(axis=1, keepdims=True)
        tot[tot <= 0] = 1.0
        out[a : a + chunk] = r / tot
    return out


def hellinger_profiles(x: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Log1p-normalised rows → √(row proportions), each column standardised (float32).

    ``expm1`` undoes the log1p, whatever the normalisation total was; rows are rescaled to
    proportions and square-rooted (the Hellinger / Bhattacharyya embedding of count
    profiles); then each gene is centred and scaled over the rows (a constant gene is only
    centred). Works in float32 chunks of rows.
    """
    out = proportions(x, chunk)
    np.sqrt(out, out=out)
    return hellinger_of_proportions(out)


def hellinger_of_proportions(out: np.ndarray) -> np.ndarray:
    """√(row proportions) ``out``, each column centred and scaled in place (float32)."""
    mu = out.mean(axis=0, dtype=np.float64)
    sd = out.std(axis=0, dtype=np.float64)
    sd[sd <= 0] = 1.0
    out -= mu.astype(np.float32)
    out /= sd.astype(np.float32)
    return out


def standardize_rows(x: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Rows centred and scaled to unit norm (float32), so that inner products are Pearson r.

    Float64 arithmetic in chunks of rows (each row alone: the same values as one block; at
    5·10⁵ bins a float64 copy of all rows took 1.5 GB per temporary).
    """
    x = np.asarray(x)
    out = np.empty(x.shape, dtype=np.float32)
    for a in range(0, x.shape[0], chunk):
        y = np.asarray(x[a : a + chunk], dtype=np.float64)
        y = y - y.mean(axis=1, keepdims=True)
        nrm = np.linalg.norm(y, axis=1, keepdims=True)
        nrm[nrm == 0] = 1.0
        out[a : a + chunk] = y / nrm
    return out
