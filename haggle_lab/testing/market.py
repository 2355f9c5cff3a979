"""A market seen from outside, for tests and the red-team suite: agents, listings, outcomes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from haggle import procs
from haggle.client import Publisher
from haggle.contracts import Envelope
from haggle.contracts.agents import Role
from haggle.contracts.listing import CreateListing
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.negotiation import OpenNegotiation
from haggle.contracts.topics import LISTING_COMMANDS_TOPIC, MARKET_EVENTS
from haggle.runtime.operators import operator_envelope
from haggle_lab.testing.actors import ScriptedAgent
from haggle_lab.testing.goods import a_listing
from haggle_lab.testing.observe import Observer, of_type, to_agent


async def wait_for_rules(market_id: str, timeout: float = 20) -> None:
    """Until the referee applies the market's rules: they travel on another topic than the moves."""
    url = f"{procs.url_for('negotiation')}/markets/{market_id}/rules"
    async with httpx.AsyncClient() as client:
        for _ in range(int(timeout / 0.1)):
            if (await client.get(url)).json()["configured"]:
                return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the referee never applied the rules of {market_id}")


__all__ = ["TOPICS", "Market", "a_listing"]

TOPICS = ("agent.inbox", "negotiation.events", "listing.events")


@dataclass
class Market:
    market_id: str
    pub: Publisher
    obs: Observer

    def agent(
        self, name: str, role: Role, principal: str | None = None, owner: str | None = None
    ) -> ScriptedAgent:
        return ScriptedAgent(
            f"{self.market_id}-{name}",
            principal or f"{self.market_id}-p-{name}",
            role,
            self.market_id,
            owner_id=owner,
        )

    async def rules(self, **values: object) -> None:
        rules = MarketRulesSet.model_validate(values)
        await self.pub.send(MARKET_EVENTS.name, self.market_id, operator_envelope(rules, self.market_id))
        await wait_for_rules(self.market_id)

    async def admit(self, *agents: ScriptedAgent) -> None:
        for agent in agents:
            await agent.register(self.pub)
        for agent in agents:
            await self.obs.wait_for(to_agent(agent.agent_id, "AgentAdmitted"), "agent.inbox")

    async def list_item(self, cmd: CreateListing) -> None:
        env = operator_envelope(cmd, self.market_id, "test")
        await self.pub.send(LISTING_COMMANDS_TOPIC.name, cmd.listing_id, env)
        await self.obs.wait_for(of_type("ListingPublished", listing_id=cmd.listing_id), "listing.events")

    async def open(self, buyer: ScriptedAgent, cmd: OpenNegotiation, attempts: int = 20) -> Envelope:
        """Open a thread, retrying while the referee has not yet seen the listing (as agents do)."""
        for _ in range(attempts):
            sent = await buyer.send(self.pub, cmd)
            outcome = await self.outcome(buyer, sent)
            refused = outcome.type == "ActionRefused" and outcome.payload["reason"] == "listing_unknown"
            if not refused:
                return outcome
            await asyncio.sleep(0.2)
        raise AssertionError("the referee never learned of the listing")

    async def outcome(self, agent: ScriptedAgent, sent: Envelope, timeout: float = 20) -> Envelope:
        """The first inbox event caused by `sent`: an applied move or its refusal."""
        cause = str(sent.event_id)
        found = await self.obs.wait_for(
            lambda e: e.agent_id == agent.agent_id and e.causation_id == cause, "agent.inbox", timeout=timeout
        )
        return found[0]

    async def refusal(self, agent: ScriptedAgent, sent: Envelope) -> str:
        found = await self.obs.wait_for(
            lambda e: e.type == "ActionRefused" and e.causation_id == str(sent.event_id), "negotiation.events"
        )
        return str(found[0].payload["reason"])
