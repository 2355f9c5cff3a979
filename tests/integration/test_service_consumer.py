"""A service reads its topics in one consumer group (haggle.runtime.service), with one consumer
for most and one of its own for a topic that asks for it, on real Kafka and PostgreSQL: each
topic's records go to that topic's handlers, the group commits on every topic, a read that fails is
read again whole, every effect still applied once, a topic read alone goes on while another's
handler is stuck, and the group's first start goes on from where the per-topic groups it replaces
stopped."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Collection
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from haggle.contracts import Envelope, encode, wrap
from haggle.contracts.agents import AgentRetired
from haggle.infra import ensure_topics_async
from haggle.runtime import service
from haggle.runtime.consumer import Handler
from haggle.runtime.outbox import UnitOfWork
from haggle.runtime.settings import Settings
from haggle_lab.testing.ports import free_port

pytestmark = pytest.mark.timeout(120)

PER_TOPIC = 12


class Seen:
    """Handlers that write one row per event, tagged with the topic they were wired to."""

    def __init__(self) -> None:
        self.failures_left = 0
        """Key filter calls that raise before it answers (a read that fails as a whole)."""
        self.held = asyncio.Event()
        """Set: the batched topic's handler goes on (cleared, it waits: a slow handler)."""
        self.held.set()

    def handler(self, topic: str, *, hold: bool = False) -> Handler:
        async def handle(uow: UnitOfWork, env: Envelope, event: AgentRetired) -> None:
            if hold:
                await self.held.wait()
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


@contextlib.asynccontextmanager
async def service_on(
    bootstrap: str,
    database_url: str,
    migrations: Path,
    topics: tuple[str, str],
    prefix: str,
    name: str,
    *,
    own_reader: bool = False,
) -> AsyncIterator[tuple[service.RunningService, Seen]]:
    """Service `name` on the two topics (the first batched, the second with a key filter, read by
    a consumer of its own if `own_reader`), running."""
    seen = Seen()
    batched, one_by_one = topics

    def build(ctx: service.ServiceContext) -> service.ServiceParts:
        return service.ServiceParts(
            subscriptions=[
                service.Subscription(batched, {AgentRetired: seen.handler(batched, hold=True)}, batched=True),
                service.Subscription(
                    one_by_one,
                    {AgentRetired: seen.handler(one_by_one)},
                    keys=seen.keys,
                    own_reader=own_reader,
                ),
            ]
        )

    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        database_url=database_url,
        http_port=free_port(),
        group_prefix=prefix,
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


def names() -> tuple[str, str]:
    """A group prefix and a service name (its schema) of a test's own."""
    return f"test-{uuid.uuid4().hex[:8]}", f"svc{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def running(
    bootstrap: str, database_url: str, migrations: Path, topics: tuple[str, str]
) -> AsyncIterator[tuple[service.RunningService, Seen]]:
    async with service_on(bootstrap, database_url, migrations, topics, *names()) as found:
        yield found


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
    bootstrap: str, database_url: str, migrations: Path, topics: tuple[str, str]
) -> None:
    """Both topics' records wait on the broker before the service starts, so its reads mix them:
    the key filter of one topic's share fails twice, and each time the whole read is read again."""
    tag = uuid.uuid4().hex[:8]
    sent = await send(bootstrap, topics, tag)
    async with service_on(bootstrap, database_url, migrations, topics, *names()) as (svc, seen):
        seen.failures_left = 2

        assert await wait_for_rows(svc.ctx.pool, tag, 2 * PER_TOPIC) == expected(sent)
        assert seen.failures_left == 0
        assert await committed(bootstrap, service.group_id(svc.ctx.settings, svc.ctx.name), sent)


async def test_a_topic_with_a_reader_of_its_own_goes_on_while_the_others_wait(
    bootstrap: str, database_url: str, migrations: Path, topics: tuple[str, str]
) -> None:
    """The batched topic's handler is stuck: the other topic, read by its own consumer in the same
    group, is handled all the same; once the stuck one goes on, both are handled and committed."""
    tag = uuid.uuid4().hex[:8]
    alone = topics[1]
    on = service_on(bootstrap, database_url, migrations, topics, *names(), own_reader=True)
    async with on as (svc, seen):
        seen.held.clear()
        sent = await send(bootstrap, topics, tag)

        handled = await wait_for_rows(svc.ctx.pool, tag, PER_TOPIC)
        assert handled == expected({alone: sent[alone]})

        seen.held.set()
        assert await wait_for_rows(svc.ctx.pool, tag, 2 * PER_TOPIC) == expected(sent)
        assert await committed(bootstrap, service.group_id(svc.ctx.settings, svc.ctx.name), sent)


async def test_the_first_start_goes_on_from_where_the_old_per_topic_groups_stopped(
    bootstrap: str, database_url: str, migrations: Path, topics: tuple[str, str]
) -> None:
    """Upgraded from one group per (service, topic): what those groups handled is not read again."""
    tag = uuid.uuid4().hex[:8]
    sent = await send(bootstrap, topics, tag)
    prefix, name = names()
    half = PER_TOPIC // 2
    for topic, records in sent.items():
        await commit_after(bootstrap, f"{prefix}.{name}.{topic}", topic, records[:half])

    async with service_on(bootstrap, database_url, migrations, topics, prefix, name) as (svc, _):
        rest = {topic: records[half:] for topic, records in sent.items()}
        assert await wait_for_rows(svc.ctx.pool, tag, 2 * (PER_TOPIC - half)) == expected(rest)
        assert await committed(bootstrap, service.group_id(svc.ctx.settings, name), sent)


async def commit_after(bootstrap: str, group: str, topic: str, records: list[tuple[str, int, int]]) -> None:
    """What an old release's group left: the offset after its last record of `records`, on each
    partition of `topic` they are on (the topic is the test's own: the other partitions hold only
    later records)."""
    ends: dict[TopicPartition, int] = {}
    for _, partition, offset in records:
        tp = TopicPartition(topic, partition)
        ends[tp] = max(ends.get(tp, 0), offset + 1)
    committer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await committer.start()
    try:
        committer.assign(list(ends))
        await committer.commit({tp: OffsetAndMetadata(at, "") for tp, at in ends.items()})
    finally:
        await committer.stop()
