"""Fixtures for the deploy tests: the pinned helm binary and the deploy/ folder."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "haggle"


@pytest.fixture(scope="session")
def helm() -> str:
    """helm, built from the Go module proxy by deploy/tools.sh on first use (cached after)."""
    done = subprocess.run(
        ["bash", str(DEPLOY / "tools.sh"), "helm"], capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"deploy/tools.sh helm failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]
