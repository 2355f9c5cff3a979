"""The ledger in real PostgreSQL: the same workloads as the pure model must give the same answers,
concurrent spenders cannot overdraw or double-resolve, and `ledger check` notices tampering.

Each module run gets its own schema with the settlement migrations applied,
so the running service's data is never touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings

from services.settlement.app import MIGRATIONS
from services.settlement.check import run_checks
from services.settlement.domain.ledger import Account, AccountKind, Ledger, Phase, Transfer, TransferResult
from services.settlement.ledger_store import accounts, open_accounts, transfer
from tests.integration.scratch import scratch_schema
from tests.unit.ledger_ops import ACCOUNTS, WORKLOADS, Op, concrete, totals_of

pytestmark = pytest.mark.timeout(300)
R = TransferResult


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema(database_url, "ledger_test", MIGRATIONS, size=6) as pool:
        yield pool


async def reset(pool: asyncpg.Pool, opened: tuple[Account, ...] = ACCOUNTS) -> None:
    await pool.execute("TRUNCATE transfers, wallets, accounts, deals CASCADE")
    async with pool.acquire() as conn:
        await open_accounts(conn, "m", opened)


async def apply(pool: asyncpg.Pool, request: Transfer) -> TransferResult:
    async with pool.acquire() as conn, conn.transaction():
        return await transfer(conn, "m", request)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(workload=WORKLOADS)
async def test_postgres_answers_every_workload_like_the_pure_ledger(
    pool: asyncpg.Pool, workload: list[Op]
) -> None:
    await reset(pool)
    model = Ledger(ACCOUNTS)
    history: list[Transfer] = []
    for op in workload:
        holds = [t.id for t in model.transfers.values() if t.phase is Phase.PENDING]
        request = concrete(op, history, holds)
        expected = model.apply(request)
        assert await apply(pool, request) is expected, request
        history.append(request)
    async with pool.acquire() as conn:
        stored = await accounts(conn, [a.id for a in ACCOUNTS])
        assert {k: totals_of(v) for k, v in stored.items()} == {
            k: totals_of(v) for k, v in model.accounts.items()
        }
        results = await run_checks(conn)
    assert [r.name for r in results if not r.ok] == []


async def funded_wallet(pool: asyncpg.Pool, amount: int) -> None:
    await reset(pool)
    assert await apply(pool, Transfer("fund", Phase.SINGLE, "external", "wallet:a", amount)) is R.OK


async def test_concurrent_holds_never_overdraw_a_wallet(pool: asyncpg.Pool) -> None:
    await funded_wallet(pool, 1_000)
    holds = [Transfer(f"h{i}", Phase.PENDING, "wallet:a", "escrow:1", 300) for i in range(8)]
    results = await asyncio.gather(*(apply(pool, h) for h in holds))
    assert sorted(results) == sorted([R.OK] * 3 + [R.EXCEEDS_CREDITS] * 5)
    async with pool.acquire() as conn:
        wallet = (await accounts(conn, ["wallet:a"]))["wallet:a"]
    assert (wallet.debits_pending, wallet.available) == (900, 100)


async def test_a_hold_posted_and_voided_at_once_is_resolved_exactly_once(pool: asyncpg.Pool) -> None:
    await funded_wallet(pool, 1_000)
    assert await apply(pool, Transfer("hold", Phase.PENDING, "wallet:a", "escrow:1", 600)) is R.OK
    racers = [Transfer(f"r{i}", (Phase.POST, Phase.VOID)[i % 2], pending_id="hold") for i in range(6)]
    results = await asyncio.gather(*(apply(pool, r) for r in racers))
    assert results.count(R.OK) == 1
    assert set(results) - {R.OK} <= {R.PENDING_TRANSFER_ALREADY_POSTED, R.PENDING_TRANSFER_ALREADY_VOIDED}


async def test_the_same_transfer_id_raced_is_applied_once(pool: asyncpg.Pool) -> None:
    await funded_wallet(pool, 1_000)
    same = Transfer("pay", Phase.SINGLE, "wallet:a", "wallet:b", 400)
    outcomes = await asyncio.gather(*(apply(pool, same) for _ in range(5)), return_exceptions=True)
    assert [o for o in outcomes if o is R.OK] == [R.OK]
    # A loser either saw the winner's row (EXISTS) or hit the primary key and would be retried.
    assert all(o in (R.OK, R.EXISTS) or isinstance(o, asyncpg.UniqueViolationError) for o in outcomes)
    async with pool.acquire() as conn:
        assert (await accounts(conn, ["wallet:b"]))["wallet:b"].balance == 400


async def test_the_schema_refuses_what_the_rules_refuse(pool: asyncpg.Pool) -> None:
    await funded_wallet(pool, 100)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE accounts SET debits_posted = 101 WHERE id = 'wallet:a'")
        with pytest.raises(asyncpg.RaiseError, match="insert-only"):
            await conn.execute("UPDATE transfers SET amount = 1 WHERE id = 'fund'")
        with pytest.raises(asyncpg.RaiseError, match="insert-only"):
            await conn.execute("DELETE FROM transfers WHERE id = 'fund'")
    assert await apply(pool, Transfer("hold", Phase.PENDING, "wallet:a", "escrow:1", 60)) is R.OK
    assert await apply(pool, Transfer("post", Phase.POST, pending_id="hold")) is R.OK
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO transfers (id, phase, debit_account_id, credit_account_id, amount, pending_id,"
                " code, market_id) VALUES ('void', 'void', 'wallet:a', 'escrow:1', 60, 'hold', 'x', 'm')"
            )


async def _failing(pool: asyncpg.Pool) -> list[str]:
    async with pool.acquire() as conn:
        return [r.name for r in await run_checks(conn) if not r.ok]


async def test_ledger_check_notices_tampering(pool: asyncpg.Pool) -> None:
    await funded_wallet(pool, 1_000)
    assert await _failing(pool) == []
    await pool.execute("UPDATE accounts SET credits_posted = credits_posted + 5 WHERE id = 'wallet:b'")
    assert await _failing(pool) == [
        "the sum over all accounts is zero",
        "every balance equals the sum of its transfers",
    ]
    await reset(pool)
    await pool.execute(
        "INSERT INTO deals (deal_id, market_id, listing_id, buyer_principal_id, seller_principal_id,"
        " price_cents, fee_cents, escrow_cents, state, data)"
        " VALUES ('d', 'm', 'L', 'a', 'b', 1000, 50, 1000, 'released', '{}')"
    )
    await open_accounts_for_deal(pool)
    for request in (
        Transfer("fund", Phase.SINGLE, "external", "wallet:m:a", 1_000),
        Transfer("hold:d", Phase.PENDING, "wallet:m:a", "escrow:d", 1_000, deal_id="d"),
        Transfer("post:d", Phase.POST, pending_id="hold:d", deal_id="d"),
        Transfer("release:d", Phase.SINGLE, "escrow:d", "wallet:m:b", 960, code="release", deal_id="d"),
        Transfer("fee:d", Phase.SINGLE, "escrow:d", "fees", 40, code="fee", deal_id="d"),
    ):
        assert await apply(pool, request) is R.OK, request
    assert await _failing(pool) == ["every posted release matches an agreed price less the fee"]


async def open_accounts_for_deal(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await open_accounts(
            conn,
            "m",
            (
                Account("wallet:m:a", AccountKind.WALLET),
                Account("wallet:m:b", AccountKind.WALLET),
                Account("escrow:d", AccountKind.ESCROW),
            ),
        )
