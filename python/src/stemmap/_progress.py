"""One progress helper that can be switched off and stays readable where it is shown.

On a terminal it is a tqdm bar. Where the output is not a terminal (``Rscript`` logs, R
Markdown / knitr, RStudio, CI logs, files), a bar's carriage returns pile up into one huge
line, so there it prints one short line per step of ``line_every`` (10 % by default) and one
at the end, each once.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

from ._device import fmt_seconds
from ._settings import settings


class _NoBar:
    def update(self, n: int = 1) -> None:  # noqa: D401 - mimic tqdm
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass


class LineProgress:
    """tqdm's ``update``/``set_postfix``/``close``, written as one line per step.

    Parameters
    ----------
    total
        Number of units (e.g. epochs).
    desc
        What is running, e.g. ``"STEM training"``.
    file
        Where lines go (default ``sys.stderr``).
    unit
        Name of one unit.
    line_every
        Fraction of ``total`` between two lines (``0.1``: at 10 %, 20 %, ...).
    """

    def __init__(
        self,
        total: int,
        desc: str,
        file: IO[str] | None = None,
        unit: str = "it",
        line_every: float = 0.1,
        **_: Any,
    ) -> None:
        self.total = max(int(total), 1)
        self.desc = desc
        self.file = file if file is not None else sys.stderr
        self.unit = unit
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self._postfix_at = 0
        self._step = max(1, round(self.total * line_every))
        self._next = self._step
        self._t0 = time.perf_counter()
        self._closed = False

    def set_postfix(self, *args: Any, refresh: bool = True, **kwargs: Any) -> None:
        """Values shown at the end of the next line (as tqdm's)."""
        if args and isinstance(args[0], dict):
            kwargs = {**args[0], **kwargs}
        self.postfix = {k: v for k, v in kwargs.items()}
        self._postfix_at = self.n

    def update(self, n: int = 1) -> None:
        """Advance by ``n``; prints a line when a step boundary is crossed."""
        self.n += int(n)
        if self.n >= self._next and self.n < self.total:
            self._write()
            while self._next <= self.n:
                self._next += self._step

    def close(self) -> None:
        """Print the final line (once)."""
        if not self._closed:
            self._closed = True
            self._write()

    def _write(self) -> None:
        el = time.perf_counter() - self._t0
        pct = 100 * self.n / self.total
        line = f"{self.desc}: {self.n}/{self.total} {self.unit}s ({pct:.0f}%), {fmt_seconds(el)}"
        if 0 < self.n < self.total:
            line += f", ~{fmt_seconds(el / self.n * (self.total - self.n))} left"
        if self.postfix:  # the values may be from an earlier step: say which
            where = "" if self._postfix_at == self.n else f"{self.unit} {self._postfix_at}: "
            line += "; " + where + ", ".join(f"{k} {v}" for k, v in self.postfix.items())
        print(line, file=self.file, flush=True)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def progress_bar(
    total: int,
    desc: str,
    enable: bool | None = None,
    lines: bool | None = None,
    **kwargs: Any,
) -> Iterator[Any]:
    """Open a progress display, or a silent stand-in when progress is off.

    Parameters
    ----------
    total, desc
        Units of work and what is running.
    enable
        Show progress (default ``stemmap.settings.progress``).
    lines
        One line per 10 % (:class:`LineProgress`) instead of a tqdm bar. Default: when
        ``sys.stderr`` is not a terminal.
    **kwargs
        Passed to ``tqdm`` (``unit`` also to :class:`LineProgress`).
    """
    if enable is None:
        enable = settings.progress
    if not enable:
        yield _NoBar()
        return
    if lines is None:
        lines = not _is_terminal(sys.stderr)
    if lines:
        bar: Any = LineProgress(total, desc, file=sys.stderr, **kwargs)
    else:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, **kwargs)
    try:
        yield bar
    finally:
        bar.close()
