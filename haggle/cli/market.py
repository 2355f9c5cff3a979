"""`haggle market run`: build a population, run the market over the services, print the report."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

app = typer.Typer(help="Run agent markets and report on them.", no_args_is_help=True)

# The population and rules flags, shared by `market run` and `haggle sim market`.
Participants = Annotated[int, typer.Option(help="principals in the market")]
Listings = Annotated[int, typer.Option(help="items put up for sale")]
Budget = Annotated[int, typer.Option(help="each principal's budget, in whole dollars")]
Seed = Annotated[int, typer.Option(help="same seed, same population (and, in process, same report)")]
Variants = Annotated[str, typer.Option(help="comma-separated brains or models")]
Parallel = Annotated[bool, typer.Option(help="one market per variant over the same population")]
MisdescribedRate = Annotated[float, typer.Option(help="share of listings whose condition is overstated")]
ApprovalPolicy = Annotated[
    str,
    typer.Option(
        help="consistent:<share> (a seeded share of principals declines), grant-all, deny-all, human,"
        " grant-up-to:<cents>"
    ),
]
Seeds = Annotated[
    str, typer.Option(help="several populations, e.g. 1-20 or 1,4,9: per-variant means with 95% CIs")
]
NegotiationTtl = Annotated[int, typer.Option(help="seconds a negotiation may last")]
MaxRounds = Annotated[int, typer.Option(help="offers per negotiation at most")]


def variant_names(variants: str) -> list[str]:
    return [v.strip() for v in variants.split(",") if v.strip()]


console = Console()


def _status_table(statuses: dict[str, object]) -> Table:
    table = Table(title="market", title_justify="left")
    for column in ("market", "agents", "listings", "open", "ended", "deals", "settled", "elapsed"):
        table.add_column(column, justify="left" if column == "market" else "right")
    for s in statuses.values():
        table.add_row(
            s.market_id,
            f"{s.registered}/{s.principals}",
            f"{s.listings}/{s.listings_expected}",  # type: ignore[attr-defined]
            str(s.threads_open),
            str(s.threads_ended),
            str(s.deals),  # type: ignore[attr-defined]
            f"{s.settled}/{s.deals}",
            f"{s.elapsed:5.1f}s" + (" ✓" if s.done else ""),  # type: ignore[attr-defined]
        )
    return table


def ensure_running(instances: int = 1) -> tuple[str, str]:
    """Kafka, PostgreSQL, topics and `instances` of every service, started if not running yet."""
    from haggle import procs

    endpoints = procs.up(progress=lambda m: console.print(f"[dim]{m}[/]"), count=instances)
    return endpoints.kafka_bootstrap, endpoints.database_url


@app.command()
def run(
    participants: Participants = 20,
    listings: Listings = 60,
    budget: Budget = 100,
    seed: Seed = 1,
    variants: Variants = "boulware,conceder",
    parallel: Parallel = False,
    misdescribed_rate: MisdescribedRate = 0.1,
    approval_policy: ApprovalPolicy = "consistent:0.1",
    seeds: Seeds = "",
    deadline: float = typer.Option(600, help="stop watching after this many seconds"),
    negotiation_ttl: NegotiationTtl = 60,
    max_rounds: MaxRounds = 12,
    json_path: Path | None = typer.Option(None, "--json", help="also write the report as JSON"),
    html_path: Path | None = typer.Option(
        None, "--html", help="also write the report as one self-contained page of charts"
    ),
) -> None:
    """Run a whole market end to end and print the report."""
    from haggle.market.population import build_population
    from haggle.market.render import render, render_comparison
    from haggle.market.runner import RunConfig, check_policy, run_all

    budget_cents = budget * 100
    policy = check_policy(approval_policy)
    if seeds:
        _run_seeds(
            parse_seeds(seeds),
            participants,
            listings,
            budget_cents,
            misdescribed_rate,
            variants,
            policy,
            deadline,
            negotiation_ttl,
            max_rounds,
            json_path,
        )
        return
    population = build_population(
        seed,
        participants,
        listings,
        budget_cents,
        misdescribed_rate,
        variant_names(variants),
        parallel,
    )
    console.print(
        f"population {population.digest()[:12]} (seed {seed}): {participants} principals, "
        f"{listings} listings, {len(population.wants())} wants"
    )
    bootstrap, _ = ensure_running()
    config = RunConfig(
        approval_policy=policy,
        deadline_seconds=deadline,
        negotiation_ttl_seconds=negotiation_ttl,
        max_rounds=max_rounds,
    )
    statuses: dict[str, object] = {}
    with Live(_status_table(statuses), console=console, refresh_per_second=4, transient=False) as live:

        def progress(status: object) -> None:
            statuses[status.market_id] = status  # type: ignore[attr-defined]
            live.update(_status_table(statuses))

        reports = asyncio.run(run_all(population, config, bootstrap, progress))
    for report in reports:
        render(report, console)
    for status in statuses.values():
        for problem in status.problems[:20]:  # type: ignore[attr-defined]
            console.print(f"[red]invariant broken[/] {status.market_id}: {problem}")  # type: ignore[attr-defined]
    if len(reports) > 1:
        render_comparison(reports, console)
    if json_path:
        body = [json.loads(r.to_json()) for r in reports]
        json_path.write_text(json.dumps(body[0] if len(body) == 1 else body, indent=2) + "\n")
        console.print(f"report written to {json_path}")
    if html_path:
        from haggle.market.charts import render_html

        html_path.write_text(render_html([json.loads(r.to_json()) for r in reports]), encoding="utf-8")
        console.print(f"report pictures written to {html_path}")
    _print_scrape_targets()
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def _print_scrape_targets() -> None:
    from haggle import procs

    targets = ", ".join(f"{procs.url_for(name)}/metrics" for name in procs.SERVICES)
    console.print(f"[dim]metrics: {targets} — stop with `haggle services down && haggle infra down`[/]")


def parse_seeds(text: str) -> list[int]:
    """`1-20`, `1,4,9` or a mix."""
    found: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise typer.BadParameter(f"seeds {text!r}: use e.g. 1-20 or 1,4,9")
        found += list(range(int(low), int(high or low) + 1))
    return sorted(set(found))


def _run_seeds(
    seeds: list[int],
    participants: int,
    listings: int,
    budget_cents: int,
    misdescribed_rate: float,
    variants: str,
    policy: str,
    deadline: float,
    negotiation_ttl: int,
    max_rounds: int,
    json_path: Path | None,
) -> None:
    """One market per seed, one after the other, then per-variant figures with 95% intervals."""
    from haggle.market.population import build_population
    from haggle.market.runner import RunConfig, run_all
    from haggle.market.seeds import render_seeds, summarise

    bootstrap, _ = ensure_running()
    config = RunConfig(
        approval_policy=policy,
        deadline_seconds=deadline,
        negotiation_ttl_seconds=negotiation_ttl,
        max_rounds=max_rounds,
    )
    reports = []
    for n, seed in enumerate(seeds, start=1):
        population = build_population(
            seed,
            participants,
            listings,
            budget_cents,
            misdescribed_rate,
            variant_names(variants),
            False,
        )
        (report,) = asyncio.run(run_all(population, config, bootstrap))
        reports.append(report)
        console.print(
            f"seed {seed} ({n}/{len(seeds)}): efficiency {report.surplus.efficiency or 0:.3f},"
            f" listings sold {report.completion.listings_sold_share or 0:.3f}, ok={report.ok}"
        )
    summary = summarise(reports)
    render_seeds(summary, console)
    if json_path:
        json_path.write_text(json.dumps(summary, indent=2) + "\n")
        console.print(f"summary written to {json_path}")
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@app.command()
def close(
    market_id: str = typer.Argument(..., help="the market to close"),
    timeout: float = typer.Option(900, help="seconds to wait for what is in flight"),
) -> None:
    """Close a market: no new negotiations; wait until nothing is in flight; then MarketClosed."""
    from haggle.client import Publisher
    from haggle.market.lifecycle import CloseRefused, close_market
    from haggle.runtime.settings import Settings

    async def go() -> None:
        async with Publisher(Settings().kafka_bootstrap_servers, "haggle-market-close") as pub:
            await close_market(pub, market_id, timeout, lambda line: console.print(line))

    try:
        asyncio.run(go())
    except CloseRefused as refused:
        console.print(f"[red]refused[/]: {refused}")
        raise typer.Exit(1) from None


@app.command()
def report(
    market_id: str = typer.Argument(..., help="a market `market run` has closed"),
    json_path: Path | None = typer.Option(None, "--json", help="also write the report as JSON"),
) -> None:
    """The report of a closed market, taken again from its events; says if it differs from the saved one."""
    from haggle.market.render import render
    from haggle.market.runner import report_again
    from haggle.runtime.settings import Settings

    settings = Settings()
    fresh, saved = asyncio.run(report_again(market_id, settings.kafka_bootstrap_servers))
    render(fresh, console)
    if json_path:
        json_path.write_text(fresh.to_json())
    if json.loads(fresh.to_json()) != saved:
        console.print("[red]differs from the report saved when the market closed[/]")
        raise typer.Exit(1)
    console.print("[green]the same as the report saved when the market closed[/]")
