"""What the listing service's integration tests share: the service as a process, a topic watcher, samples.

Only the listing service is started (not every service in `procs.SERVICES`), and it is stopped
afterwards only if these tests started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer

from haggle import procs
from haggle.client import tail
from haggle.contracts import Envelope, decode
from haggle.contracts.goods import Condition
from haggle.contracts.listing import CreateListing
from haggle.contracts.signing import signing_bytes
from haggle.runtime import operators
from haggle.runtime.operators import operator_envelope

T = TypeVar("T")
LISTING = "listing"
WAIT = 30.0


@contextlib.contextmanager
def listing_service() -> Iterator[str]:
    """The listing service running as its own process; yields its URL."""
    was_running = procs.pid_of(LISTING) is not None
    procs.start(LISTING)
    procs.wait_ready(LISTING)
    try:
        yield procs.url_for(LISTING)
    finally:
        if not was_running:
            procs.stop(LISTING)


@contextlib.contextmanager
def paused(*names: str) -> Iterator[None]:
    """Stop these services if they run (in this state folder), and start them again afterwards.

    For tests that fabricate another service's events: the real settlement service answers a
    fabricated `DealAgreed` with `EscrowFailed` (the buyer has no wallet), which would relist
    the listing under test at a moment the test does not control.
    """
    running = [name for name in names if procs.pid_of(name) is not None]
    for name in running:
        procs.stop(name)
    try:
        yield
    finally:
        for name in running:
            procs.start(name)
        for name in running:
            procs.wait_ready(name)


class Watcher:
    """Everything that arrives on the watched topics from the moment it starts."""

    def __init__(self) -> None:
        self.events: list[Envelope] = []
        self.dead: list[dict[str, Any]] = []

    async def run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=1_000)
            for records in batches.values():
                for record in records:
                    if record.topic.endswith(".dlq"):
                        self.dead.append(orjson.loads(record.value))
                    else:
                        with contextlib.suppress(Exception):
                            self.events.append(decode(record.value))

    def caused_by(self, env: Envelope) -> list[Envelope]:
        return [e for e in self.events if e.causation_id == str(env.event_id)]

    def of(self, listing_id: str, type_name: str) -> list[Envelope]:
        return [e for e in self.events if e.type == type_name and e.payload.get("listing_id") == listing_id]

    async def outcome(self, env: Envelope, timeout: float = WAIT) -> Envelope:
        """The first event the service emitted in answer to `env`."""
        found = await self.wait(lambda e: e.causation_id == str(env.event_id), timeout=timeout)
        return found[0]

    async def wait(
        self, predicate: Callable[[Envelope], bool], count: int = 1, timeout: float = WAIT
    ) -> list[Envelope]:
        async def check() -> list[Envelope] | None:
            found = [e for e in self.events if predicate(e)]
            return found if len(found) >= count else None

        return await eventually(check, timeout, f"{count} matching event(s) on the watched topics")

    async def dead_letter(self, key: str, timeout: float = WAIT) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            return next((d for d in self.dead if d["key"] == key and d["service"] == LISTING), None)

        return await eventually(check, timeout, f"a dead letter keyed {key!r}")


@contextlib.asynccontextmanager
async def watching(bootstrap: str, *topics: str) -> AsyncIterator[Watcher]:
    async with tail(bootstrap, *topics) as consumer:
        watcher = Watcher()
        task = asyncio.create_task(watcher.run(consumer))
        try:
            yield watcher
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f}s for {what}")
        await asyncio.sleep(0.05)


def create_command(listing_id: str, **overrides: Any) -> CreateListing:
    fields: dict[str, Any] = {
        "listing_id": listing_id,
        "seller_agent_id": "seller-1",
        "seller_principal_id": "principal-1",
        "title": "Fender acoustic guitar with case",
        "description": "Plays well; new strings; hard case included.",
        "category": "music",
        "condition": Condition.VERY_GOOD,
        "price_cents": 14_000,
        "item": {"weight_g": 4_500, "dimensions": {"length_mm": 1_100, "width_mm": 450, "height_mm": 150}},
        "shipping": [
            {"method": "parcel_standard", "cost_cents": 1_299},
            {"method": "local_pickup", "cost_cents": 0},
        ],
    }
    return CreateListing.model_validate({**fields, **overrides})


def raw_envelope(market_id: str, payload: dict[str, Any], producer: str = "test") -> Envelope:
    """An envelope around a payload that need not satisfy its contract (what a buggy operator sends).

    It is signed by the operator, so what the listing service answers is about the payload itself."""
    seq = time.time_ns() // 1_000
    signature = operators.private_key().sign(signing_bytes(market_id, operators.OPERATOR_ID, seq, payload))
    return Envelope(
        event_id=uuid.uuid4(),
        type=str(payload["type"]),
        market_id=market_id,
        producer=producer,
        agent_id=operators.OPERATOR_ID,
        seq=seq,
        signature=signature,
        payload=payload,
    )


def envelope(message: Any, market_id: str, producer: str = "test") -> Envelope:
    """A command as the operator signs it (the listing service takes the seller agent's or an operator's)."""
    return operator_envelope(
        message, market_id, producer, correlation_id=getattr(message, "listing_id", None)
    )
