"""A three-broker KRaft cluster from `haggle.infra`: replicated topics, and a leader killed while
an acks=all producer writes loses no acknowledged write.

Own state folder and ports (like test_infra.py), so it never touches the session's broker.
Marked slow and `cluster`: three JVMs start on a small machine (about 70 s at load average 11).
`make test-cluster` runs it alone. It once failed on this 2-core machine because a restart after
kill -9 outlasted the 180 s wait at load average 40 (every log recovered, JIT warm-up: now half
the CPU, see `kafka.CLUSTER_JIT`), and because a check asked one random broker, which may not
have applied the latest metadata yet (now every broker, `kafka.cluster_view`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from haggle import infra
from haggle.contracts.topics import NEGOTIATION_COMMANDS
from haggle.infra import kafka
from haggle.infra.state import Settings
from haggle.runtime.kafka import make_producer
from haggle_lab.chaos import leaders

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(600)]

TOPIC = NEGOTIATION_COMMANDS.name


def _free_base(preferred: int) -> int:
    """A port p with p, p+100 and p+200 free (the three nodes')."""
    for base in range(preferred, preferred + 50):
        ports = [base + i * kafka.BROKER_PORT_STEP for i in range(3)]
        if all(_free(p) for p in ports):
            return base
    raise RuntimeError("no free port triple")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[infra.InfraEndpoints]:
    libs = Settings.from_env().kafka_libs_dir
    state = tmp_path_factory.mktemp("haggle-cluster")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "HAGGLE_KAFKA_BROKERS"):
            mp.delenv(name, raising=False)
        mp.setenv("HAGGLE_STATE_DIR", str(state))
        mp.setenv("HAGGLE_KAFKA_PORT", str(_free_base(29392)))
        mp.setenv("HAGGLE_KAFKA_CONTROLLER_PORT", str(_free_base(29393 + 20)))
        if any(Path(libs).glob("kafka_2.13-*.jar")):
            mp.setenv("HAGGLE_KAFKA_LIBS_DIR", str(libs))
        settings = Settings.from_env()
        try:  # Kafka only: these tests need no database
            kafka.set_cluster_size(settings, 3)
            address = kafka.wait_ready(settings, kafka.launch(settings, print), print)
            yield infra.InfraEndpoints(address, "")
        finally:
            kafka.stop(settings, print)
            kafka.forget_cluster_size(settings)


@pytest.fixture(autouse=True)
def quiet_aiokafka() -> Iterator[None]:
    """Clients log every refused connection to the killed broker at ERROR."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


async def _replication(bootstrap: str) -> tuple[int, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([TOPIC])
        replicas = {len(p["replicas"]) for p in described[0]["partitions"]}
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC)])
        entries = {e[0]: e[1] for e in response.resources[0][4]}
        assert len(replicas) == 1
        return replicas.pop(), entries["min.insync.replicas"]
    finally:
        await admin.close()


def test_three_brokers_and_replicated_topics(cluster: infra.InfraEndpoints) -> None:
    assert len(cluster.kafka_bootstrap.split(",")) == 3
    assert kafka.probe(cluster.kafka_bootstrap, brokers=3) is None
    assert infra.ensure_all_topics(cluster.kafka_bootstrap) == 3
    assert asyncio.run(_replication(cluster.kafka_bootstrap)) == (3, "2")
    status = kafka.status(Settings.from_env())
    assert status.healthy and "3 of 3 brokers" in status.detail


async def _write_through_a_leader_kill(bootstrap: str) -> tuple[leaders.LeaderKill, set[bytes], set[bytes]]:
    producer = make_producer(bootstrap, "cluster-test")
    await producer.start()
    acked: set[bytes] = set()
    stop = asyncio.Event()

    async def write() -> None:
        n = 0
        while not stop.is_set():
            value = f"m{n}".encode()
            n += 1
            try:
                await producer.send_and_wait(TOPIC, value, key=b"busy")  # one key: one partition
                acked.add(value)
            except Exception:  # not acknowledged: it may or may not be there, and need not be
                await asyncio.sleep(0.1)

    writer = asyncio.create_task(write())
    await asyncio.sleep(2)
    try:
        killed = await leaders.kill_busiest_leader([TOPIC], pause=1.0)
        await asyncio.sleep(1)
    finally:
        stop.set()
        await writer
        await producer.stop()
    return killed, acked, await _read_all(bootstrap)


async def _read_all(bootstrap: str) -> set[bytes]:
    parts = [TopicPartition(t, p) for t, p in await leaders.describe(bootstrap, [TOPIC])]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        begins = await consumer.beginning_offsets(parts)
        for tp in parts:
            consumer.seek(tp, begins[tp])
        found: set[bytes] = set()
        behind = {tp for tp in parts if begins[tp] < ends[tp]}
        deadline = asyncio.get_running_loop().time() + 120
        while behind and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(*behind, timeout_ms=1000)).values():
                found |= {r.value for r in records if r.value is not None}
            behind = {tp for tp in behind if await consumer.position(tp) < ends[tp]}
        return found
    finally:
        await consumer.stop()


def test_no_acknowledged_write_is_lost_when_the_leader_is_killed(cluster: infra.InfraEndpoints) -> None:
    infra.ensure_all_topics(cluster.kafka_bootstrap)
    killed, acked, found = asyncio.run(_write_through_a_leader_kill(cluster.kafka_bootstrap))
    assert killed.topic == TOPIC and killed.failover_seconds < killed.replicated_seconds
    assert len(acked) > 10
    assert acked <= found, f"{len(acked - found)} acknowledged writes lost"
    assert kafka.probe(cluster.kafka_bootstrap, brokers=3) is None  # the killed node is back
