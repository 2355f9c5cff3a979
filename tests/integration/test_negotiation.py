"""The referee over real Kafka and PostgreSQL, with the listing and negotiation services running."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from haggle.client import Publisher
from haggle.contracts import ShippingMethod
from haggle.contracts.agents import Role
from haggle.contracts.listing import WithdrawListing
from haggle.contracts.negotiation import AcceptOffer, CounterOffer, OpenNegotiation, RejectOffer
from haggle.contracts.topics import LISTING_COMMANDS_TOPIC, NEGOTIATION_COMMANDS
from haggle_lab.testing.market import TOPICS, Market, a_listing
from haggle_lab.testing.observe import Observer, of_type, to_agent

pytestmark = pytest.mark.usefixtures("running_services")


@pytest.fixture
async def market(bootstrap: str, market_id: str) -> AsyncIterator[Market]:
    async with Publisher(bootstrap) as pub, Observer(bootstrap, *TOPICS, market_id=market_id) as obs:
        yield Market(market_id, pub, obs)


def opening(
    listing_id: str, price: int, method: ShippingMethod = ShippingMethod.PARCEL_STANDARD
) -> OpenNegotiation:
    return OpenNegotiation(listing_id=listing_id, price_cents=price, shipping_method=method)


async def test_full_haggle_ends_in_one_deal_and_reserves_the_listing(market: Market) -> None:
    seller, buyer = market.agent("s", Role.SELLER), market.agent("b", Role.BUYER)
    await market.admit(seller, buyer)
    listing_id = f"{market.market_id}-espresso"
    await market.list_item(a_listing(listing_id, seller, price=20_000))

    opened = await market.open(buyer, opening(listing_id, 14_000))
    assert opened.type == "ThreadOpened"
    thread_id = opened.payload["thread_id"]
    first = (await market.obs.wait_for(to_agent(seller.agent_id, "OfferMade", round=1), "agent.inbox"))[0]
    assert first.payload["price_cents"] == 14_000 and first.payload["by"] == "buyer"

    await seller.send(
        market.pub,
        CounterOffer(
            listing_id=listing_id,
            thread_id=thread_id,
            price_cents=18_000,
            shipping_method=ShippingMethod.PARCEL_STANDARD,
        ),
    )
    second = (await market.obs.wait_for(to_agent(buyer.agent_id, "OfferMade", round=2), "agent.inbox"))[0]
    await buyer.send(
        market.pub,
        AcceptOffer(listing_id=listing_id, thread_id=thread_id, offer_id=second.payload["offer_id"]),
    )

    deal = (await market.obs.wait_for(of_type("DealAgreed", listing_id=listing_id), "negotiation.events"))[0]
    assert deal.payload["price_cents"] == 18_000
    assert deal.payload["accepted_offer_id"] == second.payload["offer_id"]
    assert deal.payload["buyer_principal_id"] == buyer.principal_id
    assert deal.payload["shipping_cost_cents"] == 1_500
    await market.obs.wait_for(
        of_type("ListingReserved", listing_id=listing_id, deal_id=deal.payload["deal_id"]), "listing.events"
    )
    for agent in (buyer, seller):
        await market.obs.wait_for(to_agent(agent.agent_id, "DealAgreed"), "agent.inbox")
    await asyncio.sleep(0.5)
    assert len(market.obs.matching(of_type("DealAgreed"), "negotiation.events")) == 1


async def test_two_buyers_accepting_at_once_yield_one_deal(market: Market) -> None:
    seller = market.agent("s", Role.SELLER)
    one, two = market.agent("b1", Role.BUYER), market.agent("b2", Role.BUYER)
    await market.admit(seller, one, two)
    listing_id = f"{market.market_id}-race"
    await market.list_item(a_listing(listing_id, seller))
    threads = {}
    for buyer in (one, two):
        threads[buyer.agent_id] = (await market.open(buyer, opening(listing_id, 15_000))).payload["thread_id"]
    counters = {}
    for buyer in (one, two):
        sent = await seller.send(
            market.pub,
            CounterOffer(
                listing_id=listing_id,
                thread_id=threads[buyer.agent_id],
                price_cents=17_000,
                shipping_method=ShippingMethod.PARCEL_STANDARD,
            ),
        )
        counters[buyer.agent_id] = (await market.outcome(buyer, sent)).payload["offer_id"]
    accepts = [
        buyer.sign(
            AcceptOffer(
                listing_id=listing_id, thread_id=threads[buyer.agent_id], offer_id=counters[buyer.agent_id]
            )
        )
        for buyer in (one, two)
    ]
    await market.pub.send_many("negotiation.commands", [(listing_id, env) for env in accepts])

    deals = await market.obs.wait_for(of_type("DealAgreed", listing_id=listing_id), "negotiation.events")
    loser_accept = accepts[1] if deals[0].payload["buyer_agent_id"] == one.agent_id else accepts[0]
    assert await market.refusal(two if loser_accept is accepts[1] else one, loser_accept) == "listing_sold"
    ended = await market.obs.wait_for(
        of_type("NegotiationEnded", reason="listing_sold"), "negotiation.events"
    )
    assert len(ended) == 1
    await asyncio.sleep(0.5)
    assert len(market.obs.matching(of_type("DealAgreed"), "negotiation.events")) == 1


async def test_forged_signature_is_refused(market: Market) -> None:
    seller, buyer = market.agent("s", Role.SELLER), market.agent("b", Role.BUYER)
    await market.admit(seller, buyer)
    listing_id = f"{market.market_id}-forged"
    await market.list_item(a_listing(listing_id, seller))
    impostor = market.agent("b", Role.BUYER)  # same agent id, a different key
    sent = await impostor.send(market.pub, opening(listing_id, 10_000))
    assert await market.refusal(buyer, sent) == "bad_signature"


async def test_replayed_seq_and_out_of_turn_are_refused(market: Market) -> None:
    seller, buyer = market.agent("s", Role.SELLER), market.agent("b", Role.BUYER)
    await market.admit(seller, buyer)
    listing_id = f"{market.market_id}-replay"
    await market.list_item(a_listing(listing_id, seller))
    opened = await market.open(buyer, opening(listing_id, 12_000))
    thread_id = opened.payload["thread_id"]

    # The buyer moves again before the seller answered: out of turn.
    counter = CounterOffer(
        listing_id=listing_id,
        thread_id=thread_id,
        price_cents=12_500,
        shipping_method=ShippingMethod.PARCEL_STANDARD,
    )
    sent = await buyer.send(market.pub, counter)
    assert await market.refusal(buyer, sent) == "out_of_turn"

    # The same signed command re-sent under a new event id: its seq is spent.
    replay = sent.model_copy(update={"event_id": __import__("uuid").uuid4()})
    await market.pub.send("negotiation.commands", listing_id, replay)
    assert await market.refusal(buyer, replay) == "replayed_seq"


async def test_self_deal_is_refused(market: Market) -> None:
    seller = market.agent("s", Role.SELLER, principal=f"{market.market_id}-same")
    buyer = market.agent("b", Role.BUYER, principal=f"{market.market_id}-same")
    await market.admit(seller, buyer)
    listing_id = f"{market.market_id}-self"
    await market.list_item(a_listing(listing_id, seller))
    outcome = await market.open(buyer, opening(listing_id, 10_000))
    assert outcome.type == "ActionRefused" and outcome.payload["reason"] == "self_dealing"


async def test_infeasible_and_unoffered_shipping_are_refused(market: Market) -> None:
    seller, buyer = market.agent("s", Role.SELLER), market.agent("b", Role.BUYER)
    await market.admit(seller, buyer)
    listing_id = f"{market.market_id}-ship"
    await market.list_item(a_listing(listing_id, seller))
    unoffered = await market.open(buyer, opening(listing_id, 10_000, ShippingMethod.FREIGHT))
    assert unoffered.payload["reason"] == "shipping_not_offered"
    # A 3 kg, 45 cm machine cannot go as a small parcel (2 kg, 60 cm, 90 cm length+girth), even if offered.
    heavy_id = f"{market.market_id}-ship2"
    cmd = a_listing(heavy_id, seller)
    await market.list_item(cmd)
    outcome = await market.open(buyer, opening(heavy_id, 10_000, ShippingMethod.PARCEL_SMALL))
    assert outcome.payload["reason"] == "shipping_not_offered"


async def test_thread_past_its_deadline_expires(market: Market) -> None:
    await market.rules(negotiation_ttl_seconds=2)
    seller, buyer = market.agent("s", Role.SELLER), market.agent("b", Role.BUYER)
    await market.admit(seller, buyer)
    listing_id = f"{market.market_id}-slow"
    await market.list_item(a_listing(listing_id, seller))
    opened = await market.open(buyer, opening(listing_id, 11_000))
    thread_id = opened.payload["thread_id"]
    ended = await market.obs.wait_for(
        of_type("NegotiationEnded", thread_id=thread_id, reason="expired_deadline"),
        "agent.inbox",
        count=2,
        timeout=15,
    )
    assert {e.agent_id for e in ended} == {buyer.agent_id, seller.agent_id}
    late = await seller.send(
        market.pub, RejectOffer(listing_id=listing_id, thread_id=thread_id, offer_id=f"{thread_id}.1")
    )
    assert await market.refusal(seller, late) in ("thread_ended", "deadline_passed")


async def test_a_withdrawn_listing_ends_its_open_threads(market: Market) -> None:
    seller, buyer = market.agent("s", Role.SELLER), market.agent("b", Role.BUYER)
    await market.admit(seller, buyer)
    listing_id = f"{market.market_id}-withdrawn"
    await market.list_item(a_listing(listing_id, seller))
    opened = await market.open(buyer, opening(listing_id, 12_000))

    withdraw = WithdrawListing(listing_id=listing_id, seller_agent_id=seller.agent_id)
    await seller.send(market.pub, withdraw, topic=LISTING_COMMANDS_TOPIC.name)

    for agent in (buyer, seller):
        ended = await market.obs.wait_for(
            to_agent(agent.agent_id, "NegotiationEnded", thread_id=opened.payload["thread_id"]), "agent.inbox"
        )
        assert ended[0].payload["reason"] == "listing_withdrawn"


async def test_a_replay_in_the_same_batch_is_refused(market: Market) -> None:
    """The referee checks a batch's seqs in memory: a replay right behind its original (same
    partition, same poll) must still find the seq spent."""
    seller, buyer = market.agent("s", Role.SELLER), market.agent("b", Role.BUYER)
    first = market.agent("b0", Role.BUYER)
    await market.admit(seller, buyer, first)
    listing_id = f"{market.market_id}-batch-replay"
    await market.list_item(a_listing(listing_id, seller))
    await market.open(first, opening(listing_id, 11_000))  # retried until the referee knows the listing
    original = buyer.sign(opening(listing_id, 12_000))
    replay = original.model_copy(update={"event_id": uuid.uuid4()})
    await market.pub.send_many(NEGOTIATION_COMMANDS.name, [(listing_id, original), (listing_id, replay)])

    assert (await market.outcome(buyer, original)).type == "ThreadOpened"
    assert await market.refusal(buyer, replay) == "replayed_seq"
    opened_by_buyer = of_type("ThreadOpened", listing_id=listing_id, buyer_agent_id=buyer.agent_id)
    assert len(market.obs.matching(opened_by_buyer, "negotiation.events")) == 1
