"""The agents' principals against real PostgreSQL: which admitted buyers a listing's category
reaches, and a changed mandate read back as changed although the process keeps parsed ones."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from haggle.contracts import AgentKey
from haggle.contracts.mandate import Mandate
from haggle.runtime.db import migrate
from haggle_lab.testing import mandates
from services.agents import app, store
from tests.integration.agents_support import add_principal
from tests.integration.scratch import scratch_schema

pytestmark = pytest.mark.timeout(60)

MIGRATIONS = Path(app.__file__).parent / "migrations"


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema(database_url, "principals", MIGRATIONS) as pool:
        yield pool


def shopper(principal_id: str, *wants: tuple[tuple[str, ...], str | None]) -> Mandate:
    return mandates.buyer(
        principal_id,
        [mandates.want(f"w{i}", 10_000, keywords, category) for i, (keywords, category) in enumerate(wants)],
        100_000,
    )


async def test_a_category_reaches_its_buyers_and_those_of_any_category(pool: asyncpg.Pool) -> None:
    market_id = f"m-{uuid.uuid4().hex[:8]}"
    bikes, anything, tools, both = (f"{market_id}.{n}" for n in ("bikes", "anything", "tools", "both"))
    async with pool.acquire() as conn:
        await add_principal(conn, market_id, shopper(bikes, (("bike",), "bikes")))
        await add_principal(conn, market_id, shopper(anything, (("lamp",), None)))
        await add_principal(conn, market_id, shopper(tools, (("drill",), "tools")))
        await add_principal(conn, market_id, shopper(both, (("drill",), "tools"), (("bike",), "bikes")))
        await add_principal(
            conn, market_id, shopper(f"{market_id}.waiting", (("bike",), "bikes")), admitted=False
        )
        selling = mandates.seller(f"{market_id}.seller", [mandates.sell_item("s1", 5_000, 4_000)])
        await add_principal(conn, market_id, selling)
        await add_principal(conn, "elsewhere", shopper(f"{market_id}.other-market", (("bike",), None)))

        for_bikes = await store.admitted_buyers(conn, market_id, "bikes")
        for_tools = await store.admitted_buyers(conn, market_id, "tools")
        for_books = await store.admitted_buyers(conn, market_id, "books")

    assert [p.principal_id for p in for_bikes] == sorted([bikes, anything, both])
    assert [p.principal_id for p in for_tools] == sorted([anything, both, tools])
    assert [p.principal_id for p in for_books] == [anything]
    by_id = {p.principal_id: p for p in for_bikes}
    assert [w.category for w in by_id[both].mandate.wants] == ["tools", "bikes"], "the whole mandate"
    assert by_id[bikes].agent_id == f"{bikes}.agent" and by_id[bikes].admitted


async def test_a_changed_mandate_is_read_as_changed(pool: asyncpg.Pool) -> None:
    market_id = f"m-{uuid.uuid4().hex[:8]}"
    buyer = f"{market_id}.buyer"
    bikes = mandates.want("w0", 10_000, ("bike",), "bikes")
    async with pool.acquire() as conn:
        await add_principal(conn, market_id, mandates.buyer(buyer, [bikes], 100_000))
        before = await store.principal(conn, buyer)
        assert before is not None
        assert before.amend(mandates.buyer(buyer, [{**bikes, "max_price_cents": 20_000}], 100_000)) == []
        await store.save_mandate(conn, before)
        amended = await store.principal(conn, buyer)
        by_agent = await store.principal_by_agent(conn, f"{buyer}.agent")
        for_bikes = await store.admitted_buyers(conn, market_id, "bikes")

        # The store keeps whatever mandate it is given (amending has rules of its own): new wants
        # take a listing of another category.
        before.mandate = mandates.buyer(buyer, [mandates.want("w0", 10_000, ("drill",), "tools")], 100_000)
        await store.save_mandate(conn, before)
        now_bikes = await store.admitted_buyers(conn, market_id, "bikes")
        now_tools = await store.admitted_buyers(conn, market_id, "tools")

    assert amended is not None and by_agent is not None
    assert [w.max_price_cents for w in amended.mandate.wants] == [20_000]
    assert by_agent.mandate == amended.mandate
    assert [p.mandate for p in for_bikes] == [amended.mandate]
    assert amended.key.public == before.key.public, "the key is the one stored"
    assert now_bikes == []
    assert [p.mandate for p in now_tools] == [before.mandate]


async def test_a_principal_of_the_same_id_elsewhere_is_not_taken_for_this_one(database_url: str) -> None:
    """The process keeps parsed mandates: a principal of the same id in another schema (a test's, a
    restored backup) has a mandate of its own, and each read finds its own."""
    market_id = f"m-{uuid.uuid4().hex[:8]}"
    buyer = f"{market_id}.buyer"
    found = []
    for keywords, category in ((("bike",), "bikes"), (("drill",), "tools")):
        async with scratch_schema(database_url, "principals", MIGRATIONS) as pool, pool.acquire() as conn:
            await add_principal(conn, market_id, shopper(buyer, (keywords, category)))
            found.append(await store.principal(conn, buyer))
    assert [p.mandate.wants[0].category for p in found if p] == ["bikes", "tools"]


async def test_the_migration_fills_in_the_categories_of_principals_stored_before_it(
    database_url: str, tmp_path: Path
) -> None:
    before = tmp_path / "before"
    before.mkdir()
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name < "009":
            shutil.copy(path, before / path.name)
    async with scratch_schema(database_url, "principals", before) as pool:
        market_id = f"m-{uuid.uuid4().hex[:8]}"
        stored = {
            "bikes": shopper("bikes", (("bike",), "bikes"), (("frame",), "bikes"), (("drill",), "tools")),
            "anything": shopper("anything", (("bike",), "bikes"), (("lamp",), None)),
            "seller": mandates.seller("seller", [mandates.sell_item("s1", 5_000, 4_000)]),
        }
        for name, mandate in stored.items():
            await pool.execute(
                "INSERT INTO principals (principal_id, market_id, agent_id, variant, mandate, private_key,"
                " admitted) VALUES ($1, $2, $3, 'linear', $4, $5, true)",
                name,
                market_id,
                f"{name}.agent",
                mandate.model_dump_json(),
                AgentKey.generate().private_bytes(),
            )
        schema = await pool.fetchval("SELECT current_schema()")
        assert await migrate(pool, schema, MIGRATIONS) == [p.name for p in sorted(MIGRATIONS.glob("009*"))]
        rows = {
            r["principal_id"]: r
            for r in await pool.fetch("SELECT principal_id, want_categories, mandate_tag FROM principals")
        }
        async with pool.acquire() as conn:
            for_tools = await store.admitted_buyers(conn, market_id, "tools")

    assert sorted(rows["bikes"]["want_categories"]) == ["bikes", "tools"]
    assert rows["anything"]["want_categories"] is None, "a want of any category"
    assert rows["seller"]["want_categories"] == [], "no wants, no category"
    assert len({r["mandate_tag"] for r in rows.values()}) == len(rows), "a tag of its own each"
    assert [p.principal_id for p in for_tools] == ["anything", "bikes"]
