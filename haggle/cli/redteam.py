"""`haggle redteam run`: try every attack in the catalogue against a running market and print the table."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="The red-team catalogue: hostile agents and messages.", no_args_is_help=True)
console = Console()


def _table(results: list) -> Table:  # type: ignore[type-arg]
    table = Table(title="red team", title_justify="left")
    for column in ("attack", "category", "invariant", "held", "refusal reason seen"):
        table.add_column(column)
    for attack, result in results:
        ok = result.held and result.seen in attack.expected
        table.add_row(
            attack.name,
            attack.category,
            attack.invariant,
            "[green]yes[/]" if ok else "[red]NO[/]",
            result.seen,
        )
    return table


@app.command()
def run(
    only: list[str] = typer.Option([], "--only", help="run only this attack (repeatable)"),
    json_path: Path | None = typer.Option(None, "--json", help="also write the results as JSON"),
    flood_threads: int = typer.Option(2_000, help="threads the flooding agent tries to open"),
) -> None:
    """Run the catalogue (starting infra and services if needed); exit 1 if any invariant broke."""
    from haggle.cli.market import ensure_running
    from haggle_lab.redteam.catalogue import ATTACKS, RedTeamContext, broken, by_name, run_catalogue

    try:
        attacks = tuple(by_name(name) for name in only) if only else ATTACKS
    except KeyError as exc:
        raise typer.BadParameter(str(exc)) from exc
    bootstrap, database_url = ensure_running()
    ctx = RedTeamContext(bootstrap, database_url, flood_threads=flood_threads)
    results = asyncio.run(run_catalogue(ctx, attacks))
    console.print(_table(results))
    failed = broken(results)
    for attack, result in results:
        if attack.name in failed:
            console.print(f"[red]{attack.name}[/]: {result.seen} — {result.detail}")
    if ctx.timings:
        console.print(f"figures: {ctx.timings}")
    console.print(f"attacks tried: {len(results)}, broke an invariant: {len(failed)}")
    if json_path is not None:
        rows = [
            {
                "attack": a.name,
                "category": a.category,
                "invariant": a.invariant,
                "expected": list(a.expected),
                "held": a.name not in failed,
                "seen": r.seen,
                "detail": r.detail,
            }
            for a, r in results
        ]
        json_path.write_text(json.dumps({"results": rows, "figures": ctx.timings}, indent=2))
    if failed:
        raise typer.Exit(1)
