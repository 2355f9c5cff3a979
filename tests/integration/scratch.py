"""A throwaway PostgreSQL schema with the kernel's tables (and a service's migrations), for kernel
and store tests that need real PostgreSQL but no running service."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from haggle.runtime.db import create_pool, migrate


@asynccontextmanager
async def scratch_schema(
    database_url: str, prefix: str, migrations: Path | None = None, size: int = 4
) -> AsyncIterator[asyncpg.Pool]:
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    pool = await create_pool(database_url, schema, size=size)
    await migrate(pool, schema, migrations)
    try:
        yield pool
    finally:
        await pool.execute(f"DROP SCHEMA {schema} CASCADE")
        await pool.close()
