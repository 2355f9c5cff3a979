"""A service reads all of its topics with one consumer in one consumer group (haggle.runtime.service),
on real Kafka and PostgreSQL: each topic's records go to that topic's handlers, the group commits
on every topic, and a read that fails is read again whole, every effect still applied once."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Collection
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from haggle.contracts import Envelope, encode, wrap
from haggle.contracts.agents import AgentRetired
from haggle.infra import ensure_topics_async
from haggle.runtime import service
from haggle.runtime.outbox import UnitOfWork
from haggle.runtime.settings import Settings

pytestmark = pytest.mark.timeout(120)

PER_TOPIC = 12


class Seen:
    """Handlers that write one row per event, tagged with the topic they were wired to."""

    def __init__(self) -> None:
        self.failures_left = 0
        """Key filter calls that raise before it answers (a read that fails as a whole)."""

    def handler(self, topic: str) -> service.Handler:
        async def handle(uow: UnitOfWork, env: Envelope, event: AgentRetired) -> None:
            await uow.conn.execute(
                "INSERT INTO seen (topic, agent_id, event_id) VALUES ($1, $2, $3)",
                topic,
                event.agent_id,
                env.event_id,
            )

        return handle

    async def keys(self, pool: asyncpg.Pool, keys: list[str]) -> Collection[str]:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("the key filter broke (once)")
        return keys


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    (tmp_path / "001_seen.sql").write_text(
        "CREATE TABLE seen (topic text NOT NULL, agent_id text NOT NULL, event_id uuid NOT NULL);"
    )
    return tmp_path


@pytest.fixture
async def topics(bootstrap: str) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    batched, one_by_one = f"t-svc-batched-{tag}", f"t-svc-single-{tag}"
    await ensure_topics_async(bootstrap, {batched: 3, one_by_one: 3})
    return batched, one_by_one


@pytest.fixture
async def running(
    bootstrap: str, database_url: str, migrations: Path, topics: tuple[str, str]
) -> AsyncIterator[tuple[service.RunningService, Seen]]:
    seen = Seen()
    batched, one_by_one = topics
    name = f"svc{uuid.uuid4().hex[:8]}"

    def build(ctx: service.ServiceContext) -> service.ServiceParts:
        return service.ServiceParts(
            subscriptions=[
                service.Subscription(batched, {AgentRetired: seen.handler(batched)}, batched=True),
                service.Subscription(one_by_one, {AgentRetired: seen.handler(one_by_one)}, keys=seen.keys),
            ]
        )

    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        database_url=database_url,
        http_port=free_port(),
        group_prefix=f"test-{uuid.uuid4().hex[:8]}",
    )
    running = await service.start(service.ServiceModule(name, name, migrations, build), settings)
    try:
        yield running, seen
    finally:
        await service.stop(running)
        drop = await asyncpg.connect(database_url)
        try:
            await drop.execute(f"DROP SCHEMA {name} CASCADE")
        finally:
            await drop.close()


async def send(bootstrap: str, topics: tuple[str, ...], tag: str) -> dict[str, list[tuple[str, int, int]]]:
    """PER_TOPIC events on each topic, on every partition: (agent id, partition, offset) by topic."""
    sent: dict[str, list[tuple[str, int, int]]] = {topic: [] for topic in topics}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(PER_TOPIC):
            for topic in topics:
                agent_id = f"{tag}-{topic}-{i}"
                env = wrap(AgentRetired(agent_id=agent_id), market_id="m", producer="test")
                meta = await producer.send_and_wait(topic, encode(env), key=agent_id.encode())
                sent[topic].append((agent_id, meta.partition, meta.offset))
    finally:
        await producer.stop()
    return sent


async def rows(pool: asyncpg.Pool, tag: str) -> list[tuple[str, str]]:
    found = await pool.fetch(
        "SELECT topic, agent_id FROM seen WHERE agent_id LIKE $1 ORDER BY topic, agent_id", f"{tag}-%"
    )
    return [(r["topic"], r["agent_id"]) for r in found]


async def wait_for_rows(pool: asyncpg.Pool, tag: str, count: int) -> list[tuple[str, str]]:
    for _ in range(400):
        found = await rows(pool, tag)
        if len(found) >= count:
            await asyncio.sleep(0.5)  # anything applied twice shows up by now
            return await rows(pool, tag)
        await asyncio.sleep(0.1)
    return await rows(pool, tag)


async def committed(bootstrap: str, group: str, sent: dict[str, list[tuple[str, int, int]]]) -> bool:
    """Whether `group` committed past every sent record, on every topic and partition."""
    last: dict[TopicPartition, int] = {}
    for topic, records in sent.items():
        for _, partition, offset in records:
            tp = TopicPartition(topic, partition)
            last[tp] = max(last.get(tp, -1), offset)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for _ in range(100):
            offsets = await admin.list_consumer_group_offsets(group, partitions=list(last))
            if all(tp in offsets and offsets[tp].offset > end for tp, end in last.items()):
                return True
            await asyncio.sleep(0.1)
        return False
    finally:
        await admin.close()


def expected(sent: dict[str, list[tuple[str, int, int]]]) -> list[tuple[str, str]]:
    return sorted((topic, agent_id) for topic, records in sent.items() for agent_id, _, _ in records)


async def test_one_group_reads_every_topic_and_routes_each_record_to_its_topics_handlers(
    bootstrap: str, running: tuple[service.RunningService, Seen], topics: tuple[str, str]
) -> None:
    svc, _ = running
    tag = uuid.uuid4().hex[:8]

    sent = await send(bootstrap, topics, tag)

    assert await wait_for_rows(svc.ctx.pool, tag, 2 * PER_TOPIC) == expected(sent)
    assert await committed(bootstrap, service.group_id(svc.ctx.settings, svc.ctx.name), sent)


async def test_a_read_that_fails_is_read_again_whole_and_applied_once(
    bootstrap: str, running: tuple[service.RunningService, Seen], topics: tuple[str, str]
) -> None:
    svc, seen = running
    tag = uuid.uuid4().hex[:8]
    seen.failures_left = 2

    sent = await send(bootstrap, topics, tag)

    assert await wait_for_rows(svc.ctx.pool, tag, 2 * PER_TOPIC) == expected(sent)
    assert seen.failures_left == 0
    assert await committed(bootstrap, service.group_id(svc.ctx.settings, svc.ctx.name), sent)
