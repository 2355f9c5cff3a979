"""The listing service's SQL (asyncpg)."""

from __future__ import annotations

from dataclasses import dataclass

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


def _search_sql(q: SearchQuery, where: str, args: list[object]) -> str:
    page = f"LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}"
    if not q.text:
        return (
            f"SELECT facts, status, deal_id FROM listings{where} ORDER BY created_at DESC, listing_id {page}"
        )
    query = f"websearch_to_tsquery('english', ${args.index(q.text) + 1})"
    return (
        "SELECT facts, status, deal_id FROM ("
        f"SELECT facts, status, deal_id, search, listing_id FROM listings{where}"
        f" ORDER BY created_at DESC LIMIT {RANKED_CANDIDATES}) AS recent"
        f" ORDER BY ts_rank(search, {query}) DESC, listing_id {page}"
    )


async def search(pool: asyncpg.Pool, q: SearchQuery) -> list[dict[str, object]]:
    where, args = _where(q)
    sql = _search_sql(q, where, args)
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        # A prepared statement's generic plan ignores the actual filter values (a price range, a
        # rare word): after five runs PostgreSQL may switch to one that is 20x slower here.
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        rows = await conn.fetch(sql, *args, q.limit, q.offset)
    return [{**orjson.loads(r["facts"]), "status": r["status"], "deal_id": r["deal_id"]} for r in rows]
