"""Who leads which partition of a local Kafka cluster, and the kill -9 of the busiest leader.

The monkey's `leader kill` and `bench leader_kills` use it: sample the end offsets of the
given topics twice, pick the partition that grew most, kill -9 the broker leading it, wait
until another broker leads it (the failover), restart the killed broker after a pause, and
wait until it is back in the in-sync replicas of every partition (fully replicated again).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from haggle.infra import kafka
from haggle.infra.state import InfraError, Settings, run_sync

Partition = tuple[str, int]


@dataclass(frozen=True)
class LeaderKill:
    topic: str
    partition: int
    node_id: int
    failover_seconds: float
    """From the kill until another broker leads the partition."""
    replicated_seconds: float
    """From the kill until the restarted broker is in sync on every partition again."""


async def describe(bootstrap: str, topics: list[str]) -> dict[Partition, tuple[int, list[int]]]:
    """(topic, partition) → (leader node id or -1, in-sync replicas)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
    await admin.start()
    try:
        found = {}
        for topic in await admin.describe_topics(topics):
            for p in topic.get("partitions") or []:
                found[(topic["topic"], p["partition"])] = (p["leader"], list(p["isr"]))
        return found
    finally:
        await admin.close()


async def busiest(bootstrap: str, topics: list[str], sample: float = 1.0) -> Partition:
    """The partition whose end offset grew most over `sample` seconds (the largest if none grew)."""
    parts = [TopicPartition(t, p) for t, p in await describe(bootstrap, topics)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        before = await consumer.end_offsets(parts)
        await asyncio.sleep(sample)
        after = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    best = max(parts, key=lambda tp: (after[tp] - before[tp], after[tp]))
    return best.topic, best.partition


async def _wait(bootstrap: str, topics: list[str], done: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = await describe(bootstrap, topics)
            if callable(done) and done(state):
                return
        except Exception:  # a broker that just died makes metadata calls fail for a moment
            pass
        if time.monotonic() > deadline:
            raise InfraError(f"Kafka cluster not recovered after {timeout:.0f}s")
        await asyncio.sleep(0.2)


async def kill_busiest_leader(topics: list[str], pause: float, timeout: float = 180.0) -> LeaderKill:
    settings = Settings.from_env()
    if settings.external_kafka or kafka.cluster_size(settings) < 2:
        raise InfraError("a leader kill needs a local cluster: `haggle infra up --brokers 3`")
    bootstrap = kafka.bootstrap_address(settings)
    topic, partition = await busiest(bootstrap, topics)
    leader = (await describe(bootstrap, [topic]))[(topic, partition)][0]
    started = time.monotonic()
    await asyncio.to_thread(kafka.kill_node, settings, leader)

    def failed_over(state: dict[Partition, tuple[int, list[int]]]) -> bool:
        now_leader = state[(topic, partition)][0]
        return now_leader not in (-1, leader)

    await _wait(bootstrap, [topic], failed_over, timeout)
    failover = time.monotonic() - started
    await asyncio.sleep(max(0.0, pause - failover))
    await asyncio.to_thread(kafka.start_node, settings, kafka.node(settings, leader), _quiet)

    def in_sync(state: dict[Partition, tuple[int, list[int]]]) -> bool:
        return all(leader in isr and lead >= 0 for lead, isr in state.values())

    await _wait(bootstrap, topics, in_sync, timeout)
    return LeaderKill(topic, partition, leader, failover, time.monotonic() - started)


def kill_busiest_leader_sync(topics: list[str], pause: float) -> LeaderKill:
    return run_sync(lambda: kill_busiest_leader(topics, pause))


def _quiet(_message: str) -> None:
    return None
