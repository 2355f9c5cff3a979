"""The web's read model of a thread (services/web/readmodel.py), on real PostgreSQL: each offer,
message and ending is a thread item, and a feed line that only the thread's two parties are sent
(the live page pushes a feed line to its audience alone)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from haggle.contracts import Message, wrap
from haggle.contracts.goods import ShippingMethod
from haggle.contracts.negotiation import (
    EndReason,
    MessagePosted,
    NegotiationEnded,
    OfferMade,
    Party,
    ThreadOpened,
)
from haggle.runtime.db import create_pool, migrate
from haggle.runtime.outbox import unit_of_work
from services.web import readmodel
from services.web.app import MIGRATIONS

pytestmark = pytest.mark.timeout(60)

AGENTS = {Party.BUYER: "buyer-7", Party.SELLER: "seller-3"}


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    schema = f"webrm{uuid.uuid4().hex[:8]}"
    pool = await create_pool(database_url, schema, size=2)
    try:
        await migrate(pool, schema, MIGRATIONS)
        yield pool
    finally:
        await pool.execute(f"DROP SCHEMA {schema} CASCADE")
        await pool.close()


async def apply(pool: asyncpg.Pool, event: Message) -> None:
    """What the web's subscriber does with one event: its handler, in a unit of work."""
    env = wrap(event, market_id="m1", producer="negotiation")
    handler = readmodel.NEGOTIATION_HANDLERS[type(event)]
    async with unit_of_work(pool) as uow:
        await handler(uow, env, event)


def offer(thread_id: str, by: Party, price: int, round_: int) -> OfferMade:
    return OfferMade(
        thread_id=thread_id,
        listing_id="l1",
        offer_id=f"{thread_id}-o{round_}",
        by=by,
        agent_id=AGENTS[by],
        price_cents=price,
        shipping_method=ShippingMethod.PARCEL_STANDARD,
        shipping_cost_cents=900,
        shipping_paid_by=Party.BUYER,
        round=round_,
        message=f"{price} from {by.value}",
    )


async def test_each_offer_message_and_ending_is_an_item_with_a_feed_line_for_both_parties(
    pool: asyncpg.Pool,
) -> None:
    thread_id = f"t-{uuid.uuid4().hex[:8]}"
    await apply(
        pool,
        ThreadOpened(
            thread_id=thread_id,
            listing_id="l1",
            buyer_agent_id=AGENTS[Party.BUYER],
            seller_agent_id=AGENTS[Party.SELLER],
            deadline=datetime(2026, 12, 9, tzinfo=UTC),
            max_rounds=5,
        ),
    )
    await apply(pool, offer(thread_id, Party.BUYER, 8_000, 1))
    await apply(
        pool,
        MessagePosted(
            thread_id=thread_id, listing_id="l1", by=Party.SELLER, agent_id=AGENTS[Party.SELLER], text="firm"
        ),
    )
    await apply(pool, offer(thread_id, Party.SELLER, 9_500, 2))
    await apply(
        pool,
        NegotiationEnded(
            thread_id=thread_id,
            listing_id="l1",
            buyer_agent_id=AGENTS[Party.BUYER],
            seller_agent_id=AGENTS[Party.SELLER],
            reason=EndReason.REJECTED,
            by=Party.BUYER,
            rounds=2,
        ),
    )

    items = await pool.fetch(
        "SELECT kind, by_party, round, price_cents, text FROM thread_items WHERE thread_id = $1 ORDER BY id",
        thread_id,
    )
    assert [tuple(item) for item in items] == [
        ("offer", "buyer", 1, 8_000, "8000 from buyer"),
        ("message", "seller", None, None, "firm"),
        ("offer", "seller", 2, 9_500, "9500 from seller"),
        ("ended", "buyer", None, None, "rejected"),
    ]
    lines = await pool.fetch(
        "SELECT market_id, kind, audience FROM feed WHERE ref_id = $1 ORDER BY id", thread_id
    )
    assert [tuple(line) for line in lines] == [("m1", "thread", ["buyer-7", "seller-3"])] * 5
    thread = await pool.fetchrow(
        "SELECT status, rounds, last_price_cents FROM threads WHERE thread_id = $1", thread_id
    )
    assert tuple(thread) == ("ended", 2, 9_500)


async def test_an_item_of_a_thread_not_known_here_is_sent_to_no_one(pool: asyncpg.Pool) -> None:
    thread_id = f"t-{uuid.uuid4().hex[:8]}"

    await apply(
        pool,
        MessagePosted(
            thread_id=thread_id, listing_id="l1", by=Party.SELLER, agent_id="seller-3", text="hello?"
        ),
    )

    assert await pool.fetchval("SELECT count(*) FROM thread_items WHERE thread_id = $1", thread_id) == 1
    lines = await pool.fetch("SELECT kind, audience FROM feed WHERE ref_id = $1", thread_id)
    assert [tuple(line) for line in lines] == [("thread", [])]
