"""Connections that hold session state: a LISTEN, a session advisory lock.

A service's pool hands its connections back without asyncpg's reset query (`db.create_pool`), so
no pooled connection may keep session state. A job that needs it takes a `session_connection`,
which is closed when the job ends instead of going back to the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg

CLOSE_TIMEOUT_S = 5.0


@contextlib.asynccontextmanager
async def session_connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection of `pool` for session state, closed when done: its locks and LISTENs end with it."""
    async with pool.acquire() as conn:
        try:
            yield conn
        finally:
            try:
                await conn.close(timeout=CLOSE_TIMEOUT_S)
            except Exception:
                conn.terminate()  # broken already; the pool opens a new one when needed
            except asyncio.CancelledError:
                conn.terminate()
                raise
