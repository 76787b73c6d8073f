"""The result of a trained STEM model: :class:`StemMapping`, a thin class over the parts.

It holds the embeddings, names and readout settings and caches what one pass over the
cells gives (coordinates, best spots, top-k); the parts live in their modules:
:mod:`._readout` (logits), :mod:`._balance` (Sinkhorn potentials), :mod:`._transfer`
(deconvolution, transfer), :mod:`._graph` (SC–SC graph, spot kernel) and :mod:`._export`
(AnnData). The methods of the last three are defined there and bound here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .._defaults import MAPPING
from .._device import native_bf16
from .._runtime import compute
from .._topk import TopkBlock, chunked_topk, topk_csr
from .._validate import check_choice, check_positive, check_threads
from . import _balance, _export, _graph, _readout, _rounds, _transfer, _values
from ._values import check_dense, check_k, check_single_slice

logger = logging.getLogger(__name__)


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
    rounds
        Residual rounds of the balanced hybrid readout (default 2; 1 = a single readout).
        Round 1 is the readout above. Each later round reads out the spots' *residual*
        profiles, what the earlier rounds' mapped cells do not explain: ``R = max(P_ST -
        Σ share · Ĉ_r P_SC, 0)`` (P: expression proportions), through the same embeddings
        with R in place of the spots' expression; C and Ĉ are the rounds' mean. A spot's
        minority cell types, drowned out in round 1 by its majority, are found in round 2
        (a greedy deconvolution like TACCO's bisection): cell-type PCC +0.02 to +0.04 on the
        shared semi-simulations (``benchmarks/results/issue17``). Used with ``"hybrid"``,
        a positive ``expression_weight`` and ``balance``; otherwise one round. Where a cell
        *is* (:attr:`coords`, :attr:`best_spot`, :attr:`confidence`, :meth:`topk_coords`)
        is read from round 1 alone, the placement C₁ (see Notes).

    Notes
    -----
    The hybrid readout is a product of experts: the embeddings carry the spatial structure
    learned by STEM (neighbouring cells map to neighbouring spots), the expression
    correlation pins each cell to the spots whose profile it matches. Balancing solves
    ``max_P Σ P_ij L_ij + H(P)`` with uniform row sums and the given column sums by Sinkhorn
    iterations; only the N column potentials are stored, so C is still computed in chunks.
    Evidence for the default (both shared datasets, 3 seeds): ``benchmarks/results/readout.md``.

    With several rounds, C (:attr:`sc_to_st`, :meth:`topk_mapping`) and Ĉ (:attr:`st_to_sc`)
    and what reads them (:meth:`deconvolve`, :meth:`transfer`, :meth:`spot_aggregate`,
    :meth:`sc_adjacency`) are the rounds' mean: what each spot holds. A cell's position is
    read from round 1's C₁, its best match: a later round maps a cell to what is left of the
    spots, a second choice, and averaging the two places a cell between them. Then
    :attr:`coords` is C₁ · Y, not C · Y (the same with one round); on the shared
    semi-simulations (3 seeds) hit@50 rose by 0.004 to 0.41 over C · Y and MAE moved by
    -0.03 to +0.11 steps (``benchmarks/results/issue17/placement.md``).
    """

    #: fewest cells the balancing potentials are fitted on when all cells do not fit
    _balance_min_cells = 5000
    #: Sinkhorn passes over all cells after fitting on a sample, and their float type
    _balance_passes = 10
    _pass_dtype = torch.float32
    #: the passes stop once the potentials a pass starts from have every spot's share within
    #: this relative error; the pass's update then leaves about a tenth of it, which the
    #: per-cell pass measures (``balance_info["output_column_error"]``). One pass at 100k ×
    #: 20k (benchmarks/results/scaling_outputs.md; 1e-2 took two: readout_scale.md)
    _balance_pass_tol = 0.1
    #: each cell's largest entries of C kept from the per-cell pass (for top-k outputs)
    _topk_kept = 16

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
        rounds: int = MAPPING["rounds"],
    ) -> None:
        check_choice(readout, _readout.READOUTS, "readout")
        self.threads = check_threads(threads)
        check_positive(temperature, "temperature")
        check_choice(expression_profile, _readout.EXPRESSION_PROFILES, "expression_profile")
        _readout.check_expression_weight(expression_weight)
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
        self._cache: dict[str, Any] = {}
        self.readout = readout
        self.balance = bool(balance)
        self.temperature = float(temperature)
        self.expression_weight = float(expression_weight) if readout == "hybrid" else 0.0
        self.expression_profile = expression_profile
        self.rounds = _readout.check_rounds(rounds)
        esc = est = None
        self.expression_scale = 0.0
        if readout == "hybrid" and self.expression_weight > 0:
            esc, est = _readout.expression_term(
                sc_expr, st_expr, expression_profile, self.n_cells, self.n_spots
            )
            ratio = _readout.spread_ratio(self._zsc, self._zst, esc, est)
            self.expression_scale = self.expression_weight * ratio
        else:
            self.rounds = 1
        if not self.balance:
            self.rounds = 1
        # the logits' cell side [Z_SC | E_SC] and one spot side per round (_spot_side)
        self._cells = _readout.cell_side(self._zsc, esc)
        self._sides = [_readout.spot_side(self._zst, est, self.expression_scale, self.temperature)]
        if self.rounds > 1:  # what the residual rounds need
            self._sc_expr = sc_expr
            self._resid = _readout.proportions(st_expr)  # spots' unexplained proportions
        self._spot_w = _values.spot_weights(spot_weights, self.n_spots)
        self._g: list[torch.Tensor | None] = [None] * self.rounds  # each round's potentials
        self._lse: list[torch.Tensor | None] = [None] * self.rounds  # normalisers of Ĉ_r
        self._collected: dict[int, _rounds.Explained] = {}  # Ĉ_r P_SC read by a balancing pass
        self.balance_info: dict[str, Any] = {}
        self.settings["mapping"] = {
            "readout": readout,
            "expression_weight": self.expression_weight,
            "expression_scale": round(self.expression_scale, 6),
            "expression_profile": self.expression_profile if self.expression_weight > 0 else None,
            "balance": self.balance,
            "temperature": self.temperature,
            "rounds": self.rounds,
        }

    # ------------------------------------------------------------------ basics
    @property
    def n_cells(self) -> int:
        """Number of mapped cells M."""
        return self.sc_embedding.shape[0]

    @property
    def n_spots(self) -> int:
        """Number of spots N (over all slices)."""
        return self.st_embedding.shape[0]

    @property
    def slices(self) -> list[str]:
        """Slice names in spot order."""
        return list(dict.fromkeys(self.spot_slice.tolist()))

    def __repr__(self) -> str:
        """Size of the mapping, e.g. ``StemMapping(100 cells × 50 spots)``."""
        sl = f", {len(self.slices)} slices" if len(self.slices) > 1 else ""
        return f"StemMapping({self.n_cells} cells × {self.n_spots} spots{sl})"

    def _chunks(self) -> Iterator[tuple[int, int]]:
        for a in range(0, self.n_cells, self.chunk_size):
            yield a, min(a + self.chunk_size, self.n_cells)

    @property
    def _share(self) -> float:
        """Each round's share of C and Ĉ."""
        return 1.0 / self.rounds

    def _logits_of(self, rows: slice | torch.Tensor, r: int = 0) -> torch.Tensor:
        """Round ``r``'s readout logits of the given cells (a slice or an index tensor)."""
        return _readout.logits(self._cells, self._spot_side(r), rows)

    @compute
    def _potentials(self, r: int = 0, tol: float = 1e-4, max_iter: int = 5000) -> torch.Tensor:
        """Column potentials g of round ``r``'s balanced C (zeros without balancing).

        Fitted once (:func:`._balance.fit_potentials`); the float64 kernel of all cells may
        take 1 GiB or a quarter of the free memory, else g is fitted on a sample of cells
        (``balance_info["cells"]``, round 1's) and refined by passes over all cells.
        """
        if not self.balance:
            return torch.zeros(self.n_spots, dtype=torch.float64)
        if self._g[r] is None:
            # the residual rounds keep the potentials of their sample fit at scale (one
            # pass less each); round 1's pass also collects Ĉ₁ P_SC for round 2
            low = torch.bfloat16 if native_bf16(torch.device("cpu")) else None
            collect = _rounds.Explained(self, low) if r == 0 and self.rounds > 1 else None
            self._g[r], info = _balance.fit_potentials(
                lambda rows: self._logits_of(rows, r),
                self.n_cells,
                self._spot_w,
                self.chunk_size,
                min(2**30, 0.25 * _values.free_cpu()),
                tol=tol,
                max_iter=max_iter,
                min_cells=self._balance_min_cells,
                passes=self._balance_passes if r == 0 else 0,
                pass_tol=self._balance_pass_tol,
                pass_dtype=self._pass_dtype,
                collect=collect,
            )
            if collect is not None and collect.complete:
                self._collected[0] = collect
            if r == 0:
                self.balance_info = info
        return self._g[r]

    def _round_rows(self, r: int, a: int, b: int) -> torch.Tensor:
        """Rows a:b of round ``r``'s C (float32; softmax over spots of the balanced logits)."""
        L = self._logits_of(slice(a, b), r)
        if self.balance:
            L += self._potentials(r).float()
        return torch.softmax(L, dim=1)

    def _mean_of_rounds(
        self, block: Callable[[int], torch.Tensor], first: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the rounds' mean of ``block(r)`` (a fresh float32 tensor per round), in place.

        ``first``: round 1's block when the caller has it already (not modified).
        """
        out = block(0) if first is None else first.clone()
        if self.rounds > 1:
            out *= self._share
            for r in range(1, self.rounds):
                out.add_(block(r), alpha=self._share)
        return out

    def _rows_of_c(self, a: int, b: int, first: torch.Tensor | None = None) -> torch.Tensor:
        """Rows a:b of C (float32): the rounds' mean (``first``: round 1's rows, if read)."""
        if first is not None and self.rounds == 1:
            return first
        return self._mean_of_rounds(lambda r: self._round_rows(r, a, b), first)

    def _placement_rows(self, a: int, b: int) -> torch.Tensor:
        """Rows a:b of the placement C₁ (round 1's C; C itself with one round)."""
        return self._round_rows(0, a, b)

    def _col_logits(self, r: int, a: int, b: int) -> torch.Tensor:
        """Logits whose softmax over cells is round ``r``'s Ĉ (cells a:b)."""
        L = self._logits_of(slice(a, b), r)
        if self.balance:
            L = L - torch.logsumexp(L + self._potentials(r).float(), dim=1, keepdim=True)
        return L

    def _cell_lse(self, r: int) -> torch.Tensor:
        """Compute log Σ_cells exp(B_ij) for every spot j (round ``r``'s normaliser of Ĉ)."""
        if self._lse[r] is None:
            parts = [torch.logsumexp(self._col_logits(r, a, b), dim=0) for a, b in self._chunks()]
            self._lse[r] = torch.logsumexp(torch.stack(parts), dim=0)
        return self._lse[r]

    def _chat_block(self, a: int, b: int) -> torch.Tensor:
        """Columns a:b of Ĉ, transposed ((b - a) × N, float32): the rounds' mean."""
        return self._mean_of_rounds(
            lambda r: torch.exp(self._col_logits(r, a, b) - self._cell_lse(r))
        )

    # ---------------------------------------------------------------- mappings
    def _dense(
        self, name: str, block: Callable[[int, int], torch.Tensor], cells_first: bool
    ) -> np.ndarray:
        """Return the dense M × N (``cells_first``) or N × M matrix of ``block``'s chunks (cached)."""
        if name not in self._cache:
            check_dense(name, 4 * self.n_cells * self.n_spots)
            shape = (self.n_cells, self.n_spots) if cells_first else (self.n_spots, self.n_cells)
            out = np.empty(shape, dtype=np.float32)
            for a, b in self._chunks():
                if cells_first:
                    out[a:b] = block(a, b).numpy()
                else:
                    out[:, a:b] = block(a, b).T.numpy()
            self._cache[name] = out
        return self._cache[name]

    @property
    @compute
    def sc_to_st(self) -> np.ndarray:
        """(M × N) SC→ST mapping C: each cell's distribution over spots (rows sum to 1)."""
        return self._dense("sc_to_st", self._rows_of_c, cells_first=True)

    @property
    @compute
    def st_to_sc(self) -> np.ndarray:
        """(N × M) ST→SC mapping Ĉ: each spot's distribution over cells (rows sum to 1)."""
        return self._dense("st_to_sc", self._chat_block, cells_first=False)

    @compute
    def topk_mapping(self, k: int = 10, renormalize: bool = False) -> sp.csr_matrix:
        """Sparse (M × N) SC→ST mapping keeping each cell's ``k`` largest entries of C.

        Parameters
        ----------
        k
            Spots kept per cell.
        renormalize
            Rescale the kept entries of each row to sum to 1.

        Returns
        -------
        scipy.sparse.csr_matrix
            ``k`` entries per row.
        """
        k = check_k(k, self.n_spots, "k")
        blocks = self._topk_chunks(k)
        if renormalize:
            blocks = ((a, b, v / v.sum(dim=1, keepdim=True), i) for a, b, v, i in blocks)
        return topk_csr(blocks, (self.n_cells, self.n_spots))

    def _topk_chunks(self, k: int, placement: bool = False) -> Iterator[TopkBlock]:
        """Yield (a, b, values, spot indices): each cell chunk's ``k`` largest entries of C.

        ``placement``: of the placement C₁ instead (the same with one round). For ``k`` up
        to :attr:`_topk_kept` they come from the single per-cell pass (which also gives the
        coordinates and best spots), so the outputs read C once.
        """
        rows = self._placement_rows if placement and self.rounds > 1 else self._rows_of_c
        if k > min(self._topk_kept, self.n_spots):
            yield from chunked_topk(rows, self.n_cells, k, self.chunk_size)
            return
        v_all, i_all = self._per_cell("place_topk" if placement else "topk")
        for a, b in self._chunks():
            yield a, b, v_all[a:b, :k], i_all[a:b, :k].long()

    # ------------------------------------------------------------- per cell
    def _per_cell(self, key: str) -> Any:
        """``key`` of the one pass over C (``best``, ``conf``, ``coords``, ``topk``, ``place_topk``)."""
        if key not in self._cache:
            self._one_pass()
        return self._cache[key]

    @compute
    def _one_pass(self) -> None:
        """Read C once: the placement outputs from C₁, top-k and the balance reached from C.

        Best spots, confidences, coordinates (one slice) and top-k of the placement C₁
        (round 1's rows, read first), then the top-k and column sums of C (the rounds' mean,
        which reuses round 1's rows).
        """
        best, conf, coords, ptv, pti, tv, ti = [], [], [], [], [], [], []
        Y = torch.from_numpy(self.spot_coords.astype(np.float32))
        single = len(self.slices) == 1
        col = torch.zeros(self.n_spots, dtype=torch.float64)
        kept = min(self._topk_kept, self.n_spots)

        def rows_of_c(a: int, b: int) -> torch.Tensor:
            P = self._placement_rows(a, b)
            v, i = P.max(dim=1)  # the first of tied maxima, as numpy's argmax
            best.append(i.numpy())
            conf.append(v.numpy())
            if single:
                coords.append((P @ Y).double().numpy())
            if self.rounds > 1:
                pv, pi = torch.topk(P, kept, dim=1)
                ptv.append(pv)
                pti.append(pi.int())
            C = self._rows_of_c(a, b, first=P)
            col.add_(C.sum(dim=0).double())
            return C

        for _, _, v, i in chunked_topk(rows_of_c, self.n_cells, kept, self.chunk_size):
            tv.append(v)
            ti.append(i.int())
        self._cache["best"] = np.concatenate(best).astype(np.int64)
        self._cache["conf"] = np.concatenate(conf).astype(np.float32)
        self._cache["topk"] = (torch.cat(tv), torch.cat(ti))
        self._cache["place_topk"] = (
            (torch.cat(ptv), torch.cat(pti)) if self.rounds > 1 else self._cache["topk"]
        )
        if self.balance:  # the balance C reached (its target: spot_weights × cells)
            target = torch.from_numpy(self.n_cells * self._spot_w)
            err = (col / target - 1).abs().max().item()
            self.balance_info["output_column_error"] = err
            logger.debug("largest relative column error of C: %.2g", err)
        if single:
            self._cache["coords"] = np.concatenate(coords)

    @property
    def coords(self) -> np.ndarray:
        """(M × 2) pseudo-coordinates Ŷ = C₁ · Y (each cell's expected position).

        C₁ is the placement: round 1's C, which is C itself with one round (see the class
        Notes: later rounds explain what is left of the spots, not where a cell is).
        """
        check_single_slice(self.slices, "coords")
        return self._per_cell("coords")

    @property
    def best_spot(self) -> np.ndarray:
        """(M,) index of each cell's most probable spot (argmax of its row of C₁)."""
        return self._per_cell("best")

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
        """(M,) mapping confidence: the largest entry of each cell's row of C₁."""
        return self._per_cell("conf")

    @compute
    def topk_coords(self, k: int = 10, weighted: bool = False) -> np.ndarray:
        """(M × 2) mean coordinates of each cell's ``k`` most probable spots (by C₁).

        Parameters
        ----------
        k
            Spots averaged per cell (``k=1``: the best spot's coordinates).
        weighted
            Weight the spots by their mapping probability instead of equally.

        Returns
        -------
        numpy.ndarray
            (M × 2) coordinates.
        """
        check_single_slice(self.slices, "topk_coords")
        k = check_k(k, self.n_spots, "k")
        Y = torch.from_numpy(self.spot_coords)
        out = []
        for _, _, v, i in self._topk_chunks(k, placement=True):
            w = v.double() if weighted else torch.ones_like(v, dtype=torch.float64)
            w = w / w.sum(dim=1, keepdim=True)
            out.append((w[..., None] * Y[i]).sum(dim=1).numpy())
        return np.concatenate(out)

    # ------------------------------------------------ outputs in their modules
    _spot_side = _rounds.spot_side
    _explained = _rounds.explained
    deconvolve = _transfer.deconvolve
    spot_aggregate = _transfer.spot_aggregate
    transfer = _transfer.transfer
    sc_adjacency = _graph.sc_adjacency
    spot_kernel = _graph.spot_kernel
    to_anndata = _export.to_anndata
