"""haggle_consumer_lag, which the dashboard and the lag alert read: measured right on a real
broker, and exported by a running service for each topic it consumes."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from haggle import procs
from haggle.infra import InfraEndpoints, ensure_topics_async
from haggle.runtime.lag import LAG_INTERVAL_S, group_lag

pytestmark = pytest.mark.timeout(120)


async def test_lag_counts_uncommitted_messages_per_partition(endpoints: InfraEndpoints) -> None:
    bootstrap = endpoints.kafka_bootstrap
    topic, group = f"t-lag-{uuid.uuid4().hex[:8]}", f"g-lag-{uuid.uuid4().hex[:8]}"
    await ensure_topics_async(bootstrap, {topic: 2})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for partition, count in ((0, 5), (1, 3)):
            for i in range(count):
                await producer.send_and_wait(topic, f"m{i}".encode(), partition=partition)
    finally:
        await producer.stop()
    committer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await committer.start()
    try:
        committer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        await committer.commit({TopicPartition(topic, 0): OffsetAndMetadata(2, "")})
    finally:
        await committer.stop()

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await reader.start()
    try:
        # partition 0: 5 written, 2 committed; partition 1: nothing committed, 3 retained
        assert await group_lag(admin, reader, group, topic) == 3 + 3
        assert await group_lag(admin, reader, group, "t-lag-no-such-topic") is None
    finally:
        await reader.stop()
        await admin.close()


def lag_samples(text: str, service: str) -> dict[str, float]:
    pattern = re.compile(rf'^haggle_consumer_lag{{service="{service}",topic="([^"]+)"}} (\S+)$', re.M)
    return {topic: float(value) for topic, value in pattern.findall(text)}


async def test_a_running_service_exports_the_lag_of_every_topic_it_consumes(
    running_services: tuple[str, ...],
) -> None:
    from services.listing.app import subscriptions

    wanted = {sub.topic for sub in subscriptions()}
    deadline = time.monotonic() + 4 * LAG_INTERVAL_S + 10
    async with httpx.AsyncClient() as client:
        while True:
            text = (await client.get(f"{procs.url_for('listing')}/metrics", timeout=5)).text
            found = lag_samples(text, "listing")
            if set(found) >= wanted or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    assert set(found) >= wanted, f"lag exported for {sorted(found)}, wanted {sorted(wanted)}"
    assert all(value >= 0 for value in found.values())
