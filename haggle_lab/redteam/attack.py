"""What an attack is, what it reports, and the context it runs in (the running market, seen from outside)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg

from haggle.client import Observer, Publisher
from haggle.contracts import Envelope
from haggle_lab.testing.actors import ScriptedAgent
from haggle_lab.testing.market import TOPICS, Market, wait_for_rules


@dataclass(frozen=True)
class AttackResult:
    held: bool
    seen: str
    """The refusal reason observed (or what else stopped the attack)."""
    detail: str = ""


@dataclass
class RedTeamContext:
    bootstrap: str
    database_url: str
    flood_threads: int = 2_000
    timings: dict[str, float] = field(default_factory=dict)
    """Figures measured along the way (e.g. the normal pair's time under a flood), for the report."""

    @asynccontextmanager
    async def market(
        self, attack: str, topics: tuple[str, ...] = TOPICS, **rules: object
    ) -> AsyncIterator[Market]:
        """A fresh market for one attack, observed from its start; `rules` are applied before it yields."""
        market_id = f"rt-{attack[:24]}-{uuid.uuid4().hex[:8]}"
        async with (
            Publisher(self.bootstrap) as pub,
            Observer(self.bootstrap, *topics, market_id=market_id) as obs,
        ):
            market = Market(market_id, pub, obs)
            if rules:
                await market.rules(**rules)
                await wait_for_rules(market_id)
            yield market

    @asynccontextmanager
    async def db(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(self.database_url)
        try:
            yield conn
        finally:
            await conn.close()


Runner = Callable[[RedTeamContext], Awaitable[AttackResult]]


@dataclass(frozen=True)
class Attack:
    name: str
    category: str
    tries: str
    invariant: str
    expected: tuple[str, ...]
    """The refusal reasons that show the invariant held (usually exactly one)."""
    runner: Runner = field(repr=False)
    needs_services: bool = True

    async def run(self, ctx: RedTeamContext, timeout: float = 120) -> AttackResult:
        """Never raises: an attack that errors or times out did not show its invariant held."""
        try:
            return await asyncio.wait_for(self.runner(ctx), timeout)
        except Exception as exc:
            return AttackResult(False, f"error: {type(exc).__name__}", str(exc)[:300])


async def expect_refusal(
    market: Market, agent: ScriptedAgent, sent: Envelope, expected: tuple[str, ...], settle: float = 0.3
) -> AttackResult:
    """Held when the referee refused `sent` with an expected reason and nothing else came of it."""
    seen = await market.refusal(agent, sent)
    await asyncio.sleep(settle)
    cause = str(sent.event_id)
    effects = market.obs.matching(
        lambda e: e.causation_id == cause and e.type != "ActionRefused", "negotiation.events"
    )
    deals = market.obs.matching(lambda e: e.type == "DealAgreed", "negotiation.events")
    held = seen in expected and not effects and not deals
    detail = f"effects: {[e.type for e in effects]}, deals: {len(deals)}" if not held else ""
    return AttackResult(held, seen, detail)
