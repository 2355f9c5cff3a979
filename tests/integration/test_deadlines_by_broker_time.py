"""Deadlines judged by when a command reached Kafka, across an outage of the service that judges it.

The service is stopped, commands are sent while it is down (one inside the deadline, one after it
with its `occurred_at` and producer timestamp forged inside), and the service starts again after
the deadline: the first is honoured, the second refused, and the deadline's timer fires only once
both were handled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from haggle import procs
from haggle.client import Publisher
from haggle.contracts import Condition, Envelope, ShippingMethod, encode
from haggle.contracts.agents import Role
from haggle.contracts.negotiation import CounterOffer, OpenNegotiation
from haggle.contracts.settlement import DisputeReason, OpenDispute, ShipItem
from haggle.contracts.topics import NEGOTIATION_COMMANDS, SETTLEMENT_COMMANDS
from haggle_lab.testing.actors import ScriptedAgent
from haggle_lab.testing.market import TOPICS, Market, a_listing
from haggle_lab.testing.observe import Observer, of_type, to_agent
from tests.integration.settlement_support import SettlementMarket, settlement_market, settlement_services

pytestmark = pytest.mark.timeout(420)
WINDOW = 20
"""Long enough to stop a service and send a command inside it on a loaded machine."""


async def send_forged(pub: Publisher, topic: str, key: str, env: Envelope, claimed: datetime) -> None:
    """A late command that claims an earlier time twice: in its envelope and as the record's time."""
    forged = env.model_copy(update={"occurred_at": claimed})
    millis = int(claimed.timestamp() * 1000)
    await pub.producer.send_and_wait(topic, encode(forged), key=key.encode(), timestamp_ms=millis)


async def sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def restart(name: str) -> None:
    procs.start(name)
    procs.wait_ready(name, 120)


@pytest.fixture
def settlement_up(endpoints: object) -> Iterator[None]:
    with settlement_services():
        yield


@pytest.fixture
async def market(
    settlement_up: None, bootstrap: str, database_url: str, market_id: str
) -> AsyncIterator[SettlementMarket]:
    async with settlement_market(bootstrap, database_url, market_id) as m:
        yield m


async def delivered(market: SettlementMarket, name: str) -> tuple[str, datetime]:
    deal_id, listing_id = f"{market.market_id}-D{name}", f"{market.market_id}-L{name}"
    await market.listing(listing_id)
    await market.agree(market.deal(deal_id, listing_id))
    await market.event("EscrowFunded", deal_id)
    await market.command(market.seller, ShipItem(deal_id=deal_id, packed_condition=Condition.VERY_GOOD))
    found = await market.event("ShipmentDelivered", deal_id)
    return deal_id, datetime.fromisoformat(found.payload["inspection_ends_at"])


async def test_a_dispute_sent_in_the_window_while_settlement_was_down_is_honoured_a_late_one_is_not(
    market: SettlementMarket,
) -> None:
    await market.open(inspection_window_seconds=WINDOW)
    await market.fund(market.buyer, 100_000)
    in_time, closes = await delivered(market, "intime")
    late, late_closes = await delivered(market, "late")
    await asyncio.to_thread(procs.stop, "settlement")
    await market.command(market.buyer, OpenDispute(deal_id=in_time, reason=DisputeReason.WRONG_ITEM))
    sent_at = datetime.now(UTC)
    assert sent_at < closes, f"the test was too slow to send inside the window ({sent_at} ≥ {closes})"
    await sleep_until(late_closes + timedelta(seconds=1))
    forged = market.buyer.sign(OpenDispute(deal_id=late, reason=DisputeReason.WRONG_ITEM))
    await send_forged(market.pub, SETTLEMENT_COMMANDS.name, late, forged, late_closes - timedelta(seconds=5))
    await asyncio.to_thread(restart, "settlement")

    await market.event("DisputeOpened", in_time, timeout=60)
    refused = await market.event("SettlementCommandRefused", late, timeout=60)
    assert refused.payload["reason"] == "inspection_closed"
    await market.event("FundsReleased", late, timeout=60)
    assert await market.state(in_time) == "disputed"
    assert "InspectionPassed" not in market.events_of(in_time)


@pytest.fixture
async def referee_market(running_services: object, bootstrap: str, market_id: str) -> AsyncIterator[Market]:
    async with Publisher(bootstrap) as pub, Observer(bootstrap, *TOPICS, market_id=market_id) as obs:
        yield Market(market_id, pub, obs)


async def opened_thread(market: Market, seller: ScriptedAgent, buyer: ScriptedAgent, name: str) -> Envelope:
    listing_id = f"{market.market_id}-{name}"
    await market.list_item(a_listing(listing_id, seller, price=20_000))
    opening = OpenNegotiation(
        listing_id=listing_id, price_cents=14_000, shipping_method=ShippingMethod.PARCEL_STANDARD
    )
    return await market.open(buyer, opening)


def counter(opened: Envelope) -> CounterOffer:
    return CounterOffer(
        listing_id=opened.payload["listing_id"],
        thread_id=opened.payload["thread_id"],
        price_cents=18_000,
        shipping_method=ShippingMethod.PARCEL_STANDARD,
    )


async def test_a_counter_offer_sent_before_the_deadline_while_the_referee_was_down_is_applied(
    referee_market: Market,
) -> None:
    market = referee_market
    await market.rules(negotiation_ttl_seconds=WINDOW)
    seller, buyer = market.agent("s", Role.SELLER), market.agent("b", Role.BUYER)
    await market.admit(seller, buyer)
    in_time = await opened_thread(market, seller, buyer, "intime")
    late = await opened_thread(market, seller, buyer, "late")
    deadline = datetime.fromisoformat(in_time.payload["deadline"])
    late_deadline = datetime.fromisoformat(late.payload["deadline"])
    await asyncio.to_thread(procs.stop, "negotiation")
    sent = await seller.send(market.pub, counter(in_time))
    assert datetime.now(UTC) < deadline, "the test was too slow to send before the deadline"
    await sleep_until(late_deadline + timedelta(seconds=1))
    forged = seller.sign(counter(late))
    claimed = late_deadline - timedelta(seconds=5)
    await send_forged(market.pub, NEGOTIATION_COMMANDS.name, late.payload["listing_id"], forged, claimed)
    await asyncio.to_thread(restart, "negotiation")

    made = await market.outcome(seller, sent, timeout=60)
    assert made.type == "OfferMade", made.payload
    assert made.payload["price_cents"] == 18_000
    assert await market.refusal(seller, forged) == "deadline_passed"
    for opened in (in_time, late):
        await market.obs.wait_for(
            to_agent(buyer.agent_id, "NegotiationEnded", thread_id=opened.payload["thread_id"]),
            "agent.inbox",
            timeout=60,
        )
    ended = market.obs.matching(of_type("NegotiationEnded", thread_id=in_time.payload["thread_id"]))
    assert {e.payload["reason"] for e in ended} == {"expired_deadline"}
