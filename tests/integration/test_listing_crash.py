"""kill -9 of the listing service in the middle of 1,000 creates, then a restart.

The contract is at-least-once delivery with stable event ids: every listing exists exactly
once in PostgreSQL and is published at least once; a crash between publishing and marking
the outbox row sent may publish an event again, under the same event id.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import asyncpg
import pytest

from haggle import procs
from haggle.client import Publisher
from haggle.contracts import Envelope
from haggle.contracts.topics import LISTING_COMMANDS_TOPIC, LISTING_EVENTS_TOPIC
from haggle_lab.testing.goods import sample_commands
from tests.integration.listing_support import LISTING, envelope, eventually, listing_service, watching

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

COUNT = 1_000
KILL_AT = 333
"""Listings committed when the kill is sent: inside a consumer batch (of 200), relay busy, far from done."""


@pytest.fixture(scope="module")
def service(endpoints: object) -> Iterator[str]:
    with listing_service() as url:
        yield url


async def stored(db: asyncpg.Pool, market_id: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM listing.listings WHERE market_id = $1", market_id))


async def kill_when_committed(db: asyncpg.Pool, market_id: str, at: int) -> int:
    deadline = time.monotonic() + 60
    while (count := await stored(db, market_id)) < at:
        assert time.monotonic() < deadline, f"only {count} listings after 60 s"
        await asyncio.sleep(0.005)
    procs.kill(LISTING)

    async def gone() -> bool | None:
        return True if procs.pid_of(LISTING) is None else None

    await eventually(gone, 10, "the killed service to be gone")
    return count


async def test_kill_9_mid_batch_then_restart_loses_and_duplicates_nothing(
    bootstrap: str, database_url: str, service: str, market_id: str, record_property: object
) -> None:
    commands = [envelope(cmd, market_id) for cmd in sample_commands(COUNT, market_id)]
    expected = {str(env.payload["listing_id"]) for env in commands}
    db = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert db is not None
    async with watching(bootstrap, LISTING_EVENTS_TOPIC.name) as watcher, Publisher(bootstrap) as pub:
        await pub.send_many(
            LISTING_COMMANDS_TOPIC.name, [(str(e.payload["listing_id"]), e) for e in commands]
        )
        seen_at_kill = await kill_when_committed(db, market_id, KILL_AT)
        after_kill = await stored(db, market_id)
        assert KILL_AT <= after_kill < COUNT, f"the kill came too late to test anything: {after_kill} stored"

        procs.start(LISTING)
        await asyncio.to_thread(procs.wait_ready, LISTING)

        async def all_stored() -> bool | None:
            return True if await stored(db, market_id) >= COUNT else None

        await eventually(all_stored, 120, f"{COUNT} listings in PostgreSQL")
        await watcher.wait(
            lambda e: e.type == "ListingPublished" and e.market_id == market_id, count=COUNT, timeout=60
        )
        async with db.acquire() as conn:
            await assert_exactly_once_in_the_database(conn, market_id, expected, commands)
    await db.close()

    # Let late redeliveries arrive before counting them.
    await asyncio.sleep(1.0)
    published = [e for e in watcher.events if e.type == "ListingPublished" and e.market_id == market_id]
    by_listing = Counter(str(e.payload["listing_id"]) for e in published)
    event_ids = {e.event_id for e in published}
    assert set(by_listing) == expected, "every listing published at least once"
    assert len(event_ids) == COUNT, "one event id per listing: a redelivery reuses it"
    ids_per_listing: dict[str, set[object]] = {}
    for e in published:
        ids_per_listing.setdefault(str(e.payload["listing_id"]), set()).add(e.event_id)
    assert [lid for lid, ids in ids_per_listing.items() if len(ids) > 1] == []
    refusals = [e for e in watcher.events if e.type == "ListingCommandRefused" and e.market_id == market_id]
    assert refusals == []

    redelivered = len(published) - COUNT
    print(
        f"\nkill -9 with {seen_at_kill} of {COUNT} listings committed ({after_kill} after the kill);"
        f" {len(published)} ListingPublished seen, {redelivered} redelivered"
    )
    record_property("committed_at_kill", after_kill)  # type: ignore[operator]
    record_property("redelivered_events", redelivered)  # type: ignore[operator]


async def assert_exactly_once_in_the_database(
    conn: asyncpg.Connection, market_id: str, expected: set[str], commands: list[Envelope]
) -> None:
    rows = await conn.fetch("SELECT listing_id, status FROM listing.listings WHERE market_id = $1", market_id)
    ids = [r["listing_id"] for r in rows]
    assert len(ids) == len(set(ids)) == COUNT
    assert set(ids) == expected
    assert {r["status"] for r in rows} == {"active"}
    handled = await conn.fetchval(
        "SELECT count(*) FROM listing.inbox WHERE event_id = ANY($1::uuid[])",
        [env.event_id for env in commands],
    )
    assert handled == COUNT

    async def all_sent() -> bool | None:
        """The relay marks a batch sent after the broker acknowledged it, so a consumer may see
        the events a moment before their rows say so."""
        unsent = await conn.fetchval(
            "SELECT count(*) FROM listing.outbox WHERE sent_at IS NULL AND key LIKE $1", f"{market_id}-%"
        )
        return True if unsent == 0 else None

    await eventually(all_sent, 30, "every outbox row marked sent")
