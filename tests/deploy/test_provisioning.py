"""The deploy's one-shot steps through the CLI, as the migration Job and compose run them:
`haggle topics ensure` (partitions and config from the registry, idempotent) and
`haggle migrate` (each service's schema)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from haggle.contracts.topics import LISTING_EVENTS_TOPIC, all_topic_partitions, topic_configs
from haggle.infra import InfraEndpoints, ensure_topics

pytestmark = pytest.mark.timeout(180)

HAGGLE = Path(sys.executable).with_name("haggle")


def haggle(
    endpoints: InfraEndpoints, *args: str, database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{HAGGLE.parent}:/usr/bin:/bin",
        "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
        "DATABASE_URL": database_url or endpoints.database_url,
        "COLUMNS": "200",  # rich wraps its error boxes at the terminal width
    }
    return subprocess.run(
        [str(HAGGLE), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


async def describe(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        [(_code, _message, _type, _name, entries)] = response.resources
        return {entry[0]: entry[1] for entry in entries}
    finally:
        await admin.close()


async def alter(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
    finally:
        await admin.close()


async def test_topics_ensure_applies_the_registry_config_to_existing_topics(
    endpoints: InfraEndpoints,
) -> None:
    topic = LISTING_EVENTS_TOPIC.name
    wanted = topic_configs()[topic]["retention.ms"]
    await alter(endpoints.kafka_bootstrap, topic, {"retention.ms": "3600000", "max.message.bytes": "2000000"})
    assert (await describe(endpoints.kafka_bootstrap, topic))["retention.ms"] == "3600000"
    for _ in range(2):  # idempotent: the second run finds nothing to do
        done = await asyncio.to_thread(haggle, endpoints, "topics", "ensure")
        assert done.returncode == 0, done.stderr
        assert f"{len(all_topic_partitions())} topics present" in done.stdout
    configs = await describe(endpoints.kafka_bootstrap, topic)
    assert configs["retention.ms"] == wanted
    assert configs["max.message.bytes"] == "2000000", "an override the registry does not manage is kept"


async def test_new_topics_are_created_with_their_config(endpoints: InfraEndpoints) -> None:
    topic = f"t-deploy-{uuid.uuid4().hex[:8]}"
    configs = {topic: {"retention.ms": "7200000", "cleanup.policy": "delete"}}
    await asyncio.to_thread(ensure_topics, endpoints.kafka_bootstrap, {topic: 2}, configs)
    described = await describe(endpoints.kafka_bootstrap, topic)
    assert described["retention.ms"] == "7200000"
    assert described["cleanup.policy"] == "delete"


@pytest.fixture
def scratch_database(endpoints: InfraEndpoints) -> Iterator[str]:
    """An empty database on the same server, dropped afterwards."""
    name = f"deploy_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(endpoints.database_url, f"CREATE DATABASE {name}"))
    yield endpoints.database_url.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(_admin(endpoints.database_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def test_migrate_creates_each_named_schema_once(endpoints: InfraEndpoints, scratch_database: str) -> None:
    first = haggle(endpoints, "migrate", "listing", database_url=scratch_database)
    assert first.returncode == 0, first.stderr
    assert "listing: 001_" in first.stdout
    again = haggle(endpoints, "migrate", "listing", database_url=scratch_database)
    assert again.returncode == 0, again.stderr
    assert "listing: up to date" in again.stdout

    async def applied() -> list[str]:
        conn = await asyncpg.connect(scratch_database)
        try:
            rows = await conn.fetch("SELECT name FROM listing.schema_migrations ORDER BY version")
            return [r["name"] for r in rows]
        finally:
            await conn.close()

    names = asyncio.run(applied())
    assert names and names[0].startswith("001_")


def test_migrate_refuses_an_unknown_service_before_touching_the_database(endpoints: InfraEndpoints) -> None:
    done = haggle(endpoints, "migrate", "listing", "warehouse")
    assert done.returncode == 2
    assert "unknown service 'warehouse'" in done.stderr


def test_migrate_reports_an_unreachable_database(endpoints: InfraEndpoints) -> None:
    done = haggle(
        endpoints, "migrate", "listing", database_url="postgresql://haggle:haggle@127.0.0.1:1/haggle"
    )
    assert done.returncode == 1
    assert "migration failed" in done.stdout
