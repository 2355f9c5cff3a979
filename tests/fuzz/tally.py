"""How many fuzz inputs each test tried; the conftest prints it in pytest's terminal summary."""

from __future__ import annotations

import os

TRIED: dict[str, int] = {}


def budget(default: int = 200) -> int:
    """Inputs per topic (live) or per message type (in process): HAGGLE_FUZZ_BUDGET, bounded for CI."""
    return int(os.environ.get("HAGGLE_FUZZ_BUDGET", default))


def count(name: str, n: int = 1) -> None:
    TRIED[name] = TRIED.get(name, 0) + n
