"""Settlement speed, two ways: the PostgreSQL ledger alone, and deals escrowed end to end.

Ledger: N deals, each a hold then its release (post, seller payout, fee: four
transfers) in one transaction per step, from W concurrent connections, in a
scratch schema. End to end: publish N `DealAgreed` to negotiation.events and
time until N `EscrowFunded` are read back from settlement.events, with the
settlement service running as its own process (decode, inbox, ledger, outbox, relay).

    .venv/bin/python -m bench.settlement_throughput --count 2000 --workers 8
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Sequence

import asyncpg

from haggle import infra, procs
from haggle.client import Publisher, tail
from haggle.contracts import ShippingMethod, wrap
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.negotiation import DealAgreed, Party
from haggle.contracts.settlement import FundWallet
from haggle.contracts.topics import (
    MARKET_EVENTS,
    NEGOTIATION_EVENTS_TOPIC,
    SETTLEMENT_COMMANDS,
    SETTLEMENT_EVENTS_TOPIC,
    all_topic_partitions,
)
from haggle.runtime.db import create_pool, migrate
from haggle.runtime.operators import operator_envelope
from services.settlement import ledger_store
from services.settlement.app import MIGRATIONS
from services.settlement.domain import escrow
from services.settlement.domain.deal import deal_accounts, release_transfers
from services.settlement.domain.ledger import SUCCESS, Account, AccountKind, Phase, Transfer

BUYERS = 50
RULES = MarketRulesSet()


def agreed(market_id: str, i: int) -> DealAgreed:
    return DealAgreed(
        deal_id=f"{market_id}-D{i}",
        listing_id=f"{market_id}-L{i}",
        thread_id=f"{market_id}-T{i}",
        buyer_agent_id=f"{market_id}-buyer{i % BUYERS}",
        buyer_principal_id=f"{market_id}-pb{i % BUYERS}",
        seller_agent_id=f"{market_id}-seller",
        seller_principal_id=f"{market_id}-ps",
        price_cents=1_000 + i % 5_000,
        shipping_method=ShippingMethod.PARCEL_STANDARD,
        shipping_cost_cents=900,
        shipping_paid_by=Party.BUYER,
        accepted_offer_id=f"{market_id}-O{i}",
    )


async def _apply(pool: asyncpg.Pool, market_id: str, transfers: Sequence[Transfer]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for transfer in transfers:
            result = await ledger_store.transfer(conn, market_id, transfer)
            assert result in SUCCESS, (transfer.id, result)


async def ledger_rate(database_url: str, count: int, workers: int) -> tuple[float, float]:
    """(holds per second, releases per second) straight against PostgreSQL."""
    schema = f"bench_ledger_{uuid.uuid4().hex[:8]}"
    pool = await create_pool(database_url, schema, size=workers + 1)
    try:
        await migrate(pool, schema, MIGRATIONS)
        deals = [escrow.new_deal(agreed("m", i), "m", RULES) for i in range(count)]
        async with pool.acquire() as conn:
            await ledger_store.open_accounts(conn, "m", [a for d in deals for a in deal_accounts(d)])
            await ledger_store.open_accounts(conn, "m", [Account("external", AccountKind.EXTERNAL, False)])
            for b in range(BUYERS):
                fund = Transfer(f"f{b}", Phase.SINGLE, "external", f"wallet:m:m-pb{b}", 10**12)
                await ledger_store.transfer(conn, "m", fund)
        holds = [[escrow.hold_transfer(d)] for d in deals]
        releases = [list(release_transfers(d)) for d in deals]
        return await _timed(pool, holds, workers), await _timed(pool, releases, workers)
    finally:
        await pool.execute(f"DROP SCHEMA {schema} CASCADE")
        await pool.close()


async def _timed(pool: asyncpg.Pool, batches: list[list[Transfer]], workers: int) -> float:
    queue: asyncio.Queue[list[Transfer]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)

    async def worker() -> None:
        while not queue.empty():
            await _apply(pool, "m", queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return len(batches) / (time.perf_counter() - started)


async def end_to_end_rate(bootstrap: str, count: int) -> float:
    """Deals escrowed per second through Kafka and the settlement service."""
    market_id = f"bench-{uuid.uuid4().hex[:8]}"
    env = lambda m: wrap(m, market_id=market_id, producer="bench")  # noqa: E731
    async with Publisher(bootstrap) as pub, tail(bootstrap, SETTLEMENT_EVENTS_TOPIC.name) as events:
        await pub.send(MARKET_EVENTS.name, market_id, operator_envelope(RULES, market_id))
        funding = [
            (f"{market_id}-pb{b}", operator_envelope(fund_command(market_id, b), market_id))
            for b in range(BUYERS)
        ]
        await pub.send_many(SETTLEMENT_COMMANDS.name, funding)
        await _count(events, "WalletFunded", BUYERS, market_id)
        deals = [(f"{market_id}-L{i}", env(agreed(market_id, i))) for i in range(count)]
        started = time.perf_counter()
        await pub.send_many(NEGOTIATION_EVENTS_TOPIC.name, deals)
        await _count(events, "EscrowFunded", count, market_id)
        return count / (time.perf_counter() - started)


def fund_command(market_id: str, buyer: int) -> FundWallet:
    return FundWallet(
        funding_id=f"f{buyer}",
        principal_id=f"{market_id}-pb{buyer}",
        amount_cents=10**9,
        auto_approve_limit_cents=10**9,
    )


async def _count(consumer: object, type_name: str, want: int, market_id: str) -> None:
    from haggle.client import collect

    found = await collect(consumer, until=want, timeout=max(120.0, want / 20), types={type_name})  # type: ignore[arg-type]
    mine = [e for e in found if e.market_id == market_id]
    if len(mine) < want:
        raise TimeoutError(f"only {len(mine)} of {want} {type_name}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    found = infra.up()
    infra.ensure_topics(found.kafka_bootstrap, all_topic_partitions())
    holds, releases = asyncio.run(ledger_rate(found.database_url, args.count, args.workers))
    print(
        f"ledger, {args.workers} connections: {holds:,.0f} holds/s,"
        f" {releases:,.0f} releases/s (4 transfers each)"
    )
    was_running = procs.pid_of("settlement") is not None
    procs.start("settlement")
    procs.wait_ready("settlement")
    try:
        rate = asyncio.run(end_to_end_rate(found.kafka_bootstrap, args.count))
    finally:
        if not was_running:
            procs.stop("settlement")
    print(f"end to end: {rate:,.0f} deals escrowed/s (DealAgreed in → EscrowFunded out, {args.count} deals)")


if __name__ == "__main__":
    main()
