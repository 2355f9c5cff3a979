"""The settlement service's SQL for deals and reference data (asyncpg). The ledger's is in ledger_store."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import orjson

from haggle.contracts.goods import Condition
from haggle.contracts.mandate import Mandate
from haggle.contracts.market import MarketRulesSet
from services.settlement.domain.deal import FINAL_STATES, Deal, DealState


async def load_deal(conn: asyncpg.Connection, deal_id: str) -> Deal | None:
    """The deal, locked for the rest of the transaction."""
    row = await conn.fetchrow("SELECT data FROM deals WHERE deal_id = $1 FOR UPDATE", deal_id)
    return None if row is None else Deal.model_validate_json(row["data"])


async def deal_exists(conn: asyncpg.Connection, deal_id: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM deals WHERE deal_id = $1", deal_id))


async def insert_deal(conn: asyncpg.Connection, deal: Deal) -> None:
    """A new deal; a second insert of one id fails, which is the business key doing its job."""
    await conn.execute(
        "INSERT INTO deals (deal_id, market_id, listing_id, buyer_principal_id, seller_principal_id,"
        " price_cents, fee_cents, escrow_cents, state, due_at, data)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        deal.deal_id,
        deal.market_id,
        deal.listing_id,
        deal.buyer_principal_id,
        deal.seller_principal_id,
        deal.price_cents,
        deal.fee_cents,
        deal.escrow_cents,
        deal.state.value,
        deal.due_at,
        deal.model_dump_json(),
    )


async def update_deal(conn: asyncpg.Connection, deal: Deal) -> None:
    await conn.execute(
        "UPDATE deals SET state = $2, due_at = $3, data = $4, updated_at = now() WHERE deal_id = $1",
        deal.deal_id,
        deal.state.value,
        deal.due_at,
        deal.model_dump_json(),
    )


async def due_deals(conn: asyncpg.Connection, now: datetime, limit: int) -> list[Deal]:
    """Deals whose deadline passed, locked; rows another instance holds are skipped."""
    rows = await conn.fetch(
        "SELECT data FROM deals WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return [Deal.model_validate_json(r["data"]) for r in rows]


async def first_due(pool: asyncpg.Pool) -> datetime | None:
    """The earliest deadline waiting, locked or not."""
    found: datetime | None = await pool.fetchval("SELECT min(due_at) FROM deals WHERE due_at IS NOT NULL")
    return found


async def postpone(conn: asyncpg.Connection, deal_id: str, until: datetime) -> None:
    await conn.execute("UPDATE deals SET due_at = $2 WHERE deal_id = $1", deal_id, until)


async def deals_in(
    pool: asyncpg.Pool, state: DealState, market_id: str | None, limit: int = 200
) -> list[Deal]:
    rows = await pool.fetch(
        "SELECT data FROM deals WHERE state = $1 AND ($2::text IS NULL OR market_id = $2)"
        " ORDER BY created_at LIMIT $3",
        state.value,
        market_id,
        limit,
    )
    return [Deal.model_validate_json(r["data"]) for r in rows]


async def find_deal(pool: asyncpg.Pool, deal_id: str) -> Deal | None:
    row = await pool.fetchrow("SELECT data FROM deals WHERE deal_id = $1", deal_id)
    return None if row is None else Deal.model_validate_json(row["data"])


# Reference data -----------------------------------------------------------------


async def rules(conn: asyncpg.Connection | asyncpg.Pool, market_id: str) -> MarketRulesSet:
    """The market's latest rules, or the defaults when it never published any."""
    raw = await conn.fetchval("SELECT rules FROM market_rules WHERE market_id = $1", market_id)
    return MarketRulesSet() if raw is None else MarketRulesSet.model_validate_json(raw)


async def stored_rules(pool: asyncpg.Pool, market_id: str) -> dict[str, object] | None:
    raw = await pool.fetchval("SELECT rules FROM market_rules WHERE market_id = $1", market_id)
    return None if raw is None else dict(orjson.loads(raw))


async def market_counts(conn: asyncpg.Connection | asyncpg.Pool, market_id: str) -> dict[str, int]:
    """Deals settlement holds for one market: all of them, and those not final yet."""
    row = await conn.fetchrow(
        "SELECT count(*) AS deals, count(*) FILTER (WHERE NOT (state = ANY($2::text[]))) AS deals_open"
        " FROM deals WHERE market_id = $1",
        market_id,
        [state.value for state in FINAL_STATES],
    )
    return {"deals": int(row["deals"]), "deals_open": int(row["deals_open"])}


async def unfinished(conn: asyncpg.Connection, market_id: str) -> str | None:
    """What stops settlement from calling a market closed: a deal that is not final."""
    left = (await market_counts(conn, market_id))["deals_open"]
    return f"{left} deals not final" if left else None


async def save_listing_condition(
    conn: asyncpg.Connection, listing_id: str, market_id: str, condition: Condition
) -> None:
    await conn.execute(
        "INSERT INTO listing_conditions (listing_id, market_id, condition) VALUES ($1, $2, $3)"
        " ON CONFLICT (listing_id) DO UPDATE SET condition = EXCLUDED.condition",
        listing_id,
        market_id,
        condition.value,
    )


async def listing_condition(conn: asyncpg.Connection, listing_id: str, market_id: str) -> Condition | None:
    value = await conn.fetchval(
        "SELECT condition FROM listing_conditions WHERE listing_id = $1 AND market_id = $2",
        listing_id,
        market_id,
    )
    return None if value is None else Condition(value)


async def record_refusal(
    conn: asyncpg.Connection, deal_id: str, event_id: uuid.UUID, reason: str, detail: str
) -> None:
    await conn.execute(
        "INSERT INTO settlement_refusals (deal_id, event_id, reason, detail) VALUES ($1, $2, $3, $4)",
        deal_id,
        event_id,
        reason,
        detail,
    )


async def keep_ship_to(conn: asyncpg.Connection, market_id: str, deal_id: str, sealed_address: str) -> None:
    """The sealed address of a deal; a newer one replaces it until the label is out."""
    await conn.execute(
        "INSERT INTO ship_to (deal_id, market_id, sealed_address) VALUES ($1, $2, $3)"
        " ON CONFLICT (deal_id) DO UPDATE SET sealed_address = $3, updated_at = now()"
        " WHERE ship_to.label_sent_at IS NULL AND ship_to.market_id = $2",
        deal_id,
        market_id,
        sealed_address,
    )


async def ship_to_unlabelled(conn: asyncpg.Connection, market_id: str, deal_id: str) -> str | None:
    """The sealed address of a deal whose label is not out yet (locked until commit), else None."""
    sealed: str | None = await conn.fetchval(
        "SELECT sealed_address FROM ship_to WHERE deal_id = $1 AND market_id = $2 AND label_sent_at IS NULL"
        " FOR UPDATE",
        deal_id,
        market_id,
    )
    return sealed


async def label_sent(conn: asyncpg.Connection, deal_id: str) -> None:
    await conn.execute("UPDATE ship_to SET label_sent_at = now() WHERE deal_id = $1", deal_id)


async def load_mandate(conn: asyncpg.Connection, market_id: str, principal_id: str) -> Mandate | None:
    """The last mandate applied for this principal here, locked for the rest of the transaction."""
    row = await conn.fetchrow(
        "SELECT mandate FROM mandates WHERE market_id = $1 AND principal_id = $2 FOR UPDATE",
        market_id,
        principal_id,
    )
    return None if row is None else Mandate.model_validate_json(row["mandate"])


async def save_mandate(conn: asyncpg.Connection, market_id: str, mandate: Mandate) -> None:
    await conn.execute(
        "INSERT INTO mandates (market_id, principal_id, mandate) VALUES ($1, $2, $3)"
        " ON CONFLICT (market_id, principal_id) DO UPDATE SET mandate = $3, updated_at = now()",
        market_id,
        mandate.principal_id,
        mandate.model_dump_json(),
    )
