"""The web app under load: page latency, event-to-browser latency, many open live streams.

The bench plays the other services: it publishes the events they would (listings
published, agents registered, negotiations with their offers, deals) for one market
with `--listings` listings and `--principals` principals, each with a few negotiations
and a deal, and signs every principal in (a session each). Then, against the web
service running as its own process:
- pages: `--requests` GETs, `--concurrency` at a time, over the public market page (browse
  and search) and each principal's own pages; p50/p95/p99 per page and overall;
- event → browser: an offer published on Kafka until it reaches a principal's open
  EventSource stream (what makes the page refresh), `--samples` times;
- streams: `--streams` EventSource streams held open at once, one offer each; the time
  until every stream has its event, and the process's memory.

    .venv/bin/python -m bench.web_pages --listings 1000 --principals 200 --streams 200

With `--baseline REV` the pages are measured twice in one run, on the same read model and the
same request plan: first the web app of revision REV (its files from `git archive`, run as
the service process), then this checkout's. Both lines are printed with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from haggle import infra, procs
from haggle.client import Publisher
from haggle.contracts import Envelope, Message, wrap
from haggle.contracts.agents import AgentRegistered, Role
from haggle.contracts.listing import ListingPublished
from haggle.contracts.negotiation import DealAgreed, OfferMade, Party, ThreadOpened
from haggle.contracts.topics import (
    AGENT_EVENTS,
    LISTING_EVENTS_TOPIC,
    NEGOTIATION_EVENTS_TOPIC,
    all_topic_partitions,
    topic_configs,
)
from haggle.contracts.types import Id
from haggle.infra.state import REPO_ROOT, Settings, spawn, write_pid
from haggle_lab.testing.goods import sample_commands
from services.web import auth

SERVICE = "web"
THREADS_PER_PRINCIPAL = 5
OFFERS_PER_THREAD = 6
KEY = "0" * 43
"""A public key the web app never checks (it reads agent.events only to map agents to people)."""


def _env(message: Message, market_id: str, producer: str) -> Envelope:
    return wrap(message, market_id=market_id, producer=producer)


def listings(market_id: str, count: int) -> list[tuple[str, Envelope]]:
    published = []
    for cmd in sample_commands(count, market_id):
        event = ListingPublished.model_validate({**cmd.model_dump(), "type": "ListingPublished"})
        published.append((cmd.listing_id, _env(event, market_id, "listing")))
    return published


def agents(market_id: str, principals: Sequence[str]) -> list[tuple[str, Envelope]]:
    found = []
    for pid in principals:
        event = AgentRegistered(agent_id=f"{pid}.agent", principal_id=pid, role=Role.BOTH, public_key=KEY)
        found.append((event.agent_id, _env(event, market_id, "agents")))
    return found


def offer(market_id: str, thread: str, listing: str, buyer: str, n: int) -> Envelope:
    by = Party.BUYER if n % 2 else Party.SELLER
    made = OfferMade(
        thread_id=thread,
        listing_id=listing,
        offer_id=f"{thread}-o{n}",
        by=by,
        agent_id=buyer if by is Party.BUYER else "seller-0",
        round=n,
        price_cents=10_000 + 250 * n,
        shipping_method="local_pickup",
        shipping_cost_cents=0,
        shipping_paid_by=Party.BUYER,
        message=f"round {n}",
    )
    return _env(made, market_id, "negotiation")


def negotiations(
    market_id: str, principals: Sequence[str], listing_ids: Sequence[Id]
) -> list[tuple[str, Envelope]]:
    """Each principal buys on a few listings: a thread, its offers, and on the first a deal."""
    events = []
    deadline = datetime.now(UTC) + timedelta(hours=1)
    for i, pid in enumerate(principals):
        buyer = f"{pid}.agent"
        for k in range(THREADS_PER_PRINCIPAL):
            listing = listing_ids[(i * THREADS_PER_PRINCIPAL + k) % len(listing_ids)]
            thread = f"{pid}-t{k}"
            opened = ThreadOpened(
                thread_id=thread,
                listing_id=listing,
                buyer_agent_id=buyer,
                seller_agent_id="seller-0",
                deadline=deadline,
                max_rounds=20,
            )
            events.append((listing, _env(opened, market_id, "negotiation")))
            events += [
                (listing, offer(market_id, thread, listing, buyer, n)) for n in range(1, OFFERS_PER_THREAD)
            ]
            if k == 0:
                events.append((listing, _env(_deal(thread, listing, pid), market_id, "negotiation")))
    return events


def _deal(thread: str, listing: str, pid: str) -> DealAgreed:
    return DealAgreed(
        deal_id=f"{thread}-deal",
        listing_id=listing,
        thread_id=thread,
        buyer_agent_id=f"{pid}.agent",
        buyer_principal_id=pid,
        seller_agent_id="seller-0",
        seller_principal_id="principal-0",
        price_cents=11_000,
        shipping_method="local_pickup",
        shipping_cost_cents=0,
        shipping_paid_by=Party.BUYER,
        accepted_offer_id=f"{thread}-o5",
    )


async def populate(bootstrap: str, market_id: str, count: int, principals: Sequence[str]) -> None:
    published = listings(market_id, count)
    async with Publisher(bootstrap, "bench-web") as pub:
        await pub.send_many(LISTING_EVENTS_TOPIC.name, published)
        await pub.send_many(AGENT_EVENTS.name, agents(market_id, principals))
        ids = [key for key, _ in published]
        await pub.send_many(NEGOTIATION_EVENTS_TOPIC.name, negotiations(market_id, principals, ids))


async def wait_for_read_model(pool: asyncpg.Pool, market_id: str, listings: int, principals: int) -> float:
    started = time.perf_counter()
    want_threads = principals * THREADS_PER_PRINCIPAL
    while True:
        have = await pool.fetchrow(
            "SELECT (SELECT count(*) FROM listings WHERE market_id = $1) AS l,"
            " (SELECT count(*) FROM threads WHERE market_id = $1) AS t,"
            " (SELECT count(*) FROM deals WHERE market_id = $1) AS d",
            market_id,
        )
        if have["l"] >= listings and have["t"] >= want_threads and have["d"] >= principals:
            return time.perf_counter() - started
        if time.perf_counter() - started > 600:
            raise TimeoutError(f"read model incomplete after 600 s: {dict(have)}")
        await asyncio.sleep(0.5)


async def sessions(pool: asyncpg.Pool, market_id: str, principals: Sequence[str]) -> dict[str, str]:
    tokens = {}
    async with pool.acquire() as conn:
        for pid in principals:
            invite = await auth.create_invite(conn, auth.Role.PRINCIPAL, pid, market_id)
            redeemed = await auth.redeem(conn, invite)
            assert not isinstance(redeemed, auth.SignInRefusal)
            tokens[pid] = redeemed[0]
    return tokens


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _row(label: str, seconds: Sequence[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"  {label:<22} n={len(ms):>5}  p50 {_percentile(ms, 0.5):7.1f} ms"
        f"  p95 {_percentile(ms, 0.95):7.1f} ms  p99 {_percentile(ms, 0.99):7.1f} ms  max {max(ms):7.1f} ms"
    )


def page_plan(
    market_id: str, tokens: dict[str, str], count: int, seed: int
) -> list[tuple[str, str, str | None]]:
    """(label, path, session) for each request: a mix of public and principals' pages."""
    rng = random.Random(seed)
    people = list(tokens)
    plan = []
    for _ in range(count):
        pid = rng.choice(people)
        choice = rng.random()
        if choice < 0.25:
            plan.append(("market browse", f"/market/{market_id}?page={rng.randrange(10)}", None))
        elif choice < 0.4:
            plan.append(
                ("market search", f"/market/{market_id}?q={rng.choice(['bike', 'sofa', 'lamp'])}", None)
            )
        elif choice < 0.6:
            plan.append(("me", "/me", tokens[pid]))
        elif choice < 0.8:
            plan.append(
                (
                    "negotiation",
                    f"/me/negotiations/{pid}-t{rng.randrange(THREADS_PER_PRINCIPAL)}",
                    tokens[pid],
                )
            )
        elif choice < 0.9:
            plan.append(("deal", f"/me/deals/{pid}-t0-deal", tokens[pid]))
        else:
            plan.append(("approvals", "/me/approvals", tokens[pid]))
    return plan


async def pages(
    base: str, plan: list[tuple[str, str, str | None]], concurrency: int
) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {}
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def one(label: str, path: str, token: str | None) -> None:
            headers = {"cookie": f"{auth.SESSION_COOKIE}={token}"} if token else {}
            async with gate:
                started = time.perf_counter()
                response = await client.get(path, headers=headers)
                elapsed = time.perf_counter() - started
            assert response.status_code == 200, (path, response.status_code)
            timings.setdefault(label, []).append(elapsed)

        await asyncio.gather(*(one(*step) for step in plan))
    return timings


Stream = tuple[httpx.Response, AsyncIterator[str]]


async def _first_event(stream: Stream) -> float:
    """Reads a stream until its first data line; returns when it came (perf_counter)."""
    async for line in stream[1]:
        if line.startswith("data:"):
            return time.perf_counter()
    raise ConnectionError("stream ended")


async def _open(client: httpx.AsyncClient, token: str) -> Stream:
    """A principal's EventSource stream, once the server has said it is connected."""
    request = client.build_request("GET", "/me/stream", headers={"cookie": f"{auth.SESSION_COOKIE}={token}"})
    response = await client.send(request, stream=True)
    lines = response.aiter_lines()
    async for line in lines:
        if line.startswith(": connected"):
            return response, lines
    raise ConnectionError("stream closed before it connected")


async def event_to_browser(
    bootstrap: str, base: str, market_id: str, tokens: dict[str, str], samples: int
) -> list[float]:
    pid = next(iter(tokens))
    delays = []
    async with (
        httpx.AsyncClient(base_url=base, timeout=30) as client,
        Publisher(bootstrap, "bench-web-e2b") as pub,
    ):
        for n in range(samples):
            stream = await _open(client, tokens[pid])
            arrival = asyncio.create_task(_first_event(stream))
            env = offer(market_id, f"{pid}-t1", "x", f"{pid}.agent", 100 + n)
            await pub.send(NEGOTIATION_EVENTS_TOPIC.name, str(env.payload["listing_id"]), env)
            sent = time.perf_counter()
            delays.append(await asyncio.wait_for(arrival, 30) - sent)
            await stream[0].aclose()
    return delays


async def many_streams(
    bootstrap: str, base: str, market_id: str, tokens: dict[str, str], count: int
) -> tuple[float, float, int]:
    """(seconds to open them all, seconds until each has its offer, streams the server counted)."""
    people = list(tokens)[:count]
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        started = time.perf_counter()
        streams = await asyncio.gather(*(_open(client, tokens[pid]) for pid in people))
        opened = time.perf_counter() - started
        gauge = _open_streams((await client.get("/metrics")).text)
        arrivals = [asyncio.create_task(_first_event(s)) for s in streams]
        async with Publisher(bootstrap, "bench-web-many") as pub:
            batch = [
                (f"L{i}", offer(market_id, f"{pid}-t2", "x", f"{pid}.agent", 200))
                for i, pid in enumerate(people)
            ]
            await pub.send_many(NEGOTIATION_EVENTS_TOPIC.name, batch)
            sent = time.perf_counter()
        last = max(await asyncio.wait_for(asyncio.gather(*arrivals), 120))
        for response, _ in streams:
            await response.aclose()
    return opened, last - sent, gauge


def _open_streams(metrics: str) -> int:
    line = next(line for line in metrics.splitlines() if line.startswith("haggle_web_sse_streams "))
    return int(float(line.split()[1]))


def _rss_mib(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def baseline_tree(rev: str, into: Path) -> Path:
    """The files of revision `rev`, to run its web app from."""
    archive = subprocess.run(["git", "archive", rev], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def start_web(tree: Path | None) -> None:
    """This checkout's web app, or the one in `tree` (imports resolve there first)."""
    if tree is None:
        procs.start(SERVICE)
    else:
        port = procs.url_for(SERVICE).rsplit(":", 1)[1]
        env = {**os.environ, "HAGGLE_HTTP_PORT": port, "PYTHONPATH": str(tree)}
        argv = [sys.executable, "-m", "haggle", "run", SERVICE, f"--tag={Settings.from_env().state_dir}"]
        log = procs.log_path(SERVICE)
        write_pid(log.with_suffix(".pid"), spawn(argv, log, tree, env=env))
    procs.wait_ready(SERVICE)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f})"


async def run(args: argparse.Namespace) -> None:
    endpoints = infra.up(progress=print)
    infra.ensure_topics(endpoints.kafka_bootstrap, all_topic_partitions(), topic_configs())
    procs.stop(SERVICE)
    with tempfile.TemporaryDirectory(prefix="web-baseline-") as tmp:
        start_web(baseline_tree(args.baseline, Path(tmp)) if args.baseline else None)
        await measure(args, endpoints)


async def measure(args: argparse.Namespace, endpoints: infra.InfraEndpoints) -> None:
    base = procs.url_for(SERVICE)
    market_id = f"bench-web-{uuid.uuid4().hex[:8]}"
    principals = [f"{market_id}-p{i:04d}" for i in range(args.principals)]
    pool = await asyncpg.create_pool(
        endpoints.database_url, server_settings={"search_path": "web"}, min_size=1, max_size=4
    )
    assert pool is not None
    try:
        await populate(endpoints.kafka_bootstrap, market_id, args.listings, principals)
        took = await wait_for_read_model(pool, market_id, args.listings, args.principals)
        print(f"read model: {args.listings} listings, {args.principals} principals built in {took:.1f} s")
        tokens = await sessions(pool, market_id, principals)
    finally:
        await pool.close()
    if args.baseline:
        print(f"baseline {args.baseline}:")
        await page_report(args, base, market_id, tokens)
        procs.stop(SERVICE)
        start_web(None)
        print("this checkout:")
    await report(args, endpoints.kafka_bootstrap, base, market_id, tokens)


async def page_report(args: argparse.Namespace, base: str, market_id: str, tokens: dict[str, str]) -> None:
    plan = page_plan(market_id, tokens, args.requests, args.seed)
    await pages(base, plan[: min(100, len(plan))], args.concurrency)  # warm-up
    before = load()
    started = time.perf_counter()
    timings = await pages(base, plan, args.concurrency)
    wall = time.perf_counter() - started
    print(f"pages: {args.requests} GETs, {args.concurrency} at a time, {args.requests / wall:.0f} pages/s")
    print(f"  {before} before, {load()} after")
    for label, seconds in sorted(timings.items()):
        print(_row(label, seconds))
    print(_row("all pages", [s for v in timings.values() for s in v]))


async def report(
    args: argparse.Namespace, bootstrap: str, base: str, market_id: str, tokens: dict[str, str]
) -> None:
    await page_report(args, base, market_id, tokens)
    if args.pages_only:
        return
    delays = await event_to_browser(bootstrap, base, market_id, tokens, args.samples)
    print("event on Kafka → open stream:")
    print(_row("event to browser", delays))
    opened, delivered, gauge = await many_streams(bootstrap, base, market_id, tokens, args.streams)
    rss = _rss_mib(procs.pid_of(SERVICE))
    print(
        f"streams: {args.streams} opened in {opened:.2f} s (server counted {gauge}); an offer each reached"
        f" all of them {delivered * 1000:.0f} ms after it was on Kafka; web RSS {rss:.0f} MiB"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listings", type=int, default=1_000)
    parser.add_argument("--principals", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--samples", type=int, default=30, help="event-to-browser measurements")
    parser.add_argument("--streams", type=int, default=200, help="live streams held open at once")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--baseline", metavar="REV", help="also measure the pages of revision REV first")
    parser.add_argument("--pages-only", action="store_true", help="skip the live-stream measurements")
    args = parser.parse_args(argv)
    if args.streams > args.principals:
        parser.error("--streams cannot exceed --principals (one stream per signed-in principal)")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
