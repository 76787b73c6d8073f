"""What the output modules read of a mapping: :class:`MappingView`, a Protocol.

:mod:`._transfer`, :mod:`._graph` and :mod:`._export` define methods of
:class:`stemmap.StemMapping` against this Protocol, not against the class, so that they do not
import it (no import circle), and read only: the rows of C and Ĉ come from
:attr:`MappingView.engine`, which alone holds (and fills) the readout's state.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._engine import ReadoutEngine


class MappingView(Protocol):
    """The public surface of :class:`stemmap.StemMapping` that its output modules read."""

    engine: ReadoutEngine
    sc_embedding: np.ndarray
    st_embedding: np.ndarray
    spot_coords: np.ndarray
    sc_names: list[str]
    spot_names: list[str]
    spot_slice: np.ndarray
    settings: dict[str, Any]
    dropped: dict[str, list[str]]
    chunk_size: int
    readout: str

    @property
    def n_cells(self) -> int: ...  # noqa: D102

    @property
    def n_spots(self) -> int: ...  # noqa: D102

    @property
    def slices(self) -> list[str]: ...  # noqa: D102

    @property
    def sc_to_st(self) -> np.ndarray: ...  # noqa: D102

    @property
    def coords(self) -> np.ndarray: ...  # noqa: D102

    @property
    def confidence(self) -> np.ndarray: ...  # noqa: D102

    @property
    def best_spot_name(self) -> np.ndarray: ...  # noqa: D102

    @property
    def best_slice(self) -> np.ndarray: ...  # noqa: D102

    def topk_mapping(self, k: int = 10, renormalize: bool = False) -> sp.csr_matrix: ...  # noqa: D102

    def spot_kernel(  # noqa: D102
        self, bandwidth: float | None = None, cutoff: float = 3.0
    ) -> sp.csr_matrix: ...

    def spot_aggregate(self, values: np.ndarray) -> np.ndarray: ...  # noqa: D102

    def deconvolve(self, labels: Any) -> pd.DataFrame: ...  # noqa: D102
