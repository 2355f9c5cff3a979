"""A service's inbox taking new events: random event ids (UUIDv4) against time-ordered ones (UUIDv7).

Every event a service handles leaves its id in the service's `inbox` table (a uuid primary key)
for as long as Kafka could deliver it again, a week by default; every event it emits does the
same in `outbox`. This fills the kernel's own `inbox` table in a scratch schema with N ids of one
kind, then records B batches of 20 new ids of that kind, each in its own transaction, through
the consumer's own `UnitOfWork.first_times`: milliseconds per batch, and the write-ahead log
each batch wrote (the log's position before and after; a checkpoint first, so both kinds pay
the same full-page writes). Runs v4, v7, v4, v7 and prints the ratio v7 / v4 of the means.
The log's position moves for every writer of the database: run it with the services down.

    .venv/bin/python -m bench.event_ids --rows 1000000 --batches 3000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from haggle import infra
from haggle.contracts import new_event_id
from haggle.runtime.db import create_pool, migrate
from haggle.runtime.outbox import unit_of_work

BATCH = 20
"""Ids per transaction: about what a busy consumer's read holds."""
PRELOAD_CHUNK = 50_000
KINDS: dict[str, Callable[[], uuid.UUID]] = {"v4": uuid.uuid4, "v7": new_event_id}


@dataclass(frozen=True)
class Round:
    kind: str
    ms_per_batch: float
    wal_kib_per_batch: float
    index_mib: float


async def one_round(database_url: str, kind: str, rows: int, batches: int) -> Round:
    schema = f"bench_ids_{kind}_{uuid.uuid4().hex[:6]}"
    make = KINDS[kind]
    pool = await create_pool(database_url, schema, size=1)
    try:
        await migrate(pool, schema, None)
        for done in range(0, rows, PRELOAD_CHUNK):
            ids = [make() for _ in range(min(PRELOAD_CHUNK, rows - done))]
            await pool.execute("INSERT INTO inbox (event_id) SELECT unnest($1::uuid[])", ids)
            print(f"  {kind}: {done + len(ids):,}/{rows:,} ids in the inbox", end="\r", flush=True)
        print(flush=True)
        await pool.execute("CHECKPOINT")
        wal_before = await pool.fetchval("SELECT pg_current_wal_insert_lsn()")
        started = time.perf_counter()
        for _ in range(batches):
            async with unit_of_work(pool) as uow:
                fresh = await uow.first_times([make() for _ in range(BATCH)])
                assert len(fresh) == BATCH
        elapsed = time.perf_counter() - started
        wal = await pool.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1)", wal_before)
        index = await pool.fetchval(f"SELECT pg_relation_size('{schema}.inbox_pkey')")
    finally:
        await pool.execute(f"DROP SCHEMA {schema} CASCADE")
        await pool.close()
    return Round(kind, 1000 * elapsed / batches, float(wal) / batches / 1024, index / 2**20)


async def measure(database_url: str, rows: int, batches: int) -> None:
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    rounds = []
    for kind in ("v4", "v7", "v4", "v7"):
        done = await one_round(database_url, kind, rows, batches)
        rounds.append(done)
        print(
            f"{kind}: inbox index {done.index_mib:,.0f} MiB; {batches:,} batches of {BATCH}:"
            f" {done.ms_per_batch:.3f} ms a batch, {done.wal_kib_per_batch:.1f} KiB of WAL a batch",
            flush=True,
        )

    def mean(kind: str, of: Callable[[Round], float]) -> float:
        return statistics.fmean(of(r) for r in rounds if r.kind == kind)

    print()
    print(f"{rows:,} ids already in the inbox, {batches:,} transactions of {BATCH} new ids")
    for label, of in (
        ("ms a batch", lambda r: r.ms_per_batch),
        ("WAL a batch", lambda r: r.wal_kib_per_batch),
        ("inbox index size", lambda r: r.index_mib),
    ):
        print(f"ratio v7 / v4, {label:<18} {mean('v7', of) / mean('v4', of):.2f}")
    print(f"load average {os.getloadavg()[0]:.2f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.event_ids", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="ids in the inbox before the batches")
    parser.add_argument("--batches", type=int, default=3_000, help="transactions of 20 new ids")
    args = parser.parse_args(argv)
    found = infra.up()
    asyncio.run(measure(found.database_url, args.rows, args.batches))


if __name__ == "__main__":
    main()
