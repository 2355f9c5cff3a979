"""The `haggle` command: infrastructure, services, topics, contracts, listings, demo."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from haggle.cli import (
    audit,
    bench,
    chaos,
    events,
    listings,
    market,
    migrate,
    operator,
    payments,
    principals,
    redteam,
    settlement,
    sim,
)
from haggle.infra.cli import app as infra_app

app = typer.Typer(help="haggle: a marketplace where AI agents buy and sell real goods.", no_args_is_help=True)
app.add_typer(infra_app, name="infra")
app.add_typer(listings.app, name="listings")
app.add_typer(events.app, name="events")
app.add_typer(audit.app, name="audit")
app.add_typer(market.app, name="market")
app.add_typer(operator.app, name="operator")
app.add_typer(principals.app, name="principals")
app.add_typer(chaos.app, name="chaos")
app.add_typer(redteam.app, name="redteam")
app.add_typer(sim.app, name="sim")
app.add_typer(settlement.ledger_app, name="ledger")
app.add_typer(settlement.approvals_app, name="approvals")
app.add_typer(settlement.disputes_app, name="disputes")
app.add_typer(payments.app, name="payments")
app.command("migrate")(migrate.migrate)
app.command("bench", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(bench.bench)
services_app = typer.Typer(help="Run every service as a local background process.", no_args_is_help=True)
app.add_typer(services_app, name="services")
topics_app = typer.Typer(help="Kafka topics from the registry.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
contracts_app = typer.Typer(help="The event contracts.", no_args_is_help=True)
app.add_typer(contracts_app, name="contracts")
console = Console()


@app.command()
def run(
    service: str,
    tag: str = typer.Option("", hidden=True, help="marks processes started by `haggle services up`"),
) -> None:
    """Run one service in the foreground (what a container runs)."""
    from haggle.runtime.service import ServiceModule, serve
    from haggle.runtime.settings import BadSettings, current

    try:
        module: ServiceModule = importlib.import_module(f"services.{service}.app").MODULE
    except ModuleNotFoundError as exc:
        raise typer.BadParameter(f"unknown service {service!r}") from exc
    try:
        settings = current()
    except BadSettings as exc:
        typer.echo(f"bad settings: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        import uvloop

        uvloop.run(serve(module, settings))
    except ImportError:
        asyncio.run(serve(module, settings))


@services_app.command("up")
def services_up(
    instances: int = typer.Option(1, min=1, max=9, help="processes of each service in its consumer group"),
) -> None:
    """Start every service (after `haggle infra up`) and wait until each is ready."""
    from haggle import procs

    for name in procs.SERVICES:
        for extra in (i for i in procs.instances(name) if i >= instances):
            procs.stop(name, instance=extra)
            console.print(f"{procs.label(name, extra)} stopped")
        for i in range(instances):
            pid = procs.start(name, instance=i)
            console.print(f"starting {procs.label(name, i)} (pid {pid})…")
    for name in procs.SERVICES:
        for i in range(instances):
            procs.wait_ready(name, instance=i)
            console.print(f"[green]{procs.label(name, i)} ready[/] at {procs.url_for(name, i)}")


@services_app.command("down")
def services_down() -> None:
    """Stop every instance of every service cleanly (SIGTERM, then SIGKILL after a timeout)."""
    from haggle import procs

    for name in reversed(procs.SERVICES):
        procs.stop(name)
        console.print(f"{name} stopped")


@services_app.command("status")
def services_status() -> None:
    """Show each service instance's pid and readiness; exit 1 if any is not ready."""
    from haggle import procs

    table = Table("service", "pid", "ready", "url", "detail")
    rows = procs.statuses()
    for row in rows:
        table.add_row(row.label, str(row.pid or "-"), "yes" if row.ready else "no", row.url, row.detail)
    console.print(table)
    if not all(r.ready for r in rows):
        raise typer.Exit(1)


@topics_app.command("ensure")
def topics_ensure(
    replication_factor: int = typer.Option(
        0,
        min=0,
        envvar="HAGGLE_TOPIC_REPLICATION_FACTOR",
        help="Replicas of each new topic (0: one per broker, up to three).",
    ),
) -> None:
    """Create every topic in the registry with its partitions and config (idempotent)."""
    from haggle.contracts.topics import all_topic_partitions
    from haggle.infra import ensure_all_topics
    from haggle.runtime.settings import Settings

    settings = Settings()
    replicas = ensure_all_topics(settings.kafka_bootstrap_servers, replication_factor or None)
    console.print(
        f"{len(all_topic_partitions())} topics present on {settings.kafka_bootstrap_servers}"
        f" (new ones with {replicas} replica(s))"
    )


@contracts_app.command("export")
def contracts_export(
    directory: Path = typer.Argument(Path("contracts"), help="The contracts folder."),
    check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 on drift."),
) -> None:
    """Write the AsyncAPI document, a JSON Schema per message and any missing sample message."""
    from haggle.contracts.schema import drift, export

    if check:
        problems = drift(directory)
        for problem in problems:
            typer.echo(f"drift: {directory}/{problem}")
        if problems:
            console.print("run `haggle contracts export` (or `make contracts`) and commit the result")
            raise typer.Exit(1)
        console.print(f"{directory}: the contracts match the code")
        return
    written = export(directory)
    console.print(f"wrote {len(written)} files to {directory} (asyncapi.yaml, schemas/, samples/)")


@app.command()
def demo(
    participants: int = typer.Option(69),
    listings: int = typer.Option(300),
    budget: int = typer.Option(100),
    keep_up: bool = typer.Option(False, "--keep-up", help="leave everything running, the web app too"),
) -> None:
    """The main job on embedded defaults: an office market end to end, its report, then shut down."""
    from haggle.demo import run_demo

    if not run_demo(participants, listings, budget, keep_up=keep_up):
        raise typer.Exit(1)


def main() -> None:
    app()
