"""The ledger in PostgreSQL: the pure rules of `domain.ledger` applied under row locks.

A transfer locks its two accounts (in id order, so two transfers never wait
on each other in a cycle), reads what the rules need, lets `decide` rule, and
writes the transfer row and the two balances in the caller's transaction.
The schema's constraints catch whatever the rules might miss.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from services.settlement.domain.ledger import (
    Account,
    AccountKind,
    Phase,
    Transfer,
    TransferResult,
    decide,
    filled,
)

_TRANSFER_COLUMNS = "id, phase, debit_account_id, credit_account_id, amount, pending_id, code, deal_id"
_ACCOUNT_COLUMNS = "id, kind, no_overdraft, debits_pending, debits_posted, credits_pending, credits_posted"


async def open_accounts(conn: asyncpg.Connection, market_id: str, accounts: Iterable[Account]) -> None:
    """Create the accounts that do not exist yet; existing ones are left as they are."""
    rows = sorted({(a.id, market_id, a.kind.value, a.no_overdraft) for a in accounts})
    await conn.executemany(
        "INSERT INTO accounts (id, market_id, kind, no_overdraft) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (id) DO NOTHING",
        rows,
    )


def _account(row: asyncpg.Record) -> Account:
    return Account(
        row["id"],
        AccountKind(row["kind"]),
        row["no_overdraft"],
        row["debits_pending"],
        row["debits_posted"],
        row["credits_pending"],
        row["credits_posted"],
    )


def _transfer(row: asyncpg.Record | None) -> Transfer | None:
    if row is None:
        return None
    return Transfer(
        row["id"],
        Phase(row["phase"]),
        row["debit_account_id"],
        row["credit_account_id"],
        row["amount"],
        row["pending_id"],
        row["code"],
        row["deal_id"],
    )


async def _fetch_transfer(conn: asyncpg.Connection, transfer_id: str | None) -> Transfer | None:
    if transfer_id is None:
        return None
    row = await conn.fetchrow(f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE id = $1", transfer_id)
    return _transfer(row)


async def _resolution_of(conn: asyncpg.Connection, pending_id: str | None) -> Transfer | None:
    if pending_id is None:
        return None
    row = await conn.fetchrow(f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE pending_id = $1", pending_id)
    return _transfer(row)


async def lock_accounts(conn: asyncpg.Connection, ids: Iterable[str]) -> dict[str, Account]:
    rows = await conn.fetch(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
        sorted(set(ids)),
    )
    return {row["id"]: _account(row) for row in rows}


async def transfer(conn: asyncpg.Connection, market_id: str, request: Transfer) -> TransferResult:
    """Apply one transfer request in the caller's transaction and say how it went."""
    pending = await _fetch_transfer(conn, request.pending_id)
    whole = filled(request, pending)
    accounts = await lock_accounts(conn, (i for i in (whole.debit_account_id, whole.credit_account_id) if i))
    existing = await _fetch_transfer(conn, request.id)
    resolution = await _resolution_of(conn, request.pending_id)
    decision = decide(request, accounts, existing, pending, resolution)
    if decision.result is not TransferResult.OK:
        return decision.result
    assert decision.transfer is not None
    await _insert(conn, market_id, decision.transfer)
    await conn.executemany(
        "UPDATE accounts SET debits_pending = $2, debits_posted = $3, credits_pending = $4,"
        " credits_posted = $5 WHERE id = $1",
        [
            (a.id, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
            for a in decision.accounts
        ],
    )
    return TransferResult.OK


async def _insert(conn: asyncpg.Connection, market_id: str, t: Transfer) -> None:
    await conn.execute(
        f"INSERT INTO transfers ({_TRANSFER_COLUMNS}, market_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        t.id,
        t.phase.value,
        t.debit_account_id,
        t.credit_account_id,
        t.amount,
        t.pending_id,
        t.code,
        t.deal_id,
        market_id,
    )


async def accounts(conn: asyncpg.Connection, ids: Iterable[str]) -> dict[str, Account]:
    rows = await conn.fetch(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ANY($1::text[])", sorted(set(ids))
    )
    return {row["id"]: _account(row) for row in rows}


async def approve_limit(conn: asyncpg.Connection, market_id: str, principal_id: str) -> int | None:
    """The principal's auto-approve limit here: None without a wallet, 0 for a wallet never funded
    (one opened to receive sale proceeds), so every purchase from it asks a human."""
    row = await conn.fetchrow(
        "SELECT w.auto_approve_limit_cents AS limit_cents FROM accounts a"
        " LEFT JOIN wallets w ON w.market_id = $1 AND w.principal_id = $2 WHERE a.id = $3",
        market_id,
        principal_id,
        f"wallet:{market_id}:{principal_id}",
    )
    if row is None:
        return None
    return int(row["limit_cents"] or 0)


async def set_wallet(
    conn: asyncpg.Connection, market_id: str, principal_id: str, account_id: str, limit: int | None
) -> None:
    """Record a wallet; a None limit keeps an existing one (or starts at zero)."""
    await conn.execute(
        """
        INSERT INTO wallets (market_id, principal_id, account_id, auto_approve_limit_cents)
        VALUES ($1, $2, $3, coalesce($4, 0))
        ON CONFLICT (market_id, principal_id) DO UPDATE SET
            auto_approve_limit_cents = coalesce($4, wallets.auto_approve_limit_cents), updated_at = now()
        """,
        market_id,
        principal_id,
        account_id,
        limit,
    )


async def set_approve_limit(conn: asyncpg.Connection, market_id: str, principal_id: str, limit: int) -> None:
    """An amended auto-approve limit; a principal without a wallet here gets it with its FundWallet."""
    await conn.execute(
        "UPDATE wallets SET auto_approve_limit_cents = $3, updated_at = now()"
        " WHERE market_id = $1 AND principal_id = $2",
        market_id,
        principal_id,
        limit,
    )
