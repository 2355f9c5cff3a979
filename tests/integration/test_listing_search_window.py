"""Text search's recency window (services/listing/store.search) against real PostgreSQL.

A market of 600 listings, one a minute: every title says "lamp", the five oldest also say
"heirloom". With the window shrunk to the newest 300 listings, a common word is ranked among
those only (and pages through exactly them), while a word too rare inside the window is still
found among every listing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import orjson
import pytest

from bench.scale_search import COLUMNS  # the rows' columns, as the 1M-listing benchmark copies them
from haggle.runtime.db import create_pool, migrate
from services.listing import store
from services.listing.store import SearchQuery

pytestmark = pytest.mark.timeout(120)

LISTINGS = 600
WINDOW = 300
EPOCH = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def row(market_id: str, i: int) -> tuple[object, ...]:
    """Listing i was created i minutes after the first; the five oldest are heirlooms."""
    lid = f"{market_id}-L{i:04d}"
    title = f"{'heirloom ' if i < 5 else ''}brass lamp number {i}"
    facts = orjson.dumps({"listing_id": lid, "title": title}).decode()
    created = EPOCH + dt.timedelta(minutes=i)
    return (
        lid,
        "s.agent",
        "s",
        market_id,
        title,
        "A lamp.",
        "home",
        "good",
        3,
        1_000 + i,
        "EUR",
        facts,
        "active",
        created,
    )


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, "listing", size=2)
    await migrate(pool, "listing", Path(store.__file__).parent / "migrations")
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def market(pool: asyncpg.Pool) -> AsyncIterator[str]:
    market_id = f"window-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "listings",
            schema_name="listing",
            columns=COLUMNS,
            records=[row(market_id, i) for i in range(LISTINGS)],
        )
    yield market_id
    await pool.execute("DELETE FROM listing.listings WHERE market_id = $1", market_id)


@pytest.fixture(autouse=True)
def small_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "RECENT_WINDOW", WINDOW)
    monkeypatch.setattr(store, "WINDOW_MIN_MATCHES", 20)
    monkeypatch.setattr(store, "_window_starts", {})


def number(found: dict[str, object]) -> int:
    return int(str(found["listing_id"]).rsplit("L", 1)[1])


async def test_a_common_word_pages_through_exactly_the_newest_window(pool: asyncpg.Pool, market: str) -> None:
    pages = [
        await store.search(pool, SearchQuery(market_id=market, text="lamp", limit=100, offset=offset))
        for offset in range(0, 400, 100)
    ]
    found = [number(f) for page in pages for f in page]

    assert [len(p) for p in pages] == [100, 100, 100, 0]
    assert sorted(found) == list(range(LISTINGS - WINDOW, LISTINGS)), "not the newest 300, each once"


async def test_a_word_too_rare_in_the_window_is_found_among_every_listing(
    pool: asyncpg.Pool, market: str
) -> None:
    found = await store.search(pool, SearchQuery(market_id=market, text="heirloom", limit=50))

    assert sorted(number(f) for f in found) == [0, 1, 2, 3, 4]


async def test_without_a_window_a_common_word_ranks_the_newest_candidates(
    pool: asyncpg.Pool, market: str
) -> None:
    """A market smaller than the window (here: the window made larger) takes the plain path."""
    store.RECENT_WINDOW = LISTINGS + 1
    found = await store.search(pool, SearchQuery(market_id=market, text="lamp", limit=200))

    assert len(found) == 200, "the plain path ranks up to RANKED_CANDIDATES matches, older ones too"
    assert min(number(f) for f in found) < LISTINGS - WINDOW
