"""One message in: decode → dedupe → handle → commit, with typed failures.

- Bytes that are not an envelope go to `<topic>.dlq` with the reason.
- A sound envelope with a bad payload goes to the service's `on_invalid`
  (a typed refusal to its sender) or, without one, to the DLQ.
- A handler that fails is retried up to a cap, then dead-lettered.
- A database or broker outage is not the message's fault: it is retried
  until the infrastructure is back, and the service reports not ready.
The caller acknowledges the Kafka offset only after this returns.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from haggle.contracts import Envelope, InvalidPayload, MalformedMessage, Message, decode, payload_of
from haggle.runtime import metrics
from haggle.runtime.logs import correlation_id_var, market_id_var
from haggle.runtime.outbox import UnitOfWork, unit_of_work

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, Envelope, Any], Awaitable[None]]
InvalidHandler = Callable[[UnitOfWork, InvalidPayload], Awaitable[None]]

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

    async def handle(self, record: ConsumerRecord) -> None:
        try:
            envelope = decode(record.value)
        except MalformedMessage as exc:
            await self.dead_letter(record, "malformed", str(exc))
            return
        model = self._model_for(envelope.type)
        if model is None and not self.commands:
            metrics.MESSAGES_IN.labels(self.service, self.topic, "ignored").inc()
            return
        # A hostile sender picks `type`: only known types become label values.
        type_label = envelope.type if model is not None else "unknown"
        metrics.MESSAGES_IN.labels(self.service, self.topic, type_label).inc()
        market_id_var.set(envelope.market_id)
        correlation_id_var.set(envelope.correlation_id)
        try:
            payload = payload_of(envelope, self._accepted)
        except InvalidPayload as exc:
            await self._refuse_invalid(record, exc)
            return
        await self._with_retries(
            record, envelope, lambda uow: self.handlers[type(payload)](uow, envelope, payload)
        )

    def __post_init__(self) -> None:
        self._models: dict[str, type[Message]] = {m.model_fields["type"].default: m for m in self.handlers}
        self._accepted = tuple(self.handlers)

    def _model_for(self, type_name: str) -> type[Message] | None:
        return self._models.get(type_name)

    async def _refuse_invalid(self, record: ConsumerRecord, exc: InvalidPayload) -> None:
        if self.on_invalid is None:
            await self.dead_letter(record, "invalid_payload", str(exc))
            return
        on_invalid = self.on_invalid
        await self._with_retries(record, exc.envelope, lambda uow: on_invalid(uow, exc))

    async def _with_retries(
        self,
        record: ConsumerRecord,
        envelope: Envelope,
        step: Callable[[UnitOfWork], Awaitable[None]],
    ) -> None:
        failures, outage = 0, 0
        while True:
            started = time.perf_counter()
            try:
                await self._once(envelope, step)
                self.health["infra_ok"] = True
                type_label = envelope.type if self._model_for(envelope.type) else "unknown"
                metrics.HANDLER_SECONDS.labels(self.service, self.topic, type_label).observe(
                    time.perf_counter() - started
                )
                return
            except TRANSIENT_ERRORS as exc:
                outage += 1
                self.health["infra_ok"] = False
                metrics.RETRIES.labels(self.service, self.topic, "infrastructure").inc()
                log.warning("infrastructure unavailable; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(min(5.0, 0.1 * 2 ** min(outage, 6)))
            except Exception as exc:
                failures += 1
                metrics.RETRIES.labels(self.service, self.topic, "handler").inc()
                log.exception("handler failed", extra={"event_id": str(envelope.event_id)})
                if failures >= self.max_attempts:
                    await self.dead_letter(record, "handler_failed", repr(exc))
                    return
                await asyncio.sleep(0.05 * 2**failures)

    async def _once(self, envelope: Envelope, step: Callable[[UnitOfWork], Awaitable[None]]) -> None:
        async with unit_of_work(self.pool, self.notify_channel) as uow:
            if not await uow.first_time(envelope.event_id):
                metrics.DUPLICATES.labels(self.service, self.topic).inc()
                return
            await step(uow)

    async def dead_letter(self, record: ConsumerRecord, reason: str, error: str) -> None:
        log.warning(
            "dead-lettered",
            extra={"topic": record.topic, "offset": record.offset, "reason": reason, "error": error[:300]},
        )
        body = dlq_record(record, self.service, reason, error)
        await self.producer.send_and_wait(f"{record.topic}.dlq", value=body, key=record.key)
        metrics.DLQ.labels(self.service, record.topic, reason).inc()
