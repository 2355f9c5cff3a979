"""The agents' batches take a market's lock before any row lock, against real PostgreSQL.

A listing's transaction (`on_listing_published`) takes the market lock (shared with the other
listings, `listing_lock`), then locks buyers' negotiation rows. An `agent.inbox` batch used to
lock a principal's rows first (a deal closed, say) and reach an admission, which takes the same
market lock alone, later: each waited for the other and PostgreSQL aborted one as a deadlock,
dozens of times in a 500 × 3,000 market. Here the batch's handlers stand in for those two (a row
lock, then the real `market_lock`), with the service's real prefetch (`market_locks_first`) in
front of them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from haggle.contracts import Envelope, encode, wrap
from haggle.contracts.agents import AgentRetired
from haggle.contracts.negotiation import AgentAdmitted
from haggle.contracts.topics import AGENT_INBOX, MANDATE_COMMANDS
from haggle.runtime import metrics
from haggle.runtime.consumer import TopicConsumer
from haggle.runtime.kafka import make_producer
from haggle.runtime.outbox import UnitOfWork
from services.agents import app
from services.agents.handlers import lifecycle
from tests.integration.scratch import scratch_schema

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema(database_url, "lockorder") as pool:
        await pool.execute("CREATE TABLE principal_rows (principal_id text PRIMARY KEY)")
        yield pool


@pytest.fixture
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(bootstrap, "lock-order-test")
    await producer.start()
    yield producer
    await producer.stop()


def record(env: Envelope, key: str, offset: int) -> ConsumerRecord:
    value = encode(env)
    return ConsumerRecord(
        AGENT_INBOX.name, 0, offset, 0, 0, key.encode(), value, None, len(key), len(value), []
    )


async def test_a_batch_that_admits_an_agent_never_waits_for_the_market_holding_rows(
    pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    market_id = f"m-{uuid.uuid4().hex[:8]}"
    await pool.execute("INSERT INTO principal_rows VALUES ('p1')")

    async def closes_a_deal(uow: UnitOfWork, env: Envelope, event: AgentRetired) -> None:
        await uow.conn.execute("SELECT 1 FROM principal_rows WHERE principal_id = 'p1' FOR UPDATE")

    async def admits(uow: UnitOfWork, env: Envelope, event: AgentAdmitted) -> None:
        await lifecycle.market_lock(uow, env.market_id)

    consumer = TopicConsumer(
        "agents",
        AGENT_INBOX.name,
        pool,
        producer,
        {AgentRetired: closes_a_deal, AgentAdmitted: admits},
        prefetch=lifecycle.market_locks_first,
    )
    batch = [  # in key order: the row lock's message first, as the consumer sorts them
        record(wrap(AgentRetired(agent_id="p1.agent"), market_id=market_id, producer="t"), "a", 0),
        record(
            wrap(AgentAdmitted(agent_id="p2.agent", principal_id="p2"), market_id=market_id, producer="t"),
            "b",
            1,
        ),
    ]

    def retries() -> float:
        return float(metrics.RETRIES.labels("agents", AGENT_INBOX.name, "infrastructure")._value.get())  # type: ignore[attr-defined]

    before = retries()
    listing = await pool.acquire()
    try:
        listing_tx = listing.transaction()
        await listing_tx.start()
        await lifecycle.listing_lock(_Uow(listing), market_id)  # a listing being saved holds it
        handling = asyncio.create_task(consumer.handle_batch(batch))
        await _until_waiting_for(pool, market_id)
        # The listing now locks the buyer's rows; the batch must not be holding them.
        await listing.execute("SET LOCAL lock_timeout = '20s'")
        await listing.execute("SELECT 1 FROM principal_rows WHERE principal_id = 'p1' FOR UPDATE")
        await listing_tx.commit()
    finally:
        await pool.release(listing)
    await asyncio.wait_for(handling, 30)
    assert retries() == before, "the batch hit a deadlock and was retried"


async def test_listings_are_read_side_by_side_and_an_admission_waits_for_them(pool: asyncpg.Pool) -> None:
    market_id = f"m-{uuid.uuid4().hex[:8]}"
    first, second, admission = [await pool.acquire() for _ in range(3)]
    try:
        for conn in (first, second, admission):
            await conn.execute("BEGIN")
            await conn.execute("SET LOCAL lock_timeout = '2s'")
        await lifecycle.listing_lock(_Uow(first), market_id)
        await lifecycle.listing_lock(_Uow(second), market_id)  # not waiting for the first
        admitting = asyncio.create_task(lifecycle.market_lock(_Uow(admission), market_id))
        await _until_waiting_for(pool, market_id)
        await first.execute("COMMIT")
        await asyncio.sleep(0.2)
        assert not admitting.done(), "the admission went ahead of a listing still being read"
        await second.execute("COMMIT")
        await asyncio.wait_for(admitting, 5)
        await first.execute("BEGIN")
        await first.execute("SET LOCAL lock_timeout = '1s'")
        with pytest.raises(asyncpg.LockNotAvailableError):  # and a listing waits for the admission
            await lifecycle.listing_lock(_Uow(first), market_id)
    finally:
        for conn in (first, second, admission):
            if conn.is_in_transaction():
                await conn.execute("ROLLBACK")
            await pool.release(conn)


class _Uow:
    """Just enough of a unit of work for `market_lock`: its connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn


async def _until_waiting_for(pool: asyncpg.Pool, market_id: str) -> None:
    """Until some transaction waits for this market's lock (`pg_locks` keeps its low 32 bits)."""
    for _ in range(300):
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND objid::bigint = (hashtext($1)::bigint & 4294967295)",
            f"agents-market:{market_id}",
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the batch never waited for the market lock")


def test_every_batched_subscription_of_the_service_takes_market_locks_first() -> None:
    batched = [s for s in app.subscriptions() if s.batched]
    assert {s.topic for s in batched} >= {AGENT_INBOX.name, MANDATE_COMMANDS.name}
    assert all(s.prefetch is lifecycle.market_locks_first for s in batched)
