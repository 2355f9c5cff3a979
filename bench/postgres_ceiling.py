"""The settlement ledger's transfers per second against a plain insert/update loop, same database and driver.

Ledger: N deals, each an escrow hold then its post, one transaction per transfer,
through `services/settlement/ledger_store.transfer` (read pending, lock accounts,
check, insert, update balances) from W concurrent connections, in a scratch schema.
Plain: as many transactions, each one single-row INSERT plus one single-row
UPDATE of a balance (the least a transfer must write), from the same W connections
with asyncpg. The ratio says what the ledger's checks and locking cost per transfer.

    .venv/bin/python -m bench.postgres_ceiling --count 2000 --workers 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from bench.settlement_throughput import BUYERS, RULES, agreed
from haggle import infra
from haggle.runtime.db import create_pool, migrate
from services.settlement import ledger_store
from services.settlement.app import MIGRATIONS
from services.settlement.domain import escrow
from services.settlement.domain.deal import deal_accounts, release_transfers
from services.settlement.domain.ledger import SUCCESS, Account, AccountKind, Phase, Transfer

Job = Callable[[asyncpg.Connection], Awaitable[None]]


async def _run(pool: asyncpg.Pool, jobs: list[Job], workers: int) -> float:
    """Jobs per second, each in its own transaction, from `workers` connections."""
    queue: asyncio.Queue[Job] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            job = queue.get_nowait()
            async with pool.acquire() as conn, conn.transaction():
                await job(conn)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return len(jobs) / (time.perf_counter() - started)


def _ledger_job(request: Transfer) -> Job:
    async def job(conn: asyncpg.Connection) -> None:
        result = await ledger_store.transfer(conn, "m", request)
        assert result in SUCCESS, (request.id, result)

    return job


async def ledger_rate(pool: asyncpg.Pool, schema: str, count: int, workers: int) -> tuple[float, float]:
    """(holds/s, posts/s) through the ledger store."""
    await migrate(pool, schema, MIGRATIONS)
    deals = [escrow.new_deal(agreed("m", i), "m", RULES) for i in range(count)]
    async with pool.acquire() as conn:
        await ledger_store.open_accounts(conn, "m", [a for d in deals for a in deal_accounts(d)])
        await ledger_store.open_accounts(conn, "m", [Account("external", AccountKind.EXTERNAL, False)])
        for b in range(BUYERS):
            fund = Transfer(f"f{b}", Phase.SINGLE, "external", f"wallet:m:m-pb{b}", 10**12)
            await ledger_store.transfer(conn, "m", fund)
    holds = [_ledger_job(escrow.hold_transfer(d)) for d in deals]
    posts = [_ledger_job(release_transfers(d)[0]) for d in deals]
    return await _run(pool, holds, workers), await _run(pool, posts, workers)


async def plain_rate(pool: asyncpg.Pool, count: int, workers: int) -> float:
    """Transactions/s of one INSERT and one UPDATE each, balances spread like the buyers' wallets."""
    await pool.execute("CREATE TABLE plain_rows (id text PRIMARY KEY, account text NOT NULL, amount bigint)")
    await pool.execute("CREATE TABLE plain_balances (id text PRIMARY KEY, balance bigint NOT NULL)")
    await pool.executemany("INSERT INTO plain_balances VALUES ($1, 0)", [(f"a{b}",) for b in range(BUYERS)])

    def job_for(i: int) -> Job:
        async def job(conn: asyncpg.Connection) -> None:
            account = f"a{i % BUYERS}"
            await conn.execute("INSERT INTO plain_rows VALUES ($1, $2, $3)", f"r{i}", account, 1_000 + i)
            await conn.execute("UPDATE plain_balances SET balance = balance + $2 WHERE id = $1", account, 1)

        return job

    return await _run(pool, [job_for(i) for i in range(2 * count)], workers)


async def _scratch_pool(database_url: str, workers: int) -> tuple[asyncpg.Pool, str]:
    schema = f"bench_pg_{uuid.uuid4().hex[:8]}"
    return await create_pool(database_url, schema, size=workers + 1), schema


async def measure(database_url: str, count: int, workers: int) -> None:
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    ledger, plain_db = await _scratch_pool(database_url, workers), await _scratch_pool(database_url, workers)
    try:
        holds, posts = await ledger_rate(*ledger, count, workers)
        plain = await plain_rate(plain_db[0], count, workers)
    finally:
        for pool, schema in (ledger, plain_db):
            await pool.execute(f"DROP SCHEMA {schema} CASCADE")
            await pool.close()
    transfers = 2 * count / (count / holds + count / posts)
    print()
    print(f"{count:,} deals, {workers} connections, one transaction per transfer")
    print(f"ledger holds               {holds:>10,.0f} /s")
    print(f"ledger posts               {posts:>10,.0f} /s")
    print(f"ledger transfers (h+p)     {transfers:>10,.0f} /s")
    print(f"plain insert+update        {plain:>10,.0f} txn/s")
    print(f"ratio ledger / plain       {transfers / plain:>10.3f}")
    print(f"load average {os.getloadavg()[0]:.2f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.postgres_ceiling", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--count", type=int, default=2_000, help="deals (each a hold and a post)")
    parser.add_argument("--workers", type=int, default=8, help="concurrent connections")
    args = parser.parse_args(argv)
    found = infra.up()
    asyncio.run(measure(found.database_url, args.count, args.workers))


if __name__ == "__main__":
    main()
