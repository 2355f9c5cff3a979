"""Closing a market, as the operator: `MarketClosing`, wait until nothing is in flight, `MarketClosed`.

The services say where they are through `/markets/{id}`: the referee its open
negotiations and deals, settlement its deals not final, the agents their
negotiations waiting to open. `MarketClosed` goes out only when the referee has
no negotiation open and settlement holds every deal the referee agreed, each
final; the referee and settlement refuse it otherwise (`unfinished`), so a
closed market is one where nothing more can change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from haggle import procs
from haggle.client import Publisher
from haggle.contracts.market import MarketClosed, MarketClosing, MarketPhase
from haggle.contracts.topics import MARKET_EVENTS
from haggle.runtime.operators import operator_envelope

Say = Callable[[str], None]
WATCHED = ("negotiation", "settlement", "agents")


class CloseRefused(RuntimeError):
    """The market cannot be closed (already closed, or a service does not answer)."""


@dataclass(frozen=True)
class MarketView:
    """One look at a market across the services."""

    phases: dict[str, MarketPhase]
    threads: int
    threads_open: int
    deals: int
    deals_seen_by_settlement: int
    deals_open: int
    waiting_to_open: int
    closing_at: str | None
    listings_read: int = 0
    """Listings of the market the agents service has read (its `listings_seen`)."""
    agents_admitted: int = 0
    """Agents of the market the agents service knows are admitted."""
    agents_open: int = 0
    """The agents' negotiations open as they see them: a thread the referee has ended is open here
    until the agents have read its end (and, a buyer's, opened the want's next candidate)."""
    agents_deals_open: int = 0
    """Deals whose outcome the agents have not read: a failed or refunded purchase frees its money
    and reopens the want's candidates, after settlement has called the deal final."""

    @property
    def quiet(self) -> bool:
        """Nothing in flight: no negotiation open or about to open, every deal final."""
        return self.in_flight == 0

    @property
    def in_flight(self) -> int:
        return (
            self.threads_open
            + self.waiting_to_open
            + self.agents_open
            + self.agents_deals_open
            + self.deals_open
            + (self.deals - self.deals_seen_by_settlement)
        )

    def all_in(self, phase: MarketPhase) -> bool:
        return all(p is phase for p in self.phases.values())

    def none_open(self) -> bool:
        """Every service has seen the market close (a service may be closed already: only the
        referee and settlement check that nothing is unfinished before they call it closed)."""
        return all(p is not MarketPhase.OPEN for p in self.phases.values())


async def look(client: httpx.AsyncClient, market_id: str) -> MarketView:
    found: dict[str, dict[str, object]] = {}
    for service in WATCHED:
        response = await client.get(f"{procs.url_for(service)}/markets/{market_id}")
        if response.status_code != 200:
            raise CloseRefused(f"{service} answered {response.status_code} for market {market_id}")
        found[service] = response.json()
    ref, settle, agents = found["negotiation"], found["settlement"], found["agents"]

    def n(view: dict[str, object], key: str) -> int:
        return int(str(view[key]))

    return MarketView(
        phases={s: MarketPhase(str(v["phase"])) for s, v in found.items()},
        threads=n(ref, "threads"),
        threads_open=n(ref, "threads_open"),
        deals=n(ref, "deals"),
        deals_seen_by_settlement=n(settle, "deals"),
        deals_open=n(settle, "deals_open"),
        waiting_to_open=n(agents, "opening"),
        closing_at=str(ref["closing_at"]) if ref.get("closing_at") else None,
        listings_read=n(agents, "listings_seen"),
        agents_admitted=n(agents, "admitted"),
        agents_open=n(agents, "open"),
        agents_deals_open=n(agents, "deals_open"),
    )


async def look_patiently(client: httpx.AsyncClient, market_id: str, pause: float = 0.5) -> MarketView:
    """`look`, asked again while a service is down or restarting (as in a chaos run)."""
    while True:
        try:
            return await look(client, market_id)
        except (httpx.HTTPError, CloseRefused):
            await asyncio.sleep(pause)


async def _until(
    client: httpx.AsyncClient, market_id: str, done: Callable[[MarketView], bool], timeout: float, say: Say
) -> MarketView:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        view = await look_patiently(client, market_id)
        if done(view):
            return view
        line = (
            f"{market_id}: {view.threads_open} negotiations open, {view.deals_open} deals settling,"
            f" {view.deals - view.deals_seen_by_settlement} deals on their way to settlement"
        )
        if line != last:
            say(line)
            last = line
        if time.monotonic() > deadline:
            raise TimeoutError(f"market {market_id} did not finish closing in {timeout:.0f} s: {line}")
        await asyncio.sleep(0.3)


async def close_market(
    pub: Publisher, market_id: str, timeout: float, say: Say, reason: str = "closed by the operator"
) -> MarketView:
    """Close a market and wait until it is closed; a market already closing is waited for."""
    async with httpx.AsyncClient(timeout=5) as client:
        view = await look_patiently(client, market_id)
        if view.phases["negotiation"] is MarketPhase.CLOSED:
            raise CloseRefused(f"market {market_id} is closed already")
        if view.phases["negotiation"] is MarketPhase.OPEN:
            await pub.send(
                MARKET_EVENTS.name, market_id, operator_envelope(MarketClosing(reason=reason), market_id)
            )
            say(f"{market_id}: closing — no new negotiations")
        else:
            say(f"{market_id}: closing already — waiting for what is in flight")
        await _until(client, market_id, lambda v: v.none_open(), timeout, say)
        view = await _until(client, market_id, lambda v: v.quiet, timeout, say)
        closed = MarketClosed(negotiations=view.threads, deals=view.deals)
        await pub.send(MARKET_EVENTS.name, market_id, operator_envelope(closed, market_id))
        view = await _until(client, market_id, lambda v: v.all_in(MarketPhase.CLOSED), 30, say)
        say(f"{market_id}: closed — {view.threads} negotiations, {view.deals} deals, all final")
        return view
