"""What pyproject.toml promises about Python versions (issue 26)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setting(text: str, key: str) -> str:
    m = re.search(rf'^{key}\s*=\s*"([^"]*)"', text, re.MULTILINE)
    assert m is not None, key
    return m.group(1)


def test_python_floor_matches_the_code_and_the_linter():
    # mapping/_balance.py evaluates `int | None` at import time: Python 3.10 or newer
    text = (ROOT / "pyproject.toml").read_text()  # (tomllib is 3.11+; the floor is 3.10)
    floor = re.fullmatch(r">=\s*3\.(\d+)", _setting(text, "requires-python"))
    assert floor is not None
    assert int(floor.group(1)) >= 10
    assert _setting(text, "target-version") == f"py3{floor.group(1)}"
    assert "CPython 3.11" in (ROOT / "README.md").read_text()  # what CI tests is stated
