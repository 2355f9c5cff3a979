"""`haggle infra up|down|status`: the local Kafka and PostgreSQL from a shell.

Why a separate Typer app: the root CLI mounts it as `haggle infra`, and it also runs alone
(`python -m haggle.infra.cli up`) so the infrastructure can be managed before the rest of
the package is importable.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from haggle import infra

app = typer.Typer(help="Manage the local Kafka broker and PostgreSQL server.", no_args_is_help=True)
console = Console()


def _say(message: str) -> None:
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def _fail(exc: infra.InfraError) -> typer.Exit:
    console.print("[bold red]error:[/] ", end="")
    console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


@app.command()
def up(
    brokers: int | None = typer.Option(
        None, min=1, max=5, help="Kafka brokers: 1, or a KRaft cluster (3: replication 3, min.insync 2)"
    ),
) -> None:
    """Start Kafka and PostgreSQL (or reuse running ones) and wait until both answer."""
    try:
        endpoints = infra.up(progress=_say, brokers=brokers)
    except infra.InfraError as exc:
        raise _fail(exc) from exc
    _say(f"KAFKA_BOOTSTRAP_SERVERS={endpoints.kafka_bootstrap}")
    _say(f"DATABASE_URL={endpoints.database_url}")


@app.command()
def down() -> None:
    """Stop the Kafka and PostgreSQL started by `up` (external ones are left alone)."""
    try:
        infra.down(progress=_say)
    except infra.InfraError as exc:
        raise _fail(exc) from exc
    _say("infra is down")


@app.command()
def status() -> None:
    """Show each component; exit code 1 if any is unhealthy."""
    try:
        rows = infra.status()
    except infra.InfraError as exc:
        raise _fail(exc) from exc
    table = Table("component", "pid", "healthy")
    table.add_column("endpoint", overflow="fold")
    table.add_column("detail", overflow="fold")
    for row in rows.values():
        health = "[green]yes[/]" if row.healthy else "[red]no[/]"
        name = f"{row.name} (external)" if row.external else row.name
        table.add_row(name, str(row.pid or "-"), health, row.endpoint, row.detail)
    console.print(table)
    if not all(row.healthy for row in rows.values()):
        raise typer.Exit(code=1)


if __name__ == "__main__":
    app()
