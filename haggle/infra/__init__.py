"""Local infrastructure for haggle: a real Kafka broker and a PostgreSQL server.

Why: the services, the market runner and the integration tests all need the same two
backends without Docker. `up()` starts them detached (they outlive the caller, so a shell,
several pytest sessions and `haggle market run` can share them), `down()` stops them, and
`status()` reports on them; state (jars, data, logs, pid files) lives in one folder,
`$HAGGLE_STATE_DIR` or `<repo>/.haggle`. If KAFKA_BOOTSTRAP_SERVERS or DATABASE_URL is set,
that backend is external: it is checked but never started or stopped here.
"""

from __future__ import annotations

from haggle.infra import kafka, postgres
from haggle.infra.kafka import ensure_all_topics, ensure_topics, ensure_topics_async
from haggle.infra.state import (
    ComponentStatus,
    InfraEndpoints,
    InfraError,
    Progress,
    Settings,
    state_lock,
)

__all__ = [
    "ComponentStatus",
    "InfraEndpoints",
    "InfraError",
    "down",
    "ensure_all_topics",
    "ensure_topics",
    "ensure_topics_async",
    "status",
    "up",
]


def _quiet(_message: str) -> None:
    return None


def up(progress: Progress | None = None, brokers: int | None = None) -> InfraEndpoints:
    """Start whatever is not running yet and wait until both answer; idempotent.

    Every precondition (free ports, java, mvn) is checked before anything starts.
    Kafka is launched first so its JVM warms up while PostgreSQL starts. `brokers` (1 to 5)
    chooses a single broker or a KRaft cluster; without it the last `up`'s choice stands.
    """
    say = progress or _quiet
    settings = Settings.from_env()
    with state_lock(settings):
        if brokers is not None and not settings.external_kafka:
            kafka.set_cluster_size(settings, brokers)
        kafka.preflight(settings)
        postgres.preflight(settings)
        launched = kafka.launch(settings, say)
        database_url = postgres.up(settings, say)
        bootstrap = kafka.wait_ready(settings, launched, say)
    return InfraEndpoints(kafka_bootstrap=bootstrap, database_url=database_url)


def down(progress: Progress | None = None) -> None:
    """Stop our Kafka and PostgreSQL (external ones are left alone) and wait until gone."""
    say = progress or _quiet
    settings = Settings.from_env()
    errors: list[str] = []
    with state_lock(settings):
        for component in (kafka, postgres):
            try:
                component.stop(settings, say)
            except InfraError as exc:
                errors.append(str(exc))
        if not errors:
            kafka.forget_cluster_size(settings)
    if errors:
        raise InfraError("; ".join(errors))


def status() -> dict[str, ComponentStatus]:
    """Health of each component, keyed "kafka" and "postgres"."""
    settings = Settings.from_env()
    return {"kafka": kafka.status(settings), "postgres": postgres.status(settings)}
