"""`haggle bench <name>`: finds the bench/ scripts and refuses unknown names before running anything."""

from __future__ import annotations

from typer.testing import CliRunner

from haggle.cli import app
from haggle.cli.bench import available


def test_every_issue_9_benchmark_is_runnable_by_name() -> None:
    names = available()
    for name in ("kafka_ceiling", "postgres_ceiling", "negmas_peer", "scale", "listing_throughput"):
        assert name in names
    assert "scale_open" not in names and "__main__" not in names


def test_an_unknown_benchmark_is_refused_with_the_list() -> None:
    result = CliRunner().invoke(app, ["bench", "no_such_bench"])
    assert result.exit_code == 2
    assert "kafka_ceiling" in result.output
