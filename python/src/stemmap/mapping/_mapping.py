"""The result of a trained STEM model: :class:`StemMapping`, a thin class over the parts.

It holds the embeddings, names and readout settings and caches what one pass over the
cells gives (coordinates, best spots, top-k). The matrices are read from its
:class:`._engine.ReadoutEngine` (:attr:`StemMapping.engine`: the rounds, the balancing and
the rows of C); deconvolution and transfer (:mod:`._transfer`), the SC–SC graph
(:mod:`._graph`) and the AnnData export (:mod:`._export`) are methods defined there against
:class:`._view.MappingView` and bound here; they only read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .._defaults import MAPPING, SPARSE_READOUT
from .._runtime import compute
from .._topk import TopkBlock, topk_csr
from .._validate import check_choice, check_positive, check_threads
from . import _export, _graph, _readout, _transfer, _values
from ._balance import Tuning
from ._engine import ReadoutEngine
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
        Residual rounds of the balanced hybrid readout (default 2; 1 = a single readout; at
        most 20, :data:`._readout.MAX_ROUNDS`).
        Round 1 is the readout above. Each later round reads out the spots' *residual*
        profiles, what the earlier rounds' mapped cells do not explain: ``R = max(P_ST -
        Σ share · Ĉ_r P_SC, 0)`` (P: expression proportions), through the same embeddings
        with R in place of the spots' expression; C and Ĉ are the rounds' mean. A spot's
        minority cell types, drowned out in round 1 by its majority, are found in round 2
        (a greedy deconvolution like TACCO's bisection): cell-type PCC +0.02 to +0.04 on the
        shared semi-simulations (``benchmarks/results/issue17``). Used with ``"hybrid"``,
        a positive ``expression_weight`` and ``balance``; otherwise one round. Where a cell
        *is* (:attr:`coords`, :attr:`best_spot`, :attr:`confidence`, :meth:`topk_coords`)
        is read from round 1 alone, the placement C₁ (:attr:`placement`; see Notes).

    Notes
    -----
    The hybrid readout is a product of experts: the embeddings carry the spatial structure
    learned by STEM (neighbouring cells map to neighbouring spots), the expression
    correlation pins each cell to the spots whose profile it matches. Balancing solves
    ``max_P Σ P_ij L_ij + H(P)`` with uniform row sums and the given column sums by Sinkhorn
    iterations; only the N column potentials are stored, so C is still computed in chunks.
    Evidence for the default (both shared datasets, 3 seeds): ``benchmarks/results/readout.md``.
    At bin scale (more than ``SPARSE_READOUT["entries"]`` cells × spots) C is read sparse
    (``mapping/_sparse.py``): each cell's 256 largest entries and a drawn sample of the rest,
    one pass per round, balanced on the entries (``balance_info["sparse"]``).

    With several rounds, C (:attr:`sc_to_st`, :meth:`topk_mapping`) and Ĉ (:attr:`st_to_sc`)
    and what reads them (:meth:`deconvolve`, :meth:`transfer`, :meth:`spot_aggregate`,
    :meth:`sc_adjacency`) are the rounds' mean: what each spot holds. A cell's position is
    read from round 1's C₁ (:attr:`placement`; round r's C_r: :meth:`round_mapping`; the
    readout engine :attr:`engine` holds them all), its best match: a later round maps a
    cell to what is left of the spots, a second choice, and averaging the two places a
    cell between them. :attr:`coords` is C₁ · Y, not C · Y (the same with one round); on the shared
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
    #: the sparse readout (``mapping._sparse``) above this many cells × spots (10⁵ × 10⁵
    #: bins); candidates chosen in bfloat16 where native ("auto"), or "float32"
    _sparse_entries = SPARSE_READOUT["entries"]
    _sparse_kept, _sparse_sample = SPARSE_READOUT["kept"], SPARSE_READOUT["sample"]
    _sparse_rank, _sparse_margin = SPARSE_READOUT["rank"], SPARSE_READOUT["margin"]
    _sparse_select = "auto"

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
        rounds = _readout.check_rounds(rounds)
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
        self._cache: dict[str, Any] = {}
        self._measured: dict[str, float] = {}  # the balance the outputs' pass measured
        self.readout = readout
        self.temperature = float(temperature)
        self.expression_profile = expression_profile
        #: the readout engine: the rounds, the balancing and the rows of C_r, C and Ĉ
        self.engine = ReadoutEngine(
            torch.from_numpy(self.sc_embedding),
            torch.from_numpy(self.st_embedding),
            sc_expr,
            st_expr,
            expression_weight=float(expression_weight) if readout == "hybrid" else 0.0,
            expression_profile=expression_profile,
            balance=bool(balance),
            temperature=self.temperature,
            rounds=rounds,
            spot_w=_values.spot_weights(spot_weights, self.st_embedding.shape[0]),
            chunk_size=self.chunk_size,
            tuning=Tuning.of(self),
            threads=self.threads,
        )
        self.balance = self.engine.balance
        self.expression_weight = self.engine.expression_weight
        self.expression_scale = self.engine.expression_scale
        self.rounds = self.engine.rounds
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

    @property
    def balance_info(self) -> dict[str, Any]:
        """How round 1's balancing went (iterations, column errors, cells it was fitted on).

        ``output_column_error``: the largest relative column error of C, once read.
        """
        return {**self.engine.balance_info, **self._measured}

    def __repr__(self) -> str:
        """Size of the mapping, e.g. ``StemMapping(100 cells × 50 spots)``."""
        sl = f", {len(self.slices)} slices" if len(self.slices) > 1 else ""
        return f"StemMapping({self.n_cells} cells × {self.n_spots} spots{sl})"

    def _potentials(self, r: int = 0) -> torch.Tensor:
        """Round ``r``'s column potentials (:meth:`._engine.ReadoutEngine.potentials`)."""
        return self.engine.potentials(r)

    @property
    def _spot_w(self) -> np.ndarray:
        return self.engine.spot_w

    # ---------------------------------------------------------------- mappings
    def _dense(
        self, name: str, block: Callable[[int, int], torch.Tensor], cells_first: bool
    ) -> np.ndarray:
        """Return the dense M × N (``cells_first``) or N × M matrix of ``block``'s chunks (cached)."""
        if name not in self._cache:
            check_dense(name, 4 * self.n_cells * self.n_spots)
            shape = (self.n_cells, self.n_spots) if cells_first else (self.n_spots, self.n_cells)
            out = np.empty(shape, dtype=np.float32)
            for a, b in self.engine.chunks():
                if cells_first:
                    out[a:b] = block(a, b).numpy()
                else:
                    out[:, a:b] = block(a, b).T.numpy()
            _values.check_finite_output(out, name)
            self._cache[name] = out
        return self._cache[name]

    @property
    @compute
    def sc_to_st(self) -> np.ndarray:
        """(M × N) SC→ST mapping C: each cell's distribution over spots (rows sum to 1).

        With several rounds, C is the rounds' mean (what each spot holds); the placement
        outputs read round 1's C₁ instead (:attr:`placement`).
        """
        return self._dense("sc_to_st", self.engine.rows_of_c, cells_first=True)

    @property
    @compute
    def st_to_sc(self) -> np.ndarray:
        """(N × M) ST→SC mapping Ĉ: each spot's distribution over cells (rows sum to 1).

        With several rounds, the rounds' mean; :meth:`deconvolve` and :meth:`spot_aggregate`
        read it.
        """
        return self._dense("st_to_sc", self.engine.chat_block, cells_first=False)

    @property
    def placement(self) -> np.ndarray:
        """(M × N) placement C₁: round 1's C, the matrix where a cell *is* is read from.

        :attr:`coords` ``= placement @ spot_coords``, :attr:`best_spot` its row argmax,
        :attr:`confidence` its row maximum, :meth:`topk_coords` its top-k. With one round
        it is :attr:`sc_to_st` itself.
        """
        return self.round_mapping(1)

    @compute
    def round_mapping(self, r: int) -> np.ndarray:
        """(M × N) C_r, round ``r``'s SC→ST mapping (rows sum to 1); cached.

        Parameters
        ----------
        r
            The round, from 1 (:attr:`placement`) to :attr:`rounds`; :attr:`sc_to_st` is
            the mean of the rounds' C_r.

        Returns
        -------
        numpy.ndarray
            (M × N) float32.
        """
        r = check_k(r, self.rounds, "r")
        if self.rounds == 1:
            return self.sc_to_st
        return self._dense(f"round{r}", lambda a, b: self.engine.round_rows(r - 1, a, b), True)

    @compute
    def topk_mapping(
        self, k: int = 10, renormalize: bool = False, placement: bool = False
    ) -> sp.csr_matrix:
        """Sparse (M × N) SC→ST mapping keeping each cell's ``k`` largest entries of C (:attr:`sc_to_st`).

        Parameters
        ----------
        k
            Spots kept per cell.
        renormalize
            Rescale the kept entries of each row to sum to 1.
        placement
            Keep the entries of the placement C₁ (:attr:`placement`, which :attr:`coords`,
            :attr:`best_spot` and :attr:`confidence` read) instead of C.

        Returns
        -------
        scipy.sparse.csr_matrix
            ``k`` entries per row.
        """
        k = check_k(k, self.n_spots, "k")
        blocks = self._topk_chunks(k, placement=bool(placement))
        if renormalize:
            blocks = ((a, b, v / v.sum(dim=1, keepdim=True), i) for a, b, v, i in blocks)
        return topk_csr(blocks, (self.n_cells, self.n_spots))

    def _topk_chunks(self, k: int, placement: bool = False) -> Iterator[TopkBlock]:
        """Yield (a, b, values, spot indices): each cell chunk's ``k`` largest entries of C.

        ``placement``: of the placement C₁ instead (the same with one round). For ``k`` up
        to :attr:`_topk_kept` they come from the single per-cell pass (which also gives the
        coordinates and best spots), so the outputs read C once.
        """
        if k > min(self._topk_kept, self.n_spots):
            yield from self.engine.topk_rows(k, placement)
            return
        v_all, i_all = self._per_cell("place_topk" if placement else "topk")
        for a, b in self.engine.chunks():
            yield a, b, v_all[a:b, :k], i_all[a:b, :k].long()

    # ------------------------------------------------------------- per cell
    def _per_cell(self, key: str) -> Any:
        """``key`` of the one pass over C (``best``, ``conf``, ``coords``, ``topk``, ``place_topk``)."""
        if key not in self._cache:
            self._one_pass()
        return self._cache[key]

    @compute
    def _one_pass(self) -> None:
        """Read C once (:meth:`._engine.ReadoutEngine.read_once`) and cache what it gives."""
        Y = self.spot_coords.astype(np.float32) if len(self.slices) == 1 else None
        out = self.engine.read_once(Y, min(self._topk_kept, self.n_spots))
        col = out.pop("column_sums")
        if self.balance:  # the balance C reached (its target: spot_weights × cells)
            target = torch.from_numpy(self.n_cells * self._spot_w)
            err = (col / target - 1).abs().max().item()
            self._measured["output_column_error"] = err
            logger.debug("largest relative column error of C: %.2g", err)
        self._cache.update(out)

    @property
    def coords(self) -> np.ndarray:
        """(M × 2) pseudo-coordinates Ŷ = C₁ · Y (each cell's expected position).

        Reads the placement C₁ (:attr:`placement`: round 1's C, which is :attr:`sc_to_st`
        itself with one round; see the class Notes: later rounds explain what is left of
        the spots, not where a cell is): ``coords == placement @ spot_coords``.
        """
        check_single_slice(self.slices, "coords")
        return self._per_cell("coords")

    @property
    def best_spot(self) -> np.ndarray:
        """(M,) index of each cell's most probable spot: the argmax of its row of :attr:`placement`."""
        return self._per_cell("best")

    @property
    def best_spot_name(self) -> np.ndarray:
        """(M,) name of each cell's most probable spot (:attr:`best_spot`, by :attr:`placement`)."""
        return np.asarray(self.spot_names, dtype=object)[self.best_spot]

    @property
    def best_slice(self) -> np.ndarray:
        """(M,) slice of each cell's most probable spot (:attr:`best_spot`, by :attr:`placement`)."""
        return self.spot_slice[self.best_spot]

    @property
    def confidence(self) -> np.ndarray:
        """(M,) mapping confidence: the largest entry of each cell's row of :attr:`placement`."""
        return self._per_cell("conf")

    @compute
    def topk_coords(self, k: int = 10, weighted: bool = False) -> np.ndarray:
        """(M × 2) mean coordinates of each cell's ``k`` most probable spots (by :attr:`placement`).

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
    deconvolve = _transfer.deconvolve
    spot_aggregate = _transfer.spot_aggregate
    transfer = _transfer.transfer
    sc_adjacency = _graph.sc_adjacency
    spot_kernel = _graph.spot_kernel
    to_anndata = _export.to_anndata
    from ._uncertainty import placement_uncertainty
