"""`haggle sim market --seeds`: the summary, from one process or from worker processes."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from haggle.cli import app


def test_seeds_in_worker_processes_print_and_write_the_same_summary(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["sim", "market", "--participants", "10", "--listings", "24", "--seeds", "1-4"]
    alone = runner.invoke(app, [*args, "--json", str(tmp_path / "alone.json")])
    shared = runner.invoke(app, [*args, "--jobs", "2", "--json", str(tmp_path / "shared.json")])
    assert alone.exit_code == shared.exit_code == 0, shared.output
    said = " ".join(shared.output.split()), " ".join(alone.output.split())
    assert "4 seeds simulated by 2 processes in" in said[0] and "4 seeds simulated in" in said[1]
    summary = json.loads((tmp_path / "shared.json").read_text())
    assert summary == json.loads((tmp_path / "alone.json").read_text())
    assert (
        summary["markets"] == [f"sim{seed}-mixed" for seed in (1, 2, 3, 4)] and summary["all_invariants_held"]
    )
