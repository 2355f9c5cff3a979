"""The listing service reacting to other services' facts, over real Kafka and PostgreSQL.

`DealAgreed` on negotiation.events reserves a listing; `FundsReleased`, `EscrowFailed` and
`Refunded` on settlement.events sell, relist or close it. Events are published here as their
producers publish them (same topics, keys and envelopes). A fact that does not fit the
listing's state is ignored: the inbox shows it was handled, the outbox that it caused nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from haggle.client import Publisher
from haggle.contracts import Envelope, Message, wrap
from haggle.contracts.goods import ShippingMethod
from haggle.contracts.negotiation import DealAgreed, Party
from haggle.contracts.settlement import EscrowFailed, FundsReleased, Refunded
from haggle.contracts.topics import (
    LISTING_COMMANDS_TOPIC,
    LISTING_EVENTS_TOPIC,
    NEGOTIATION_EVENTS_TOPIC,
    SETTLEMENT_EVENTS_TOPIC,
)
from tests.integration.listing_support import (
    Watcher,
    create_command,
    envelope,
    eventually,
    listing_service,
    paused,
    watching,
)

pytestmark = pytest.mark.timeout(180)

NEGOTIATION = NEGOTIATION_EVENTS_TOPIC.name
SETTLEMENT = SETTLEMENT_EVENTS_TOPIC.name


@pytest.fixture(scope="module")
def service(endpoints: object) -> Iterator[str]:
    with paused("settlement"), listing_service() as url:
        yield url


@pytest.fixture(scope="module")
async def watcher(bootstrap: str, service: str) -> AsyncIterator[Watcher]:
    dead = (NEGOTIATION_EVENTS_TOPIC.dlq, SETTLEMENT_EVENTS_TOPIC.dlq)
    async with watching(bootstrap, LISTING_EVENTS_TOPIC.name, *dead) as found:
        yield found


@pytest.fixture(scope="module")
async def publisher(bootstrap: str) -> AsyncIterator[Publisher]:
    async with Publisher(bootstrap, "listing-reaction-tests") as pub:
        yield pub


@pytest.fixture(scope="module")
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def http(service: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service, timeout=5) as client:
        yield client


@pytest.fixture
async def listing(publisher: Publisher, watcher: Watcher, market_id: str) -> str:
    """An active listing in this test's market."""
    listing_id = f"{market_id}-L1"
    env = envelope(create_command(listing_id), market_id)
    await publisher.send(LISTING_COMMANDS_TOPIC.name, listing_id, env)
    assert (await watcher.outcome(env)).type == "ListingPublished"
    return listing_id


def deal(listing_id: str, deal_id: str) -> DealAgreed:
    return DealAgreed(
        deal_id=deal_id,
        listing_id=listing_id,
        thread_id=f"{deal_id}-thread",
        buyer_agent_id="buyer-1",
        buyer_principal_id="principal-b",
        seller_agent_id="seller-1",
        seller_principal_id="principal-1",
        price_cents=13_000,
        shipping_method=ShippingMethod.PARCEL_STANDARD,
        shipping_cost_cents=1_299,
        shipping_paid_by=Party.BUYER,
        accepted_offer_id=f"{deal_id}-offer",
        rounds=3,
    )


def released(listing_id: str, deal_id: str) -> FundsReleased:
    return FundsReleased(
        deal_id=deal_id,
        listing_id=listing_id,
        seller_principal_id="principal-1",
        amount_cents=12_350,
        fee_cents=650,
    )


def escrow_failed(listing_id: str, deal_id: str) -> EscrowFailed:
    return EscrowFailed(deal_id=deal_id, listing_id=listing_id, reason="insufficient_funds")


def refunded(listing_id: str, deal_id: str) -> Refunded:
    return Refunded(
        deal_id=deal_id,
        listing_id=listing_id,
        buyer_principal_id="principal-b",
        amount_cents=14_299,
        reason="lost",
    )


async def publish(publisher: Publisher, market_id: str, event: Message) -> Envelope:
    """As the producer does: negotiation keys by listing id, settlement by deal id."""
    if isinstance(event, DealAgreed):
        topic, key, producer = NEGOTIATION, event.listing_id, "negotiation"
    else:
        assert isinstance(event, FundsReleased | EscrowFailed | Refunded)
        topic, key, producer = SETTLEMENT, event.deal_id, "settlement"
    env = wrap(event, market_id=market_id, producer=producer, correlation_id=event.deal_id)
    await publisher.send(topic, key, env)
    return env


async def state(db: asyncpg.Pool, listing_id: str) -> tuple[str, str | None] | None:
    found = await db.fetchrow(
        "SELECT status, deal_id FROM listing.listings WHERE listing_id = $1", listing_id
    )
    return (found["status"], found["deal_id"]) if found else None


async def answer(publisher: Publisher, watcher: Watcher, market_id: str, event: Message) -> Envelope:
    return await watcher.outcome(await publish(publisher, market_id, event))


async def outbox_rows_caused_by(db: asyncpg.Pool, env: Envelope) -> int:
    sql = (
        "SELECT count(*) FROM listing.outbox"
        " WHERE convert_from(payload, 'UTF8')::jsonb ->> 'causation_id' = $1"
    )
    return int(await db.fetchval(sql, str(env.event_id)))


async def handled_without_effect(db: asyncpg.Pool, env: Envelope) -> None:
    async def in_inbox() -> bool | None:
        return (
            True
            if await db.fetchval("SELECT 1 FROM listing.inbox WHERE event_id = $1", env.event_id)
            else None
        )

    await eventually(in_inbox, 30, f"{env.type} {env.event_id} in the listing inbox")
    caused = await outbox_rows_caused_by(db, env)
    assert caused == 0


async def conflicts(http: httpx.AsyncClient, event: str) -> float:
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith(f'haggle_listing_conflicts_total{{event="{event}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# The happy paths ---------------------------------------------------------------------------------


async def test_a_deal_reserves_and_released_funds_sell(
    publisher: Publisher,
    watcher: Watcher,
    db: asyncpg.Pool,
    http: httpx.AsyncClient,
    market_id: str,
    listing: str,
) -> None:
    reserved = await answer(publisher, watcher, market_id, deal(listing, "D-1"))
    assert reserved.type == "ListingReserved" and reserved.payload["deal_id"] == "D-1"
    assert reserved.market_id == market_id and reserved.correlation_id == "D-1"
    assert await state(db, listing) == ("reserved", "D-1")
    assert (await http.get("/listings", params={"market": market_id})).json()["count"] == 0
    hits = (await http.get("/listings", params={"market": market_id, "status": "reserved"})).json()[
        "listings"
    ]
    assert [(h["listing_id"], h["deal_id"]) for h in hits] == [(listing, "D-1")]

    sold = await answer(publisher, watcher, market_id, released(listing, "D-1"))
    assert sold.type == "ListingSold" and sold.payload == {
        "type": "ListingSold",
        "listing_id": listing,
        "deal_id": "D-1",
    }
    assert await state(db, listing) == ("sold", "D-1")


async def test_failed_escrow_relists_and_a_new_deal_can_reserve(
    publisher: Publisher, watcher: Watcher, db: asyncpg.Pool, market_id: str, listing: str
) -> None:
    assert (await answer(publisher, watcher, market_id, deal(listing, "D-1"))).type == "ListingReserved"
    relisted = await answer(publisher, watcher, market_id, escrow_failed(listing, "D-1"))
    assert relisted.type == "ListingRelisted"
    assert (relisted.payload["deal_id"], relisted.payload["reason"]) == ("D-1", "insufficient_funds")
    assert await state(db, listing) == ("active", None)
    again = await answer(publisher, watcher, market_id, deal(listing, "D-2"))
    assert again.type == "ListingReserved" and again.payload["deal_id"] == "D-2"
    assert await state(db, listing) == ("reserved", "D-2")


async def test_an_outcome_that_overtakes_its_deal_is_applied_when_the_deal_arrives(
    publisher: Publisher, db: asyncpg.Pool, market_id: str, listing: str
) -> None:
    """settlement.events and negotiation.events are read apart: a failed escrow may come first."""
    early = await publish(publisher, market_id, escrow_failed(listing, "D-9"))
    await handled_without_effect(db, early)
    await publish(publisher, market_id, deal(listing, "D-9"))

    async def relisted() -> bool | None:
        return (
            True
            if await state(db, listing) == ("active", None) and await _reserved_once(db, listing)
            else None
        )

    await eventually(relisted, 30, "the listing relisted after its late deal")


async def _reserved_once(db: asyncpg.Pool, listing_id: str) -> bool:
    sql = (
        "SELECT count(*) FROM listing.outbox WHERE convert_from(payload, 'UTF8')::jsonb ->> 'type' = $1"
        " AND convert_from(payload, 'UTF8')::jsonb -> 'payload' ->> 'listing_id' = $2"
    )
    return (
        await db.fetchval(sql, "ListingReserved", listing_id) == 1
        and await db.fetchval(sql, "ListingRelisted", listing_id) == 1
    )


async def test_a_refund_closes_the_listing(
    publisher: Publisher, watcher: Watcher, db: asyncpg.Pool, market_id: str, listing: str
) -> None:
    assert (await answer(publisher, watcher, market_id, deal(listing, "D-1"))).type == "ListingReserved"
    closed = await answer(publisher, watcher, market_id, refunded(listing, "D-1"))
    assert closed.type == "ListingWithdrawn" and closed.payload["reason"] == "refunded: lost"
    assert await state(db, listing) == ("withdrawn", "D-1")


async def test_a_deal_delivered_twice_reserves_once(
    publisher: Publisher, watcher: Watcher, db: asyncpg.Pool, market_id: str, listing: str
) -> None:
    env = await publish(publisher, market_id, deal(listing, "D-1"))
    await publisher.send(NEGOTIATION, listing, env)
    await watcher.outcome(env)
    sold = await answer(publisher, watcher, market_id, released(listing, "D-1"))
    assert sold.type == "ListingSold"
    caused = await outbox_rows_caused_by(db, env)
    assert caused == 1
    assert len(watcher.of(listing, "ListingReserved")) == 1


# Facts that do not fit: handled, counted, ignored ------------------------------------------------

IGNORED: list[tuple[str, str | None, Any]] = [
    ("funds released for another deal", "D-1", lambda lid: released(lid, "D-other")),
    ("escrow failed for another deal", "D-1", lambda lid: escrow_failed(lid, "D-other")),
    ("refund for another deal", "D-1", lambda lid: refunded(lid, "D-other")),
    ("second deal on a reserved listing", "D-1", lambda lid: deal(lid, "D-2")),
    ("funds released while not reserved", None, lambda lid: released(lid, "D-1")),
    ("escrow failed while not reserved", None, lambda lid: escrow_failed(lid, "D-1")),
    ("refund while not reserved", None, lambda lid: refunded(lid, "D-1")),
]


@pytest.mark.parametrize(
    "reserve_with, make", [(r, m) for _, r, m in IGNORED], ids=[n for n, _, _ in IGNORED]
)
async def test_a_fact_that_does_not_fit_is_ignored(
    publisher: Publisher,
    watcher: Watcher,
    db: asyncpg.Pool,
    http: httpx.AsyncClient,
    market_id: str,
    listing: str,
    reserve_with: str | None,
    make: Any,
) -> None:
    if reserve_with:
        assert (
            await answer(publisher, watcher, market_id, deal(listing, reserve_with))
        ).type == "ListingReserved"
    before = await state(db, listing)
    event = make(listing)
    counted_before = await conflicts(http, event.type)
    env = await publish(publisher, market_id, event)
    await handled_without_effect(db, env)
    assert await state(db, listing) == before
    assert await conflicts(http, event.type) >= counted_before + 1  # other services may add theirs
    assert watcher.caused_by(env) == []


@pytest.mark.parametrize("make", [deal, released], ids=["deal", "funds released"])
async def test_facts_about_an_unknown_listing_are_ignored(
    publisher: Publisher, db: asyncpg.Pool, market_id: str, make: Any
) -> None:
    ghost = f"{market_id}-ghost"
    env = await publish(publisher, market_id, make(ghost, "D-1"))
    await handled_without_effect(db, env)
    assert await state(db, ghost) is None


async def test_a_sold_listing_stays_sold(
    publisher: Publisher, watcher: Watcher, db: asyncpg.Pool, market_id: str, listing: str
) -> None:
    await answer(publisher, watcher, market_id, deal(listing, "D-1"))
    await answer(publisher, watcher, market_id, released(listing, "D-1"))
    for late in (escrow_failed(listing, "D-1"), refunded(listing, "D-1"), deal(listing, "D-2")):
        await handled_without_effect(db, await publish(publisher, market_id, late))
    assert await state(db, listing) == ("sold", "D-1")


@pytest.mark.parametrize("topic", [NEGOTIATION, SETTLEMENT])
async def test_malformed_events_are_dead_lettered_and_consumption_continues(
    publisher: Publisher, watcher: Watcher, market_id: str, listing: str, topic: str
) -> None:
    deal_id = f"{market_id}-D1"
    key = listing if topic == NEGOTIATION else deal_id  # the valid event after the junk shares its partition
    await publisher.send_raw(topic, key, b"\x00garbage")
    reserved = await answer(publisher, watcher, market_id, deal(listing, deal_id))
    assert reserved.type == "ListingReserved"
    if topic == SETTLEMENT:
        assert (await answer(publisher, watcher, market_id, released(listing, deal_id))).type == "ListingSold"
    letter = await watcher.dead_letter(key)
    assert (letter["topic"], letter["reason"]) == (topic, "malformed")


# Many at once ------------------------------------------------------------------------------------


async def test_deals_and_their_outcomes_racing_over_many_listings_meet_no_deadlock(
    publisher: Publisher, watcher: Watcher, db: asyncpg.Pool, http: httpx.AsyncClient, market_id: str
) -> None:
    """Deals arrive keyed by listing, their settlement outcomes keyed by deal, both at once and in
    opposite orders: every listing ends sold, and no transaction ever waited on another in a
    cycle (a deadlock shows as an infrastructure retry)."""
    count = 300
    listings = [f"{market_id}-M{i:03d}" for i in range(count)]
    creates = [envelope(create_command(listing_id), market_id) for listing_id in listings]
    await publisher.send_many(
        LISTING_COMMANDS_TOPIC.name, [(lid, e) for lid, e in zip(listings, creates, strict=True)]
    )
    await watcher.wait(lambda e: e.type == "ListingPublished" and e.market_id == market_id, count=count)
    retries_before = await infrastructure_retries(http)

    deals = [
        wrap(deal(lid, f"D-{count - i:03d}"), market_id=market_id, producer="negotiation")
        for i, lid in enumerate(listings)
    ]
    outcomes = [
        wrap(released(lid, f"D-{count - i:03d}"), market_id=market_id, producer="settlement")
        for i, lid in reversed(list(enumerate(listings)))
    ]
    await asyncio.gather(
        publisher.send_many(NEGOTIATION, [(str(e.payload["listing_id"]), e) for e in deals]),
        publisher.send_many(SETTLEMENT, [(str(e.payload["deal_id"]), e) for e in outcomes]),
    )
    await watcher.wait(
        lambda e: e.type == "ListingSold" and e.market_id == market_id, count=count, timeout=120
    )

    assert await infrastructure_retries(http) == retries_before


async def infrastructure_retries(http: httpx.AsyncClient) -> float:
    total = 0.0
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith("haggle_handler_retries_total{") and 'kind="infrastructure"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
