"""Run one service: pool and migrations, relay, FastStream subscribers, HTTP, clean shutdown.

A service module (`services/<name>/app.py`) exposes NAME, SCHEMA, MIGRATIONS
and `build(ctx) -> ServiceParts`; `haggle run <name>` hands it to `serve`.
Every subscriber acknowledges only after the database commit, so delivery is
at-least-once and the inbox makes the effect exactly-once. The handler wrapper
should never raise; if it does (say the DLQ cannot be written), NACK_ON_ERROR
rewinds every partition of the read to its first record in it instead of
committing past the rest of the read, as AckPolicy.ACK would.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import signal
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from starlette.routing import BaseRoute

from haggle.contracts import Message
from haggle.runtime import lag, logs
from haggle.runtime.carry import carry_offsets
from haggle.runtime.consumer import (
    Handler,
    InvalidHandler,
    KeyFilter,
    Prefetch,
    TopicConsumer,
    record_age,
)
from haggle.runtime.db import create_pool, migrate
from haggle.runtime.http import build_app, make_server
from haggle.runtime.kafka import make_broker, make_producer
from haggle.runtime.outbox import OutboxRelay, prune_received, prune_sent, relay_channel
from haggle.runtime.settings import Settings, current
from haggle.runtime.supervise import supervise

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subscription:
    topic: str
    handlers: Mapping[type[Message], Handler]
    commands: bool = False
    on_invalid: InvalidHandler | None = None
    keys: KeyFilter | None = None
    """Which of a batch's record keys this service acts on; the others are skipped before any
    decoding or transaction (say, `agent.inbox` messages for agents another service runs)."""
    batched: bool = False
    """Handle each Kafka batch in one transaction (see TopicConsumer.handle_batch). Only for
    handlers that do nothing slow outside the database: the transaction holds its row locks
    until the whole batch is done."""
    prefetch: Prefetch | None = None
    """With `batched`: one read for the whole batch of what its handlers will each read."""
    own_reader: bool = False
    """Read by a consumer of its own, still in the service's one group. For the topic a chain of
    moves runs through (the referee's commands, the agents' inbox): its reads then wait neither
    for the service's other topics' handlers nor for their offset commits."""


@dataclass
class ServiceContext:
    name: str
    schema: str
    settings: Settings
    pool: asyncpg.Pool
    producer: AIOKafkaProducer

    @property
    def notify_channel(self) -> str:
        return relay_channel(self.schema)


@dataclass
class ServiceParts:
    subscriptions: Sequence[Subscription]
    routes: Sequence[BaseRoute] = ()
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()
    """Background loops; each runs under `supervise` (restarted on error, with a backoff)."""


@dataclass
class ServiceModule:
    name: str
    schema: str
    migrations: Path
    build: Callable[[ServiceContext], ServiceParts]


@dataclass
class RunningService:
    ctx: ServiceContext
    broker: KafkaBroker
    relay: OutboxRelay
    consumers: list[TopicConsumer]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def readiness(self) -> dict[str, bool]:
        return {
            "database": not self.ctx.pool.is_closing(),
            "relay": self.relay.healthy,
            "infrastructure": all(c.health["infra_ok"] for c in self.consumers),
        }


IDLE_POLL_MS = 1000
"""How long a subscriber's read waits for records. The read returns as soon as a record is fetched,
so this is what an idle subscriber costs (a wake-up a second), not a delay (see `_read_without_sleep`)."""


def _read_without_sleep(subscriber: Any) -> None:
    """Make a FastStream batch subscriber read without sleeping after an empty read.

    FastStream's `BatchSubscriber.get_msg` sleeps `batch_timeout_ms` after a read that found none,
    and a record arriving in that sleep waits for it: so the timeout had to be short (50 ms), and
    each idle subscriber woke the loop twenty times a second (~200 loop wake-ups a second in an
    idle service: ~25 ms of CPU a second). aiokafka's `getmany` already waits up to its timeout
    and returns as soon as records arrive, so the sleep adds nothing but latency: this read is the
    same call without it."""
    timeout_ms, max_records = subscriber.batch_timeout_ms, subscriber.max_records

    async def get_msg(consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord, ...]:
        batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return tuple(itertools.chain.from_iterable(batches.values()))

    subscriber.get_msg = get_msg


async def _records(message: KafkaMessage) -> tuple[ConsumerRecord, ...]:
    """A batch's records as aiokafka read them: the handler's one argument.

    FastStream's own decoder parses every record's body as JSON, which `TopicConsumer` then does
    again with our contracts; with this one (and a broker without dependency injection, see
    `make_broker`) a record is parsed once."""
    raw = message.raw_message
    return raw if isinstance(raw, tuple) else (raw,)


@dataclass(frozen=True)
class _Share:
    """What one topic does with its records of a read."""

    consumer: TopicConsumer
    batched: bool
    concurrency: int
    alone: bool

    async def take(self, read: tuple[ConsumerRecord, ...]) -> None:
        record_age(self.consumer.service, "read", read)
        records = await self.consumer.ours(read)
        if not records:
            return
        if self.batched:
            await self.consumer.handle_batch(records)
        else:
            await handle_by_key(self.consumer, records, self.concurrency)


def _readers(shares: Sequence[_Share]) -> list[list[_Share]]:
    """Which topics each of a service's consumers reads: one each for those read alone, and one
    for all the rest. They are all in the service's one group, so its instances share every
    topic's partitions (a member is assigned partitions only of the topics it reads)."""
    topics = [share.consumer.topic for share in shares]
    if len(set(topics)) < len(topics):
        raise ValueError(f"two subscriptions of one service on one topic: {topics}")
    rest = [share for share in shares if not share.alone]
    return [[share] for share in shares if share.alone] + ([rest] if rest else [])


def _subscribe(broker: KafkaBroker, shares: Sequence[_Share], group: str, batch: int) -> None:
    """One consumer for these topics of a service: each read is split by topic, and the topics'
    shares are handled side by side; the offsets are committed when every share is done. So a
    share that keeps failing (say, its dead-letter topic cannot be written) holds up the
    consumer's other topics too, as it held up its own before."""
    by_topic = {share.consumer.topic: share for share in shares}
    subscriber = broker.subscriber(
        *by_topic,
        group_id=group,
        batch=True,
        max_records=batch,
        batch_timeout_ms=IDLE_POLL_MS,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_records,
    )
    _read_without_sleep(subscriber)

    @subscriber
    async def on_batch(read: tuple[ConsumerRecord, ...]) -> None:
        of_topic: dict[str, list[ConsumerRecord]] = {}
        for record in read:  # a partition's records stay in order
            of_topic.setdefault(record.topic, []).append(record)
        if len(of_topic) == 1:
            [(topic, records)] = of_topic.items()
            await by_topic[topic].take(tuple(records))
            return
        # A share that fails cancels the others (their transactions roll back) and the read
        # is nacked: every partition in it is read again from its first record.
        async with asyncio.TaskGroup() as running:
            tasks = [running.create_task(by_topic[t].take(tuple(rs))) for t, rs in of_topic.items()]
        if any(task.cancelled() for task in tasks):  # a TaskGroup ends quietly on a child's own cancel
            raise RuntimeError("a share of the read was cancelled: it is read again")


async def handle_by_key(
    consumer: TopicConsumer, records: tuple[ConsumerRecord, ...], concurrency: int
) -> None:
    """Records of one key in order, different keys side by side: a slow handler
    (an LLM call, a lock wait) holds up only its own aggregate."""
    lanes: dict[tuple[int, bytes | None], list[ConsumerRecord]] = {}
    for record in records:
        lanes.setdefault((record.partition, record.key), []).append(record)
    if len(lanes) == 1 or concurrency <= 1:
        for record in records:
            await consumer.handle(record)
        return
    gate = asyncio.Semaphore(concurrency)

    async def lane(batch: list[ConsumerRecord]) -> None:
        async with gate:
            for record in batch:
                await consumer.handle(record)

    # A lane that fails cancels the others before the read is read again: no key is ever
    # handled by two tasks at once.
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(lane(batch)) for batch in lanes.values()]
    if any(task.cancelled() for task in tasks):  # a TaskGroup ends quietly on a child's own cancel
        raise RuntimeError("a lane of the read was cancelled: it is read again")


def group_id(settings: Settings, service: str) -> str:
    """One group per service, over all of its topics: its instances share the partitions, and
    each instance reads them with one consumer (one fetch loop, one offset commit per read).
    Its first start takes the offsets of the per-topic groups it replaces (`carry`)."""
    return f"{settings.group_prefix}.{service}"


async def start(module: ServiceModule, settings: Settings) -> RunningService:
    pool = await create_pool(settings.database_url, module.schema, settings.pool_size)
    await migrate(pool, module.schema, module.migrations)
    producer = make_producer(settings.kafka_bootstrap_servers, f"haggle-{module.name}")
    await producer.start()
    ctx = ServiceContext(module.name, module.schema, settings, pool, producer)
    parts = module.build(ctx)

    async def relay_producer() -> AIOKafkaProducer:
        fresh = make_producer(settings.kafka_bootstrap_servers, f"haggle-{module.name}-relay")
        await fresh.start()
        return fresh

    relay = OutboxRelay(
        pool, producer, module.schema, module.name, settings.relay_batch, renew=relay_producer
    )
    broker = make_broker(settings.kafka_bootstrap_servers, f"haggle-{module.name}")
    shares = []
    for sub in parts.subscriptions:
        consumer = TopicConsumer(
            module.name,
            sub.topic,
            pool,
            producer,
            sub.handlers,
            sub.on_invalid,
            sub.commands,
            settings.max_handler_attempts,
            ctx.notify_channel,
            keys=sub.keys,
            prefetch=sub.prefetch,
        )
        shares.append(_Share(consumer, sub.batched, settings.handler_concurrency, sub.own_reader))
    consumers = [share.consumer for share in shares]
    if shares:
        group = group_id(settings, module.name)
        old_groups = {consumer.topic: f"{group}.{consumer.topic}" for consumer in consumers}
        await carry_offsets(settings.kafka_bootstrap_servers, group, old_groups)
        for readers in _readers(shares):
            _subscribe(broker, readers, group, settings.consumer_batch)
    running = RunningService(ctx, broker, relay, consumers)
    running.tasks.append(asyncio.create_task(relay.run(), name="outbox-relay"))
    running.tasks.append(asyncio.create_task(supervise("prune", _prune_forever(pool)), name="prune"))
    groups = {sub.topic: group_id(settings, module.name) for sub in parts.subscriptions}
    lag_monitor = lag.monitor(settings.kafka_bootstrap_servers, module.name, groups)
    running.tasks.append(asyncio.create_task(lag_monitor, name="consumer-lag"))
    for job in parts.background:
        name = getattr(job, "__name__", "job")
        running.tasks.append(asyncio.create_task(supervise(name, job), name=name))
    await broker.start()
    app = build_app(running.readiness, parts.routes)
    server = make_server(app, settings.http_host, settings.port_for(module.name))
    running.tasks.append(asyncio.create_task(server.serve(), name="http"))
    return running


async def stop(running: RunningService) -> None:
    await running.broker.stop()
    for task in running.tasks:
        task.cancel()
    for task in running.tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await running.ctx.producer.stop()
    await running.ctx.pool.close()


def _prune_forever(pool: asyncpg.Pool) -> Callable[[], Coroutine[Any, Any, None]]:
    async def prune() -> None:
        """Every 5 minutes: sent outbox rows after an hour, inbox ids once Kafka cannot redeliver them."""
        while True:
            await asyncio.sleep(300)
            await prune_sent(pool)
            await prune_received(pool)

    return prune


async def serve(module: ServiceModule, settings: Settings | None = None) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly."""
    settings = settings or current()
    logs.configure(module.name, settings.log_level)
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_event.set)
    running = await start(module, settings)
    # What start-up made (modules, schemas, templates, the pool) lives as long as the process: out
    # of the collector's way, a full pass no longer stalls the requests in flight for ~160 ms (the
    # web's slowest request 178 -> 67 ms at 10 in flight, `bench.web_pages`).
    gc.freeze()
    log.info("service started", extra={"port": settings.port_for(module.name)})
    await stop_event.wait()
    log.info("service stopping")
    await stop(running)
