"""Who leads which partition of a local Kafka cluster, and the kill -9 of the busiest leader.

The monkey's `leader kill` and `bench leader_kills` use it: sample the end offsets of the
given topics twice, pick the partition that grew most, kill -9 the broker leading it, wait
until another broker leads it (the failover), restart the killed broker after a pause, and
wait until it is back in the in-sync replicas of every partition (fully replicated again).
Every wait asks every broker (`kafka.cluster_view`), never one at random: a broker that has not
applied the latest metadata yet answers with an old in-sync set or without the topic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from haggle.infra import kafka
from haggle.infra.state import InfraError, Settings, run_sync

Partition = kafka.Partition
DESCRIBE_TIMEOUT_S = 60.0


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
    """(topic, partition) → (leader node id or -1, in-sync replicas), as every live broker reports
    it; waits (up to DESCRIBE_TIMEOUT_S) while they disagree or one does not know a topic yet."""
    view = await _wait(bootstrap, topics, lambda _view: True, DESCRIBE_TIMEOUT_S)
    return {part: (leader, list(isr)) for part, (leader, isr) in view.partitions.items()}


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


async def _wait(
    bootstrap: str, topics: list[str], done: Callable[[kafka.ClusterView], bool], timeout: float
) -> kafka.ClusterView:
    """The first view every live broker agrees on that satisfies `done`."""
    deadline = time.monotonic() + timeout
    while True:
        view = await kafka.cluster_view(bootstrap, topics)
        if view is not None and done(view):
            return view
        if time.monotonic() > deadline:
            raise InfraError(f"Kafka cluster not recovered after {timeout:.0f}s")
        await asyncio.sleep(0.2)


def fully_replicated(brokers: int) -> Callable[[kafka.ClusterView], bool]:
    """Every broker is listed (registered and unfenced), and every partition's in-sync set is whole:
    all of its replicas (`MAX_REPLICAS` of them at most, so with 4 or 5 brokers not every broker)."""
    replicas = min(brokers, kafka.MAX_REPLICAS)

    def check(view: kafka.ClusterView) -> bool:
        members = set(view.brokers)
        return len(members) == brokers and all(
            leader >= 0 and len(set(isr)) == replicas and set(isr) <= members
            for leader, isr in view.partitions.values()
        )

    return check


async def kill_busiest_leader(topics: list[str], pause: float, timeout: float = 180.0) -> LeaderKill:
    """Never while a broker is still out of sync: two brokers down would be two faults at once
    (and, with `min.insync.replicas=2`, no partition could take a write)."""
    settings = Settings.from_env()
    if settings.external_kafka or kafka.cluster_size(settings) < 2:
        raise InfraError("a leader kill needs a local cluster: `haggle infra up --brokers 3`")
    bootstrap = kafka.bootstrap_address(settings)
    brokers = kafka.cluster_size(settings)
    await _wait(bootstrap, topics, fully_replicated(brokers), timeout)
    topic, partition = await busiest(bootstrap, topics)
    leader = (await describe(bootstrap, [topic]))[(topic, partition)][0]
    started = time.monotonic()
    await asyncio.to_thread(kafka.kill_node, settings, leader)

    def failed_over(view: kafka.ClusterView) -> bool:
        return view.partitions[(topic, partition)][0] not in (-1, leader)

    await _wait(bootstrap, [topic], failed_over, timeout)
    failover = time.monotonic() - started
    await asyncio.sleep(max(0.0, pause - failover))
    await asyncio.to_thread(kafka.start_node, settings, kafka.node(settings, leader), _quiet)
    await _wait(bootstrap, topics, fully_replicated(brokers), timeout)
    return LeaderKill(topic, partition, leader, failover, time.monotonic() - started)


def kill_busiest_leader_sync(topics: list[str], pause: float) -> LeaderKill:
    return run_sync(lambda: kill_busiest_leader(topics, pause))


def _quiet(_message: str) -> None:
    return None
