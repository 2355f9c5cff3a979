"""The inbox/outbox pattern, once, for every service.

A handler runs inside a `UnitOfWork`: the incoming event id goes into the
inbox (a duplicate is skipped), the state changes, and the outgoing events go
into the outbox, all in one transaction. The `OutboxRelay` then publishes
unsent rows in id order with an idempotent producer and marks them sent; a
crash between the two republishes the same event ids, which consumers dedupe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import InvalidProducerEpoch, OutOfOrderSequenceNumber, ProducerFenced, UnknownProducerId
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from haggle.contracts import Envelope, encode
from haggle.contracts.topics import RETENTION
from haggle.runtime import metrics
from haggle.runtime.repository import columns
from haggle.runtime.sessions import session_connection

if TYPE_CHECKING:
    from haggle.runtime.repository import Repository

log = logging.getLogger(__name__)


R = TypeVar("R", bound="Repository[Any, Any]")


@dataclass
class UnitOfWork:
    conn: asyncpg.Connection
    pending: list[tuple[str, str, Envelope]] = field(default_factory=list)
    repos: dict[type[Repository[Any, Any]], Repository[Any, Any]] = field(default_factory=dict)
    """One typed repository per kind of row (`repo`): rows read once per transaction (a batch may
    hold many commands on one listing), changes written once at commit."""
    changed: dict[type[Repository[Any, Any]], Repository[Any, Any]] = field(default_factory=dict)
    """The repositories holding changes not written yet, in the order they first changed."""
    on_rollback: list[Callable[[], None]] = field(default_factory=list)
    """Undo in-process effects (a rate limiter's tokens) if the transaction does not commit."""
    wake: set[str] = field(default_factory=set)
    """LISTEN channels to notify at commit (PostgreSQL delivers a NOTIFY only if the transaction commits)."""

    def repo(self, kind: type[R]) -> R:
        """This unit of work's one repository of `kind`."""
        if kind not in self.repos:
            self.repos[kind] = kind(self)
        return cast(R, self.repos[kind])

    def track(self, repo: Repository[Any, Any]) -> None:
        self.changed.setdefault(type(repo), repo)

    async def flush_changes(self) -> None:
        """Write every repository's changes (at commit, and before any query that is not by id)."""
        for repo in list(self.changed.values()):
            await repo.flush()
        self.changed.clear()

    async def first_time(self, event_id: uuid.UUID) -> bool:
        """Record an incoming event; False means it was handled before."""
        row = await self.conn.fetchval(
            "INSERT INTO inbox (event_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1",
            event_id,
        )
        return row is not None

    async def first_times(self, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Record a batch of incoming events in one statement; returns those not handled before."""
        rows = await self.conn.fetch(
            "INSERT INTO inbox (event_id) SELECT unnest($1::uuid[])"
            " ON CONFLICT DO NOTHING RETURNING event_id",
            list(event_ids),
        )
        return {r["event_id"] for r in rows}

    def emit(self, topic: str, key: str, envelope: Envelope) -> None:
        self.pending.append((topic, key, envelope))

    async def flush(self) -> None:
        """The pending events and the wake-ups, at commit, in one statement: the rows in emit order
        (the relay publishes in id order: per-key order), then a `pg_notify` of each channel in
        `wake`, which PostgreSQL delivers only if the transaction commits. One `executemany`
        execution per row cost the database several times as much, and a `NOTIFY` of its own was
        a round trip more."""
        channels = sorted(self.wake)
        if not self.pending:
            if channels:
                await self.conn.execute(_NOTIFY, channels)
            return
        await self.conn.execute(
            "WITH written AS ("
            " INSERT INTO outbox (event_id, topic, key, payload)"
            " SELECT event_id, topic, key, payload"
            " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[])"
            " WITH ORDINALITY AS u(event_id, topic, key, payload, n) ORDER BY n"
            " ON CONFLICT (event_id) DO NOTHING RETURNING 1)"
            " SELECT pg_notify(channel, '') FROM unnest($5::text[]) AS channel",
            *columns([(env.event_id, topic, key, encode(env)) for topic, key, env in self.pending]),
            channels,
        )
        self.pending.clear()


_NOTIFY = "SELECT pg_notify(channel, '') FROM unnest($1::text[]) AS channel"


@contextlib.asynccontextmanager
async def unit_of_work(pool: asyncpg.Pool, notify_channel: str | None = None) -> AsyncIterator[UnitOfWork]:
    """One transaction: yield the unit of work, then write its outbox rows and commit."""
    async with pool.acquire() as conn:
        uow = UnitOfWork(conn)
        try:
            async with conn.transaction():
                yield uow
                await uow.flush_changes()
                if uow.pending and notify_channel:
                    uow.wake.add(notify_channel)
                await uow.flush()
        except BaseException:
            for undo in reversed(uow.on_rollback):
                undo()
            raise


def relay_channel(schema: str) -> str:
    return f"{schema}_outbox"


RELAY_RESTART_SECONDS = 1.0
FATAL_PRODUCER_ERRORS = (OutOfOrderSequenceNumber, InvalidProducerEpoch, UnknownProducerId, ProducerFenced)
"""An idempotent producer that got one of these never sends again: aiokafka keeps its producer id
and sequence numbers, and every retry fails the same way (seen after a broker restart in a long
chaos run: the listing relay stuck for good). The relay goes on with a new producer."""


class OutboxRelay:
    """Publishes a schema's outbox. One active relay per schema (advisory lock) keeps key order.

    Every unit of work that writes the outbox NOTIFYs the relay at commit, which wakes it at once;
    `idle_poll` is only the safety net of an idle relay (each poll is a query)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        schema: str,
        service: str,
        batch: int = 500,
        idle_poll: float = 1.0,
        renew: Callable[[], Awaitable[AIOKafkaProducer]] | None = None,
    ) -> None:
        self.pool, self.producer, self.schema, self.service = pool, producer, schema, service
        self.batch, self.idle_poll = batch, idle_poll
        self._wake = asyncio.Event()
        self.healthy = False
        self._renew = renew
        self._renewed: AIOKafkaProducer | None = None
        """A producer this relay started (and stops); the first one is the caller's."""
        self._stale = False
        """The producer failed for good: relay with a new one first."""
        self._extra = {"schema": schema}
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        """How the relay waits before it starts again (tenacity's sleep)."""

    async def run(self) -> None:
        """Relay until cancelled. After an error the relay starts again a second later; after a
        fatal producer error it starts at once with a new producer (if it can make one)."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),  # never CancelledError: stopping ends it
            wait=self._wait,
            before_sleep=self._failed,
            sleep=self.sleep,
        )
        try:
            await retrying(self._relay)
        finally:
            if self._renewed is not None:
                with contextlib.suppress(Exception):
                    await self._renewed.stop()

    async def _relay(self) -> None:
        if self._stale:
            await self._new_producer()
        await self._run_locked()

    def _wait(self, state: RetryCallState) -> float:
        renewing = self._renew is not None and self._fatal(state)
        return 0.0 if renewing else RELAY_RESTART_SECONDS

    @staticmethod
    def _fatal(state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome is not None else None
        return isinstance(error, FATAL_PRODUCER_ERRORS)

    def _failed(self, state: RetryCallState) -> None:
        self.healthy = False
        error = state.outcome.exception() if state.outcome is not None else None
        if self._fatal(state):
            self._stale = self._renew is not None
            log.error("producer unusable; relaying with a new one", exc_info=error, extra=self._extra)
        else:
            log.error("outbox relay failed; restarting", exc_info=error, extra=self._extra)

    async def _new_producer(self) -> None:
        """A new producer in place of the unusable one; an error here is the relay's (retried)."""
        assert self._renew is not None  # only stale when it can be renewed
        fresh = await self._renew()
        if self._renewed is not None:
            with contextlib.suppress(Exception):
                await self._renewed.stop()
        self.producer = self._renewed = fresh
        self._stale = False

    async def _run_locked(self) -> None:
        """Relay while holding the schema's relay lock, a session lock: its connection is closed
        when the relay stops (`session_connection`), which releases the lock and the LISTEN."""
        async with session_connection(self.pool) as conn:
            lock_key = f"relay:{self.schema}"
            while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", lock_key):
                self.healthy = True  # another instance relays; we stand by
                await asyncio.sleep(1.0)
            await conn.add_listener(relay_channel(self.schema), self._on_notify)
            while True:
                sent = await self.publish_once(conn)
                self.healthy = True
                if sent < self.batch:
                    await self._sleep_until_woken()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _sleep_until_woken(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self.idle_poll)
        self._wake.clear()

    async def publish_once(self, conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(
            "SELECT id, topic, key, payload FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1",
            self.batch,
        )
        if not rows:
            metrics.OUTBOX_PENDING.labels(self.service).set(0)
            return 0
        futures = [
            await self.producer.send(r["topic"], value=bytes(r["payload"]), key=r["key"].encode())
            for r in rows
        ]
        await asyncio.gather(*futures)
        await conn.execute(
            "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
        )
        for r in rows:
            metrics.MESSAGES_OUT.labels(self.service, r["topic"]).inc()
        metrics.RELAY_BATCH.labels(self.service).observe(len(rows))
        return len(rows)


INBOX_KEEP_SECONDS = 2 * int(RETENTION[1]) // 1000 + 24 * 3600
"""How long an inbox keeps a handled event's id: longer than Kafka can hand the event back. Our
topics keep records 7 days (`topics.RETENTION`), and a record lives until the newest record of its
log segment is that old; a segment rolls after 7 days at most (Kafka's `segment.ms`). So 14 days,
and a day to spare."""


async def prune_sent(pool: asyncpg.Pool, older_than_seconds: int = 3600) -> int:
    result = await pool.execute(
        "DELETE FROM outbox WHERE sent_at < now() - make_interval(secs => $1)",
        float(older_than_seconds),
    )
    return int(result.split()[-1])


async def prune_received(pool: asyncpg.Pool, older_than_seconds: int = INBOX_KEEP_SECONDS) -> int:
    """Forget handled event ids Kafka can no longer deliver again: without this the inbox grows by
    every event a service ever read (100,000-160,000 rows a service per 500 x 3,000 market)."""
    result = await pool.execute(
        "DELETE FROM inbox WHERE received_at < now() - make_interval(secs => $1)",
        float(older_than_seconds),
    )
    return int(result.split()[-1])
