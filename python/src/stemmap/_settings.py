"""Package-wide settings: verbosity and progress bars, in one place."""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger("stemmap")


@dataclass
class Settings:
    """Global settings of stemmap.

    Attributes
    ----------
    progress
        Show tqdm progress bars on long work (training, chunked outputs).
    verbosity
        Logging level of the ``stemmap`` logger (``logging.INFO`` by default).
    """

    progress: bool = True
    _verbosity: int = logging.INFO

    @property
    def verbosity(self) -> int:
        return self._verbosity

    @verbosity.setter
    def verbosity(self, level: int | str) -> None:
        if isinstance(level, str):
            level = logging.getLevelName(level.upper())
        if not isinstance(level, int):
            raise ValueError(f"verbosity must be a logging level; found {level!r}")
        self._verbosity = level
        logger.setLevel(level)


settings = Settings()
logger.setLevel(settings.verbosity)
if not logger.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("stemmap: %(message)s"))
    logger.addHandler(_handler)
logger.propagate = False
