"""`haggle ledger check`: the ledger's invariants, verified from the settlement schema's rows alone.

Each check is one SQL query that lists offenders (capped), so an empty
answer means the invariant holds. Run it against a live system: it reads in
one repeatable-read transaction, so it sees one consistent moment.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

SAMPLE = 5

_SUM_ZERO = """
SELECT 'posted ' || sum(credits_posted - debits_posted)
    || ', pending ' || sum(credits_pending - debits_pending)
FROM accounts WHERE ($1::text IS NULL OR market_id = $1)
HAVING sum(credits_posted - debits_posted) <> 0 OR sum(credits_pending - debits_pending) <> 0
"""

_NEGATIVE_WALLETS = """
SELECT id || ' available ' || (credits_posted - debits_posted - debits_pending) FROM accounts
WHERE kind = 'wallet' AND credits_posted - debits_posted - debits_pending < 0
  AND ($1::text IS NULL OR market_id = $1)
"""

_BALANCES_MATCH_TRANSFERS = """
WITH effect AS (
    SELECT t.debit_account_id AS debit, t.credit_account_id AS credit, t.amount,
           CASE WHEN t.phase = 'single' OR r.phase = 'post' THEN 'posted'
                WHEN r.phase IS NULL THEN 'pending' END AS kind
    FROM transfers t LEFT JOIN transfers r ON r.pending_id = t.id
    WHERE t.phase IN ('single', 'pending')
), sides AS (
    SELECT debit AS id, amount, kind, 'debit' AS side FROM effect
    UNION ALL SELECT credit, amount, kind, 'credit' FROM effect
), sums AS (
    SELECT id,
        sum(amount) FILTER (WHERE side = 'debit' AND kind = 'pending') AS dpend,
        sum(amount) FILTER (WHERE side = 'debit' AND kind = 'posted') AS dpost,
        sum(amount) FILTER (WHERE side = 'credit' AND kind = 'pending') AS cpend,
        sum(amount) FILTER (WHERE side = 'credit' AND kind = 'posted') AS cpost
    FROM sides GROUP BY id
)
SELECT a.id FROM accounts a LEFT JOIN sums s ON s.id = a.id
WHERE ($1::text IS NULL OR a.market_id = $1)
  AND (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted) IS DISTINCT FROM
      (coalesce(s.dpend, 0), coalesce(s.dpost, 0), coalesce(s.cpend, 0), coalesce(s.cpost, 0))
"""

_RESOLVED_AT_MOST_ONCE = """
SELECT 'hold ' || pending_id || ' resolved ' || count(*) || ' times' FROM transfers
WHERE pending_id IS NOT NULL AND ($1::text IS NULL OR market_id = $1) GROUP BY pending_id HAVING count(*) > 1
UNION ALL
SELECT 'deal ' || deal_id || ' has ' || count(*) || ' holds' FROM transfers
WHERE phase = 'pending' AND deal_id IS NOT NULL AND ($1::text IS NULL OR market_id = $1)
GROUP BY deal_id HAVING count(*) > 1
"""

_RELEASES_MATCH_DEALS = """
SELECT t.id || ' paid ' || t.amount || (CASE WHEN d.deal_id IS NULL THEN ' for no known deal'
        ELSE ' for price ' || d.price_cents || ' less fee ' || d.fee_cents END)
FROM transfers t LEFT JOIN deals d ON d.deal_id = t.deal_id
WHERE t.code IN ('release', 'fee') AND ($1::text IS NULL OR t.market_id = $1) AND (
    d.deal_id IS NULL
    OR (t.code = 'release' AND (t.amount <> d.price_cents - d.fee_cents
        OR t.credit_account_id <> 'wallet:' || d.market_id || ':' || d.seller_principal_id))
    OR (t.code = 'fee' AND t.amount <> d.fee_cents)
    OR NOT EXISTS (SELECT 1 FROM transfers p WHERE p.pending_id = 'hold:' || d.deal_id AND p.phase = 'post'))
"""

_DEALS_MATCH_LEDGER = """
WITH status AS (
    SELECT d.deal_id, d.state, d.escrow_cents,
        CASE WHEN h.id IS NULL THEN 'none' WHEN r.phase IS NULL THEN 'held' ELSE r.phase END AS hold,
        h.amount AS held, e.credits_posted - e.debits_posted AS escrow_balance,
        e.credits_pending AS escrow_pending,
        EXISTS (SELECT 1 FROM transfers x WHERE x.id = 'release:' || d.deal_id) AS paid
    FROM deals d
    LEFT JOIN transfers h ON h.id = 'hold:' || d.deal_id
    LEFT JOIN transfers r ON r.pending_id = h.id
    LEFT JOIN accounts e ON e.id = 'escrow:' || d.deal_id
    WHERE ($1::text IS NULL OR d.market_id = $1)
)
SELECT deal_id || ' is ' || state || ' with hold ' || hold FROM status WHERE NOT (
    CASE state
        WHEN 'released' THEN hold = 'post' AND paid
        WHEN 'refunded' THEN hold = 'void' AND NOT paid
        WHEN 'failed' THEN hold = 'none'
        WHEN 'awaiting_approval' THEN hold = 'none'
        WHEN 'authorizing' THEN hold = 'none'
        ELSE hold = 'held' AND held = escrow_cents
    END
    AND (state NOT IN ('released', 'refunded', 'failed')
         OR (coalesce(escrow_balance, 0) = 0 AND coalesce(escrow_pending, 0) = 0))
)
"""

CHECKS: tuple[tuple[str, str], ...] = (
    ("the sum over all accounts is zero", _SUM_ZERO),
    ("no wallet is below zero", _NEGATIVE_WALLETS),
    ("every balance equals the sum of its transfers", _BALANCES_MATCH_TRANSFERS),
    ("every escrow hold is posted or voided at most once", _RESOLVED_AT_MOST_ONCE),
    ("every posted release matches an agreed price less the fee", _RELEASES_MATCH_DEALS),
    ("every deal's state matches its escrow", _DEALS_MATCH_LEDGER),
)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    offenders: tuple[str, ...]


async def run_checks(conn: asyncpg.Connection, market_id: str | None = None) -> list[CheckResult]:
    results = []
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for name, sql in CHECKS:
            rows = await conn.fetch(f"{sql} LIMIT {SAMPLE + 1}", market_id)
            offenders = tuple(str(r[0]) for r in rows[:SAMPLE])
            results.append(CheckResult(name, not rows, offenders))
    return results
