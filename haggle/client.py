"""A small client for people, tools and tests: publish commands, follow topics, wait for events."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from haggle.contracts import Envelope, MalformedMessage, decode, encode
from haggle.runtime.kafka import make_producer


class Publisher:
    def __init__(self, bootstrap: str, client_id: str = "haggle-client") -> None:
        self.producer: AIOKafkaProducer = make_producer(bootstrap, client_id)

    async def __aenter__(self) -> Publisher:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def send(self, topic: str, key: str, envelope: Envelope) -> None:
        await self.producer.send_and_wait(topic, encode(envelope), key=key.encode())

    async def send_many(self, topic: str, items: Sequence[tuple[str, Envelope]]) -> None:
        futures = [await self.producer.send(topic, encode(env), key=key.encode()) for key, env in items]
        await asyncio.gather(*futures)

    async def send_raw(self, topic: str, key: str, value: bytes) -> None:
        await self.producer.send_and_wait(topic, value, key=key.encode())


@asynccontextmanager
async def tail(bootstrap: str, *topics: str, from_start: bool = False) -> AsyncIterator[AIOKafkaConsumer]:
    """A group-less consumer positioned at the end (or start) of `topics`."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_start else "latest",
        client_id=f"haggle-tail-{uuid.uuid4().hex[:6]}",
    )
    await consumer.start()
    try:
        if not from_start:
            await _pin_to_end(consumer)
        yield consumer
    finally:
        await consumer.stop()


async def _pin_to_end(consumer: AIOKafkaConsumer) -> None:
    for _ in range(100):
        if consumer.assignment():
            break
        await asyncio.sleep(0.05)
    await consumer.seek_to_end()
    for tp in consumer.assignment():
        await consumer.position(tp)


async def collect(
    consumer: AIOKafkaConsumer, until: int, timeout: float, types: set[str] | None = None
) -> list[Envelope]:
    """Read envelopes until `until` of them (filtered by type) arrived or the timeout."""
    found: list[Envelope] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(found) < until and loop.time() < deadline:
        batches = await consumer.getmany(timeout_ms=200, max_records=500)
        for records in batches.values():
            found.extend(_envelopes(records, types))
    return found


def _envelopes(records: list[ConsumerRecord], types: set[str] | None) -> list[Envelope]:
    result = []
    for record in records:
        try:
            env = decode(record.value)
        except Exception:
            continue
        if types is None or env.type in types:
            result.append(env)
    return result


async def read_all(
    bootstrap: str, *topics: str, market_id: str | None = None, timeout: float = 120
) -> list[tuple[str, Envelope]]:
    """Every envelope on `topics` (of one market), from the start to the end as it was when asked."""
    found: list[tuple[str, Envelope]] = []
    async with tail(bootstrap, *topics, from_start=True) as consumer:
        for _ in range(200):
            if {tp.topic for tp in consumer.assignment()} >= set(topics):
                break
            await asyncio.sleep(0.05)
        ends = await consumer.end_offsets(list(consumer.assignment()))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if loop.time() > deadline:
                raise TimeoutError(f"could not read {topics} to their end in {timeout:.0f} s")
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                found += [
                    (tp.topic, e) for e in _envelopes(records, None) if market_id in (None, e.market_id)
                ]
    return found


Match = Callable[[Envelope], bool]


class Observer:
    """A group-less consumer from the end of `topics`, filling `seen` in the background."""

    def __init__(self, bootstrap: str, *topics: str, market_id: str | None = None) -> None:
        self.bootstrap, self.topics, self.market_id = bootstrap, topics, market_id
        self.seen: list[tuple[str, Envelope]] = []
        self.arrived: list[float] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Observer:
        self._consumer = await self._stack.enter_async_context(tail(self.bootstrap, *self.topics))
        self._task = asyncio.create_task(self._pump())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._stack.aclose()

    async def _pump(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=100, max_records=1000)
            for records in batches.values():
                for record in records:
                    with contextlib.suppress(MalformedMessage):
                        env = decode(record.value)
                        if self.market_id is None or env.market_id == self.market_id:
                            self.seen.append((record.topic, env))
                            self.arrived.append(time.perf_counter())
            if batches:
                self._changed.set()

    def matching(self, match: Match, topic: str | None = None) -> list[Envelope]:
        return [env for t, env in self.seen if (topic is None or t == topic) and match(env)]

    async def wait_for(
        self, match: Match, topic: str | None = None, count: int = 1, timeout: float = 30
    ) -> list[Envelope]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.matching(match, topic)
            if len(found) >= count:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"saw {len(found)}/{count} matching on {topic or self.topics}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))
