"""The listing service's SQL (asyncpg)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import asyncpg
import orjson

from haggle.contracts.goods import Condition
from haggle.contracts.listing import ListingFacts, ListingPublished, ListingStatus
from services.listing.domain import Listing


async def load(conn: asyncpg.Connection, listing_id: str) -> Listing | None:
    row = await conn.fetchrow(
        "SELECT facts, status, deal_id FROM listings WHERE listing_id = $1 FOR UPDATE", listing_id
    )
    if row is None:
        return None
    facts = ListingPublished.model_validate(orjson.loads(row["facts"]))
    return Listing(facts, ListingStatus(row["status"]), row["deal_id"])


async def save(conn: asyncpg.Connection, listing: Listing, market_id: str) -> None:
    facts: ListingFacts = listing.facts
    await conn.execute(
        """
        INSERT INTO listings (listing_id, seller_agent_id, seller_principal_id, market_id, title,
            description, category, condition, condition_rank, price_cents, currency, facts,
            status, deal_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
        ON CONFLICT (listing_id) DO UPDATE SET price_cents = EXCLUDED.price_cents,
            facts = EXCLUDED.facts, status = EXCLUDED.status, deal_id = EXCLUDED.deal_id,
            updated_at = now()
        """,
        facts.listing_id,
        facts.seller_agent_id,
        facts.seller_principal_id,
        market_id,
        facts.title,
        facts.description,
        facts.category,
        facts.condition.value,
        facts.condition.rank,
        facts.price_cents,
        facts.currency,
        orjson.dumps(facts.model_dump(mode="json")).decode(),
        listing.status.value,
        listing.deal_id,
    )


async def record_refusal(
    conn: asyncpg.Connection, listing_id: str, event_id: object, reason: str, detail: str
) -> None:
    await conn.execute(
        "INSERT INTO listing_refusals (listing_id, event_id, reason, detail) VALUES ($1, $2, $3, $4)",
        listing_id,
        event_id,
        reason,
        detail,
    )


async def keep_early_outcome(
    conn: asyncpg.Connection, deal_id: str, listing_id: str, event_type: str, reason: str
) -> None:
    await conn.execute(
        "INSERT INTO early_outcomes (deal_id, listing_id, event_type, reason) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (deal_id, listing_id) DO NOTHING",
        deal_id,
        listing_id,
        event_type,
        reason,
    )


async def take_early_outcome(
    conn: asyncpg.Connection, deal_id: str, listing_id: str
) -> tuple[str, str] | None:
    row = await conn.fetchrow(
        "DELETE FROM early_outcomes WHERE deal_id = $1 AND listing_id = $2 RETURNING event_type, reason",
        deal_id,
        listing_id,
    )
    return (row["event_type"], row["reason"]) if row else None


@dataclass(frozen=True)
class SearchQuery:
    market_id: str | None = None
    text: str | None = None
    category: str | None = None
    min_price_cents: int | None = None
    max_price_cents: int | None = None
    min_condition: Condition | None = None
    status: ListingStatus | None = ListingStatus.ACTIVE
    limit: int = 20
    offset: int = 0


def _where(q: SearchQuery) -> tuple[str, list[object]]:
    clauses: list[str] = []
    args: list[object] = []

    def add(sql: str, value: object) -> None:
        args.append(value)
        clauses.append(sql.replace("?", f"${len(args)}"))

    if q.market_id:
        add("market_id = ?", q.market_id)
    if q.status:
        add("status = ?", q.status.value)
    if q.category:
        add("category = ?", q.category)
    if q.min_price_cents is not None:
        add("price_cents >= ?", q.min_price_cents)
    if q.max_price_cents is not None:
        add("price_cents <= ?", q.max_price_cents)
    if q.min_condition is not None:
        add("condition_rank >= ?", q.min_condition.rank)
    if q.text:
        add("search @@ websearch_to_tsquery('english', ?)", q.text)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


RANKED_CANDIDATES = 2_000
"""Text search ranks the most recent matches, not all of them: a common word matches a large
share of a million listings, and ranking every match costs tens of milliseconds."""

RECENT_WINDOW = 50_000
"""Text search in one market looks first among its newest this-many listings: the GIN index finds
the matches, the recency index bounds them, and only those rows are read (for a common word, a
few hundred instead of ~9,000 at 1M listings)."""

WINDOW_MIN_MATCHES = 200
"""Fewer matches than this (ten pages) among the newest listings, and the search looks at every
listing (the newest RANKED_CANDIDATES matches): a rare word still finds its old listings. The
choice depends on the query alone, never on the page, so pages stay consistent."""

WINDOW_TTL_SECONDS = 60.0
_window_starts: dict[tuple[str, str], tuple[float, datetime | None]] = {}


async def _window_start(conn: asyncpg.Connection, market_id: str, status: str) -> datetime | None:
    """When the market's RECENT_WINDOW-th newest listing (in `status`) was created; None if it has
    fewer. Cached for a minute: the window only grows a little in between."""
    cached = _window_starts.get((market_id, status))
    if cached is not None and time.monotonic() - cached[0] < WINDOW_TTL_SECONDS:
        return cached[1]
    start = await conn.fetchval(
        "SELECT created_at FROM listings WHERE market_id = $1 AND status = $2"
        " ORDER BY created_at DESC OFFSET $3 LIMIT 1",
        market_id,
        status,
        RECENT_WINDOW - 1,
    )
    if len(_window_starts) > 10_000:
        _window_starts.clear()
    _window_starts[(market_id, status)] = (time.monotonic(), start)
    return cast(datetime | None, start)


def _search_sql(q: SearchQuery, where: str, args: list[object], windowed: bool = False) -> str:
    """The statement for a search. `windowed`: its last argument before the page is the window's
    start; it also returns how many candidates the window held (on an empty page too)."""
    page = f"LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}"
    if not q.text:
        return (
            f"SELECT facts, status, deal_id FROM listings{where} ORDER BY created_at DESC, listing_id {page}"
        )
    query = f"websearch_to_tsquery('english', ${args.index(q.text) + 1})"
    if not windowed:
        return (
            "SELECT facts, status, deal_id FROM ("
            f"SELECT facts, status, deal_id, search, listing_id FROM listings{where}"
            f" ORDER BY created_at DESC LIMIT {RANKED_CANDIDATES}) AS recent"
            f" ORDER BY ts_rank(search, {query}) DESC, listing_id {page}"
        )
    return (
        "WITH recent AS ("
        f"SELECT facts, status, deal_id, search, listing_id FROM listings{where}"
        f" AND created_at >= ${len(args)} ORDER BY created_at DESC LIMIT {RANKED_CANDIDATES})"
        " SELECT counted.candidates, found.facts, found.status, found.deal_id"
        " FROM (SELECT count(*) AS candidates FROM recent) AS counted"
        " LEFT JOIN LATERAL (SELECT facts, status, deal_id FROM recent"
        f" ORDER BY ts_rank(search, {query}) DESC, listing_id {page}) AS found ON true"
    )


async def search_statement(conn: asyncpg.Connection, q: SearchQuery) -> tuple[str, list[object], bool]:
    """The first statement `search` runs for `q`, its arguments, and whether it is windowed."""
    where, args = _where(q)
    if q.text and q.market_id and q.status:
        start = await _window_start(conn, q.market_id, q.status.value)
        if start is not None:
            args = [*args, start]
            return _search_sql(q, where, args, windowed=True), [*args, q.limit, q.offset], True
    return _search_sql(q, where, args), [*args, q.limit, q.offset], False


async def search(pool: asyncpg.Pool, q: SearchQuery) -> list[dict[str, object]]:
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        # A prepared statement's generic plan ignores the actual filter values (a price range, a
        # rare word): after five runs PostgreSQL may switch to one that is 20x slower here.
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        sql, args, windowed = await search_statement(conn, q)
        rows = await conn.fetch(sql, *args)
        if windowed:
            if rows[0]["candidates"] >= WINDOW_MIN_MATCHES:
                return [_found(r) for r in rows if r["facts"] is not None]
            where, plain_args = _where(q)
            rows = await conn.fetch(_search_sql(q, where, plain_args), *plain_args, q.limit, q.offset)
    return [_found(r) for r in rows]


def _found(row: asyncpg.Record) -> dict[str, object]:
    return {**orjson.loads(row["facts"]), "status": row["status"], "deal_id": row["deal_id"]}
