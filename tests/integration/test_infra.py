"""Integration tests for haggle.infra: a real Kafka broker and PostgreSQL, started and stopped.

They run against their own state folder and ports (29092/29093/25432, or free ones if those
are taken) so they never touch the shared infra on 19092/15432; the Kafka jars are reused
from the main state folder when it has them. Tests run in file order: up, use, errors, down.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from haggle import infra
from haggle.infra.state import Settings, spawn, stop_process
from haggle_lab.testing.ports import free_port

pytestmark = pytest.mark.timeout(300)

TOPIC = "infra.test.roundtrip"
TX_TOPIC = "infra.test.transactions"


def _free_port(preferred: int) -> int:
    """`preferred` if it is free, else one below the ephemeral range (`ports.free_port`)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
        return preferred


def _main_libs() -> Path | None:
    """The main state folder's jars, if already fetched (saves a Maven run)."""
    libs = Settings.from_env().kafka_libs_dir
    return libs if any(libs.glob("kafka_2.13-*.jar")) else None


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    libs = _main_libs()
    state = tmp_path_factory.mktemp("haggle-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
        mp.delenv("DATABASE_URL", raising=False)
        mp.setenv("HAGGLE_STATE_DIR", str(state))
        mp.setenv("HAGGLE_KAFKA_PORT", str(_free_port(29092)))
        mp.setenv("HAGGLE_KAFKA_CONTROLLER_PORT", str(_free_port(29093)))
        mp.setenv("HAGGLE_PG_PORT", str(_free_port(25432)))
        if libs is not None:
            mp.setenv("HAGGLE_KAFKA_LIBS_DIR", str(libs))
        else:
            mp.delenv("HAGGLE_KAFKA_LIBS_DIR", raising=False)
        try:
            yield state
        finally:
            infra.down()


@pytest.fixture(scope="module")
def own_infra(state_dir: Path) -> infra.InfraEndpoints:
    return infra.up()


# --- helpers -----------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """psutil-free: the process exists in /proc and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.parent.name))
    return found


async def _roundtrip(bootstrap: str) -> bytes | None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC, b"ping", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, group_id="infra-test", auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    value: bytes | None = message.value
    return value


async def _transactional_roundtrip(bootstrap: str) -> list[bytes | None]:
    """aiokafka speaks v0 of the transaction APIs; Kafka 3.9 must still accept them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="infra-test-tx")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(TX_TOPIC, b"committed")
        await producer.begin_transaction()
        await producer.send(TX_TOPIC, b"aborted")
        await producer.abort_transaction()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        TX_TOPIC,
        bootstrap_servers=bootstrap,
        group_id="infra-test-tx",
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
    finally:
        await consumer.stop()
    return [m.value for messages in batches.values() for m in messages]


async def _partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described}


async def _select_one(url: str) -> tuple[int, str, str]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow("select 1 as one, current_user as u, current_database() as d")
    finally:
        await conn.close()
    assert row is not None
    return row["one"], row["u"], row["d"]


# --- tests -------------------------------------------------------------------------------


def test_up_twice_is_idempotent(own_infra: infra.InfraEndpoints) -> None:
    before = infra.status()
    again = infra.up()
    after = infra.status()
    assert again == own_infra
    assert all(row.healthy for row in after.values()), after
    assert {k: r.pid for k, r in before.items()} == {k: r.pid for k, r in after.items()}
    port = os.environ["HAGGLE_PG_PORT"]
    assert own_infra.database_url == f"postgresql://haggle:haggle@127.0.0.1:{port}/haggle"
    assert own_infra.kafka_bootstrap == f"127.0.0.1:{os.environ['HAGGLE_KAFKA_PORT']}"


def test_state_layout(own_infra: infra.InfraEndpoints, state_dir: Path) -> None:
    kafka, pg = state_dir / "kafka", state_dir / "postgres"
    for name in ("server.properties", "log4j.properties", "kafka.log", "kafka.pid", "cluster_id"):
        assert (kafka / name).is_file(), name
    assert (kafka / "data" / "meta.properties").is_file()
    assert (pg / "postgres.pid").is_file() and (pg / "postgres.log").is_file()
    assert not (kafka / "cluster_id").read_text().startswith("-")


def test_status_reports_healthy(own_infra: infra.InfraEndpoints) -> None:
    rows = infra.status()
    assert set(rows) == {"kafka", "postgres"}
    for row in rows.values():
        assert row.healthy, row
        assert row.pid is not None and _alive(row.pid)
        assert not row.external


def test_status_works_inside_a_running_event_loop(own_infra: infra.InfraEndpoints) -> None:
    async def inside() -> dict[str, infra.ComponentStatus]:
        return infra.status()

    assert all(row.healthy for row in asyncio.run(inside()).values())


def test_ensure_topics_is_idempotent(own_infra: infra.InfraEndpoints) -> None:
    topics = {TOPIC: 3, TX_TOPIC: 1}
    infra.ensure_topics(own_infra.kafka_bootstrap, topics)
    infra.ensure_topics(own_infra.kafka_bootstrap, topics)
    counts = asyncio.run(_partition_counts(own_infra.kafka_bootstrap, list(topics)))
    assert counts == topics


def test_produce_and_consume(own_infra: infra.InfraEndpoints) -> None:
    infra.ensure_topics(own_infra.kafka_bootstrap, {TOPIC: 3})
    assert asyncio.run(_roundtrip(own_infra.kafka_bootstrap)) == b"ping"


def test_transactions_work(own_infra: infra.InfraEndpoints) -> None:
    infra.ensure_topics(own_infra.kafka_bootstrap, {TX_TOPIC: 1})
    assert asyncio.run(_transactional_roundtrip(own_infra.kafka_bootstrap)) == [b"committed"]


def test_select_one(own_infra: infra.InfraEndpoints) -> None:
    assert asyncio.run(_select_one(own_infra.database_url)) == (1, "haggle", "haggle")


@pytest.mark.parametrize("env_name", ["HAGGLE_KAFKA_PORT", "HAGGLE_PG_PORT"])
def test_port_taken_by_a_stranger(
    own_infra: infra.InfraEndpoints,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env_name: str,
) -> None:
    monkeypatch.setenv("HAGGLE_STATE_DIR", str(tmp_path))
    for name in ("HAGGLE_KAFKA_PORT", "HAGGLE_KAFKA_CONTROLLER_PORT", "HAGGLE_PG_PORT"):
        monkeypatch.setenv(name, str(free_port()))
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        port = stranger.getsockname()[1]
        monkeypatch.setenv(env_name, str(port))
        with pytest.raises(infra.InfraError, match=rf"port {port} is in use.*{env_name}"):
            infra.up()
    assert not (tmp_path / "kafka" / "kafka.pid").exists()
    assert not (tmp_path / "postgres" / "postgres.pid").exists()


def test_down_leaves_no_process(own_infra: infra.InfraEndpoints, state_dir: Path) -> None:
    rows = infra.status()
    pids = {row.pid for row in rows.values() if row.pid is not None}
    pg_pid = rows["postgres"].pid
    assert pg_pid is not None
    pids |= set(_children(pg_pid))
    assert len(pids) > 2  # postmaster children are included
    infra.down()
    assert [pid for pid in pids if _alive(pid)] == []
    assert not (state_dir / "kafka" / "kafka.pid").exists()
    assert not (state_dir / "postgres" / "postgres.pid").exists()
    assert not any(row.healthy for row in infra.status().values())
    infra.down()  # idempotent


def test_stale_pid_files_are_cleaned(own_infra: infra.InfraEndpoints, state_dir: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    kafka_pid = state_dir / "kafka" / "kafka.pid"
    pg_pid = state_dir / "postgres" / "postgres.pid"
    kafka_pid.write_text(f"{dead.pid}\n")
    pg_pid.write_text(f"{os.getpid()}\n")  # alive, but not our postgres: must not be signalled
    rows = infra.status()
    assert rows["kafka"].pid is None and rows["postgres"].pid is None
    assert not kafka_pid.exists() and not pg_pid.exists()
    infra.down()
    assert _alive(os.getpid())


def test_stop_escalates_to_sigkill_for_the_whole_family(tmp_path: Path) -> None:
    """A process ignoring the polite signal, and its child, are both killed after the timeout."""
    script = "trap '' TERM INT; sleep 60 & wait"
    pid = spawn(["bash", "-c", script], tmp_path / "stubborn.log", cwd=tmp_path)
    deadline = time.monotonic() + 5
    while not _children(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    family = [pid, *_children(pid)]
    assert len(family) == 2
    stop_process(pid, signal.SIGTERM, timeout=0.5)
    assert [p for p in family if _alive(p)] == []
