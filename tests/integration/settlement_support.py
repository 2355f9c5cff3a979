"""What the settlement integration tests share: the services as processes and a market to trade in.

Only the listing and settlement services are started (they are what these
flows need), and each is stopped afterwards only if these tests started it.
A `SettlementMarket` plays the referee (it publishes DealAgreed as the
negotiation service would), the operator (wallets, rules) and the agents
(signed commands), and reads the settlement schema to check the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from haggle import procs
from haggle.client import Publisher
from haggle.contracts import Condition, Dimensions, Envelope, Item, ShippingMethod, ShippingOption, wrap
from haggle.contracts.agents import Role
from haggle.contracts.listing import CreateListing
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.negotiation import DealAgreed, Party
from haggle.contracts.settlement import FundWallet
from haggle.contracts.topics import (
    AGENT_INBOX,
    APPROVAL_EVENTS,
    LISTING_COMMANDS_TOPIC,
    LISTING_EVENTS_TOPIC,
    MARKET_EVENTS,
    NEGOTIATION_EVENTS_TOPIC,
    SETTLEMENT_COMMANDS,
    SETTLEMENT_EVENTS_TOPIC,
)
from haggle.runtime.operators import operator_envelope
from haggle_lab.testing.actors import ScriptedAgent
from haggle_lab.testing.observe import Observer, of_type
from services.settlement.check import CheckResult, run_checks

SERVICES = ("listing", "settlement")
TOPICS = (SETTLEMENT_EVENTS_TOPIC.name, AGENT_INBOX.name, APPROVAL_EVENTS.name, LISTING_EVENTS_TOPIC.name)
FAST = {
    "carrier_pickup_seconds": 1,
    "carrier_transit_seconds": 1,
    "carrier_loss_bps": 0,
    "inspection_window_seconds": 2,
    "ship_deadline_seconds": 120,
    "approval_timeout_seconds": 120,
}


@contextlib.contextmanager
def settlement_services() -> Iterator[None]:
    started = [name for name in SERVICES if procs.pid_of(name) is None]
    for name in SERVICES:
        procs.start(name)
    for name in SERVICES:
        procs.wait_ready(name)
    try:
        yield
    finally:
        for name in reversed(started):
            procs.stop(name)


async def settlement_pool(database_url: str) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=4, server_settings={"search_path": "settlement"}
    )
    assert pool is not None
    return pool


async def eventually(check: Any, what: str, timeout: float = 30.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await check()
        if found:
            return found
        if loop.time() > deadline:
            raise AssertionError(f"waited {timeout:.0f}s for {what}")
        await asyncio.sleep(0.1)


@dataclass
class SettlementMarket:
    market_id: str
    pub: Publisher
    obs: Observer
    pool: asyncpg.Pool
    buyer: ScriptedAgent = field(init=False)
    seller: ScriptedAgent = field(init=False)

    def __post_init__(self) -> None:
        self.buyer = self.agent("buyer", Role.BUYER)
        self.seller = self.agent("seller", Role.SELLER)

    def agent(self, name: str, role: Role) -> ScriptedAgent:
        return ScriptedAgent(f"{self.market_id}-{name}", f"{self.market_id}-p-{name}", role, self.market_id)

    def envelope(self, message: Any, producer: str = "test", correlation_id: str | None = None) -> Envelope:
        return wrap(message, market_id=self.market_id, producer=producer, correlation_id=correlation_id)

    async def open(self, *agents: ScriptedAgent, **rules: Any) -> None:
        """Publish the market's rules and register the agents; wait until settlement knows both."""
        await self.pub.send(
            MARKET_EVENTS.name,
            self.market_id,
            operator_envelope(MarketRulesSet(**{**FAST, **rules}), self.market_id),
        )
        everyone = (self.buyer, self.seller, *agents)
        for agent in everyone:
            await agent.register(self.pub)
        url = procs.url_for("settlement")

        async def ready() -> bool:
            async with httpx.AsyncClient() as client:
                rules_known = (await client.get(f"{url}/markets/{self.market_id}/rules")).status_code == 200
            ids = [a.agent_id for a in everyone]
            known = await self.pool.fetchval("SELECT count(*) FROM agents WHERE agent_id = ANY($1)", ids)
            return rules_known and known == len(ids)

        await eventually(ready, "rules and agents known to settlement")

    async def fund(self, agent: ScriptedAgent, amount: int, limit: int = 10_000_000) -> Envelope:
        command = FundWallet(
            funding_id=uuid.uuid4().hex,
            principal_id=agent.principal_id,
            amount_cents=amount,
            auto_approve_limit_cents=limit,
        )
        env = operator_envelope(command, self.market_id)
        await self.pub.send(SETTLEMENT_COMMANDS.name, agent.principal_id, env)
        await self.obs.wait_for(of_type("WalletFunded", funding_id=command.funding_id))
        return env

    async def listing(
        self, listing_id: str, condition: Condition = Condition.VERY_GOOD, price: int = 20_000
    ) -> None:
        command = CreateListing(
            listing_id=listing_id,
            seller_agent_id=self.seller.agent_id,
            seller_principal_id=self.seller.principal_id,
            title="Espresso machine, dual boiler",
            description="Works perfectly; descaled last month.",
            category="kitchen",
            condition=condition,
            price_cents=price,
            item=Item(weight_g=3_000, dimensions=Dimensions(length_mm=450, width_mm=350, height_mm=400)),
            shipping=(
                ShippingOption(method=ShippingMethod.PARCEL_STANDARD, cost_cents=1_500),
                ShippingOption(method=ShippingMethod.LOCAL_PICKUP, cost_cents=0),
            ),
        )
        await self.pub.send(
            LISTING_COMMANDS_TOPIC.name, listing_id, operator_envelope(command, self.market_id)
        )
        await self.obs.wait_for(of_type("ListingPublished", listing_id=listing_id))

        async def known() -> bool:
            query = "SELECT 1 FROM listing_conditions WHERE listing_id = $1"
            return bool(await self.pool.fetchval(query, listing_id))

        await eventually(known, f"settlement to learn {listing_id}'s condition")

    def deal(
        self,
        deal_id: str,
        listing_id: str,
        price: int = 20_000,
        method: ShippingMethod = ShippingMethod.PARCEL_STANDARD,
        buyer: ScriptedAgent | None = None,
        seller: ScriptedAgent | None = None,
    ) -> Envelope:
        buyer, seller = buyer or self.buyer, seller or self.seller
        agreed = DealAgreed(
            deal_id=deal_id,
            listing_id=listing_id,
            thread_id=f"th-{deal_id}",
            buyer_agent_id=buyer.agent_id,
            buyer_principal_id=buyer.principal_id,
            seller_agent_id=seller.agent_id,
            seller_principal_id=seller.principal_id,
            price_cents=price,
            shipping_method=method,
            shipping_cost_cents=0 if method is ShippingMethod.LOCAL_PICKUP else 1_500,
            shipping_paid_by=Party.BUYER,
            accepted_offer_id=f"o-{deal_id}",
        )
        return self.envelope(agreed, producer="negotiation", correlation_id=deal_id)

    async def agree(self, env: Envelope) -> None:
        await self.pub.send(NEGOTIATION_EVENTS_TOPIC.name, str(env.payload["listing_id"]), env)

    async def command(self, agent: ScriptedAgent, message: Any) -> Envelope:
        return await agent.send(self.pub, message, topic=SETTLEMENT_COMMANDS.name)

    async def event(self, type_name: str, deal_id: str, timeout: float = 30, **fields: Any) -> Envelope:
        found = await self.obs.wait_for(
            of_type(type_name, deal_id=deal_id, **fields), topic=SETTLEMENT_EVENTS_TOPIC.name, timeout=timeout
        )
        return found[0]

    def events_of(self, deal_id: str, topic: str = SETTLEMENT_EVENTS_TOPIC.name) -> list[str]:
        return [e.type for e in self.obs.matching(lambda e: e.payload.get("deal_id") == deal_id, topic)]

    def inbox_of(self, agent: ScriptedAgent, deal_id: str) -> list[str]:
        match = lambda e: e.agent_id == agent.agent_id and e.payload.get("deal_id") == deal_id  # noqa: E731
        return [e.type for e in self.obs.matching(match, AGENT_INBOX.name)]

    async def listing_event(self, type_name: str, listing_id: str) -> Envelope:
        found = await self.obs.wait_for(of_type(type_name, listing_id=listing_id), LISTING_EVENTS_TOPIC.name)
        return found[0]

    async def state(self, deal_id: str) -> str | None:
        value = await self.pool.fetchval("SELECT state FROM deals WHERE deal_id = $1", deal_id)
        return None if value is None else str(value)

    async def balance(self, account_id: str) -> tuple[int, int]:
        """(posted balance, available) of one account."""
        row = await self.pool.fetchrow(
            "SELECT credits_posted - debits_posted AS balance,"
            " credits_posted - debits_posted - debits_pending AS available FROM accounts WHERE id = $1",
            account_id,
        )
        return (0, 0) if row is None else (int(row["balance"]), int(row["available"]))

    def wallet(self, agent: ScriptedAgent) -> str:
        return f"wallet:{self.market_id}:{agent.principal_id}"

    async def ledger_check(self) -> list[CheckResult]:
        async with self.pool.acquire() as conn:
            return await run_checks(conn, self.market_id)


@contextlib.asynccontextmanager
async def settlement_market(
    bootstrap: str, database_url: str, market_id: str
) -> AsyncIterator[SettlementMarket]:
    pool = await settlement_pool(database_url)
    try:
        async with Publisher(bootstrap) as pub, Observer(bootstrap, *TOPICS, market_id=market_id) as obs:
            yield SettlementMarket(market_id, pub, obs, pool)
    finally:
        await pool.close()


async def haggle_cli(*args: str) -> tuple[int, str]:
    """Run the real `haggle` command (this environment's variables pass through)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "haggle",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode()
