"""`haggle sim market`: `market run`'s market and report, in one process on a simulated clock."""

from __future__ import annotations

import json
import os
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from haggle.cli.market import (
    ApprovalPolicy,
    Budget,
    Listings,
    MaxRounds,
    MisdescribedRate,
    NegotiationTtl,
    Parallel,
    Participants,
    Seed,
    Seeds,
    Variants,
    variant_names,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from haggle.market.population import Population
    from haggle.market.report import MarketReport
    from haggle_lab.sim.engine import SimConfig

app = typer.Typer(
    help="Markets in one process (haggle_lab.sim): no Kafka, no PostgreSQL.", no_args_is_help=True
)
console = Console()


@app.callback()
def _sim() -> None:
    """Markets in one process on a simulated clock: deterministic per seed."""


@app.command()
def market(
    participants: Participants = 20,
    listings: Listings = 60,
    budget: Budget = 100,
    seed: Seed = 1,
    variants: Variants = "boulware,conceder",
    parallel: Parallel = False,
    misdescribed_rate: MisdescribedRate = 0.1,
    approval_policy: ApprovalPolicy = "consistent:0.1",
    seeds: Seeds = "",
    negotiation_ttl: NegotiationTtl = 60,
    max_rounds: MaxRounds = 12,
    json_path: Path | None = typer.Option(None, "--json", help="also write the report (or summary) as JSON"),
    jobs: int = typer.Option(
        1, min=0, help="with --seeds: worker processes sharing the seeds (0: one per core); same summary"
    ),
) -> None:
    """Run a whole market in process and print `market run`'s report."""
    from haggle.cli.market import parse_seeds
    from haggle.market.population import build_population
    from haggle.market.render import render, render_comparison
    from haggle.market.runner import check_policy
    from haggle_lab.sim.engine import SimConfig, simulate

    config = SimConfig(
        approval_policy=check_policy(approval_policy),
        negotiation_ttl_seconds=negotiation_ttl,
        max_rounds=max_rounds,
    )
    build = partial(  # a population per seed; a partial, so worker processes can be handed it
        build_population,
        participants=participants,
        listings=listings,
        budget_cents=budget * 100,
        misdescribed_rate=misdescribed_rate,
        variants=variant_names(variants),
        parallel=False,
    )
    if seeds:
        _many(parse_seeds(seeds), build, config, json_path, jobs or os.cpu_count() or 1)
        return
    pop = build(seed, parallel=parallel)
    console.print(
        f"population {pop.digest()[:12]} (seed {seed}): {participants} principals, "
        f"{listings} listings, {len(pop.wants())} wants — in process"
    )
    started = time.perf_counter()
    reports = simulate(pop, config)
    console.print(f"[dim]simulated in {time.perf_counter() - started:.2f} s[/]")
    for report in reports:
        render(report, console)
    if len(reports) > 1:
        render_comparison(reports, console)
    if json_path:
        body = [json.loads(r.to_json()) for r in reports]
        json_path.write_text(json.dumps(body[0] if len(body) == 1 else body, indent=2) + "\n")
        console.print(f"report written to {json_path}")
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def _many(
    seeds: list[int],
    build: Callable[[int], Population],
    config: SimConfig,
    json_path: Path | None,
    jobs: int,
) -> None:
    """One market per seed, with a progress bar, then per-variant means with 95% intervals."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from haggle.market.seeds import render_seeds, summarise
    from haggle_lab.sim.engine import simulate_seeds

    columns = (
        TextColumn("seeds"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
    )
    started = time.perf_counter()
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("", total=len(seeds))

        def step(seed: int, report: MarketReport) -> None:
            progress.update(
                task,
                advance=1,
                description=f"seed {seed}: efficiency {report.surplus.efficiency or 0:.3f} ok={report.ok}",
            )

        reports = simulate_seeds(seeds, build, config, step, jobs)
    summary = summarise(reports)
    render_seeds(summary, console)
    workers = f" by {jobs} processes" if jobs > 1 and len(seeds) > 1 else ""
    console.print(f"[dim]{len(seeds)} seeds simulated{workers} in {time.perf_counter() - started:.1f} s[/]")
    if json_path:
        json_path.write_text(json.dumps(summary, indent=2) + "\n")
        console.print(f"summary written to {json_path}")
    if not all(r.ok for r in reports):
        raise typer.Exit(1)
