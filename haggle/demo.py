"""`make demo`: a week-long office marketplace, run end to end on this machine, then shut down.

69 participants with $100 each and a few hundred second-hand listings, half of
them on the Boulware strategy and half on the conceder strategy: the market
runs over the real services, the report prints, and everything stops.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from rich.console import Console

from haggle import infra, procs
from haggle.cli.market import ensure_running
from haggle.market.population import build_population
from haggle.market.render import render
from haggle.market.runner import RunConfig, run_all

console = Console()


def _live_view() -> None:
    """Where to watch: the web app's public pages, and a one-time link to the operator console."""
    from haggle.cli.principals import make_link

    try:
        link = asyncio.run(make_link("operator", None, "demo", timedelta(hours=12)))
    except Exception as exc:  # the demo runs without its live view rather than not at all
        console.print(f"[yellow]no live view:[/] {type(exc).__name__}")
        return
    console.print(f"[bold]watch it live[/]: {procs.url_for('web')}/  (operator console: {link})")


def run_demo(
    participants: int = 69,
    listings: int = 300,
    budget_dollars: int = 100,
    seed: int = 7,
    keep_up: bool = False,
) -> bool:
    started = time.monotonic()
    population = build_population(
        seed, participants, listings, budget_dollars * 100, 0.1, ["boulware", "conceder"], parallel=False
    )
    console.print(
        f"[bold]office market[/]: {participants} people, ${budget_dollars} each, "
        f"{listings} listings, Boulware vs conceder (population {population.digest()[:12]})"
    )
    try:
        bootstrap, _ = ensure_running()
        _live_view()
        config = RunConfig(deadline_seconds=900)
        last = [0.0]

        def progress(status: object) -> None:
            if time.monotonic() - last[0] >= 5 or getattr(status, "done", False):
                last[0] = time.monotonic()
                s = status
                console.print(
                    f"  {s.elapsed:6.1f}s  agents {s.registered}/{s.principals}  "  # type: ignore[attr-defined]
                    f"listings {s.listings}/{s.listings_expected}  open {s.threads_open}  "  # type: ignore[attr-defined]
                    f"ended {s.threads_ended}  deals {s.deals}  settled {s.settled}"  # type: ignore[attr-defined]
                )

        reports = asyncio.run(run_all(population, config, bootstrap, progress))
        for report in reports:
            render(report, console)
        console.print(f"market ran in {time.monotonic() - started:.0f}s")
        return all(r.ok for r in reports)
    finally:
        if keep_up:
            console.print(f"left running at {procs.url_for('web')}/ ; `make down` stops everything")
        else:
            for name in reversed(procs.SERVICES):
                procs.stop(name)
            infra.down(progress=console.print)
            console.print("shut down cleanly")
