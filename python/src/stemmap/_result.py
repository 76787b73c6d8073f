"""The result of a trained STEM model: mappings, coordinates, deconvolution, adjacency."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ._defaults import MAPPING
from ._device import available_memory, fmt_bytes
from ._runtime import compute
from ._validate import (
    StemInputWarning,
    check_choice,
    check_labels,
    check_positive,
    check_threads,
)

logger = logging.getLogger(__name__)

#: Readouts of C from the trained embeddings (see :class:`StemMapping`).
READOUTS = ("hybrid", "paper")
#: how the hybrid readout's expression term compares a cell with a spot
EXPRESSION_PROFILES = ("hellinger", "log")


class StemMapping:
    """SC↔ST mapping read off trained STEM embeddings.

    Everything is computed from the embeddings in chunks of cells, so that pseudo-coordinates,
    best spots, deconvolution, transfers and the SC–SC graph never need the dense M × N matrix;
    :attr:`sc_to_st` and :attr:`st_to_sc` build it on request.

    Parameters
    ----------
    sc_embedding
        (M × h) cell embeddings Z_SC.
    st_embedding
        (N × h) spot embeddings Z_ST.
    spot_coords
        (N × 2) spot coordinates.
    sc_names, spot_names
        Cell and spot names (AnnData ``obs_names``).
    spot_slice
        Slice name of each spot (one value for a single slice).
    settings
        Training settings, kept for reports (``to_anndata`` writes them to ``uns``).
    dropped
        Names of cells/spots dropped before training (all-zero on the shared genes).
    chunk_size
        Cells per chunk in chunked computations.
    sc_expr, st_expr
        (M × G) and (N × G) normalised expression of cells and spots on the shared genes,
        needed by ``readout="hybrid"``.
    readout
        How C is read off: ``"hybrid"`` (default; logits ``Z_SC Z_STᵀ + λ R`` with R the
        Pearson correlation of cell and spot expression, then balanced so that every spot
        receives the same share of cells; see Notes) or ``"paper"`` (the publication:
        ``C = softmax_rows(Z_SC Z_STᵀ)``, ``Ĉ = softmax_columns(Z_SC Z_STᵀ)``).
    expression_weight
        w in ``λ = w · sd(Z_SC Z_STᵀ) / sd(R)`` (row standard deviations, averaged): 1 gives
        the expression term the same spread as the embedding term; 0 uses the embeddings
        only (then with balancing).
    expression_profile
        Profiles correlated by the hybrid readout's expression term R. ``"hellinger"``
        (default): square roots of each row's expression proportions (``sc_expr`` /
        ``st_expr`` are log1p-normalised and are turned back into proportions), each gene
        then standardised within its modality (over cells for SC, over spots for ST), so
        that every gene counts alike and platform offsets per gene cancel; R is the Pearson
        correlation of these profiles. ``"log"``: Pearson correlation of the log-normalised
        expression as given (stemmap 0.1's hybrid readout). Evidence:
        ``benchmarks/results/readout_study.md``.
    balance
        Balance C (Sinkhorn): each spot receives the same total mass (or ``spot_weights``),
        as every spot holds a comparable number of cells; default True for ``"hybrid"``.
    temperature
        Logits are divided by this before the softmax (1 = as trained).
    spot_weights
        (N,) relative number of cells per spot for balancing (default: equal).
    threads
        Torch threads for the chunked computations (None: see :class:`stemmap.STEM`).

    Notes
    -----
    The hybrid readout is a product of experts: the embeddings carry the spatial structure
    learned by STEM (neighbouring cells map to neighbouring spots), the expression
    correlation pins each cell to the spots whose profile it matches. Balancing solves
    ``max_P Σ P_ij L_ij + H(P)`` with uniform row sums and the given column sums by Sinkhorn
    iterations; only the N column potentials are stored, so C is still computed in chunks.
    Evidence for the default (both shared datasets, 3 seeds): ``benchmarks/results/readout.md``.
    """

    #: fewest cells the balancing potentials are fitted on when all cells do not fit
    _balance_min_cells = 5000
    #: Sinkhorn passes over all cells after fitting on a sample, and their float type
    _balance_passes = 10
    _pass_dtype = torch.float32
    #: the passes stop once every spot's share is within this relative error (2 passes at
    #: 100k × 20k: coordinates 0.03 grid steps from 10 passes; benchmarks/results/readout_scale.md)
    _balance_pass_tol = 1e-2

    def __init__(
        self,
        sc_embedding: np.ndarray,
        st_embedding: np.ndarray,
        spot_coords: np.ndarray,
        sc_names: Sequence[str],
        spot_names: Sequence[str],
        spot_slice: Sequence[str],
        settings: dict[str, Any] | None = None,
        dropped: dict[str, list[str]] | None = None,
        chunk_size: int = 8192,
        sc_expr: np.ndarray | None = None,
        st_expr: np.ndarray | None = None,
        readout: str = MAPPING["readout"],
        expression_weight: float = MAPPING["expression_weight"],
        expression_profile: str = MAPPING["expression_profile"],
        balance: bool | None = None,
        temperature: float = MAPPING["temperature"],
        spot_weights: np.ndarray | None = None,
        threads: int | None = None,
    ) -> None:
        check_choice(readout, READOUTS, "readout")
        self.threads = check_threads(threads)
        check_positive(temperature, "temperature")
        check_choice(expression_profile, EXPRESSION_PROFILES, "expression_profile")
        if (
            isinstance(expression_weight, bool)
            or not isinstance(expression_weight, (int, float, np.integer, np.floating))
            or not np.isfinite(expression_weight)
            or expression_weight < 0
        ):
            raise ValueError(
                f"`expression_weight` must be a non-negative number; found {expression_weight!r}."
            )
        if balance is None:
            balance = readout == "hybrid"
        if not isinstance(balance, (bool, np.bool_)):
            raise TypeError(f"`balance` must be True, False or None; found {balance!r}.")
        self.sc_embedding = np.asarray(sc_embedding, dtype=np.float32)
        self.st_embedding = np.asarray(st_embedding, dtype=np.float32)
        self.spot_coords = np.asarray(spot_coords, dtype=np.float64)
        self.sc_names = [str(s) for s in sc_names]
        self.spot_names = [str(s) for s in spot_names]
        self.spot_slice = np.asarray([str(s) for s in spot_slice], dtype=object)
        self.settings = dict(settings or {})
        self.dropped = dropped or {"sc": [], "st": []}
        self.chunk_size = int(chunk_size)
        self._zsc = torch.from_numpy(self.sc_embedding)
        self._zst = torch.from_numpy(self.st_embedding)
        self._lse_cells: torch.Tensor | None = None
        self._cache: dict[str, Any] = {}
        self.readout = readout
        self.balance = bool(balance)
        self.temperature = float(temperature)
        self.expression_weight = float(expression_weight) if readout == "hybrid" else 0.0
        self.expression_profile = expression_profile
        self._esc = self._est = None
        self.expression_scale = 0.0
        if readout == "hybrid" and self.expression_weight > 0:
            if sc_expr is None or st_expr is None:
                raise ValueError(
                    '`readout="hybrid"` (the default) needs `sc_expr` and `st_expr`; pass them, '
                    'or readout="paper" for the embeddings alone.'
                )
            if expression_profile == "hellinger":
                sc_expr, st_expr = _hellinger_profiles(sc_expr), _hellinger_profiles(st_expr)
            self._esc = torch.from_numpy(_standardize_rows(sc_expr))
            self._est = torch.from_numpy(_standardize_rows(st_expr))
            if (
                self._esc.shape != (self.n_cells, self._est.shape[1])
                or self._est.shape[0] != self.n_spots
            ):
                raise ValueError(
                    f"`sc_expr` / `st_expr` must be ({self.n_cells} × G) / ({self.n_spots} × G); "
                    f"found {tuple(self._esc.shape)} / {tuple(self._est.shape)}."
                )
            self.expression_scale = self.expression_weight * self._spread_ratio()
        if spot_weights is None:
            w = np.ones(self.n_spots)
        else:
            w = np.asarray(spot_weights, dtype=np.float64).ravel()
            if w.shape != (self.n_spots,) or not np.all(np.isfinite(w)) or np.any(w <= 0):
                raise ValueError(
                    f"`spot_weights` must be {self.n_spots} positive finite numbers; found "
                    f"shape {w.shape}."
                )
        self._spot_w = w / w.sum()
        self._g: torch.Tensor | None = None  # column potentials of the balanced C
        self.balance_info: dict[str, Any] = {}
        self.settings["mapping"] = {
            "readout": readout,
            "expression_weight": self.expression_weight,
            "expression_scale": round(self.expression_scale, 6),
            "expression_profile": self.expression_profile if self.expression_weight > 0 else None,
            "balance": self.balance,
            "temperature": self.temperature,
        }

    # ------------------------------------------------------------------ basics
    @property
    def n_cells(self) -> int:
        return self.sc_embedding.shape[0]

    @property
    def n_spots(self) -> int:
        return self.st_embedding.shape[0]

    @property
    def slices(self) -> list[str]:
        """Slice names in spot order."""
        return list(dict.fromkeys(self.spot_slice.tolist()))

    def __repr__(self) -> str:
        sl = f", {len(self.slices)} slices" if len(self.slices) > 1 else ""
        return f"StemMapping({self.n_cells} cells × {self.n_spots} spots{sl})"

    def _chunks(self):
        for a in range(0, self.n_cells, self.chunk_size):
            yield a, min(a + self.chunk_size, self.n_cells)

    def _logits(self, a: int, b: int) -> torch.Tensor:
        """Readout logits L of cells a:b (before balancing)."""
        return self._logits_of(slice(a, b))

    def _logits_of(self, rows: slice | torch.Tensor) -> torch.Tensor:
        """Readout logits L of the given cells (a slice or an index tensor)."""
        out = self._zsc[rows] @ self._zst.T
        if self._esc is not None:
            out = out + self.expression_scale * (self._esc[rows] @ self._est.T)
        if self.temperature != 1.0:
            out = out / self.temperature
        return out

    def _spread_ratio(self, n_rows: int = 2048) -> float:
        """sd(Z_SC Z_STᵀ) / sd(R): mean row standard deviations on evenly spaced cells."""
        idx = torch.from_numpy(np.unique(np.linspace(0, self.n_cells - 1, n_rows).astype(int)))
        sb = (self._zsc[idx] @ self._zst.T).double().std(dim=1).mean().item()
        sr = (self._esc[idx] @ self._est.T).double().std(dim=1).mean().item()
        return sb / sr if sr > 0 else 0.0

    @compute
    def _potentials(self, tol: float = 1e-4, max_iter: int = 5000) -> torch.Tensor:
        """Column potentials g of the balanced C (Sinkhorn iterations).

        The iterations are matrix-vector products with the row-shifted kernel
        ``exp(L - max_j L)`` (float64). When the kernel of all cells would take more than
        1 GiB (or a quarter of the free memory), g is fitted on an evenly spread sample of
        cells whose kernel fits (at least 5,000 cells; ``balance_info["cells"]``): g has
        only N entries and the sample estimates it well, while the M × N iterations would
        cost hours at 10⁵–10⁶ cells; then passes over all cells (float32), starting from the
        sample's g, until every column sum is within 1% of its target (usually 2 passes; each
        costs about what the coordinates cost). If the kernel underflows, the iterations run
        in log space.
        """
        if not self.balance:
            return torch.zeros(self.n_spots, dtype=torch.float64)
        if self._g is None:
            m, n = self.n_cells, self.n_spots
            cap = min(2**30, 0.25 * _free_cpu())
            floor = self._balance_min_cells
            n_fit = m if 8 * m * n <= cap else min(m, max(floor, int(cap // (8 * n))))
            rows = (
                torch.arange(m)
                if n_fit >= m
                else torch.from_numpy(np.unique(np.linspace(0, m - 1, n_fit).astype(np.int64)))
            )
            n_fit = len(rows)
            target = torch.from_numpy(n_fit * self._spot_w)
            g = None
            if 8 * n_fit * n <= 2 * cap:
                K = torch.cat(
                    [
                        self._logits_of(rows[a : a + self.chunk_size]).double()
                        for a in range(0, n_fit, self.chunk_size)
                    ]
                )
                K = torch.exp(K - K.max(dim=1, keepdim=True).values)
                g = self._sinkhorn_kernel(K, target, tol, max_iter)
                del K
            if g is None:
                g = self._sinkhorn_log(target.log(), tol, max_iter, rows)
            if n_fit < m:  # a few passes over all cells from the sample's potentials
                g = g + float(np.log(m / n_fit))
                if self._balance_passes > 0:
                    g = self._sinkhorn_log(
                        torch.from_numpy(m * self._spot_w).log(),
                        max(tol, self._balance_pass_tol),
                        self._balance_passes,
                        g0=g,
                        refine=True,
                    )
            self.balance_info["cells"] = n_fit
            self._g = g
        return self._g

    def _sinkhorn_kernel(
        self, K: torch.Tensor, target: torch.Tensor, tol: float, max_iter: int
    ) -> torch.Tensor | None:
        v = torch.ones(K.shape[1], dtype=torch.float64)
        err, it = float("inf"), 0
        while it < max_iter:
            it += 1
            u = 1.0 / (K @ v)  # rows sum to 1
            col = K.T @ u
            if not torch.isfinite(u).all() or (col <= 0).any():
                return None  # underflow: fall back to log space
            err = (v * col / target - 1).abs().max().item()
            v = target / col
            if err < tol:
                break
        self._log_balance(it, err, tol)
        return v.log()

    def _sinkhorn_log(
        self,
        log_target: torch.Tensor,
        tol: float,
        max_iter: int,
        rows: torch.Tensor | None = None,
        g0: torch.Tensor | None = None,
        refine: bool = False,
    ) -> torch.Tensor:
        rows = torch.arange(self.n_cells) if rows is None else rows
        g = torch.zeros(self.n_spots, dtype=torch.float64) if g0 is None else g0.clone()
        # the passes over all cells at scale run in float32 (logsumexp is max-shifted, so
        # float32 is ample for a 1e-4 column tolerance and halves the memory traffic); the
        # small-data and sample fits keep float64
        dtype = self._pass_dtype if refine else torch.float64
        err, it = float("inf"), 0
        while it < max_iter:
            it += 1
            parts = []
            gd = g.to(dtype)
            for a in range(0, len(rows), self.chunk_size):
                L = self._logits_of(rows[a : a + self.chunk_size]).to(dtype)
                f = -torch.logsumexp(L + gd, dim=1, keepdim=True)
                parts.append(torch.logsumexp(L + f, dim=0).double())
            col = torch.logsumexp(torch.stack(parts), dim=0)
            err = (torch.exp(g + col - log_target) - 1).abs().max().item()
            g = log_target - col
            if err < tol:
                break
        self._log_balance(it, err, tol, refine)
        return g

    def _log_balance(self, it: int, err: float, tol: float, refine: bool = False) -> None:
        self.balance_info = {"iterations": it, "max_column_error": err}
        if refine:
            logger.info(
                "balanced on a sample of cells, then %d passes over all cells (largest "
                "relative column error %.2g)",
                it,
                err,
            )
        elif err >= tol:
            logger.warning(
                "balancing stopped after %d iterations with a largest relative column error "
                "of %.2g (tolerance %.0e)",
                it,
                err,
                tol,
            )
        else:
            logger.debug("balanced C in %d Sinkhorn iterations (error %.2g)", it, err)

    def _row_logits(self, a: int, b: int) -> torch.Tensor:
        """Logits whose softmax over spots is C (rows of cells a:b)."""
        L = self._logits(a, b)
        if self.balance:
            L = (L.double() + self._potentials()).float()
        return L

    def _col_logits(self, a: int, b: int) -> torch.Tensor:
        """Logits whose softmax over cells is Ĉ (cells a:b)."""
        L = self._logits(a, b)
        if self.balance:
            Ld = L.double()
            L = (Ld - torch.logsumexp(Ld + self._potentials(), dim=1, keepdim=True)).float()
        return L

    def _check_dense(self, what: str, n_bytes: int) -> None:
        free = available_memory(torch.device("cpu"))
        if n_bytes > 0.5 * free:
            raise MemoryError(
                f"`{what}` would need {fmt_bytes(n_bytes)} as a dense matrix but only "
                f"{fmt_bytes(free)} of memory is available. Use the chunked outputs instead: "
                "`topk_mapping(k)`, `coords`, `deconvolve()`, `transfer()`."
            )

    def _single_slice(self, what: str) -> None:
        if len(self.slices) > 1:
            raise ValueError(
                f"`{what}` needs one coordinate frame, but this mapping spans {len(self.slices)} "
                f"slices {self.slices}; use `model.mapping(slice=...)` for one slice."
            )

    # ---------------------------------------------------------------- mappings
    @property
    @compute
    def sc_to_st(self) -> np.ndarray:
        """(M × N) SC→ST mapping C: each cell's distribution over spots (rows sum to 1)."""
        if "C" not in self._cache:
            self._check_dense("sc_to_st", 4 * self.n_cells * self.n_spots)
            out = np.empty((self.n_cells, self.n_spots), dtype=np.float32)
            for a, b in self._chunks():
                out[a:b] = torch.softmax(self._row_logits(a, b), dim=1).numpy()
            self._cache["C"] = out
        return self._cache["C"]

    def _cell_lse(self) -> torch.Tensor:
        """log Σ_cells exp(B_ij) for every spot j (the normaliser of Ĉ), in chunks."""
        if self._lse_cells is None:
            parts = [torch.logsumexp(self._col_logits(a, b), dim=0) for a, b in self._chunks()]
            self._lse_cells = torch.logsumexp(torch.stack(parts), dim=0)
        return self._lse_cells

    @property
    @compute
    def st_to_sc(self) -> np.ndarray:
        """(N × M) ST→SC mapping Ĉ: each spot's distribution over cells (rows sum to 1)."""
        if "C_hat" not in self._cache:
            self._check_dense("st_to_sc", 4 * self.n_cells * self.n_spots)
            lse = self._cell_lse()
            out = np.empty((self.n_spots, self.n_cells), dtype=np.float32)
            for a, b in self._chunks():
                out[:, a:b] = torch.exp(self._col_logits(a, b) - lse).T.numpy()
            self._cache["C_hat"] = out
        return self._cache["C_hat"]

    @compute
    def topk_mapping(self, k: int = 10, renormalize: bool = False) -> sp.csr_matrix:
        """Sparse (M × N) SC→ST mapping keeping each cell's ``k`` largest entries of C.

        Parameters
        ----------
        k
            Spots kept per cell.
        renormalize
            Rescale the kept entries of each row to sum to 1.
        """
        k = _check_k(k, self.n_spots, "k")
        rows, cols, vals = [], [], []
        for a, b, v, i in self._topk_chunks(k):
            if renormalize:
                v = v / v.sum(dim=1, keepdim=True)
            rows.append(np.repeat(np.arange(a, b), k))
            cols.append(i.numpy().ravel())
            vals.append(v.numpy().ravel())
        return sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(self.n_cells, self.n_spots),
        )

    def _topk_chunks(self, k: int):
        """(a, b, values, spot indices) of each cell chunk's ``k`` largest entries of C.

        For ``k`` up to :attr:`_topk_kept` they come from the single per-cell pass (which
        also gives the coordinates and best spots), so the outputs read C once.
        """
        if k <= min(self._topk_kept, self.n_spots):
            if "topk" not in self._cache:
                self._per_cell()
            v_all, i_all = self._cache["topk"]
            for a, b in self._chunks():
                yield a, b, v_all[a:b, :k], i_all[a:b, :k].long()
            return
        for a, b in self._chunks():
            v, i = torch.topk(torch.softmax(self._row_logits(a, b), dim=1), k, dim=1)
            yield a, b, v, i

    # ------------------------------------------------------------- per cell
    #: each cell's largest entries of C kept from the per-cell pass (for top-k outputs)
    _topk_kept = 16

    @compute
    def _per_cell(self) -> None:
        best, conf, coords, tv, ti = [], [], [], [], []
        Y = torch.from_numpy(self.spot_coords.astype(np.float32))
        single = len(self.slices) == 1
        kept = min(self._topk_kept, self.n_spots)
        for a, b in self._chunks():
            C = torch.softmax(self._row_logits(a, b), dim=1)
            v, i = torch.topk(C, kept, dim=1)
            tv.append(v)
            ti.append(i.int())
            v, i = C.max(dim=1)  # the first of tied maxima, as numpy's argmax
            best.append(i.numpy())
            conf.append(v.numpy())
            if single:
                coords.append((C.double() @ Y.double()).numpy())
        self._cache["best"] = np.concatenate(best).astype(np.int64)
        self._cache["conf"] = np.concatenate(conf).astype(np.float32)
        self._cache["topk"] = (torch.cat(tv), torch.cat(ti))
        if single:
            self._cache["coords"] = np.concatenate(coords)

    @property
    def coords(self) -> np.ndarray:
        """(M × 2) pseudo-coordinates Ŷ = C · Y (each cell's expected position)."""
        self._single_slice("coords")
        if "coords" not in self._cache:
            self._per_cell()
        return self._cache["coords"]

    @property
    def best_spot(self) -> np.ndarray:
        """(M,) index of each cell's most probable spot (argmax of its row of C)."""
        if "best" not in self._cache:
            self._per_cell()
        return self._cache["best"]

    @property
    def best_spot_name(self) -> np.ndarray:
        """(M,) name of each cell's most probable spot."""
        return np.asarray(self.spot_names, dtype=object)[self.best_spot]

    @property
    def best_slice(self) -> np.ndarray:
        """(M,) slice of each cell's most probable spot."""
        return self.spot_slice[self.best_spot]

    @property
    def confidence(self) -> np.ndarray:
        """(M,) mapping confidence: the largest entry of each cell's row of C."""
        if "conf" not in self._cache:
            self._per_cell()
        return self._cache["conf"]

    @compute
    def topk_coords(self, k: int = 10, weighted: bool = False) -> np.ndarray:
        """(M × 2) mean coordinates of each cell's ``k`` most probable spots.

        Parameters
        ----------
        k
            Spots averaged per cell (``k=1``: the best spot's coordinates).
        weighted
            Weight the spots by their mapping probability instead of equally.
        """
        self._single_slice("topk_coords")
        k = _check_k(k, self.n_spots, "k")
        Y = torch.from_numpy(self.spot_coords)
        out = []
        for _, _, v, i in self._topk_chunks(k):
            w = v.double() if weighted else torch.ones_like(v, dtype=torch.float64)
            w = w / w.sum(dim=1, keepdim=True)
            out.append((w[..., None] * Y[i]).sum(dim=1).numpy())
        return np.concatenate(out)

    # ------------------------------------------------------------- per spot
    def deconvolve(self, labels: Sequence[Any] | pd.Series | np.ndarray) -> pd.DataFrame:
        """Spot cell-type deconvolution T̂ = Ĉ · T (rows sum to 1).

        Parameters
        ----------
        labels
            One label per cell (length M, in the mapping's cell order; a pandas Series is
            aligned by cell name).

        Returns
        -------
        pandas.DataFrame
            (N × types) estimated proportions, indexed by spot name.
        """
        lab, miss = check_labels(self._align_cells(labels, "labels"), "labels")
        codes, types = pd.factorize(pd.Series(lab[~miss], dtype="object"), sort=True)
        T = np.zeros((self.n_cells, len(types)), dtype=np.float64)
        T[np.flatnonzero(~miss), codes] = 1.0
        D = self.spot_aggregate(T)
        if miss.any():
            warnings.warn(
                f"{int(miss.sum())} of {self.n_cells} cells have no label (None/NaN) in "
                "`labels`; they are left out and each spot's proportions are over the labelled "
                "cells.",
                StemInputWarning,
                stacklevel=2,
            )
            D = D / D.sum(axis=1, keepdims=True)
        return pd.DataFrame(D, index=self.spot_names, columns=list(types))

    @compute
    def spot_aggregate(self, values: np.ndarray) -> np.ndarray:
        """Ĉ · V for a (M × k) array of per-cell values: each spot's expected value over cells."""
        V = torch.from_numpy(np.asarray(values, dtype=np.float64))
        if V.ndim == 1:
            V = V[:, None]
        if V.ndim != 2 or V.shape[0] != self.n_cells:
            raise ValueError(
                f"`values` must have one row per mapped cell ({self.n_cells}); found shape "
                f"{tuple(V.shape)}."
            )
        lse = self._cell_lse()
        acc = torch.zeros((self.n_spots, V.shape[1]), dtype=torch.float64)
        for a, b in self._chunks():
            acc += torch.exp(self._col_logits(a, b) - lse).double().T @ V[a:b]
        return acc.numpy()

    @compute
    def transfer(self, spot_values: Any) -> np.ndarray | pd.DataFrame:
        """Move a spot annotation to cells: ``C · v``.

        Parameters
        ----------
        spot_values
            (N,) or (N × k) values per spot (a pandas object is aligned by spot name;
            categorical values are one-hot encoded and return per-category probabilities).

        Returns
        -------
        numpy.ndarray or pandas.DataFrame
            (M,) or (M × k) per-cell values.
        """
        columns = None
        if isinstance(spot_values, pd.Series):
            if spot_values.dtype == object or isinstance(spot_values.dtype, pd.CategoricalDtype):
                miss = spot_values.isna().to_numpy()
                cats = (
                    spot_values.astype(object)
                    .where(~miss, None)
                    .map(lambda v: None if v is None else str(v))
                )
                spot_values = pd.get_dummies(cats, dtype=float)  # missing: all-zero rows
                spot_values.iloc[np.flatnonzero(miss)] = np.nan  # ... skipped below
            else:
                spot_values = spot_values.to_frame()
        if isinstance(spot_values, pd.DataFrame):
            missing = set(self.spot_names) - set(map(str, spot_values.index))
            if missing:
                raise ValueError(
                    f"`spot_values` lacks {len(missing)} of the mapping's spots (e.g. "
                    f"{sorted(missing)[:3]}); index it by spot name."
                )
            spot_values.index = spot_values.index.map(str)
            columns = list(spot_values.columns)
            spot_values = spot_values.loc[self.spot_names]
        try:
            v = np.asarray(spot_values, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                "`spot_values` must be numbers (or a pandas Series of categories); found "
                f"{type(spot_values).__name__} with non-numeric values."
            ) from None
        if v.ndim == 0 or v.ndim > 2 or v.shape[0] != self.n_spots:
            raise ValueError(
                f"`spot_values` must have one row per spot ({self.n_spots}); found shape {v.shape}."
            )
        if np.isinf(v).any():
            raise ValueError(f"`spot_values` has {int(np.isinf(v).sum())} infinite value(s).")
        V = torch.from_numpy(v if v.ndim > 1 else v[:, None])
        miss = torch.isnan(V)
        if miss.any():
            n_miss = int(miss.any(dim=1).sum())
            empty = miss.all(dim=0)
            if empty.any():
                raise ValueError(
                    f"`spot_values` column {int(np.flatnonzero(empty.numpy())[0])} is missing "
                    "(NaN) for every spot."
                )
            warnings.warn(
                f"{n_miss} of {self.n_spots} spots have missing (NaN) values in `spot_values`; "
                "they are skipped: each cell's value is the mapping-weighted mean over the spots "
                "with a value.",
                StemInputWarning,
                stacklevel=2,
            )
            seen = (~miss).double()
            V0 = torch.where(miss, torch.zeros_like(V), V)
            parts = []
            for a, b in self._chunks():
                C = torch.softmax(self._row_logits(a, b), dim=1).double()
                parts.append(((C @ V0) / (C @ seen)).numpy())
            out = np.concatenate(parts)
        else:
            out = np.concatenate(
                [
                    (torch.softmax(self._row_logits(a, b), dim=1).double() @ V).numpy()
                    for a, b in self._chunks()
                ]
            )
        if columns is not None:
            return pd.DataFrame(out, index=self.sc_names, columns=columns)
        return out if v.ndim > 1 else out[:, 0]

    # -------------------------------------------------------------- SC–SC
    @compute
    def sc_adjacency(
        self,
        k: int = MAPPING["adjacency_k"],
        weighted: bool = False,
        basis: str = "auto",
        bandwidth: float | None = None,
        exact: bool | None = None,
    ) -> sp.csr_matrix:
        """Sparse (M × M) SC–SC spatial kNN graph.

        Parameters
        ----------
        k
            Neighbours per cell (the cell itself excluded).
        weighted
            Store the similarities instead of 1 for each edge.
        basis
            ``"spatial"``: the expected spatial kernel between two cells placed
            independently by their mapping rows, ``A_ij = Σ_s Σ_t C_is K_st C_jt`` with the
            Gaussian kernel ``K_st = exp(-d_st² / 2b²)`` of the spot distances (bandwidth b;
            spots of different slices are never near). It is the probability-weighted
            closeness of the two cells' positions, so cells mapped to neighbouring spots are
            neighbours too; the most accurate basis on both shared datasets
            (``benchmarks/results/results.md``). ``"mapping"``: the Bhattacharyya affinity
            ``Σ_s √(C_is C_js)`` (cells on the same spots). ``"embedding"``: inner products
            of the cell embeddings (the paper's SC–SC adjacency). ``"auto"`` (default):
            ``"embedding"`` for the paper readout, else ``"spatial"`` (see ``exact``; for a
            mapping over several slices too large for the exact search: ``"embedding"``).
        bandwidth
            b of ``"spatial"``, in coordinate units (default: the mean nearest-neighbour
            spot distance of each slice).
        exact
            ``"spatial"`` only. True: all M × M affinities from the dense C (M² · N work).
            False: each cell's ``max(8k, 256)`` nearest cells by pseudo-coordinates are the
            candidates, ranked by the same affinity computed from each cell's 32 most
            probable spots (M · candidates · 32 work; single slice). Default: exact when
            2 M² N is under 2·10¹¹ (about a minute on 2 CPU cores), else the candidate search.
        """
        k = _check_k(k, self.n_cells - 1, "k")
        check_choice(basis, ("auto", "spatial", "mapping", "embedding"), "basis")
        if bandwidth is not None:
            check_positive(bandwidth, "bandwidth")
        m_, n_ = self.n_cells, self.n_spots
        dense_ok = 8 * m_ * n_ <= 0.25 * _free_cpu() and 2.0 * m_ * m_ * n_ <= 2e11
        if basis == "auto":
            if self.readout == "paper":
                basis = "embedding"
            elif dense_ok or len(self.slices) == 1:
                basis = "spatial"
            else:
                basis = "embedding"
                logger.info("sc_adjacency: several slices and too large for exact; embeddings")
        if basis == "spatial" and (exact is False or (exact is None and not dense_ok)):
            return self._spatial_adjacency_candidates(k, weighted, bandwidth)
        if basis == "spatial":
            C = self.sc_to_st
            left = torch.from_numpy(np.asarray(self.spot_kernel(bandwidth) @ C.T).T.copy())
            right = torch.from_numpy(C)
        elif basis == "mapping":
            left = right = torch.from_numpy(np.sqrt(self.sc_to_st))
        else:
            left = right = self._zsc
        rows, cols, vals = [], [], []
        for a, b in self._chunks():
            sim = left[a:b] @ right.T
            sim[torch.arange(b - a), torch.arange(a, b)] = -float("inf")
            v, i = torch.topk(sim, k, dim=1)
            rows.append(np.repeat(np.arange(a, b), k))
            cols.append(i.numpy().ravel())
            vals.append(v.numpy().ravel() if weighted else np.ones((b - a) * k, dtype=np.float32))
        return sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(self.n_cells, self.n_cells),
        )

    def _spatial_adjacency_candidates(
        self, k: int, weighted: bool, bandwidth: float | None, k_map: int = 32
    ) -> sp.csr_matrix:
        """Spatial-basis kNN graph for large M: candidates from pseudo-coordinates."""
        from scipy.spatial import cKDTree

        self._single_slice("sc_adjacency(exact=False)")
        m = self.n_cells
        n_cand = min(max(8 * k, 256), m - 1)
        k_map = min(k_map, self.n_spots)
        T = self.topk_mapping(k_map, renormalize=True)
        tidx = torch.from_numpy(T.indices.reshape(m, k_map).astype(np.int64))
        tval = torch.from_numpy(T.data.reshape(m, k_map).astype(np.float32))
        L = (T @ self.spot_kernel(bandwidth)).tocsr()  # rows: C_i K (sparse)
        _, cand = cKDTree(self.coords).query(self.coords, k=n_cand + 1, workers=-1)
        cand = torch.from_numpy(np.asarray(cand, dtype=np.int64))
        step = max(1, min(self.chunk_size, 30_000_000 // max(self.n_spots, n_cand * k_map)))
        rows, cols, vals = [], [], []
        for a in range(0, m, step):
            b = min(a + step, m)
            Ld = torch.from_numpy(L[a:b].toarray().astype(np.float32))
            cj = cand[a:b]
            gi = tidx[cj].reshape(b - a, -1)
            aff = (torch.gather(Ld, 1, gi).reshape(b - a, -1, k_map) * tval[cj]).sum(-1)
            aff[cj == torch.arange(a, b)[:, None]] = -float("inf")  # the cell itself
            v, i = torch.topk(aff, k, dim=1)
            rows.append(np.repeat(np.arange(a, b), k))
            cols.append(torch.gather(cj, 1, i).numpy().ravel())
            vals.append(v.numpy().ravel() if weighted else np.ones((b - a) * k, dtype=np.float32))
        return sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(m, m),
        )

    def spot_kernel(self, bandwidth: float | None = None, cutoff: float = 3.0) -> sp.csr_matrix:
        """Sparse (N × N) Gaussian kernel of the spot distances, zero between slices.

        ``K_st = exp(-d_st² / 2b²)`` for spots of the same slice closer than ``cutoff · b``
        (else 0), with b = ``bandwidth`` or each slice's mean nearest-neighbour spot distance.
        """
        from scipy.spatial import cKDTree

        from ._data import mean_nn_distance

        check_positive(cutoff, "cutoff")
        blocks_r, blocks_c, blocks_v = [], [], []
        for name in self.slices:
            idx = np.flatnonzero(self.spot_slice == name)
            xy = self.spot_coords[idx]
            b = float(bandwidth) if bandwidth is not None else mean_nn_distance(xy)
            pairs = cKDTree(xy).query_pairs(cutoff * b, output_type="ndarray")
            d2 = ((xy[pairs[:, 0]] - xy[pairs[:, 1]]) ** 2).sum(axis=1)
            diag = np.arange(len(idx))
            r = np.concatenate([pairs[:, 0], pairs[:, 1], diag])
            c = np.concatenate([pairs[:, 1], pairs[:, 0], diag])
            kv = np.exp(-d2 / (2 * b * b))
            v = np.concatenate([kv, kv, np.ones(len(idx))])
            blocks_r.append(idx[r])
            blocks_c.append(idx[c])
            blocks_v.append(v.astype(np.float32))
        return sp.csr_matrix(
            (np.concatenate(blocks_v), (np.concatenate(blocks_r), np.concatenate(blocks_c))),
            shape=(self.n_spots, self.n_spots),
        )

    # ----------------------------------------------------------- AnnData out
    def _align_cells(self, values: Any, name: str) -> np.ndarray:
        if isinstance(values, pd.Series):
            idx = values.index.map(str)
            missing = set(self.sc_names) - set(idx)
            if missing:
                raise ValueError(
                    f"`{name}` lacks {len(missing)} mapped cells (e.g. {sorted(missing)[:3]})."
                )
            return values.set_axis(idx).loc[self.sc_names].to_numpy()
        arr = np.asarray(values)
        if arr.ndim == 0:
            raise TypeError(
                f"`{name}` must be one value per mapped cell ({self.n_cells}); found {values!r}."
            )
        if arr.shape[0] != self.n_cells:
            raise ValueError(
                f"`{name}` must have one entry per mapped cell ({self.n_cells}); found "
                f"{arr.shape[0]}. Pass a pandas Series indexed by cell name to align by name."
            )
        return arr

    def _check_names_known(
        self, names: Any, ok: np.ndarray, dropped: Sequence[str], arg: str, what: str
    ) -> None:
        """Names of ``arg`` the mapping neither mapped nor dropped: error when none is known,
        else a warning counting them (they get NaN)."""
        unknown = ~ok & ~pd.Index(names.map(str)).isin(list(dropped))
        if not unknown.any():
            return
        eg = [str(n) for n in np.asarray(names)[unknown][:3]]
        if not ok.any():
            raise ValueError(
                f"none of the {len(names)} {what} of `{arg}` are in the mapping (e.g. {eg}); "
                f"pass the AnnData the model was trained on (matched by `{arg}.obs_names`)."
            )
        warnings.warn(
            f"{int(unknown.sum())} of the {len(names)} {what} of `{arg}` are not in the mapping "
            f"(e.g. {eg}); they get NaN.",
            StemInputWarning,
            stacklevel=3,
        )

    def to_anndata(
        self, sc: Any, st: Any = None, *, copy: bool = True, label_key: str | None = None
    ):
        """Write the results into AnnData objects.

        SC (``sc``): ``obsm["X_stem"]`` embedding, ``obsm["stem_spatial"]`` pseudo-coordinates
        (single slice), ``obs["stem_best_spot"]``, ``obs["stem_best_slice"]`` (several slices),
        ``obs["stem_confidence"]``, ``uns["stem"]`` settings. ST (``st``, single slice):
        ``obsm["X_stem"]`` and, with ``label_key``, ``obsm["stem_deconvolution"]``
        (a DataFrame of proportions of ``sc.obs[label_key]``). Cells dropped before training
        get NaN.

        Parameters
        ----------
        sc, st
            The AnnData objects the model was trained on (``st`` optional).
        copy
            Return modified copies (default) instead of writing in place.
        label_key
            ``sc.obs`` column to deconvolve spots by.

        Returns
        -------
        AnnData or tuple of AnnData
            ``sc`` (and ``st`` when given).
        """
        from ._validate import check_anndata

        check_anndata(sc, "sc")
        pos = pd.Index(self.sc_names).get_indexer(sc.obs_names.map(str))
        ok = pos >= 0
        self._check_names_known(sc.obs_names, ok, self.dropped.get("sc", []), "sc", "cells")
        if st is not None:
            check_anndata(st, "st")
            if len(self.slices) == 1:
                sok = pd.Index(self.spot_names).get_indexer(st.obs_names.map(str)) >= 0
                self._check_names_known(
                    st.obs_names, sok, self.dropped.get("st", []), "st", "spots"
                )
        if label_key is not None and label_key not in sc.obs:
            raise KeyError(
                f"`label_key={label_key!r}` is not a column of `sc.obs` "
                f"(available: {list(sc.obs.columns)})."
            )
        sc = sc.copy() if copy else sc
        h = self.sc_embedding.shape[1]
        emb = np.full((sc.n_obs, h), np.nan, dtype=np.float32)
        emb[ok] = self.sc_embedding[pos[ok]]
        sc.obsm["X_stem"] = emb
        best = np.full(sc.n_obs, None, dtype=object)
        best[ok] = self.best_spot_name[pos[ok]]
        sc.obs["stem_best_spot"] = pd.Categorical(best)
        conf = np.full(sc.n_obs, np.nan, dtype=np.float32)
        conf[ok] = self.confidence[pos[ok]]
        sc.obs["stem_confidence"] = conf
        if len(self.slices) == 1:
            xy = np.full((sc.n_obs, 2), np.nan)
            xy[ok] = self.coords[pos[ok]]
            sc.obsm["stem_spatial"] = xy
        else:
            bs = np.full(sc.n_obs, None, dtype=object)
            bs[ok] = self.best_slice[pos[ok]]
            sc.obs["stem_best_slice"] = pd.Categorical(bs)
        sc.uns["stem"] = _uns_safe(self.settings)
        if st is None:
            return sc
        st = st.copy() if copy else st
        if len(self.slices) == 1:
            spos = pd.Index(self.spot_names).get_indexer(st.obs_names.map(str))
            sok = spos >= 0
            semb = np.full((st.n_obs, h), np.nan, dtype=np.float32)
            semb[sok] = self.st_embedding[spos[sok]]
            st.obsm["X_stem"] = semb
            if label_key is not None:
                labels = sc.obs[label_key].iloc[np.flatnonzero(ok)]
                labels.index = np.asarray(self.sc_names)[pos[ok]]
                dec = self.deconvolve(labels)
                st.obsm["stem_deconvolution"] = dec.reindex(st.obs_names.map(str)).set_axis(
                    st.obs_names
                )
            st.uns["stem"] = _uns_safe(self.settings)
        return sc, st


def _check_k(k: Any, upper: int, name: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= upper:
        raise ValueError(f"`{name}` must be an integer in [1, {upper}]; found {k!r}.")
    return int(k)


def _uns_safe(d: dict[str, Any]) -> dict[str, Any]:
    """Settings in a form h5ad can store (no None, tuples as lists)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if v is None:
            out[k] = "None"
        elif isinstance(v, dict):
            out[k] = _uns_safe(v)
        elif isinstance(v, (list, tuple)):
            out[k] = np.asarray([("None" if x is None else x) for x in v])
        else:
            out[k] = v
    return out


def _hellinger_profiles(x: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """log1p-normalised rows → √(row proportions), each column standardised (float32).

    ``expm1`` undoes the log1p, whatever the normalisation total was; rows are rescaled to
    proportions and square-rooted (the Hellinger / Bhattacharyya embedding of count
    profiles); then each gene is centred and scaled over the rows (a constant gene is only
    centred). Works in float32 chunks of rows.
    """
    x = np.asarray(x)
    out = np.empty(x.shape, dtype=np.float32)
    for a in range(0, x.shape[0], chunk):
        # C order: the row sums must not depend on the memory layout of the input
        p = np.expm1(np.ascontiguousarray(x[a : a + chunk], dtype=np.float32))
        np.clip(p, 0.0, None, out=p)
        tot = p.sum(axis=1, keepdims=True)
        tot[tot <= 0] = 1.0
        out[a : a + chunk] = np.sqrt(p / tot)
    mu = out.mean(axis=0, dtype=np.float64)
    sd = out.std(axis=0, dtype=np.float64)
    sd[sd <= 0] = 1.0
    out -= mu.astype(np.float32)
    out /= sd.astype(np.float32)
    return out


def _standardize_rows(x: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm (float32), so that inner products are Pearson r."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    nrm = np.linalg.norm(x, axis=1, keepdims=True)
    nrm[nrm == 0] = 1.0
    return np.ascontiguousarray(x / nrm, dtype=np.float32)


def _free_cpu() -> int:
    return available_memory(torch.device("cpu"))
