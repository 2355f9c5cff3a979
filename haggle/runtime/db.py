"""PostgreSQL: a pool per service schema and a runner for numbered SQL migrations.

Each service owns one schema. The kernel's own tables (inbox, outbox) are the
first migration of every schema, so the inbox/outbox pattern is the same code
in every service.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import asyncpg

from haggle.runtime.identity import IDENTITY_SQL

log = logging.getLogger(__name__)

_SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")

KERNEL_SQL = """
CREATE TABLE IF NOT EXISTS inbox (
    event_id    uuid PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS outbox (
    id         bigserial PRIMARY KEY,
    event_id   uuid NOT NULL UNIQUE,
    topic      text NOT NULL,
    key        text NOT NULL,
    payload    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
"""


def check_schema(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


async def _keep_session(_: asyncpg.Connection) -> None:
    """A pooled connection goes back as it is: it carries no session state (no SET, LISTEN or session
    lock: those live on `sessions.session_connection`s, never reused), and asyncpg rolls back a transaction
    left open in any case. That saves asyncpg's reset query (`pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`), a round trip at the end of every transaction."""


async def create_pool(url: str, schema: str, size: int = 8) -> asyncpg.Pool:
    """A pool whose connections see only `schema` (then public)."""
    check_schema(schema)
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    except asyncpg.UniqueViolationError:
        pass  # two instances creating the schema at once
    finally:
        await admin.close()
    pool = await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=size,
        server_settings={"search_path": f"{schema},public", "application_name": f"haggle-{schema}"},
        reset=_keep_session,
    )
    assert pool is not None
    return pool


def migration_files(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise ValueError(f"migration {path.name} is not named NNN_name.sql")
        found.append((int(match.group(1)), path))
    numbers = [n for n, _ in found]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"duplicate migration numbers in {directory}")
    # Contiguous from 001: a gap is how a migration lands after a later one was applied elsewhere.
    for expected, number in enumerate(numbers, start=1):
        if number != expected:
            raise ValueError(f"missing migration {expected:03d} in {directory}; numbering must start at 001")
    return found


async def migrate(pool: asyncpg.Pool, schema: str, directory: Path | None) -> list[str]:
    """Apply the kernel tables and every not-yet-applied migration, once, under a lock."""
    check_schema(schema)
    applied: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version int PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.execute(KERNEL_SQL)
        await conn.execute(IDENTITY_SQL)
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for number, path in migration_files(directory) if directory else []:
            if number in done:
                continue
            await conn.execute(path.read_text())
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", number, path.name
            )
            applied.append(path.name)
    if applied:
        log.info("migrations applied", extra={"schema": schema, "applied": applied})
    return applied
