"""TopicConsumer.handle_batch against real PostgreSQL and Kafka: one transaction per batch,
duplicates skipped, and a failing record rolled back and handled alone."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY

from haggle.contracts import Envelope, decode, encode, wrap
from haggle.contracts.agents import AgentRetired
from haggle.contracts.topics import NEGOTIATION_COMMANDS
from haggle.runtime import metrics
from haggle.runtime.consumer import TopicConsumer
from haggle.runtime.kafka import make_producer
from haggle.runtime.outbox import UnitOfWork, unit_of_work
from services.agents.ratelimit import RateLimiter, RefundedOnRollback
from tests.integration.scratch import scratch_schema

pytestmark = pytest.mark.timeout(120)

TOPIC = NEGOTIATION_COMMANDS.name  # a real topic, so its DLQ exists on the broker
SERVICE = "batch-test"


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema(database_url, "batch") as pool:
        await pool.execute("CREATE TABLE effects (agent_id text NOT NULL, event_id uuid NOT NULL)")
        yield pool


@pytest.fixture(scope="module")
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(bootstrap, "batch-test")
    await producer.start()
    yield producer
    await producer.stop()


class Handler:
    """Writes one row and emits one event per message; fails for chosen agent ids."""

    def __init__(self, poison: set[str] | None = None, outages: int = 0) -> None:
        self.poison = poison or set()
        self.outages = outages
        self.calls: list[str] = []

    async def __call__(self, uow: UnitOfWork, env: Envelope, event: AgentRetired) -> None:
        self.calls.append(event.agent_id)
        await uow.conn.execute(
            "INSERT INTO effects (agent_id, event_id) VALUES ($1, $2)", event.agent_id, env.event_id
        )
        if self.outages:
            self.outages -= 1
            raise OSError("connection reset (simulated outage after a write)")
        if event.agent_id in self.poison:
            raise ValueError(f"cannot handle {event.agent_id}")
        uow.emit("out.topic", event.agent_id, wrap(event, market_id="m", producer=SERVICE))


def record(env: Envelope, offset: int, timestamp: int = 0) -> ConsumerRecord:
    value = encode(env)
    key = env.market_id.encode()
    return ConsumerRecord(TOPIC, 0, offset, timestamp, 0, key, value, None, len(key), len(value), [])


def batch(tag: str, names: list[str]) -> list[ConsumerRecord]:
    envs = [wrap(AgentRetired(agent_id=f"{tag}-{n}"), market_id="m", producer="t") for n in names]
    return [record(env, i) for i, env in enumerate(envs)]


def consumer(pool: asyncpg.Pool, producer: AIOKafkaProducer, handler: Handler) -> TopicConsumer:
    return TopicConsumer(SERVICE, TOPIC, pool, producer, {AgentRetired: handler}, max_attempts=2)


async def effects(pool: asyncpg.Pool, tag: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT agent_id FROM effects WHERE agent_id LIKE $1 ORDER BY agent_id", f"{tag}-%"
    )
    return [r["agent_id"] for r in rows]


async def outbox(pool: asyncpg.Pool, tag: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox WHERE key LIKE $1", f"{tag}-%"))


def counter(metric: object, *labels: str) -> float:
    return float(metric.labels(*labels)._value.get())  # type: ignore[attr-defined]


async def test_a_batch_is_handled_once_in_order_and_skips_duplicates(
    pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    tag = uuid.uuid4().hex[:8]
    records = batch(tag, ["a", "b", "c", "d"])
    handled_before = records[1]
    again = record(decode(records[2].value), 9)  # the same event id twice in one batch
    handler = Handler()
    await consumer(pool, producer, handler).handle(handled_before)
    duplicates = counter(metrics.DUPLICATES, SERVICE, TOPIC)

    await consumer(pool, producer, handler).handle_batch([*records, again])

    assert await effects(pool, tag) == [f"{tag}-a", f"{tag}-b", f"{tag}-c", f"{tag}-d"]
    assert handler.calls == [f"{tag}-b", f"{tag}-a", f"{tag}-c", f"{tag}-d"]
    assert await outbox(pool, tag) == 4
    assert counter(metrics.DUPLICATES, SERVICE, TOPIC) - duplicates == 2


def age(stat: str) -> float:
    labels = {"service": SERVICE, "topic": TOPIC, "stage": "started"}
    return REGISTRY.get_sample_value(f"haggle_record_age_seconds_{stat}", labels) or 0.0


async def test_each_record_is_timed_from_its_timestamp_to_its_handler(
    pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    tag = uuid.uuid4().hex[:8]
    [old, undated] = batch(tag, ["old", "undated"])
    three_s_ago = int(time.time() * 1000) - 3_000
    old = record(decode(old.value), 0, timestamp=three_s_ago)
    count, total = age("count"), age("sum")

    await consumer(pool, producer, Handler()).handle_batch([old, undated])

    assert await effects(pool, tag) == [f"{tag}-old", f"{tag}-undated"]
    assert age("count") - count == 1  # a record without a timestamp has no age
    assert 3.0 <= age("sum") - total < 60.0


async def test_one_failing_record_is_rolled_back_and_dead_lettered_alone(
    pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    tag = uuid.uuid4().hex[:8]
    handler = Handler(poison={f"{tag}-bad"})
    fallbacks = counter(metrics.BATCH_FALLBACKS, SERVICE, TOPIC)
    dead = counter(metrics.DLQ, SERVICE, TOPIC, "handler_failed")

    await consumer(pool, producer, handler).handle_batch(batch(tag, ["a", "bad", "c"]))

    # The batch ran a, bad (failed: rolled back), then each alone: a, bad, bad (2 attempts), c.
    assert handler.calls == [f"{tag}-{n}" for n in ("a", "bad", "a", "bad", "bad", "c")]
    assert await effects(pool, tag) == [f"{tag}-a", f"{tag}-c"]
    assert await outbox(pool, tag) == 2
    assert counter(metrics.BATCH_FALLBACKS, SERVICE, TOPIC) - fallbacks == 1
    assert counter(metrics.DLQ, SERVICE, TOPIC, "handler_failed") - dead == 1


async def test_an_outage_mid_batch_rolls_back_and_retries_the_whole_batch(
    pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    tag = uuid.uuid4().hex[:8]
    handler = Handler(outages=1)  # the first record's write, then the outage
    fallbacks = counter(metrics.BATCH_FALLBACKS, SERVICE, TOPIC)

    await consumer(pool, producer, handler).handle_batch(batch(tag, ["a", "b", "c"]))

    assert handler.calls == [f"{tag}-{n}" for n in ("a", "a", "b", "c")]
    assert await effects(pool, tag) == [f"{tag}-a", f"{tag}-b", f"{tag}-c"]
    assert await outbox(pool, tag) == 3
    assert counter(metrics.BATCH_FALLBACKS, SERVICE, TOPIC) == fallbacks


async def test_in_process_effects_are_undone_when_the_transaction_rolls_back(pool: asyncpg.Pool) -> None:
    """An agent's rate-limit token taken inside a batch that rolls back is given back: the batch
    redone record by record must not pay twice (and walk away as rate limited)."""
    limiter = RateLimiter(per_second=0.001, burst=1)
    with pytest.raises(ValueError):
        async with unit_of_work(pool) as uow:
            assert RefundedOnRollback(limiter, uow.on_rollback).allow("agent-1")
            raise ValueError("a neighbour's record failed")
    async with unit_of_work(pool) as uow:
        assert RefundedOnRollback(limiter, uow.on_rollback).allow("agent-1"), "the token was not refunded"
    assert not limiter.allow("agent-1"), "committed: the token stays spent"
