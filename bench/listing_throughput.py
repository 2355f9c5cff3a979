"""Listing commands handled per second end to end, next to raw Kafka on the same broker, in one run.

End to end: publish N `CreateListing` commands to listing.commands and time until N
`ListingPublished` events for them are read back from listing.events, with the listing
service running as its own process (decode, inbox, validation, PostgreSQL, outbox, relay).
Raw: produce N messages of the same sizes to a 12-partition topic with the same producer
settings and consume them back. The ratio says what the service's guarantees cost.

    .venv/bin/python -m bench.listing_throughput --count 5000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from haggle import infra, procs
from haggle.client import Publisher, tail
from haggle.contracts import Envelope, encode
from haggle.contracts.topics import LISTING_COMMANDS_TOPIC, LISTING_EVENTS_TOPIC, all_topic_partitions
from haggle.runtime.kafka import make_producer
from haggle.runtime.operators import operator_envelope
from haggle_lab.testing.goods import sample_commands

RAW_TOPIC = "bench.raw"
RAW_PARTITIONS = 12
SERVICE = "listing"


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


def commands(count: int, market_id: str) -> list[Envelope]:
    return [operator_envelope(cmd, market_id, "bench") for cmd in sample_commands(count, market_id)]


class Progress:
    """Prints a line at every tenth of the way."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.started, self.next = label, total, time.perf_counter(), 0.1

    def update(self, done: int) -> None:
        if done >= self.total * self.next or done == self.total:
            elapsed = time.perf_counter() - self.started
            print(f"  {self.label}: {done:>7,}/{self.total:,} in {elapsed:6.2f} s", flush=True)
            while self.next <= done / self.total:
                self.next += 0.1


async def drain(
    consumer: AIOKafkaConsumer, want: int, keep: Callable[[bytes], bool], progress: Progress
) -> None:
    seen = 0
    deadline = time.monotonic() + max(120.0, want / 50)
    while seen < want:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{progress.label}: only {seen} of {want} arrived")
        batches = await consumer.getmany(timeout_ms=200, max_records=5_000)
        seen += sum(
            1 for records in batches.values() for r in records if r.value is not None and keep(r.value)
        )
        progress.update(min(seen, want))


async def raw_rate(bootstrap: str, payloads: Sequence[bytes]) -> Rate:
    """Produce the same bytes to a plain topic and consume them back: the broker's own pace."""
    marker = uuid.uuid4().hex.encode()
    values = [marker + p[len(marker) :] for p in payloads]
    producer = make_producer(bootstrap, "bench-raw")
    await producer.start()
    try:
        async with tail(bootstrap, RAW_TOPIC) as consumer:
            started = time.perf_counter()
            sending = asyncio.create_task(_send_all(producer, values))
            await drain(
                consumer, len(values), lambda v: v.startswith(marker), Progress("raw kafka", len(values))
            )
            await sending
            return Rate(len(values), time.perf_counter() - started)
    finally:
        await producer.stop()


async def _send_all(producer: AIOKafkaProducer, values: Sequence[bytes]) -> None:
    futures = [await producer.send(RAW_TOPIC, value, key=str(i).encode()) for i, value in enumerate(values)]
    await asyncio.gather(*futures)


async def service_rate(bootstrap: str, envelopes: Sequence[Envelope], label: str = "listing e2e") -> Rate:
    # Byte checks, not decoding: the reader must not compete with the service for the CPU.
    market = f'"market_id":"{envelopes[0].market_id}"'.encode()

    def published_here(value: bytes) -> bool:
        return market in value and b'"type":"ListingPublished"' in value

    async with tail(bootstrap, LISTING_EVENTS_TOPIC.name) as consumer, Publisher(bootstrap, "bench") as pub:
        started = time.perf_counter()
        keyed = [(str(env.payload["listing_id"]), env) for env in envelopes]
        sending = asyncio.create_task(pub.send_many(LISTING_COMMANDS_TOPIC.name, keyed))
        await drain(consumer, len(envelopes), published_here, Progress(label, len(envelopes)))
        await sending
        return Rate(len(envelopes), time.perf_counter() - started)


async def measure(bootstrap: str, count: int) -> tuple[Rate, Rate, int]:
    print("warming up the listing service (50 creates)…", flush=True)
    await service_rate(bootstrap, commands(50, f"warm-{uuid.uuid4().hex[:6]}"), label="warm-up")
    envelopes = commands(count, f"bench-{uuid.uuid4().hex[:6]}")
    payloads = [encode(env) for env in envelopes]
    size = round(statistics.mean(len(p) for p in payloads))
    print(f"raw aiokafka produce → consume, {count:,} messages of ~{size} bytes:", flush=True)
    raw = await raw_rate(bootstrap, payloads)
    print(f"listing service end to end, {count:,} CreateListing → ListingPublished:", flush=True)
    e2e = await service_rate(bootstrap, envelopes)
    return raw, e2e, size


def report(raw: Rate, e2e: Rate, size: int) -> None:
    print()
    print(f"message size            ~{size} bytes")
    print(f"raw kafka               {raw.per_second:>10,.0f} msg/s   ({raw.count:,} in {raw.seconds:.2f} s)")
    print(f"listing end to end      {e2e.per_second:>10,.0f} cmd/s   ({e2e.count:,} in {e2e.seconds:.2f} s)")
    print(f"ratio e2e / raw         {e2e.per_second / raw.per_second:>10.3f}")


def run(count: int) -> None:
    was_up = all(component.healthy for component in infra.status().values())
    endpoints = infra.up(progress=print)
    bootstrap = endpoints.kafka_bootstrap
    infra.ensure_topics(bootstrap, {**all_topic_partitions(), RAW_TOPIC: RAW_PARTITIONS})
    started_service = procs.pid_of(SERVICE) is None
    procs.start(SERVICE)
    procs.wait_ready(SERVICE)
    try:
        report(*asyncio.run(measure(bootstrap, count)))
    finally:
        if started_service:
            procs.stop(SERVICE)
        if not was_up:
            infra.down(progress=print)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.listing_throughput", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--count", type=int, default=5_000, help="commands (and raw messages) to send")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    run(args.count)


if __name__ == "__main__":
    main()
