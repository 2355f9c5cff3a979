"""The SQL behind the pages. Every query about a principal's things takes the principal id
and finds only what is theirs: another principal's id gives nothing, never an error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg
import orjson

from services.web.domain import DealPhase, deal_phase

Row = dict[str, Any]
Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
"""A page's one connection (one reset on release per request, not one per query), or the pool."""
_MINE = "(SELECT agent_id FROM agent_principals WHERE principal_id = $1)"


def _rows(records: list[asyncpg.Record]) -> list[Row]:
    return [dict(r) for r in records]


# a principal's own -------------------------------------------------------------------


MY_THREADS = (
    "SELECT t.thread_id, t.listing_id, t.status, t.end_reason, t.rounds, t.last_price_cents,"
    " t.opened_at, coalesce(l.title, t.listing_id) AS title, t.role"
    " FROM (SELECT *, 'buyer' AS role FROM threads WHERE buyer_agent_id IN " + _MINE + ""
    "   UNION ALL SELECT *, 'seller' AS role FROM threads WHERE seller_agent_id IN " + _MINE + ""
    "   AND buyer_agent_id NOT IN " + _MINE + ") t"
    " LEFT JOIN listings l USING (listing_id)"
    " ORDER BY t.updated_at DESC LIMIT 200"
)
"""The two sides as two index lookups (an OR of the two would read every thread)."""
MY_REFUSALS = (
    "SELECT listing_id, thread_id, reason, at FROM refusals WHERE agent_id IN " + _MINE + ""
    " ORDER BY id DESC LIMIT 50"
)


MY_THREAD = (
    "SELECT t.*, coalesce(l.title, t.listing_id) AS title,"
    " CASE WHEN t.buyer_agent_id IN " + _MINE + " THEN 'buyer' ELSE 'seller' END AS role,"
    " coalesce((SELECT json_agg(json_build_object('kind', i.kind, 'by_party', i.by_party, 'round', i.round,"
    "   'price_cents', i.price_cents, 'text', i.text, 'at', i.at) ORDER BY i.id)"
    "   FROM thread_items i WHERE i.thread_id = t.thread_id), '[]') AS items,"
    " coalesce((SELECT json_agg(json_build_object('reason', g.reason, 'at', g.at) ORDER BY g.id)"
    "   FROM guard_refusals g WHERE g.principal_id = $1 AND g.listing_id = t.listing_id"
    "   AND (g.thread_id = t.thread_id OR g.thread_id IS NULL)), '[]') AS guard"
    " FROM threads t LEFT JOIN listings l USING (listing_id)"
    " WHERE t.thread_id = $2 AND (t.buyer_agent_id IN " + _MINE + " OR t.seller_agent_id IN " + _MINE + ")"
)
"""One negotiation of mine with its moves and what my own agent's guard stopped, in one statement."""


async def my_thread(db: Db, principal_id: str, thread_id: str) -> Row | None:
    row = await db.fetchrow(MY_THREAD, principal_id, thread_id)
    if row is None:
        return None
    return {**dict(row), "items": orjson.loads(row["items"]), "guard": orjson.loads(row["guard"])}


@dataclass(frozen=True)
class DealView:
    deal: Row
    role: str
    events: list[Row]

    @property
    def phase(self) -> DealPhase:
        return deal_phase(e["type"] for e in self.events)

    @property
    def inspection_ends_at(self) -> Any:
        ends = [
            e["payload"].get("inspection_ends_at") for e in self.events if e["type"] == "ShipmentDelivered"
        ]
        return next((e for e in ends if e), None)

    @property
    def dispute(self) -> Row | None:
        opened = next((e["payload"] for e in self.events if e["type"] == "DisputeOpened"), None)
        if opened is None:
            return None
        resolved = next((e["payload"] for e in self.events if e["type"] == "DisputeResolved"), None)
        return {**opened, "resolution": resolved}


_DEAL = (
    "SELECT d.*, coalesce(l.title, d.listing_id) AS title, l.condition,"
    " coalesce((SELECT json_agg(json_build_object('type', e.type, 'payload', e.payload, 'at', e.at)"
    "   ORDER BY e.id) FROM deal_events e WHERE e.deal_id = d.deal_id), '[]') AS events"
    " FROM deals d LEFT JOIN listings l USING (listing_id)"
)
MY_DEALS = (
    _DEAL
    + " WHERE d.buyer_principal_id = $1 OR d.seller_principal_id = $1 ORDER BY d.agreed_at DESC LIMIT 200"
)
MY_DEAL = _DEAL + " WHERE d.deal_id = $2 AND (d.buyer_principal_id = $1 OR d.seller_principal_id = $1)"
"""A deal of mine with its timeline, in one statement."""


def _deal_view(deal: Row, principal_id: str) -> DealView:
    role = "buyer" if deal["buyer_principal_id"] == principal_id else "seller"
    events = deal.pop("events")
    return DealView(deal, role, orjson.loads(events) if isinstance(events, str) else events)


async def my_deals(db: Db, principal_id: str) -> list[DealView]:
    return [_deal_view(dict(d), principal_id) for d in await db.fetch(MY_DEALS, principal_id)]


async def my_deal(db: Db, principal_id: str, deal_id: str) -> DealView | None:
    deal = await db.fetchrow(MY_DEAL, principal_id, deal_id)
    return _deal_view(dict(deal), principal_id) if deal else None


MY_HOME = (
    "SELECT (SELECT mandate FROM mandates WHERE principal_id = $1) AS mandate,"
    " coalesce((SELECT json_agg(x) FROM (SELECT listing_id, title, category, condition, price_cents,"
    "   status FROM listings WHERE seller_principal_id = $1 ORDER BY created_at DESC LIMIT 200) x), '[]')"
    "   AS listings,"
    " coalesce((SELECT json_agg(x) FROM (" + MY_THREADS + ") x), '[]') AS threads,"
    " coalesce((SELECT json_agg(x) FROM (" + MY_DEALS + ") x), '[]') AS deals,"
    " coalesce((SELECT json_agg(x) FROM (SELECT a.*, coalesce(l.title, a.listing_id) AS title"
    "   FROM approvals a LEFT JOIN listings l USING (listing_id) WHERE a.principal_id = $1"
    "   AND a.status = 'waiting' ORDER BY a.requested_at DESC LIMIT 200) x), '[]') AS approvals,"
    " coalesce((SELECT json_agg(x) FROM (" + MY_REFUSALS + ") x), '[]') AS refusals"
)
"""Everything of mine the home page shows, in one statement."""


@dataclass(frozen=True)
class Home:
    mandate: Row | None
    listings: list[Row]
    threads: list[Row]
    deals: list[DealView]
    approvals: list[Row]
    refusals: list[Row]


async def my_home(db: Db, principal_id: str) -> Home:
    row = await db.fetchrow(MY_HOME, principal_id)
    assert row is not None
    lists = {
        name: orjson.loads(row[name]) for name in ("listings", "threads", "deals", "approvals", "refusals")
    }
    return Home(
        orjson.loads(row["mandate"]) if row["mandate"] else None,
        lists["listings"],
        lists["threads"],
        [_deal_view(d, principal_id) for d in lists["deals"]],
        lists["approvals"],
        lists["refusals"],
    )


async def my_approvals(db: Db, principal_id: str) -> list[Row]:
    return _rows(
        await db.fetch(
            "SELECT a.*, coalesce(l.title, a.listing_id) AS title, a.expires_at < now() AS lapsed"
            " FROM approvals a LEFT JOIN listings l USING (listing_id)"
            " WHERE a.principal_id = $1 ORDER BY a.requested_at DESC LIMIT 200",
            principal_id,
        )
    )


async def my_approval(db: Db, principal_id: str, approval_id: str) -> Row | None:
    row = await db.fetchrow(
        "SELECT *, expires_at < now() AS lapsed FROM approvals WHERE approval_id = $2 AND principal_id = $1",
        principal_id,
        approval_id,
    )
    return dict(row) if row else None


async def mandate_of(db: Db, principal_id: str) -> Row | None:
    row = await db.fetchrow("SELECT * FROM mandates WHERE principal_id = $1", principal_id)
    return {**dict(row), "mandate": orjson.loads(row["mandate"])} if row else None


async def principal(db: Db, principal_id: str) -> Row | None:
    row = await db.fetchrow("SELECT * FROM principals WHERE principal_id = $1", principal_id)
    return dict(row) if row else None


async def save_address(db: Db, principal_id: str, nonce: bytes, ciphertext: bytes) -> None:
    await db.execute(
        "INSERT INTO addresses (principal_id, nonce, ciphertext) VALUES ($1, $2, $3)"
        " ON CONFLICT (principal_id) DO UPDATE SET nonce = $2, ciphertext = $3, updated_at = now()",
        principal_id,
        nonce,
        ciphertext,
    )


async def address_of(db: Db, principal_id: str) -> tuple[bytes, bytes] | None:
    row = await db.fetchrow("SELECT nonce, ciphertext FROM addresses WHERE principal_id = $1", principal_id)
    return (bytes(row["nonce"]), bytes(row["ciphertext"])) if row else None


# public ------------------------------------------------------------------------------

PUBLIC_LISTING = (
    "SELECT listing_id, title, description, category, condition, price_cents, status, shipping, created_at"
    " FROM listings"
)


async def browse(
    db: Db, market_id: str, q: str | None, category: str | None, limit: int, offset: int
) -> list[Row]:
    """Listings for sale in a market: public facts only (the asking price is public)."""
    where: list[str] = ["market_id = $1", "status = 'active'"]
    args: list[object] = [market_id]
    if q:
        args.append(q)
        where.append(f"search @@ websearch_to_tsquery('english', ${len(args)})")
    if category:
        args.append(category)
        where.append(f"category = ${len(args)}")
    args += [limit, offset]
    sql = (
        f"{PUBLIC_LISTING} WHERE {' AND '.join(where)} ORDER BY created_at DESC, listing_id"
        f" LIMIT ${len(args) - 1} OFFSET ${len(args)}"
    )
    return _rows(await db.fetch(sql, *args))


MARKET_PAGE = (
    "SELECT $1::text AS market_id, coalesce((SELECT phase FROM markets WHERE market_id = $1), 'open')"
    " AS phase, (SELECT count(*) FROM listings WHERE market_id = $1 AND status = 'active') AS listings,"
    " (SELECT count(*) FROM deals WHERE market_id = $1) AS deals,"
    " (SELECT coalesce(array_agg(DISTINCT category ORDER BY category), '{}') FROM listings"
    "   WHERE market_id = $1 AND status = 'active') AS categories"
    " WHERE EXISTS (SELECT 1 FROM markets WHERE market_id = $1)"
    " OR EXISTS (SELECT 1 FROM listings WHERE market_id = $1)"
)
"""What the public market page shows above its listings, in one statement (not the console's counters)."""


async def market_page(db: Db, market_id: str) -> Row | None:
    row = await db.fetchrow(MARKET_PAGE, market_id)
    return {**dict(row), "categories": list(row["categories"])} if row else None


async def public_listing(db: Db, market_id: str, listing_id: str) -> Row | None:
    row = await db.fetchrow(
        f"{PUBLIC_LISTING} WHERE market_id = $1 AND listing_id = $2", market_id, listing_id
    )
    return {**dict(row), "shipping": orjson.loads(row["shipping"])} if row else None


# operator ----------------------------------------------------------------------------

_COUNTS = """
  (SELECT count(*) FROM listings l WHERE l.market_id = m.market_id AND l.status = 'active') AS listings,
  (SELECT count(*) FROM threads t WHERE t.market_id = m.market_id AND t.status = 'open') AS open_negotiations,
  (SELECT count(*) FROM deals d WHERE d.market_id = m.market_id) AS deals,
  (SELECT coalesce(sum(d.price_cents), 0)::bigint FROM deals d WHERE d.market_id = m.market_id AND EXISTS
     (SELECT 1 FROM deal_events e WHERE e.deal_id = d.deal_id AND e.type = 'FundsReleased')) AS gmv_cents,
  (SELECT count(*) FROM approvals a WHERE a.market_id = m.market_id AND a.status = 'waiting'
     AND a.expires_at > now()) AS approvals_waiting,
  (SELECT count(*) FROM deals d WHERE d.market_id = m.market_id
     AND EXISTS (SELECT 1 FROM deal_events e WHERE e.deal_id = d.deal_id AND e.type = 'DisputeOpened')
     AND NOT EXISTS (SELECT 1 FROM deal_events e WHERE e.deal_id = d.deal_id AND e.type = 'DisputeResolved'))
     AS disputes_waiting
"""
ALL_MARKETS = (
    "SELECT m.market_id, m.phase," + _COUNTS + " FROM (SELECT market_id, phase FROM markets"
    " UNION SELECT DISTINCT market_id, 'open' FROM listings"
    " WHERE market_id NOT IN (SELECT market_id FROM markets)) m ORDER BY m.market_id LIMIT 200"
)
ONE_MARKET = (
    "SELECT m.market_id, coalesce((SELECT phase FROM markets WHERE market_id = $1), 'open') AS phase,"
    + _COUNTS
    + " FROM (SELECT $1::text AS market_id) m WHERE EXISTS (SELECT 1 FROM markets WHERE market_id = $1)"
    " OR EXISTS (SELECT 1 FROM listings WHERE market_id = $1)"
)


async def counters(db: Db, market_id: str | None = None) -> list[Row]:
    """Each market's live counters (one market's, or every market's for the console)."""
    if market_id is None:
        return _rows(await db.fetch(ALL_MARKETS))
    return _rows(await db.fetch(ONE_MARKET, market_id))


async def disputes_waiting(db: Db, market_id: str | None = None) -> list[Row]:
    rows = await db.fetch(
        "SELECT d.deal_id, d.market_id, d.price_cents, coalesce(l.title, d.listing_id) AS title,"
        " o.payload AS opened FROM deals d LEFT JOIN listings l USING (listing_id)"
        " JOIN deal_events o ON o.deal_id = d.deal_id AND o.type = 'DisputeOpened'"
        " WHERE ($1::text IS NULL OR d.market_id = $1) AND NOT EXISTS"
        "   (SELECT 1 FROM deal_events e WHERE e.deal_id = d.deal_id AND e.type = 'DisputeResolved')"
        " ORDER BY o.id LIMIT 200",
        market_id,
    )
    return [{**dict(r), "opened": orjson.loads(r["opened"])} for r in rows]


async def deal_market(db: Db, deal_id: str) -> str | None:
    value = await db.fetchval("SELECT market_id FROM deals WHERE deal_id = $1", deal_id)
    return str(value) if value is not None else None


async def market_phase(db: Db, market_id: str) -> str | None:
    value = await db.fetchval("SELECT phase FROM markets WHERE market_id = $1", market_id)
    return str(value) if value is not None else None
