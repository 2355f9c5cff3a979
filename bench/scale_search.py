"""Listing search latency at scale: N listings bulk-loaded with COPY, then the endpoint and its SQL timed.

Rows go straight into the listing service's own table (schema `listing`) in one
bench market, so the generated tsvector and every index are maintained as in
production; a re-run reuses rows already there. Each query shape is asked
`--queries` times through `GET /listings` (p50/p99) and once through
`EXPLAIN ANALYZE` (which indexes, how long in PostgreSQL).

    .venv/bin/python -m bench.scale_search --listings 1000000
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import time
from collections.abc import Iterator

import asyncpg
import httpx
import orjson

from haggle import procs
from services.listing import store
from services.listing.app import SearchParams

MARKET = "bench-scale"
CHUNK = 50_000
TARGET_P99_MS = 50.0
COLOURS = ("red", "blue", "green", "black", "white", "silver", "yellow", "orange", "purple", "grey")
NOUNS = ("bike", "lamp", "chair", "desk", "kettle", "camera", "guitar", "tent", "drill", "sofa", "radio")
CATEGORIES = ("bikes", "home", "office", "kitchen", "electronics", "music", "outdoor", "tools")
CONDITIONS = (("new", 5), ("like_new", 4), ("good", 3), ("acceptable", 2), ("for_parts", 1))
COLUMNS = (
    "listing_id",
    "seller_agent_id",
    "seller_principal_id",
    "market_id",
    "title",
    "description",
    "category",
    "condition",
    "condition_rank",
    "price_cents",
    "currency",
    "facts",
    "status",
    "created_at",
)


def _row(i: int, epoch: dt.datetime) -> tuple[object, ...]:
    rng = random.Random(i)
    title = f"{rng.choice(COLOURS)} {rng.choice(NOUNS)} model zx{i % 100_000}"
    condition, rank = rng.choice(CONDITIONS)
    price = rng.randrange(500, 200_000)
    lid = f"{MARKET}-L{i}"
    facts = orjson.dumps({"listing_id": lid, "title": title, "price_cents": price}).decode()
    status = "active" if i % 10 else "sold"
    seller = f"{MARKET}-s{i % 1_000}"
    return (
        lid,
        f"{seller}.agent",
        seller,
        MARKET,
        title,
        "Used, works; collection or parcel.",
        rng.choice(CATEGORIES),
        condition,
        rank,
        price,
        "EUR",
        facts,
        status,
        epoch - dt.timedelta(seconds=i),
    )


def _rows(start: int, stop: int, epoch: dt.datetime) -> Iterator[tuple[object, ...]]:
    return (_row(i, epoch) for i in range(start, stop))


async def load(database_url: str, want: int) -> int:
    """Bring the bench market up to `want` listings; returns how many were there before."""
    conn = await asyncpg.connect(database_url)
    try:
        have = await conn.fetchval("SELECT count(*) FROM listing.listings WHERE market_id = $1", MARKET)
        epoch = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        started = time.perf_counter()
        for start in range(have, want, CHUNK):
            stop = min(want, start + CHUNK)
            await conn.copy_records_to_table(
                "listings", schema_name="listing", columns=COLUMNS, records=_rows(start, stop, epoch)
            )
            print(f"  loaded {stop:>9,} listings ({time.perf_counter() - started:6.1f} s)", flush=True)
        await conn.execute("ANALYZE listing.listings")
        return int(have)
    finally:
        await conn.close()


def shapes(rng: random.Random) -> dict[str, dict[str, str]]:
    """One random instance of each query shape the endpoint serves."""
    low = rng.randrange(500, 190_000)
    return {
        "recent": {"market": MARKET},
        "category": {"market": MARKET, "category": rng.choice(CATEGORIES)},
        "price range": {"market": MARKET, "min_price": str(low), "max_price": str(low + 2_000)},
        "category+price+cond": {
            "market": MARKET,
            "category": rng.choice(CATEGORIES),
            "min_price": str(low),
            "max_price": str(low + 20_000),
            "min_condition": "good",
        },
        "text rare": {"market": MARKET, "q": f"zx{rng.randrange(100_000)}"},
        "text common": {"market": MARKET, "q": f"{rng.choice(COLOURS)} {rng.choice(NOUNS)}"},
    }


def _indexes(plan: dict[str, object]) -> set[str]:
    found = {str(plan["Index Name"])} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):  # type: ignore[attr-defined]
        found |= _indexes(child)
    return found


async def explain(database_url: str, params: dict[str, str]) -> tuple[float, set[str]]:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "listing"})
    try:
        # The first statement store.search runs (the windowed one for a text search in a market).
        sql, args, _ = await store.search_statement(conn, SearchParams.model_validate(params).query())
        raw = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
        plan = json.loads(raw)[0]
        return float(plan["Execution Time"]), _indexes(plan["Plan"])
    finally:
        await conn.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def time_http(queries: int, seed: int = 1) -> dict[str, list[float]]:
    rng = random.Random(seed)
    timings: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=procs.url_for("listing"), timeout=30) as client:
        for _ in range(queries):
            for name, params in shapes(rng).items():
                started = time.perf_counter()
                response = await client.get("/listings", params=params)
                timings.setdefault(name, []).append(1000 * (time.perf_counter() - started))
                response.raise_for_status()
    return timings


async def time_sql(database_url: str, queries: int, custom_plans: bool) -> dict[str, list[float]]:
    """store.search on one pooled connection, as the service runs it; optionally never a generic plan."""
    settings = {"search_path": "listing"} | ({"plan_cache_mode": "force_custom_plan"} if custom_plans else {})
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1, server_settings=settings)
    rng, timings = random.Random(3), {}
    try:
        for _ in range(queries):
            for name, params in shapes(rng).items():
                started = time.perf_counter()
                await store.search(pool, SearchParams.model_validate(params).query())
                timings.setdefault(name, []).append(1000 * (time.perf_counter() - started))
    finally:
        await pool.close()
    return timings


async def measure(database_url: str, listings: int, queries: int) -> None:
    had = await load(database_url, listings)
    print(f"{max(had, listings):,} listings in market {MARKET} ({had:,} were already there)")
    timings = await time_http(queries)
    generic = await time_sql(database_url, queries, custom_plans=False)
    custom = await time_sql(database_url, queries, custom_plans=True)
    print(f"\n{'':<22}{'GET /listings':>20}{'store.search':>20}{'custom plans':>20}{'explain':>10}")
    print(f"{'shape':<22}" + f"{'p50':>10}{'p99':>10}" * 3 + f"{'sql':>10}  indexes")
    worst = 0.0
    for name, values in timings.items():
        sql_ms, used = await explain(database_url, shapes(random.Random(7))[name])
        worst = max(worst, _pct(values, 0.99))
        cells = "".join(
            f"{_pct(v, 0.5):>8.1f}ms{_pct(v, 0.99):>8.1f}ms" for v in (values, generic[name], custom[name])
        )
        print(f"{name:<22}{cells}{sql_ms:>8.1f}ms  {', '.join(sorted(used)) or 'none'}")
    verdict = "met" if worst < TARGET_P99_MS else f"MISSED by {worst - TARGET_P99_MS:.0f} ms"
    print(f"worst p99 {worst:.1f} ms (target < {TARGET_P99_MS:.0f} ms: {verdict})")


def run(database_url: str, listings: int, queries: int) -> None:
    procs.start("listing")
    procs.wait_ready("listing")
    asyncio.run(measure(database_url, listings, queries))
