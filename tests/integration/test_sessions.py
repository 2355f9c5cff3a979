"""Pooled connections go back without asyncpg's reset query, so session state lives only on
session connections, which end with their job (haggle.runtime.sessions), on real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from haggle.runtime.sessions import session_connection
from tests.integration.scratch import scratch_schema

pytestmark = pytest.mark.timeout(60)

LOCK = "sessions-test"


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema(database_url, "sessions", size=1) as pool:
        await pool.execute("CREATE TABLE notes (note text NOT NULL)")
        yield pool


async def test_a_session_connection_ends_its_session_and_its_lock_with_it(
    pool: asyncpg.Pool, database_url: str
) -> None:
    async with session_connection(pool) as conn:
        session_pid = conn.get_server_pid()
        assert await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", LOCK)
        await conn.add_listener("sessions_test", lambda *_: None)

    async with pool.acquire() as conn:  # the pool's one connection: a new session
        assert conn.get_server_pid() != session_pid
    other = await asyncpg.connect(database_url)
    try:
        assert await other.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", LOCK)
    finally:
        await other.close()


async def test_a_pooled_connection_comes_back_as_it_went_but_for_a_transaction_left_open(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        pid = conn.get_server_pid()
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO notes (note) VALUES ('never committed')")

    async with pool.acquire() as conn:
        assert conn.get_server_pid() == pid  # kept, not reconnected
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT count(*) FROM notes") == 0
