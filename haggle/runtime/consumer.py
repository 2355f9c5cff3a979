"""One message in: decode → dedupe → handle → commit, with typed failures.

- Bytes that are not an envelope go to `<topic>.dlq` with the reason.
- A sound envelope with a bad payload goes to the service's `on_invalid`
  (a typed refusal to its sender) or, without one, to the DLQ.
- A handler that fails is retried up to a cap, then dead-lettered.
- A database or broker outage is not the message's fault: it is retried
  until the infrastructure is back, and the service reports not ready.
- While a handler runs, `appended_at()` is when the broker appended its record (on a topic
  with `LogAppendTime`): a deadline is judged by that time, never by the sender's word.
The caller acknowledges the Kafka offset only after this returns.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from haggle.contracts import Envelope, InvalidPayload, MalformedMessage, Message, decode, payload_of
from haggle.runtime import metrics
from haggle.runtime.logs import correlation_id_var, market_id_var
from haggle.runtime.outbox import UnitOfWork, unit_of_work

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, Envelope, Any], Awaitable[None]]
InvalidHandler = Callable[[UnitOfWork, InvalidPayload], Awaitable[None]]
T = TypeVar("T")
KeyFilter = Callable[[asyncpg.Pool, list[str]], Awaitable[Collection[str]]]
Prefetch = Callable[[UnitOfWork, list[tuple[Envelope, Message]]], Awaitable[None]]
"""Reads (and locks) in a few statements what a batch's handlers will read one by one, into
the unit of work's repositories (`uow.repo`); the handlers then find it there."""

LOG_APPEND_TIME = 1
"""`ConsumerRecord.timestamp_type` of a timestamp the broker set (0: the producer's, forgeable)."""

_appended_at: ContextVar[datetime | None] = ContextVar("appended_at", default=None)


def appended_at() -> datetime | None:
    """When the broker appended the record being handled; None outside a handler or when the
    topic keeps the producer's timestamp (which a sender can set to anything)."""
    return _appended_at.get()


def record_age(service: str, stage: str, records: Sequence[ConsumerRecord]) -> None:
    """How old each record is at `stage` (by its timestamp; none on a record without one)."""
    now_ms = time.time() * 1000
    for record in records:
        if record.timestamp is not None and record.timestamp > 0:
            metrics.RECORD_AGE.labels(service, record.topic, stage).observe(
                max(0.0, now_ms - record.timestamp) / 1000
            )


def broker_time(record: ConsumerRecord) -> datetime | None:
    if record.timestamp_type != LOG_APPEND_TIME or record.timestamp is None or record.timestamp < 0:
        return None
    return datetime.fromtimestamp(record.timestamp / 1000, UTC)


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.AdminShutdownError,
    TimeoutError,
)


OUTAGE_WAIT = wait_exponential(multiplier=0.2, max=5.0)
"""After the n-th failure in a row of an outage: 0.2 s, 0.4 s, … doubling, at most 5 s."""
HANDLER_WAIT = wait_exponential(multiplier=0.1)
"""After the n-th failure of a handler: 0.1 s, 0.2 s, 0.4 s … (up to `max_attempts` tries)."""


def dlq_record(record: ConsumerRecord, service: str, reason: str, error: str) -> bytes:
    value = record.value or b""
    return orjson.dumps(
        {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": record.key.decode(errors="replace") if record.key else None,
            "service": service,
            "reason": reason,
            "error": error[:2000],
            "value_b64": base64.b64encode(value[:65536]).decode(),
            "dead_lettered_at": datetime.now(UTC).isoformat(),
        }
    )


@dataclass(frozen=True)
class Work:
    """One decoded record and the handler call that applies it inside a unit of work."""

    record: ConsumerRecord
    envelope: Envelope
    type_label: str
    step: Callable[[UnitOfWork], Awaitable[None]]
    payload: Message | None = None
    """None when the payload was refused (the step is the refusal)."""


@dataclass
class TopicConsumer:
    """Handles the records of one topic for one service."""

    service: str
    topic: str
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    handlers: Mapping[type[Message], Handler]
    on_invalid: InvalidHandler | None = None
    commands: bool = False
    """On a command topic every unknown type is refused; on an event topic it is ignored."""
    max_attempts: int = 3
    notify_channel: str | None = None
    health: dict[str, bool] = field(default_factory=lambda: {"infra_ok": True})
    keys: KeyFilter | None = None
    prefetch: Prefetch | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    """How retries wait (tenacity's sleep): tests pass one that records the waits."""

    async def ours(self, records: tuple[ConsumerRecord, ...]) -> tuple[ConsumerRecord, ...]:
        """The records whose key `keys` accepts (all of them without a filter), in order."""
        if self.keys is None:
            return records
        key_filter = self.keys
        asked = list({r.key.decode(errors="replace") for r in records if r.key})
        accepted = set(await self._until_infra_ok(lambda: key_filter(self.pool, asked)))
        kept = tuple(r for r in records if r.key and r.key.decode(errors="replace") in accepted)
        if len(kept) < len(records):
            metrics.MESSAGES_IN.labels(self.service, self.topic, "not_ours").inc(len(records) - len(kept))
        return kept

    async def handle(self, record: ConsumerRecord) -> None:
        """One record in its own transaction."""
        work = await self._prepare(record)
        if work is not None:
            await self._with_retries(work)

    async def handle_batch(self, records: Sequence[ConsumerRecord]) -> None:
        """A whole Kafka batch in one transaction: one inbox insert, one outbox write, one commit.

        Records of one key are handled in order, the keys in sorted order: two batches (of two
        topics, or two instances) that lock rows by key then lock them in the same order and
        cannot deadlock each other. If any handler fails (not an outage), the batch's
        transaction is rolled back and every record is handled again on its own, so one
        bad record is retried and dead-lettered alone and never takes its neighbours along.
        """
        in_key_order = sorted(records, key=lambda r: r.key or b"")  # stable: per-key order kept
        works = [w for w in [await self._prepare(r) for r in in_key_order] if w is not None]
        if len(works) <= 1:
            for work in works:
                await self._with_retries(work)
            return
        try:
            await self._until_infra_ok(lambda: self._batch_once(works))
            return
        except Exception:
            log.warning("batch failed; handling its records one by one", exc_info=True)
        metrics.BATCH_FALLBACKS.labels(self.service, self.topic).inc()
        for work in works:
            await self._with_retries(work)

    async def _prepare(self, record: ConsumerRecord) -> Work | None:
        """Decode and route one record; None when it was dead-lettered or is not ours."""
        try:
            envelope = decode(record.value)
        except MalformedMessage as exc:
            await self.dead_letter(record, "malformed", str(exc))
            return None
        model = self._model_for(envelope.type)
        if model is None and not self.commands:
            metrics.MESSAGES_IN.labels(self.service, self.topic, "ignored").inc()
            return None
        # A hostile sender picks `type`: only known types become label values.
        type_label = envelope.type if model is not None else "unknown"
        metrics.MESSAGES_IN.labels(self.service, self.topic, type_label).inc()
        try:
            payload = payload_of(envelope, self._accepted)
        except InvalidPayload as exc:
            if self.on_invalid is None:
                await self.dead_letter(record, "invalid_payload", str(exc))
                return None
            on_invalid, invalid = self.on_invalid, exc
            return Work(record, invalid.envelope, type_label, lambda uow: on_invalid(uow, invalid))
        handler = self.handlers[type(payload)]
        return Work(record, envelope, type_label, lambda uow: handler(uow, envelope, payload), payload)

    def __post_init__(self) -> None:
        self._models: dict[str, type[Message]] = {m.model_fields["type"].default: m for m in self.handlers}
        self._accepted = tuple(self.handlers)

    def _model_for(self, type_name: str) -> type[Message] | None:
        return self._models.get(type_name)

    async def _with_retries(self, work: Work) -> None:
        """Handle one record: outages retried until the infrastructure is back, handler
        failures up to `max_attempts`, then the record goes to the DLQ."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            stop=stop_after_attempt(self.max_attempts),
            wait=HANDLER_WAIT,
            after=self._handler_failed(work),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            await retrying(self._until_infra_ok, lambda: self._once(work))
        except Exception as exc:
            await self.dead_letter(work.record, "handler_failed", repr(exc))

    def _handler_failed(self, work: Work) -> Callable[[RetryCallState], None]:
        def note(state: RetryCallState) -> None:
            metrics.RETRIES.labels(self.service, self.topic, "handler").inc()
            error = state.outcome.exception() if state.outcome is not None else None
            log.error("handler failed", exc_info=error, extra={"event_id": str(work.envelope.event_id)})

        return note

    async def _until_infra_ok(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` again for as long as an outage stops it; any other error is raised."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TRANSIENT_ERRORS),
            wait=OUTAGE_WAIT,
            before_sleep=self._outage,
            sleep=self.sleep,
            reraise=True,
        )
        async for tried in retrying:
            with tried:
                result = await attempt()
        self.health["infra_ok"] = True
        return result

    def _outage(self, state: RetryCallState) -> None:
        self.health["infra_ok"] = False
        metrics.RETRIES.labels(self.service, self.topic, "infrastructure").inc()
        error = state.outcome.exception() if state.outcome is not None else None
        log.warning("infrastructure unavailable; retrying", extra={"error": repr(error)})

    async def _once(self, work: Work) -> None:
        async with unit_of_work(self.pool, self.notify_channel) as uow:
            if not await uow.first_time(work.envelope.event_id):
                metrics.DUPLICATES.labels(self.service, self.topic).inc()
                return
            await self._run(uow, work)

    async def _batch_once(self, works: Sequence[Work]) -> None:
        async with unit_of_work(self.pool, self.notify_channel) as uow:
            fresh = await uow.first_times([w.envelope.event_id for w in works])
            metrics.BATCH_SIZE.labels(self.service, self.topic).observe(len(works))
            if self.prefetch is not None:
                await self.prefetch(
                    uow,
                    [
                        (w.envelope, w.payload)
                        for w in works
                        if w.payload is not None and w.envelope.event_id in fresh
                    ],
                )
            for work in works:
                if work.envelope.event_id not in fresh:
                    metrics.DUPLICATES.labels(self.service, self.topic).inc()
                    continue
                fresh.discard(work.envelope.event_id)  # the same event twice in one batch
                await self._run(uow, work)

    async def _run(self, uow: UnitOfWork, work: Work) -> None:
        market_id_var.set(work.envelope.market_id)
        correlation_id_var.set(work.envelope.correlation_id)
        appended = _appended_at.set(broker_time(work.record))
        record_age(self.service, "started", (work.record,))
        started = time.perf_counter()
        try:
            await work.step(uow)
        finally:
            _appended_at.reset(appended)
        metrics.HANDLER_SECONDS.labels(self.service, self.topic, work.type_label).observe(
            time.perf_counter() - started
        )

    async def dead_letter(self, record: ConsumerRecord, reason: str, error: str) -> None:
        log.warning(
            "dead-lettered",
            extra={"topic": record.topic, "offset": record.offset, "reason": reason, "error": error[:300]},
        )
        body = dlq_record(record, self.service, reason, error)
        await self.producer.send_and_wait(f"{record.topic}.dlq", value=body, key=record.key)
        metrics.DLQ.labels(self.service, record.topic, reason).inc()
