"""The kernel's retries (tenacity) against real PostgreSQL and Kafka: how long each waits, what it
retries, what it counts, and when it gives up. Waits are recorded instead of slept."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, cast

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import ProducerFenced

from haggle import infra
from haggle.contracts import Envelope, wrap
from haggle.contracts.agents import AgentRetired
from haggle.contracts.topics import NEGOTIATION_COMMANDS
from haggle.runtime import lag, metrics
from haggle.runtime.consumer import TopicConsumer
from haggle.runtime.kafka import make_producer
from haggle.runtime.outbox import OutboxRelay, UnitOfWork
from tests.integration import test_consumer_batches as batches
from tests.integration.scratch import scratch_schema
from tests.integration.test_consumer_batches import Handler, batch, counter, effects

pytestmark = pytest.mark.timeout(120)

TOPIC = NEGOTIATION_COMMANDS.name  # a real topic, so its DLQ exists on the broker
SERVICE = "retry-test"
OUT = "retrytest.events"
pool, producer = batches.pool, batches.producer  # the batch tests' fixtures: a scratch schema, a producer


class Waits(list[float]):
    """tenacity's sleep: notes each wait and yields once, without sleeping."""

    def __init__(self, also: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.also = also

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if self.also is not None:
            self.also()
        await asyncio.sleep(0)


@pytest.fixture(scope="module")
async def out_topic(bootstrap: str) -> str:
    await infra.ensure_topics_async(bootstrap, {OUT: 1})
    return OUT


class Renewals:
    """The relay's `renew`: a new started producer each call, after `failures` refused calls."""

    def __init__(self, bootstrap: str, failures: int = 0) -> None:
        self.bootstrap, self.failures = bootstrap, failures
        self.tries = 0
        self.made: list[AIOKafkaProducer] = []

    async def __call__(self) -> AIOKafkaProducer:
        self.tries += 1
        if self.tries <= self.failures:
            raise ConnectionError("broker not back yet")
        fresh = make_producer(self.bootstrap, "retry-relay-new")
        await fresh.start()
        self.made.append(fresh)
        return fresh  # the relay stops it


def consumer(
    pool: asyncpg.Pool, producer: AIOKafkaProducer, handler: Handler, waits: Waits, attempts: int = 3
) -> TopicConsumer:
    return TopicConsumer(
        SERVICE, TOPIC, pool, producer, {AgentRetired: handler}, max_attempts=attempts, sleep=waits
    )


async def test_an_outage_is_retried_until_it_ends_with_a_growing_capped_wait(
    pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    tag = uuid.uuid4().hex[:8]
    handler = Handler(outages=8)
    outages = counter(metrics.RETRIES, SERVICE, TOPIC, "infrastructure")
    handled: list[bool] = []
    waits = Waits()
    reader = consumer(pool, producer, handler, waits)
    waits.also = lambda: handled.append(reader.health["infra_ok"])

    await reader.handle(batch(tag, ["a"])[0])

    assert waits == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert handled == [False] * 8, "not ready while the infrastructure is out"
    assert reader.health["infra_ok"], "ready again once it is back"
    assert counter(metrics.RETRIES, SERVICE, TOPIC, "infrastructure") - outages == 8
    assert await effects(pool, tag) == [f"{tag}-a"]  # eight writes rolled back, the ninth kept


async def test_a_failing_handler_is_tried_max_attempts_times_then_dead_lettered(
    pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    tag = uuid.uuid4().hex[:8]
    handler = Handler(poison={f"{tag}-bad"})
    failures = counter(metrics.RETRIES, SERVICE, TOPIC, "handler")
    dead = counter(metrics.DLQ, SERVICE, TOPIC, "handler_failed")
    waits = Waits()

    await consumer(pool, producer, handler, waits, attempts=4).handle(batch(tag, ["bad"])[0])

    assert handler.calls == [f"{tag}-bad"] * 4
    assert waits == [0.1, 0.2, 0.4]
    assert counter(metrics.RETRIES, SERVICE, TOPIC, "handler") - failures == 4
    assert counter(metrics.DLQ, SERVICE, TOPIC, "handler_failed") - dead == 1
    assert await effects(pool, tag) == []


async def test_a_handler_error_is_not_an_outage(pool: asyncpg.Pool, producer: AIOKafkaProducer) -> None:
    tag = uuid.uuid4().hex[:8]
    outages = counter(metrics.RETRIES, SERVICE, TOPIC, "infrastructure")
    reader = consumer(pool, producer, Handler(poison={f"{tag}-bad"}), Waits(), attempts=2)
    await reader.handle(batch(tag, ["bad"])[0])
    assert counter(metrics.RETRIES, SERVICE, TOPIC, "infrastructure") == outages
    assert reader.health["infra_ok"]


class FailsFirst:
    """A producer whose first sends fail with `error` (what aiokafka raises once the broker has
    fenced it), then sends through the real one."""

    def __init__(self, real: AIOKafkaProducer, failures: int = 1) -> None:
        self.real, self.failures = real, failures

    async def send(self, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        if self.failures:
            self.failures -= 1
            raise ProducerFenced()
        return await self.real.send(*args, **kwargs)


async def _pending(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))


async def _relay_until_sent(relay: OutboxRelay, pool: asyncpg.Pool, rows: int) -> None:
    async with pool.acquire() as conn, conn.transaction():
        uow = UnitOfWork(conn)
        for i in range(rows):
            env: Envelope = wrap(AgentRetired(agent_id=f"r{i}"), market_id="m", producer=SERVICE)
            uow.emit(OUT, f"r{i}", env)
        await uow.flush()
    task = asyncio.create_task(relay.run())
    try:
        deadline = time.monotonic() + 30
        while await _pending(pool) and time.monotonic() < deadline:
            assert not task.done(), task
            await asyncio.sleep(0.05)
        assert await _pending(pool) == 0
        assert relay.healthy
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task  # cancelling stops the relay; it is never retried


async def test_a_fenced_producer_is_replaced_at_once(
    database_url: str, bootstrap: str, out_topic: str, producer: AIOKafkaProducer
) -> None:
    renew = Renewals(bootstrap)
    async with scratch_schema(database_url, "relay") as pool:
        fenced = cast(AIOKafkaProducer, FailsFirst(producer, failures=10**6))  # never sends again
        relay = OutboxRelay(pool, fenced, "relay", SERVICE, renew=renew)
        relay.sleep = waits = Waits()
        await _relay_until_sent(relay, pool, 5)
    assert waits == [0.0]
    assert len(renew.made) == 1 and relay.producer is renew.made[0]


async def test_without_a_way_to_renew_the_relay_starts_again_a_second_later(
    database_url: str, out_topic: str, producer: AIOKafkaProducer, caplog: pytest.LogCaptureFixture
) -> None:
    async with scratch_schema(database_url, "relay") as pool:
        relay = OutboxRelay(pool, cast(AIOKafkaProducer, FailsFirst(producer)), "relay", SERVICE)
        relay.sleep = waits = Waits()
        with caplog.at_level(logging.ERROR, "haggle.runtime.outbox"):
            await _relay_until_sent(relay, pool, 3)
    assert waits == [1.0]
    assert [r.message for r in caplog.records] == ["producer unusable; relaying with a new one"]


async def test_a_renewal_that_fails_is_tried_again_after_a_second(
    database_url: str, bootstrap: str, out_topic: str, producer: AIOKafkaProducer
) -> None:
    renew = Renewals(bootstrap, failures=1)
    async with scratch_schema(database_url, "relay") as pool:
        relay = OutboxRelay(pool, cast(AIOKafkaProducer, FailsFirst(producer)), "relay", SERVICE, renew=renew)
        relay.sleep = waits = Waits()
        await _relay_until_sent(relay, pool, 2)
    assert waits == [0.0, 1.0]
    assert renew.tries == 2 and relay.producer is renew.made[0]


async def test_lag_measurement_starts_again_after_each_failure_until_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waits = Waits()
    with caplog.at_level(logging.WARNING, "haggle.runtime.lag"):
        task = asyncio.create_task(lag.monitor("127.0.0.1:1", SERVICE, {TOPIC: "g"}, 0.5, sleep=waits))
        deadline = time.monotonic() + 60
        while len(waits) < 3 and time.monotonic() < deadline:
            assert not task.done(), task
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(waits) >= 3 and set(waits) == {0.5}
    assert sum(r.message == "consumer lag not measured" for r in caplog.records) >= 3
