"""Many open negotiations at once: resident memory of every service, and throughput while they stay open.

B scripted buyers and B sellers, N listings, then N `OpenNegotiation` (one per
listing) left open (long TTL, nobody answers). Prints the open rate for each half
(does it slow as threads pile up?), the RSS of the four service processes before and
after, and the rate of seller counter-offers on a sample of the open threads.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import asyncpg

from haggle import procs
from haggle.client import Publisher
from haggle.contracts import ShippingMethod
from haggle.contracts.agents import Role
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.negotiation import CounterOffer, OpenNegotiation
from haggle.contracts.topics import LISTING_COMMANDS_TOPIC, MARKET_EVENTS, NEGOTIATION_COMMANDS
from haggle.runtime.operators import operator_envelope
from haggle_lab.testing.actors import ScriptedAgent
from haggle_lab.testing.goods import a_listing
from haggle_lab.testing.observe import Observer, of_type

TOPICS = ("agent.inbox", "negotiation.events", "listing.events")
BUDGET_GIB = 2.0
SAMPLE = 1_000


def rss_mib() -> dict[str, float]:
    found = {}
    for name in procs.SERVICES:
        pid = procs.pid_of(name)
        status = Path(f"/proc/{pid}/status")
        if pid is None or not status.exists():
            continue
        line = next(x for x in status.read_text().splitlines() if x.startswith("VmRSS:"))
        found[name] = int(line.split()[1]) / 1024
    return found


def _show(label: str, rss: dict[str, float]) -> None:
    parts = ", ".join(f"{k} {v:,.0f}" for k, v in rss.items())
    print(f"RSS {label:<14} total {sum(rss.values()):>7,.0f} MiB  ({parts})", flush=True)


async def _count(obs: Observer, type_name: str, topic: str, want: int, timeout: float) -> float:
    """Seconds until `want` events of `type_name` were seen (from the call)."""
    started, deadline = time.perf_counter(), time.monotonic() + timeout
    while len(obs.matching(of_type(type_name), topic)) < want:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(obs.matching(of_type(type_name), topic))}/{want} {type_name}")
        await asyncio.sleep(0.2)
    return time.perf_counter() - started


async def setup(
    pub: Publisher, obs: Observer, market: str, n: int, b: int
) -> list[tuple[ScriptedAgent, ...]]:
    rules = MarketRulesSet(
        max_rounds=20, negotiation_ttl_seconds=86_400, max_open_threads_per_agent=n // b + 10
    )
    await pub.send(MARKET_EVENTS.name, market, operator_envelope(rules, market))
    sellers = [ScriptedAgent(f"{market}-s{i}", f"{market}-ps{i}", Role.SELLER, market) for i in range(b)]
    buyers = [ScriptedAgent(f"{market}-b{i}", f"{market}-pb{i}", Role.BUYER, market) for i in range(b)]
    for agent in (*sellers, *buyers):
        await agent.register(pub)
    await _count(obs, "AgentAdmitted", "agent.inbox", 2 * b, timeout=300)
    listings = [
        (
            f"{market}-L{j}",
            operator_envelope(a_listing(f"{market}-L{j}", sellers[j % b]), market, "bench"),
        )
        for j in range(n)
    ]
    await pub.send_many(LISTING_COMMANDS_TOPIC.name, listings)
    seconds = await _count(obs, "ListingPublished", "listing.events", n, timeout=60 + n / 50)
    print(f"{n:,} listings published in {seconds:.1f} s", flush=True)
    return [(sellers[j % b], buyers[j % b]) for j in range(n)]


async def open_all(
    pub: Publisher, obs: Observer, market: str, pairs: list[tuple[ScriptedAgent, ...]]
) -> None:
    n = len(pairs)
    half = n // 2
    for lo, hi in ((0, half), (half, n)):
        batch = [
            (
                f"{market}-L{j}",
                pairs[j][1].sign(
                    OpenNegotiation(
                        listing_id=f"{market}-L{j}",
                        price_cents=10_000,
                        shipping_method=ShippingMethod.PARCEL_STANDARD,
                    )
                ),
            )
            for j in range(lo, hi)
        ]
        started = time.perf_counter()
        await pub.send_many(NEGOTIATION_COMMANDS.name, batch)
        await _count(obs, "ThreadOpened", "negotiation.events", hi, timeout=120 + (hi - lo) / 20)
        seconds = time.perf_counter() - started
        print(f"opened {lo:>7,} → {hi:>7,}: {(hi - lo) / seconds:,.0f} opens/s ({seconds:.1f} s)", flush=True)


async def counter_sample(
    pub: Publisher, obs: Observer, market: str, pairs: list[tuple[ScriptedAgent, ...]]
) -> None:
    opened = obs.matching(of_type("ThreadOpened"), "negotiation.events")[:SAMPLE]
    index = {f"{market}-L{j}": pair for j, pair in enumerate(pairs)}
    before = len(obs.matching(of_type("OfferMade"), "negotiation.events"))
    batch = []
    for env in opened:
        listing_id, thread_id = str(env.payload["listing_id"]), str(env.payload["thread_id"])
        counter = CounterOffer(
            listing_id=listing_id,
            thread_id=thread_id,
            price_cents=19_000,
            shipping_method=ShippingMethod.PARCEL_STANDARD,
        )
        batch.append((listing_id, index[listing_id][0].sign(counter)))
    started = time.perf_counter()
    await pub.send_many(NEGOTIATION_COMMANDS.name, batch)
    await _count(obs, "OfferMade", "negotiation.events", before + len(batch), timeout=300)
    seconds = time.perf_counter() - started
    print(
        f"{len(batch):,} counter-offers with {len(pairs):,} threads open: {len(batch) / seconds:,.0f} moves/s"
    )


async def table_mib(database_url: str) -> float:
    """Threads live in PostgreSQL, not in service memory: the negotiation tables' size on disk."""
    conn = await asyncpg.connect(database_url)
    try:
        size = await conn.fetchval(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = 'negotiation' AND c.relkind = 'r'"
        )
        return int(size) / 2**20
    finally:
        await conn.close()


async def measure(bootstrap: str, database_url: str, n: int, b: int) -> None:
    market = f"scale-{uuid.uuid4().hex[:6]}"
    async with Publisher(bootstrap) as pub, Observer(bootstrap, *TOPICS, market_id=market) as obs:
        pairs = await setup(pub, obs, market, n, b)
        idle, idle_db = rss_mib(), await table_mib(database_url)
        _show("before opens", idle)
        await open_all(pub, obs, market, pairs)
        full = rss_mib()
        _show(f"{n:,} open", full)
        grown = sum(full.values()) - sum(idle.values())
        print(f"growth {grown:,.0f} MiB = {1024 * grown / n:,.1f} KiB per open negotiation", flush=True)
        db = await table_mib(database_url) - idle_db
        print(
            f"negotiation schema in PostgreSQL grew {db:,.1f} MiB = {1024 * db / n:,.1f} KiB per negotiation"
        )
        await counter_sample(pub, obs, market, pairs)
        total_gib = sum(rss_mib().values()) / 1024
        verdict = "met" if total_gib <= BUDGET_GIB else "MISSED"
        print(
            f"all services {total_gib:.2f} GiB (budget {BUDGET_GIB} GiB at 100,000 open: {verdict} at {n:,})"
        )


def run(bootstrap: str, database_url: str, negotiations: int, buyers: int) -> None:
    from bench.negotiation_throughput import ensure_services

    ensure_services()
    asyncio.run(measure(bootstrap, database_url, negotiations, buyers))
