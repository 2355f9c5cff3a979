"""Fuzzing reports how many inputs it tried, per message type and per topic, in the terminal summary."""

from __future__ import annotations

import pytest

from tests.fuzz.tally import TRIED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TRIED:
        return
    terminalreporter.section("fuzz inputs tried")
    for name, count in sorted(TRIED.items()):
        terminalreporter.write_line(f"{name}: {count}")
    terminalreporter.write_line(f"total: {sum(TRIED.values())}")
