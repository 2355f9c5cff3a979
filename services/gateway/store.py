"""The gateway's SQL (schema `gateway`)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from haggle.contracts import AgentKey
from haggle.contracts.listing import ListingFacts
from haggle.contracts.mandate import Mandate

CHANGES_CHANNEL = "gateway_changes"
"""NOTIFY'd with the agent id when a change of that agent's commits (waiting reads wake on it)."""
_STAMP = "changed = (SELECT changes FROM principals p WHERE p.agent_id = $1)"
"""Stamps a row with the change its transaction took (`changed` first)."""


@dataclass(frozen=True)
class Principal:
    principal_id: str
    market_id: str
    agent_id: str
    mandate: Mandate
    mandate_sha256: str
    key: AgentKey | None
    """The agent's signing key when the gateway signs for it (API-key agents); None if it signs itself."""
    public_key: str
    admitted: bool
    committed_cents: int
    label: str

    @property
    def signs_itself(self) -> bool:
        return self.key is None


def _principal(row: asyncpg.Record) -> Principal:
    mandate = Mandate.model_validate_json(row["mandate"])
    label = str(getattr(mandate.brain, "label", "external"))
    key = AgentKey.from_bytes(row["private_key"]) if row["private_key"] is not None else None
    return Principal(
        row["principal_id"],
        row["market_id"],
        row["agent_id"],
        mandate,
        row["mandate_sha256"],
        key,
        key.public if key is not None else row["public_key"],
        row["admitted"],
        row["committed_cents"],
        label,
    )


async def insert_principal(
    conn: asyncpg.Connection,
    market_id: str,
    mandate: Mandate,
    digest: str,
    agent_id: str,
    key: AgentKey | None,
) -> bool:
    """An external agent's principal; `key` is the one the gateway signs with (None: it signs itself)."""
    brain = mandate.brain
    created = await conn.fetchval(
        "INSERT INTO principals (principal_id, market_id, agent_id, mandate, mandate_sha256, api_key_sha256,"
        " private_key, public_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        mandate.principal_id,
        market_id,
        agent_id,
        mandate.model_dump_json(),
        digest,
        getattr(brain, "api_key_sha256", None),
        key.private_bytes() if key is not None else None,
        key.public if key is not None else getattr(brain, "public_key", None),
    )
    return created is not None


async def by_api_key(pool: asyncpg.Pool | asyncpg.Connection, digest: str) -> Principal | None:
    row = await pool.fetchrow("SELECT * FROM principals WHERE api_key_sha256 = $1", digest)
    return _principal(row) if row is not None else None


async def by_agent(conn: asyncpg.Connection, agent_id: str, lock: bool = False) -> Principal | None:
    sql = "SELECT * FROM principals WHERE agent_id = $1" + (" FOR UPDATE" if lock else "")
    row = await conn.fetchrow(sql, agent_id)
    return _principal(row) if row is not None else None


async def changed(conn: asyncpg.Connection, agent_id: str) -> int:
    """The next number of the agent's change counter, taken first in a transaction that changes what
    the agent can see: it locks the principal's row to commit, so the numbers commit in order."""
    change = await conn.fetchval(
        "WITH c AS (UPDATE principals SET changes = changes + 1 WHERE agent_id = $1 RETURNING changes)"
        " SELECT changes FROM c, pg_notify($2, $1)",
        agent_id,
        CHANGES_CHANNEL,
    )
    return int(change or 0)


async def deal_agent(conn: asyncpg.Connection, deal_id: str) -> str | None:
    agent_id: str | None = await conn.fetchval("SELECT agent_id FROM deals WHERE deal_id = $1", deal_id)
    return agent_id


@dataclass(frozen=True)
class Changes:
    cursor: int
    negotiations: list[asyncpg.Record]
    deals: list[asyncpg.Record]


async def changes_since(pool: asyncpg.Pool, agent_id: str, after: int) -> Changes:
    """The agent's counter and its rows changed past `after`, from one snapshot: every change up to
    the counter has committed (each held the principal's row lock until it did)."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = int(await conn.fetchval("SELECT changes FROM principals WHERE agent_id = $1", agent_id) or 0)
        if cursor <= after:
            return Changes(cursor, [], [])
        negotiations = await conn.fetch(
            "SELECT * FROM negotiations WHERE agent_id = $1 AND changed > $2 ORDER BY changed",
            agent_id,
            after,
        )
        deals = await conn.fetch(
            "SELECT * FROM deals WHERE agent_id = $1 AND changed > $2 ORDER BY changed", agent_id, after
        )
        return Changes(cursor, list(negotiations), list(deals))


async def cursor_of(pool: asyncpg.Pool | asyncpg.Connection, agent_id: str) -> int:
    return int(await pool.fetchval("SELECT changes FROM principals WHERE agent_id = $1", agent_id) or 0)


async def set_admitted(conn: asyncpg.Connection, agent_id: str) -> None:
    await conn.execute("UPDATE principals SET admitted = true WHERE agent_id = $1", agent_id)


async def add_committed(conn: asyncpg.Connection, agent_id: str, cents: int) -> None:
    await conn.execute(
        "UPDATE principals SET committed_cents = greatest(0, committed_cents + $2) WHERE agent_id = $1",
        agent_id,
        cents,
    )


async def save_listing(conn: asyncpg.Connection, market_id: str, facts: ListingFacts) -> None:
    await conn.execute(
        "INSERT INTO listings (listing_id, market_id, facts, status) VALUES ($1, $2, $3, 'active')"
        " ON CONFLICT (listing_id) DO UPDATE SET facts = EXCLUDED.facts",
        facts.listing_id,
        market_id,
        facts.model_dump_json(),
    )


async def set_listing_status(conn: asyncpg.Connection, listing_id: str, status: str) -> None:
    await conn.execute("UPDATE listings SET status = $2 WHERE listing_id = $1", listing_id, status)


async def listing(
    conn: asyncpg.Connection, market_id: str, listing_id: str
) -> tuple[ListingFacts, str] | None:
    row = await conn.fetchrow(
        "SELECT facts, status FROM listings WHERE listing_id = $1 AND market_id = $2", listing_id, market_id
    )
    if row is None:
        return None
    return ListingFacts.model_validate_json(row["facts"]), row["status"]


async def search(pool: asyncpg.Pool, market_id: str, text: str | None, limit: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT facts FROM listings WHERE market_id = $1 AND status = 'active'"
        " AND ($2::text IS NULL OR facts->>'title' ILIKE '%' || $2 || '%' OR facts->>'category' = $2)"
        " ORDER BY listing_id LIMIT $3",
        market_id,
        text,
        limit,
    )
    return [json.loads(r["facts"]) for r in rows]


async def negotiation(conn: asyncpg.Connection, agent_id: str, listing_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM negotiations WHERE agent_id = $1 AND neg_id = 'b|' || $2 FOR UPDATE",
        agent_id,
        listing_id,
    )


async def negotiation_by_thread(
    conn: asyncpg.Connection, agent_id: str, thread_id: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM negotiations WHERE agent_id = $1 AND thread_id = $2 FOR UPDATE", agent_id, thread_id
    )


def opening_refused(row: asyncpg.Record) -> bool:
    """A buyer's negotiation whose opening the referee refused (e.g. it had not read the listing yet):
    it never became a thread, holds nothing, and the agent may open on the listing again."""
    return bool(row["status"] == "ended" and row["thread_id"] is None)


async def start_negotiation(
    conn: asyncpg.Connection, agent_id: str, listing_id: str, want_id: str, held_cents: int
) -> bool:
    """A buyer's negotiation, opening; over one whose opening was refused (`opening_refused`)."""
    created = await conn.fetchval(
        "INSERT INTO negotiations (agent_id, neg_id, listing_id, want_id, held_cents)"
        " VALUES ($1, 'b|' || $2, $2, $3, $4) ON CONFLICT (agent_id, neg_id) DO UPDATE"
        " SET want_id = EXCLUDED.want_id, held_cents = EXCLUDED.held_cents, status = 'opening',"
        " events = '[]', last_refusal = NULL, updated_at = now()"
        " WHERE negotiations.status = 'ended' AND negotiations.thread_id IS NULL RETURNING 1",
        agent_id,
        listing_id,
        want_id,
        held_cents,
    )
    return created is not None


async def held(conn: asyncpg.Connection, agent_id: str) -> int:
    """What the agent's negotiations hold of its budget (call it holding the principal's row lock)."""
    total = await conn.fetchval(
        "SELECT coalesce(sum(held_cents), 0) FROM negotiations WHERE agent_id = $1 AND held_cents > 0",
        agent_id,
    )
    return int(total)


async def release_hold(
    conn: asyncpg.Connection, agent_id: str, listing_id: str, opening: bool = False
) -> None:
    """The negotiation ended without a deal (`opening`: its opening was refused): its money is free again."""
    await conn.execute(
        f"UPDATE negotiations SET held_cents = 0, status = 'ended', updated_at = now(), {_STAMP}"
        " WHERE agent_id = $1 AND neg_id = 'b|' || $2 AND (NOT $3 OR status = 'opening')",
        agent_id,
        listing_id,
        opening,
    )


async def commit_hold(conn: asyncpg.Connection, agent_id: str, listing_id: str, total_cents: int) -> None:
    """A deal: the hold becomes the deal's committed total, in one statement."""
    await add_committed(conn, agent_id, total_cents)  # the principal's row first, as every move locks it
    await conn.execute(
        f"UPDATE negotiations SET held_cents = 0, updated_at = now(), {_STAMP}"
        " WHERE agent_id = $1 AND neg_id = 'b|' || $2",
        agent_id,
        listing_id,
    )


def neg_id(listing_id: str, thread_id: str | None, selling: bool) -> str:
    """A buyer has one negotiation per listing; a seller one per thread (one per buyer)."""
    return f"s|{thread_id}" if selling else f"b|{listing_id}"


async def selling(conn: asyncpg.Connection, agent_id: str, thread_id: str | None) -> bool:
    """Whether the agent is this thread's seller (its seller row was made when the thread opened)."""
    if thread_id is None:
        return False
    found = await conn.fetchval(
        "SELECT 1 FROM negotiations WHERE agent_id = $1 AND neg_id = 's|' || $2", agent_id, thread_id
    )
    return found is not None


async def open_selling(conn: asyncpg.Connection, agent_id: str, listing_id: str, thread_id: str) -> None:
    """A buyer opened a thread on one of the agent's listings."""
    await conn.execute(
        "INSERT INTO negotiations (agent_id, neg_id, listing_id, thread_id, role, status)"
        " VALUES ($1, 's|' || $2, $3, $2, 'seller', 'open') ON CONFLICT DO NOTHING",
        agent_id,
        thread_id,
        listing_id,
    )


async def add_thread_event(
    conn: asyncpg.Connection, agent_id: str, neg: str, entry: dict[str, Any], thread_id: str | None
) -> None:
    """Append one event; a thread opened by us gets its id, an ended one its status."""
    status = "ended" if entry["type"] == "NegotiationEnded" else None
    await conn.execute(
        "UPDATE negotiations SET events = events || $3::jsonb, thread_id = coalesce(thread_id, $4),"
        " status = coalesce($5, CASE WHEN status = 'opening' THEN 'open' ELSE status END),"
        f" updated_at = now(), {_STAMP}"
        " WHERE agent_id = $1 AND neg_id = $2",
        agent_id,
        neg,
        json.dumps([entry]),
        thread_id,
        status,
    )


async def note_refusal(conn: asyncpg.Connection, agent_id: str, neg: str, refusal: dict[str, Any]) -> None:
    await conn.execute(
        f"UPDATE negotiations SET last_refusal = $3::jsonb, updated_at = now(), {_STAMP}"
        " WHERE agent_id = $1 AND neg_id = $2",
        agent_id,
        neg,
        json.dumps(refusal),
    )


async def negotiations(pool: asyncpg.Pool, agent_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT * FROM negotiations WHERE agent_id = $1 ORDER BY updated_at DESC", agent_id
    )
    return rows


async def fulfilled_wants(conn: asyncpg.Connection, agent_id: str) -> set[str]:
    rows = await conn.fetch(
        "SELECT n.want_id FROM negotiations n JOIN deals d ON d.agent_id = n.agent_id"
        " AND d.listing_id = n.listing_id AND d.role = 'buyer' WHERE n.agent_id = $1 AND n.role = 'buyer'"
        " AND d.status NOT IN ('failed', 'refunded')",
        agent_id,
    )
    return {r["want_id"] for r in rows}


async def add_deal(
    conn: asyncpg.Connection,
    agent_id: str,
    deal_id: str,
    listing_id: str,
    total: int,
    agreed: Any,
    role: str = "buyer",
) -> bool:
    """A deal of the agent's: as buyer `total` is what it pays, as seller what it nets."""
    created = await conn.fetchval(
        "INSERT INTO deals (deal_id, agent_id, listing_id, total_cents, status, agreed, role, changed)"
        " VALUES ($1, $2, $3, $4, 'agreed', $5, $6, (SELECT changes FROM principals p WHERE p.agent_id = $2))"
        " ON CONFLICT DO NOTHING RETURNING 1",
        deal_id,
        agent_id,
        listing_id,
        total,
        json.dumps(agreed),
        role,
    )
    return created is not None


async def set_deal_status(conn: asyncpg.Connection, deal_id: str, status: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE deals SET status = $2,"
        " changed = (SELECT changes FROM principals p WHERE p.agent_id = deals.agent_id)"
        " WHERE deal_id = $1 AND status NOT IN ('failed', 'refunded')"
        " RETURNING agent_id, total_cents, role",
        deal_id,
        status,
    )


async def deals(pool: asyncpg.Pool, agent_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT * FROM deals WHERE agent_id = $1 ORDER BY deal_id", agent_id
    )
    return rows


async def remember_request(
    conn: asyncpg.Connection, agent_id: str, request_id: str, event_id: uuid.UUID
) -> bool:
    created = await conn.fetchval(
        "INSERT INTO requests (agent_id, request_id, event_id) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        agent_id,
        request_id,
        event_id,
    )
    return created is not None


async def claim_signed_seq(conn: asyncpg.Connection, agent_id: str, seq: int) -> bool:
    """A self-signing agent's seq must rise: the same or a lower one is a replay."""
    claimed = await conn.fetchval(
        "UPDATE principals SET last_signed_seq = $2 WHERE agent_id = $1 AND last_signed_seq < $2 RETURNING 1",
        agent_id,
        seq,
    )
    return claimed is not None
