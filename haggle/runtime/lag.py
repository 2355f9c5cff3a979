"""Consumer lag: how many messages of each topic a service's consumer group has yet to handle.

The dashboard and the lag alert read `haggle_consumer_lag{service,topic}` whatever the
cluster (local, compose, Strimzi), so each service measures its own group: committed
offsets (what is handled, since offsets are committed after the database commit) against
the partitions' end offsets. Every instance of a service reports the same group's lag,
so queries take the max over instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_fixed

from haggle.runtime.metrics import CONSUMER_LAG

log = logging.getLogger(__name__)

LAG_INTERVAL_S = 5.0
REQUEST_TIMEOUT_S = 10.0


async def handled_offsets(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, group: str, topic: str
) -> dict[TopicPartition, tuple[int, int]] | None:
    """Each partition of `topic`: (offset `group` has handled up to, end offset); None if the topic
    does not exist. The end offsets are asked first, so a record below an end was appended before
    the call began."""
    [described] = await admin.describe_topics([topic])
    if described["error_code"] or not described["partitions"]:
        return None
    tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    ends: dict[TopicPartition, int] = await asyncio.wait_for(consumer.end_offsets(tps), REQUEST_TIMEOUT_S)
    committed = await admin.list_consumer_group_offsets(group, partitions=tps)
    positions: dict[TopicPartition, int] = {tp: c.offset for tp, c in committed.items() if c.offset >= 0}
    # A partition the group never committed is ahead of it from its first retained message.
    unread = [tp for tp in tps if tp not in positions]
    if unread:
        positions |= await asyncio.wait_for(consumer.beginning_offsets(unread), REQUEST_TIMEOUT_S)
    return {tp: (positions[tp], ends[tp]) for tp in tps}


async def group_lag(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, group: str, topic: str
) -> int | None:
    """Messages of `topic` that `group` has not committed yet; None if the topic does not exist."""
    offsets = await handled_offsets(admin, consumer, group, topic)
    if offsets is None:
        return None
    return sum(max(end - handled, 0) for handled, end in offsets.values())


async def _measure_forever(bootstrap: str, service: str, groups: Mapping[str, str], interval: float) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=f"haggle-{service}-lag")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, client_id=f"haggle-{service}-lag", enable_auto_commit=False
    )
    try:
        await admin.start()
        await consumer.start()
        while True:
            for topic, group in groups.items():
                lag = await group_lag(admin, consumer, group, topic)
                if lag is not None:
                    CONSUMER_LAG.labels(service, topic).set(lag)
            await asyncio.sleep(interval)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await admin.close()


def _not_measured(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    log.warning("consumer lag not measured", extra={"error": f"{type(exc).__name__}: {exc}"})


async def monitor(
    bootstrap: str,
    service: str,
    groups: Mapping[str, str],
    interval: float = LAG_INTERVAL_S,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Set the lag gauge of each topic (topic → group id) every `interval` s until cancelled.

    A broker outage only pauses the measurement (it starts again `interval` s later); it never
    stops the service.
    """
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(Exception),  # never CancelledError: stopping ends it
        wait=wait_fixed(interval),
        before_sleep=_not_measured,
        sleep=sleep,
    )
    await retrying(_measure_forever, bootstrap, service, groups, interval)
