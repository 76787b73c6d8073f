"""pytest plugin of ``make py-test`` / .ci/run: a skip must name an allowed reason.

Loaded with ``-p skipguard`` (``.ci`` on ``PYTHONPATH``). Every skip whose reason does not
match, at its start, one of the patterns of ``.ci/allowed-skips`` (a named optional
package, the shared data) is listed at the end and makes the run fail, so that a broken
import shows as a failure and not as a green run with tests skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ALLOWED_FILE = Path(__file__).with_name("allowed-skips")


def read_patterns(path: Path = ALLOWED_FILE) -> list[str]:
    """The patterns of ``path``: one per line, ``#`` lines and blank lines left out."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def skip_reason(report: pytest.TestReport) -> str:
    """The reason of a skipped test's report, without pytest's ``Skipped: `` prefix."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def allowed(reason: str, patterns: list[str]) -> bool:
    """Whether ``reason`` starts with a match of one of ``patterns``."""
    return any(re.match(f"(?:{p})", reason) for p in patterns)


_PATTERNS = read_patterns()
_unexpected: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = skip_reason(report)
        if not allowed(reason, _PATTERNS):
            _unexpected.append(f"{report.nodeid}: {reason}")


def pytest_terminal_summary(terminalreporter) -> None:
    if _unexpected:
        terminalreporter.section("skips not allowed by .ci/allowed-skips", red=True)
        for line in _unexpected:
            terminalreporter.line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _unexpected and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
