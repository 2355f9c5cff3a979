"""haggle.runtime.db against real PostgreSQL: each migration once, atomically, under a lock, per schema."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from haggle.runtime.db import create_pool, migrate, migration_files
from services.listing.app import MIGRATIONS as LISTING_MIGRATIONS

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def schemas(database_url: str) -> AsyncIterator[Callable[[], str]]:
    """Fresh schema names; every one handed out is dropped afterwards."""
    made: list[str] = []

    def new() -> str:
        made.append(f"mig_{uuid.uuid4().hex[:12]}")
        return made[-1]

    yield new
    conn = await asyncpg.connect(database_url)
    try:
        for schema in made:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


def write(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(sql)


async def tables(pool: asyncpg.Pool, schema: str) -> set[str]:
    rows = await pool.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
    )
    return {r["table_name"] for r in rows}


async def versions(pool: asyncpg.Pool) -> list[tuple[int, str]]:
    rows = await pool.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    return [(r["version"], r["name"]) for r in rows]


async def test_a_fresh_schema_gets_kernel_tables_and_every_migration(
    database_url: str, schemas: Callable[[], str], tmp_path: Path
) -> None:
    schema = schemas()
    write(tmp_path, "001_things.sql", "CREATE TABLE things (id int PRIMARY KEY);")
    write(tmp_path, "002_more.sql", "ALTER TABLE things ADD COLUMN name text; CREATE TABLE others (x int);")
    pool = await create_pool(database_url, schema, size=2)
    try:
        applied = await migrate(pool, schema, tmp_path)
        assert applied == ["001_things.sql", "002_more.sql"]
        assert await versions(pool) == [(1, "001_things.sql"), (2, "002_more.sql")]
        expected = {"schema_migrations", "inbox", "outbox", "agents", "agent_seqs", "things", "others"}
        assert await tables(pool, schema) == expected
        assert await tables(pool, "public") & expected == set()
    finally:
        await pool.close()


async def test_running_again_applies_nothing_and_a_new_file_applies_alone(
    database_url: str, schemas: Callable[[], str], tmp_path: Path
) -> None:
    schema = schemas()
    write(tmp_path, "001_things.sql", "CREATE TABLE things (id int PRIMARY KEY);")
    pool = await create_pool(database_url, schema, size=2)
    try:
        assert await migrate(pool, schema, tmp_path) == ["001_things.sql"]
        await pool.execute("INSERT INTO things VALUES (1)")
        assert await migrate(pool, schema, tmp_path) == []
        write(tmp_path, "002_name.sql", "ALTER TABLE things ADD COLUMN name text NOT NULL DEFAULT 'n';")
        assert await migrate(pool, schema, tmp_path) == ["002_name.sql"]
        assert await pool.fetchval("SELECT count(*) FROM things WHERE name = 'n'") == 1
    finally:
        await pool.close()


async def test_a_failing_migration_leaves_nothing_behind(
    database_url: str, schemas: Callable[[], str], tmp_path: Path
) -> None:
    schema = schemas()
    write(tmp_path, "001_good.sql", "CREATE TABLE good (id int);")
    write(tmp_path, "002_bad.sql", "CREATE TABLE half (id int); SELECT * FROM no_such_table;")
    pool = await create_pool(database_url, schema, size=2)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await migrate(pool, schema, tmp_path)
        assert await tables(pool, schema) == set()
        (tmp_path / "002_bad.sql").write_text("CREATE TABLE fixed (id int);")
        assert await migrate(pool, schema, tmp_path) == ["001_good.sql", "002_bad.sql"]
        assert {"good", "fixed"} <= await tables(pool, schema)
        assert "half" not in await tables(pool, schema)
    finally:
        await pool.close()


async def test_bad_numbering_is_refused_before_any_sql_runs(
    database_url: str, schemas: Callable[[], str], tmp_path: Path
) -> None:
    schema = schemas()
    write(tmp_path, "001_first.sql", "CREATE TABLE first (id int);")
    write(tmp_path, "003_third.sql", "CREATE TABLE third (id int);")
    pool = await create_pool(database_url, schema, size=2)
    try:
        with pytest.raises(ValueError, match="missing migration 002"):
            await migrate(pool, schema, tmp_path)
        assert await tables(pool, schema) == set()
    finally:
        await pool.close()


async def test_instances_starting_together_apply_each_migration_once(
    database_url: str, schemas: Callable[[], str], tmp_path: Path
) -> None:
    schema = schemas()
    # Not idempotent SQL: a second run would fail, so a lost race shows as an error.
    write(tmp_path, "001_things.sql", "CREATE TABLE things (id int); SELECT pg_sleep(0.2);")
    write(tmp_path, "002_seed.sql", "INSERT INTO things VALUES (1);")
    pools = await asyncio.gather(*(create_pool(database_url, schema, size=1) for _ in range(4)))
    try:
        results = await asyncio.gather(*(migrate(pool, schema, tmp_path) for pool in pools))
        assert sorted(results, key=len) == [[], [], [], ["001_things.sql", "002_seed.sql"]]
        assert await pools[0].fetchval("SELECT count(*) FROM things") == 1
    finally:
        await asyncio.gather(*(pool.close() for pool in pools))


async def test_schemas_are_independent(database_url: str, schemas: Callable[[], str], tmp_path: Path) -> None:
    first, second = schemas(), schemas()
    write(tmp_path, "001_things.sql", "CREATE TABLE things (id int);")
    pool_a = await create_pool(database_url, first, size=1)
    pool_b = await create_pool(database_url, second, size=1)
    try:
        assert await migrate(pool_a, first, tmp_path) == ["001_things.sql"]
        assert await migrate(pool_b, second, tmp_path) == ["001_things.sql"]
        await pool_a.execute("INSERT INTO things VALUES (1)")
        assert await pool_b.fetchval("SELECT count(*) FROM things") == 0
    finally:
        await pool_a.close()
        await pool_b.close()


async def test_the_listing_service_migrations_apply_to_a_fresh_schema(
    database_url: str, schemas: Callable[[], str]
) -> None:
    schema = schemas()
    pool = await create_pool(database_url, schema, size=1)
    try:
        applied = await migrate(pool, schema, LISTING_MIGRATIONS)
        assert applied == [path.name for _, path in migration_files(LISTING_MIGRATIONS)]
        assert applied[0] == "001_listings.sql"
        assert {"listings", "listing_refusals"} <= await tables(pool, schema)
        with pytest.raises(asyncpg.CheckViolationError):
            await pool.execute(
                "INSERT INTO listings (listing_id, seller_agent_id, seller_principal_id, market_id, title,"
                " description, category, condition, condition_rank, price_cents, currency, facts, status)"
                " VALUES ('L', 's', 'p', 'm', 't', 'd', 'c', 'new', 5, 0, 'USD', '{}', 'active')"
            )
    finally:
        await pool.close()


async def test_an_unsafe_schema_name_never_reaches_sql(database_url: str) -> None:
    with pytest.raises(ValueError, match="invalid schema name"):
        await create_pool(database_url, "x; DROP SCHEMA public CASCADE")
