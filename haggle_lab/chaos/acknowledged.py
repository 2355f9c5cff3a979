"""`no_acknowledged_event_lost`: every outbox row a relay marked sent is on its topic afterwards.

In the spirit of Jepsen's Kafka checker: a relay marks a row sent only after the broker
acknowledged it (acks=all, so at least `min.insync.replicas` copies held it). Read every
topic back from before the run started and look each sent row up by its event id; a row
that is marked sent but is on no partition is an acknowledged write the cluster lost.
It reads the outbox tables of every schema that has one (the relay's plumbing, the same in
every service), not any service's own data.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from haggle.contracts.topics import all_topic_partitions
from haggle_lab.chaos import leaders

SLACK_MS = 5_000
"""Read each topic from this long before the run began (producer and broker clocks differ)."""


@dataclass
class Acknowledged:
    """The sent rows, by topic, and which of them the topics still hold."""

    sent: dict[str, set[uuid.UUID]] = field(default_factory=dict)
    found: dict[str, set[uuid.UUID]] = field(default_factory=dict)

    @property
    def acknowledged(self) -> int:
        return sum(len(ids) for ids in self.sent.values())

    @property
    def lost(self) -> dict[str, set[uuid.UUID]]:
        gone = {topic: ids - self.found.get(topic, set()) for topic, ids in self.sent.items()}
        return {topic: ids for topic, ids in gone.items() if ids}

    def problems(self) -> list[str]:
        return [
            f"{topic}: event {event_id} was acknowledged (outbox sent) but is not on the topic"
            for topic, ids in sorted(self.lost.items())
            for event_id in sorted(ids, key=str)
        ]


async def sent_since(database_url: str, since: datetime) -> dict[str, set[uuid.UUID]]:
    """Every outbox row marked sent at or after `since`, in every schema with an outbox."""
    conn = await asyncpg.connect(database_url)
    try:
        schemas = await conn.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'"
        )
        sent: dict[str, set[uuid.UUID]] = defaultdict(set)
        for row in schemas:
            schema = row["table_schema"]
            rows = await conn.fetch(
                f'SELECT event_id, topic FROM "{schema}".outbox WHERE sent_at >= $1', since
            )
            for found in rows:
                sent[found["topic"]].add(found["event_id"])
        return dict(sent)
    finally:
        await conn.close()


async def read_back(bootstrap: str, topics: list[str], since: datetime) -> dict[str, set[uuid.UUID]]:
    """The event ids on each topic from `since` (less SLACK_MS) to its end now."""
    parts = [TopicPartition(topic, p) for topic, p in await leaders.describe(bootstrap, topics)]
    if not parts:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        starts = await consumer.offsets_for_times(
            dict.fromkeys(parts, int(since.timestamp() * 1000) - SLACK_MS)
        )
        remaining = {}
        for tp in parts:
            start = starts[tp].offset if starts.get(tp) is not None else ends[tp]
            consumer.seek(tp, start)
            if start < ends[tp]:
                remaining[tp] = ends[tp]
        return await _drain(consumer, remaining)
    finally:
        await consumer.stop()


async def _drain(
    consumer: AIOKafkaConsumer, remaining: dict[TopicPartition, int], timeout: float = 300.0
) -> dict[str, set[uuid.UUID]]:
    found: dict[str, set[uuid.UUID]] = defaultdict(set)
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
        for tp, records in batches.items():
            for record in records:
                if (event_id := _event_id(record.value)) is not None:
                    found[tp.topic].add(event_id)
        for tp in list(remaining):
            if await consumer.position(tp) >= remaining[tp]:
                del remaining[tp]
    return dict(found)


def _event_id(raw: bytes | None) -> uuid.UUID | None:
    try:
        value = orjson.loads(raw or b"")
        return uuid.UUID(value["event_id"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


async def check(
    database_url: str, bootstrap: str, since: datetime, topics: Collection[str] | None = None
) -> Acknowledged:
    """Sent rows since `since` on `topics` (default: the registry's topics and DLQs) and which are found."""
    wanted = set(all_topic_partitions()) if topics is None else set(topics)
    sent = {topic: ids for topic, ids in (await sent_since(database_url, since)).items() if topic in wanted}
    return Acknowledged(sent, await read_back(bootstrap, sorted(sent), since))
