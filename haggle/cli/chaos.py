"""`haggle chaos run --seed N`: a market under a seeded fault schedule, then every invariant."""

from __future__ import annotations

import asyncio
import logging

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Break services and infrastructure during a market and check it still adds up.")
console = Console()


def render(report: object) -> Table:
    from haggle_lab.chaos.run import ChaosReport

    assert isinstance(report, ChaosReport)
    table = Table(title=f"chaos run, seed {report.seed} ({report.market_id})", title_justify="left")
    table.add_column("check")
    table.add_column("result", justify="right")
    injected = sum(r.injected for r in report.faults)
    table.add_row("faults injected", f"{injected}/{len(report.faults)}")
    table.add_row("faults survived", f"{report.faults_survived}/{len(report.faults)}")
    for result in report.faults:
        verdict = f"back in {result.recovery_seconds:.1f}s" if result.survived else f"[red]{result.detail}[/]"
        if result.survived and result.detail:
            verdict += f" ({result.detail})"
        table.add_row(f"  {result.fault.describe()}", verdict)
    for topic, count in report.commands.items():
        table.add_row(f"commands seen on {topic}", str(count))
    acked = report.acked
    table.add_row("acknowledged events (outbox sent)", str(acked.acknowledged))
    table.add_row("  found on their topics", str(acked.acknowledged - sum(map(len, acked.lost.values()))))
    for service, by_instance in sorted(report.work.items()):
        if len(by_instance) > 1:
            shares = ", ".join(f"#{i} {count:.0f}" for i, count in sorted(by_instance.items()))
            table.add_row(f"records handled by {service}", shares)
    for name, held in report.invariants.items():
        table.add_row(name, "[green]true[/]" if held else "[red]false[/]")
    table.add_row("seconds", f"{report.seconds:.0f}")
    return table


@app.command()
def run(
    seed: int = typer.Option(1, help="same seed, same population and same fault schedule"),
    participants: int = typer.Option(12, help="principals in the market"),
    listings: int = typer.Option(30, help="items put up for sale"),
    faults: int = typer.Option(1, help="kill -9 rounds: each service is killed this many times"),
    window: float = typer.Option(20.0, help="faults happen at random moments within this many seconds"),
    short: bool = typer.Option(False, help="the CI version: 12 principals, 30 listings, one round"),
    deadline: float = typer.Option(420, help="give up waiting for the market after this many seconds"),
    instances: int = typer.Option(
        1, min=1, max=9, help="processes of each service; each is killed once a round"
    ),
) -> None:
    """Run a market while the monkey kills services and restarts Kafka and PostgreSQL."""
    from haggle.cli.market import ensure_running
    from haggle.market.population import build_population
    from haggle.market.runner import RunConfig
    from haggle_lab.chaos.run import ChaosConfig, chaos_run

    # The run's own observer reconnects through the broker restart; aiokafka logs every refusal.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if short:
        participants, listings, faults, window = 12, 30, 1, 20.0
    console.print(f"[bold]chaos run, seed {seed}[/] (replay with `haggle chaos run --seed {seed}`)")
    population = build_population(seed, participants, listings, 10_000, 0.1, ["boulware", "conceder"], False)
    bootstrap, database_url = ensure_running(instances)
    config = ChaosConfig(
        seed=seed,
        window_seconds=window,
        kills_per_service=faults,
        instances=instances,
        market=RunConfig(approval_policy="grant-up-to:7500", deadline_seconds=deadline),
    )
    report = asyncio.run(
        chaos_run(population, config, bootstrap, database_url, lambda m: console.print(f"[dim]{m}[/]"))
    )
    console.print(render(report))
    for problem in report.problems[:30]:
        console.print(f"[red]invariant broken[/]: {problem}")
    if not report.ok:
        console.print(f"[red]chaos run failed[/]; replay with `haggle chaos run --seed {seed}`")
        raise typer.Exit(1)
