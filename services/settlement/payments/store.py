"""The payments SQL (asyncpg): linked accounts, provider operations, intents, webhook events."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.settlement.payments.domain import OpKind, OpStatus, PaymentOp, ProviderResult
from services.settlement.payments.port import Party


@dataclass(frozen=True)
class StoredOp:
    id: int
    op: PaymentOp
    attempts: int


@dataclass(frozen=True)
class StoredIntent:
    deal_id: str
    market_id: str
    intent_id: str
    charge_id: str | None
    status: str
    amount_cents: int
    captured: bool
    capture_before: datetime


async def link_account(conn: asyncpg.Connection, market_id: str, principal_id: str, party: Party) -> None:
    """Record a principal's provider accounts; a field left None keeps what was linked before."""
    await conn.execute(
        """
        INSERT INTO payment_accounts (market_id, principal_id, customer_id, payment_method_id,
                                      connected_account_id)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (market_id, principal_id) DO UPDATE SET
            customer_id = coalesce(EXCLUDED.customer_id, payment_accounts.customer_id),
            payment_method_id = coalesce(EXCLUDED.payment_method_id, payment_accounts.payment_method_id),
            connected_account_id = coalesce(EXCLUDED.connected_account_id,
                                            payment_accounts.connected_account_id),
            updated_at = now()
        """,
        market_id,
        principal_id,
        party.customer_id,
        party.payment_method_id,
        party.connected_account_id,
    )


async def party(conn: asyncpg.Connection | asyncpg.Pool, market_id: str, principal_id: str) -> Party:
    row = await conn.fetchrow(
        "SELECT customer_id, payment_method_id, connected_account_id FROM payment_accounts"
        " WHERE market_id = $1 AND principal_id = $2",
        market_id,
        principal_id,
    )
    if row is None:
        return Party()
    return Party(row["customer_id"], row["payment_method_id"], row["connected_account_id"])


async def record_ops(conn: asyncpg.Connection, ops: Iterable[PaymentOp]) -> None:
    """The intent to call the provider, in the caller's transaction; an operation is recorded once."""
    rows = [(o.key, o.kind.value, o.market_id, o.deal_id, o.transfer_id, o.amount_cents) for o in ops]
    if rows:
        await conn.executemany(
            "INSERT INTO payment_ops (op_key, kind, market_id, deal_id, transfer_id, amount_cents)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (op_key) DO NOTHING",
            rows,
        )


def _op(row: asyncpg.Record) -> StoredOp:
    op = PaymentOp(
        OpKind(row["kind"]), row["market_id"], row["deal_id"], row["transfer_id"], row["amount_cents"]
    )
    return StoredOp(row["id"], op, row["attempts"])


async def claim(pool: asyncpg.Pool, lease_seconds: float, limit: int) -> list[StoredOp]:
    """Lease due operations (the first pending one of each deal) in a short transaction of its own.

    The lease is the crash recovery: an operation whose answer was never committed (the process
    died after the call) comes due again when it ends, and is sent again with the same key.
    """
    rows = await pool.fetch(
        """
        UPDATE payment_ops o SET attempts = attempts + 1,
            next_attempt_at = now() + make_interval(secs => $1)
        WHERE o.id IN (
            SELECT p.id FROM payment_ops p
            WHERE p.status = 'pending' AND p.next_attempt_at <= now()
              AND NOT EXISTS (SELECT 1 FROM payment_ops e
                              WHERE e.deal_id = p.deal_id AND e.status = 'pending' AND e.id < p.id)
            ORDER BY p.id LIMIT $2 FOR UPDATE SKIP LOCKED)
        RETURNING o.id, o.kind, o.market_id, o.deal_id, o.transfer_id, o.amount_cents, o.attempts
        """,
        lease_seconds,
        limit,
    )
    return sorted((_op(r) for r in rows), key=lambda s: s.id)


async def lock_op(conn: asyncpg.Connection, op_id: int) -> str | None:
    """The operation's status, locked: an answer is committed once, by whoever holds it."""
    value = await conn.fetchval("SELECT status FROM payment_ops WHERE id = $1 FOR UPDATE", op_id)
    return None if value is None else str(value)


async def finish_op(conn: asyncpg.Connection, op_id: int, status: OpStatus, result: ProviderResult) -> None:
    await conn.execute(
        "UPDATE payment_ops SET status = $2, provider_id = $3, outcome = $4, detail = $5, done_at = now()"
        " WHERE id = $1",
        op_id,
        status.value,
        result.provider_id,
        result.answer.value,
        result.code[:500],
    )


async def retry_later(pool: asyncpg.Pool, op_id: int, seconds: float, detail: str) -> None:
    await pool.execute(
        "UPDATE payment_ops SET next_attempt_at = now() + make_interval(secs => $2), detail = $3"
        " WHERE id = $1 AND status = 'pending'",
        op_id,
        seconds,
        detail[:500],
    )


async def save_intent(
    conn: asyncpg.Connection,
    deal_id: str,
    market_id: str,
    result: ProviderResult,
    amount_cents: int,
    authorized_at: datetime,
    capture_before: datetime,
) -> None:
    assert result.provider_id is not None
    await conn.execute(
        """
        INSERT INTO payment_intents (deal_id, market_id, intent_id, charge_id, status, amount_cents,
                                     captured, authorized_at, capture_before)
        VALUES ($1, $2, $3, $4, $5, $6, $5 = 'succeeded', $7, $8)
        ON CONFLICT (deal_id) DO UPDATE SET status = EXCLUDED.status, updated_at = now()
        """,
        deal_id,
        market_id,
        result.provider_id,
        result.charge_id,
        result.status,
        amount_cents,
        authorized_at,
        capture_before,
    )


async def intent_of(conn: asyncpg.Connection | asyncpg.Pool, deal_id: str) -> StoredIntent | None:
    row = await conn.fetchrow(
        "SELECT deal_id, market_id, intent_id, charge_id, status, amount_cents, captured, capture_before"
        " FROM payment_intents WHERE deal_id = $1",
        deal_id,
    )
    return None if row is None else StoredIntent(**dict(row))


async def intent_by_provider_id(conn: asyncpg.Connection, intent_id: str) -> StoredIntent | None:
    row = await conn.fetchrow(
        "SELECT deal_id, market_id, intent_id, charge_id, status, amount_cents, captured, capture_before"
        " FROM payment_intents WHERE intent_id = $1",
        intent_id,
    )
    return None if row is None else StoredIntent(**dict(row))


async def set_intent_status(
    conn: asyncpg.Connection, deal_id: str, status: str, charge_id: str | None = None
) -> None:
    await conn.execute(
        "UPDATE payment_intents SET status = $2, captured = captured OR $2 = 'succeeded',"
        " charge_id = coalesce($3, charge_id), updated_at = now() WHERE deal_id = $1",
        deal_id,
        status,
        charge_id,
    )


async def capture_candidates(
    pool: asyncpg.Pool, now: datetime, after: str, limit: int
) -> list[tuple[StoredIntent, str]]:
    """Held authorizations not yet captured that the capture rule may pick, with their deal (JSON),
    one page in deal order after `after`. An unshipped deal can only be due at its last moment."""
    rows = await pool.fetch(
        """
        SELECT i.deal_id, i.market_id, i.intent_id, i.charge_id, i.status, i.amount_cents, i.captured,
               i.capture_before, d.data
        FROM payment_intents i JOIN deals d USING (deal_id)
        WHERE NOT i.captured AND i.status = 'requires_capture' AND i.deal_id > $2
          AND d.state IN ('funded', 'shipping', 'inspecting', 'disputed', 'returning')
          AND (d.state <> 'funded' OR i.capture_before <= $1)
          AND NOT EXISTS (SELECT 1 FROM payment_ops o WHERE o.deal_id = i.deal_id AND o.kind = 'capture')
        ORDER BY i.deal_id LIMIT $3
        """,
        now,
        after,
        limit,
    )
    return [(StoredIntent(**{k: v for k, v in r.items() if k != "data"}), r["data"]) for r in rows]


async def first_event(
    conn: asyncpg.Connection, event_id: str, provider: str, type_: str, deal_id: str | None
) -> bool:
    """Record a provider's event id; False means it was taken before (a replay)."""
    row = await conn.fetchval(
        "INSERT INTO provider_events (event_id, provider, type, deal_id) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        event_id,
        provider,
        type_,
        deal_id,
    )
    return row is not None
