"""Shared set-up for agents tests: a market observed from outside, mandates handed in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from haggle.client import Publisher
from haggle.contracts import AgentKey, Envelope
from haggle.contracts.mandate import Mandate
from haggle_lab.testing import mandates
from haggle_lab.testing.observe import Observer, of_type
from services.agents import store

TOPICS = ("agent.inbox", "negotiation.events", "listing.events", "settlement.events", "agent.events")


@dataclass
class AgentMarket:
    market_id: str
    pub: Publisher
    obs: Observer

    def pid(self, name: str) -> str:
        return f"{self.market_id}-{name}"

    async def assign(self, *people: Mandate) -> None:
        for mandate in people:
            await mandates.assign(self.pub, self.market_id, mandate)

    def offers_by(self, principal_id: str) -> list[Envelope]:
        agent_id = f"{principal_id}.agent"
        return self.obs.matching(
            lambda e: e.type == "OfferMade" and e.payload["agent_id"] == agent_id, "negotiation.events"
        )

    def deals(self) -> list[Envelope]:
        return self.obs.matching(of_type("DealAgreed"), "negotiation.events")

    async def ended(self, count: int = 1, timeout: float = 60) -> list[Envelope]:
        return await self.obs.wait_for(
            of_type("NegotiationEnded"), "negotiation.events", count=count, timeout=timeout
        )


@asynccontextmanager
async def agent_market(bootstrap: str, market_id: str, *more_topics: str) -> AsyncIterator[AgentMarket]:
    async with (
        Publisher(bootstrap) as pub,
        Observer(bootstrap, *TOPICS, *more_topics, market_id=market_id) as obs,
    ):
        yield AgentMarket(market_id, pub, obs)


async def add_principal(
    conn: asyncpg.Connection, market_id: str, mandate: Mandate, admitted: bool = True
) -> None:
    """A principal stored straight into the agents' schema (agent `<principal>.agent`), admitted
    unless told otherwise: for store tests that run no service."""
    agent_id = f"{mandate.principal_id}.agent"
    assert await store.insert_principal(conn, market_id, mandate, "linear", agent_id, AgentKey.generate())
    if admitted:
        await store.set_admitted(conn, mandate.principal_id)
