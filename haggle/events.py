"""Read a topic as a consumer outside the platform would: from the start, up to now or for ever.

`read(...)` is what `haggle events tail`, the example consumers in `examples/` and the audit
trail use. It takes no consumer group (so it never moves a service's offsets), decodes every
record, and yields the bad ones too, as `Malformed`, so a reader can show them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from haggle.contracts import Envelope, MalformedMessage, decode
from haggle.contracts.topics import TOPICS


class UnknownTopic(ValueError):
    """Not a topic of the registry (nor its dead-letter topic)."""


def known_topics() -> list[str]:
    return [name for topic in TOPICS for name in (topic.name, topic.dlq)]


def check_topic(name: str) -> str:
    if name not in known_topics():
        raise UnknownTopic(f"unknown topic {name!r}; one of: {', '.join(known_topics())}")
    return name


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str | None
    envelope: Envelope

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key,
            "envelope": self.envelope.model_dump(mode="json"),
        }


@dataclass(frozen=True, slots=True)
class Malformed:
    topic: str
    partition: int
    offset: int
    key: str | None
    error: str

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key,
            "malformed": self.error,
        }


@dataclass(frozen=True, slots=True)
class Filter:
    """Which envelopes a reader wants: one market, some types, newer than a time."""

    market_id: str | None = None
    types: frozenset[str] = frozenset()

    def wants(self, envelope: Envelope) -> bool:
        if self.market_id is not None and envelope.market_id != self.market_id:
            return False
        return not self.types or envelope.type in self.types


async def read(
    bootstrap: str,
    topics: Collection[str],
    wanted: Filter = Filter(),
    *,
    follow: bool = False,
    from_start: bool = True,
    malformed: bool = False,
    idle_timeout: float = 30.0,
) -> AsyncIterator[Record | Malformed]:
    """Every wanted record of `topics`; without `follow`, stops at the ends the topics had on entry."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id=f"haggle-events-{uuid.uuid4().hex[:6]}",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = await _assign(consumer, topics, from_start)
        ends = await consumer.end_offsets(partitions)
        async for item in _records(consumer, ends, wanted, follow, malformed, idle_timeout):
            yield item
    finally:
        await consumer.stop()


async def _assign(
    consumer: AIOKafkaConsumer, topics: Collection[str], from_start: bool
) -> list[TopicPartition]:
    partitions = []
    for topic in topics:
        found = consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
        partitions += [TopicPartition(topic, p) for p in sorted(found)]
    consumer.assign(partitions)
    if from_start:
        await consumer.seek_to_beginning(*partitions)
    else:
        await consumer.seek_to_end(*partitions)
    return partitions


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        await consumer._client.force_metadata_update()  # aiokafka has no public call for this
        if found := consumer.partitions_for_topic(topic):
            return set(found)
        await asyncio.sleep(0.1)
    raise UnknownTopic(f"topic {topic!r} does not exist on the broker")


async def _records(
    consumer: AIOKafkaConsumer,
    ends: dict[TopicPartition, int],
    wanted: Filter,
    follow: bool,
    malformed: bool,
    idle_timeout: float,
) -> AsyncIterator[Record | Malformed]:
    pending = {tp for tp, end in ends.items() if end > await consumer.position(tp)}
    loop = asyncio.get_running_loop()
    last_progress = loop.time()
    while follow or pending:
        batches = await consumer.getmany(timeout_ms=200, max_records=2_000)
        for records in batches.values():
            for record in records:
                item = _item(record)
                if isinstance(item, Malformed):
                    if malformed:
                        yield item
                elif wanted.wants(item.envelope):
                    yield item
            if records:
                last_progress = loop.time()
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
        if not follow and pending and loop.time() - last_progress > idle_timeout:
            raise TimeoutError(f"no progress reading {sorted(str(tp) for tp in pending)}")


def _item(record: Any) -> Record | Malformed:
    key = record.key.decode(errors="replace") if record.key else None
    try:
        envelope = decode(record.value)
    except MalformedMessage as exc:
        return Malformed(record.topic, record.partition, record.offset, key, str(exc))
    return Record(record.topic, record.partition, record.offset, key, envelope)


def describe(item: Record | Malformed) -> str:
    """One line for a person: when, where, what, and the payload's fields."""
    if isinstance(item, Malformed):
        return f"{item.topic}[{item.partition}]@{item.offset} MALFORMED {item.error}"
    env = item.envelope
    fields = " ".join(f"{k}={_short(v)}" for k, v in env.payload.items() if k != "type")
    at = (
        env.occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] if isinstance(env.occurred_at, datetime) else ""
    )
    return f"{at} {item.topic}[{item.partition}]@{item.offset} {env.market_id} {env.type} {fields}"


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
