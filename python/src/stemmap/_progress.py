"""One progress helper (tqdm) that can be switched off."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from ._settings import settings


class _NoBar:
    def update(self, n: int = 1) -> None:  # noqa: D401 - mimic tqdm
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextlib.contextmanager
def progress_bar(total: int, desc: str, enable: bool | None = None, **kwargs: Any) -> Iterator[Any]:
    """A tqdm bar, or a silent stand-in when progress is off (``stemmap.settings.progress``)."""
    if enable is None:
        enable = settings.progress
    if not enable:
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, **kwargs)
    try:
        yield bar
    finally:
        bar.close()
