"""Many scripted negotiations at once, for fault tests and benchmarks.

`AutoMarket` registers sellers and buyers, lists one item per buyer, opens a
thread per pair and then answers every offer from the inbox with a simple
linear concession until a deal, a rejection at the last round, or expiry.
Every command it sends is remembered, so a test can check that each one has
exactly one outcome on negotiation.events.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from haggle.client import Publisher
from haggle.contracts import Envelope, ShippingMethod
from haggle.contracts.agents import Role
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.negotiation import AcceptOffer, CounterOffer, OpenNegotiation, RejectOffer
from haggle.contracts.topics import LISTING_COMMANDS_TOPIC, MARKET_EVENTS, NEGOTIATION_COMMANDS
from haggle.runtime.operators import operator_envelope
from haggle_lab.testing.actors import ScriptedAgent
from haggle_lab.testing.goods import a_listing
from haggle_lab.testing.observe import Observer, of_type

ASKING, FLOOR, OPENING, MAXIMUM = 20_000, 15_000, 10_000, 18_000
STEP = 1_000


@dataclass
class Pair:
    listing_id: str
    seller: ScriptedAgent
    buyer: ScriptedAgent
    thread_id: str | None = None


@dataclass
class AutoMarket:
    market_id: str
    pub: Publisher
    obs: Observer
    pairs: int
    sellers: int = 10
    max_rounds: int = 8
    ttl_seconds: int = 120
    sent: dict[str, Envelope] = field(default_factory=dict)
    sent_at: dict[str, float] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)
    by_listing: dict[str, Pair] = field(default_factory=dict)
    _retries: set[asyncio.Task[None]] = field(default_factory=set)

    async def setup(self) -> None:
        rules = MarketRulesSet(
            max_rounds=self.max_rounds,
            negotiation_ttl_seconds=self.ttl_seconds,
            max_open_threads_per_agent=self.pairs + 10,
        )
        await self.pub.send(MARKET_EVENTS.name, self.market_id, operator_envelope(rules, self.market_id))
        sellers = [
            ScriptedAgent(f"{self.market_id}-s{i}", f"{self.market_id}-ps{i}", Role.SELLER, self.market_id)
            for i in range(self.sellers)
        ]
        for i in range(self.pairs):
            buyer = ScriptedAgent(
                f"{self.market_id}-b{i}", f"{self.market_id}-pb{i}", Role.BUYER, self.market_id
            )
            pair = Pair(f"{self.market_id}-L{i}", sellers[i % len(sellers)], buyer)
            self.by_listing[pair.listing_id] = pair
        everyone = [*sellers, *(p.buyer for p in self.by_listing.values())]
        for agent in everyone:
            await agent.register(self.pub)
        await self.obs.wait_for(of_type("AgentAdmitted"), "agent.inbox", count=len(everyone), timeout=120)
        listings = [
            (
                p.listing_id,
                operator_envelope(a_listing(p.listing_id, p.seller, ASKING), self.market_id, "auto"),
            )
            for p in self.by_listing.values()
        ]
        await self.pub.send_many(LISTING_COMMANDS_TOPIC.name, listings)
        await self.obs.wait_for(of_type("ListingPublished"), "listing.events", count=self.pairs, timeout=120)

    async def send(
        self, agent: ScriptedAgent, payload: OpenNegotiation | CounterOffer | AcceptOffer | RejectOffer
    ) -> None:
        env = agent.sign(payload)
        self.sent[str(env.event_id)] = env
        self.sent_at[str(env.event_id)] = time.perf_counter()
        await self.pub.send(NEGOTIATION_COMMANDS.name, payload.listing_id, env)

    async def open_all(self) -> None:
        for pair in self.by_listing.values():
            await self.send(
                pair.buyer,
                OpenNegotiation(
                    listing_id=pair.listing_id,
                    price_cents=OPENING,
                    shipping_method=ShippingMethod.PARCEL_STANDARD,
                ),
            )

    async def play(self, until_ended: int, timeout: float) -> None:
        """Answer offers until `until_ended` threads ended (or the timeout)."""
        deadline = time.monotonic() + timeout
        cursor = 0
        while time.monotonic() < deadline:
            fresh = self.obs.seen[cursor:]
            cursor += len(fresh)
            for topic, env in fresh:
                if topic == "agent.inbox":
                    await self._react(env)
            if len(self.ended_threads()) >= until_ended:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{len(self.ended_threads())}/{until_ended} threads ended")

    def ended_threads(self) -> set[str]:
        return {
            str(e.payload["thread_id"])
            for e in self.obs.matching(of_type("NegotiationEnded"), "negotiation.events")
        }

    async def _react(self, env: Envelope) -> None:
        if env.type == "ActionRefused" and env.payload["reason"] == "listing_unknown":
            original = self.sent.get(str(env.payload["command_event_id"]))
            pair = self.by_listing.get(str(env.payload["listing_id"]))
            if original is not None and pair is not None and original.type == "OpenNegotiation":
                # The referee had not seen the listing yet: open again shortly, without holding up
                # the answers to everyone else (a sleep here would stall the whole market).
                retry = asyncio.create_task(
                    self._reopen_later(pair, OpenNegotiation.model_validate(original.payload))
                )
                self._retries.add(retry)
                retry.add_done_callback(self._retries.discard)
            return
        if (
            env.type != "OfferMade"
            or env.agent_id == env.payload["agent_id"]
            or str(env.event_id) in self.answered
        ):
            return
        self.answered.add(str(env.event_id))
        pair = self.by_listing[str(env.payload["listing_id"])]
        await self.send(*self._answer(pair, env.payload))

    async def _reopen_later(self, pair: Pair, opening: OpenNegotiation, delay: float = 0.1) -> None:
        await asyncio.sleep(delay)
        await self.send(pair.buyer, opening)

    def _answer(
        self, pair: Pair, offer: dict[str, object]
    ) -> tuple[ScriptedAgent, AcceptOffer | CounterOffer | RejectOffer]:
        price, round_ = int(offer["price_cents"]), int(offer["round"])  # type: ignore[call-overload]
        thread_id, offer_id, final = str(offer["thread_id"]), str(offer["offer_id"]), bool(offer["final"])
        buyer_turn = offer["by"] == "seller"
        agent = pair.buyer if buyer_turn else pair.seller
        mine = OPENING + STEP * round_ if buyer_turn else ASKING - STEP * round_
        good = price <= min(mine, MAXIMUM) if buyer_turn else price >= max(mine, FLOOR)
        if good:
            return agent, AcceptOffer(listing_id=pair.listing_id, thread_id=thread_id, offer_id=offer_id)
        if final:
            return agent, RejectOffer(listing_id=pair.listing_id, thread_id=thread_id, offer_id=offer_id)
        target = min(mine, MAXIMUM) if buyer_turn else max(mine, FLOOR)
        return agent, CounterOffer(
            listing_id=pair.listing_id,
            thread_id=thread_id,
            price_cents=target,
            shipping_method=ShippingMethod.PARCEL_STANDARD,
        )

    def outcomes(self) -> dict[str, list[Envelope]]:
        """For each command sent: the negotiation.events it caused (refusal or applied events)."""
        caused: dict[str, list[Envelope]] = {key: [] for key in self.sent}
        for topic, env in self.obs.seen:
            if topic == "negotiation.events" and env.causation_id in caused:
                caused[env.causation_id].append(env)
        return caused
