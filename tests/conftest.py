"""Test set-up: the real Kafka and PostgreSQL from `haggle.infra`, services as real processes.

Every test gets its own market id, so tests share the broker, the database
and the running services without seeing each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from haggle import infra, procs
from haggle.contracts.topics import all_topic_partitions, topic_configs
from haggle.infra import InfraEndpoints
from haggle.runtime import settings as runtime_settings


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """The process's settings read again for each test, so an environment a test sets (and
    monkeypatch restores) is the one the code under test reads."""
    runtime_settings.current.cache_clear()
    yield
    runtime_settings.current.cache_clear()


@pytest.fixture(scope="session")
def endpoints() -> Iterator[InfraEndpoints]:
    """Kafka and PostgreSQL, started if needed (idempotent), with every topic created.

    HAGGLE_TEST_INFRA=containers starts both as containers through testcontainers instead
    (tests/containers/engine.py, podman) and points everything the session starts at them.
    """
    if os.environ.get("HAGGLE_TEST_INFRA") == "containers":
        from tests.containers import engine

        with engine.container_infra() as found, _pointed_at(found):
            infra.ensure_topics(found.kafka_bootstrap, all_topic_partitions(), topic_configs())
            yield found
        return
    found = infra.up()
    infra.ensure_all_topics(found.kafka_bootstrap)
    yield found


@contextmanager
def _pointed_at(found: InfraEndpoints) -> Iterator[None]:
    """External endpoints for this process and the services it spawns (haggle.infra's env vars)."""
    wanted = {"KAFKA_BOOTSTRAP_SERVERS": found.kafka_bootstrap, "DATABASE_URL": found.database_url}
    before = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    runtime_settings.current.cache_clear()
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def bootstrap(endpoints: InfraEndpoints) -> str:
    return endpoints.kafka_bootstrap


@pytest.fixture(scope="session")
def database_url(endpoints: InfraEndpoints) -> str:
    return endpoints.database_url


@pytest.fixture(scope="session")
def running_services(endpoints: InfraEndpoints) -> Iterator[tuple[str, ...]]:
    """Every service as a background process, ready; stopped at the end of the session."""
    procs.start_all(restart=True)  # a service left over from an earlier run would run old code
    yield procs.SERVICES
    for name in reversed(procs.SERVICES):
        procs.stop(name)


@pytest.fixture
def market_id() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"
