"""Typed units of work on real PostgreSQL: rows read once by id, changes written at commit, and
every query that is not by id sees this transaction's changes (the repository writes them first).

Run on the referee's own schema and repositories (`Threads`, `Listings`), through the production
`unit_of_work`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from haggle.contracts import encode, wrap
from haggle.contracts.agents import AgentRetired
from haggle.contracts.negotiation import EndReason
from haggle.runtime.outbox import unit_of_work
from services.negotiation.app import MIGRATIONS
from services.negotiation.domain import Actor, Thread, ThreadStatus
from services.negotiation.store import Threads
from tests.integration.scratch import scratch_schema

MARKET = "m-uow"
BUYER = Actor("buyer-agent", "buyer", None, can_buy=True, can_sell=False)
SELLER = Actor("seller-agent", "seller", None, can_buy=False, can_sell=True)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema(database_url, "uow", MIGRATIONS) as found:
        yield found


def opened(thread_id: str, listing_id: str = "L-1") -> Thread:
    now = datetime.now(UTC)
    return Thread(thread_id, listing_id, BUYER, SELLER, now, now + timedelta(minutes=5), 10, epoch=0)


async def test_a_query_sees_the_threads_saved_before_it_in_the_same_unit_of_work(pool: asyncpg.Pool) -> None:
    async with unit_of_work(pool) as uow:
        threads = uow.repo(Threads)
        threads.save_in(MARKET, opened("T-1"))
        assert [t.thread_id for t in await threads.open_on("L-1")] == ["T-1"]
        assert await threads.exists("L-1", BUYER.agent_id, 0)
        assert await threads.open_count(BUYER.agent_id) == 1
        threads.save_in(MARKET, opened("T-2", "L-2"))
        assert await threads.open_count(BUYER.agent_id) == 2
        ended = replace(opened("T-1"), status=ThreadStatus.ENDED, end_reason=EndReason.WITHDRAWN)
        threads.save(ended)
        assert await threads.open_count(BUYER.agent_id) == 1
        assert await threads.open_on("L-1") == ()


async def test_changes_are_written_at_commit_and_only_then(pool: asyncpg.Pool) -> None:
    async with unit_of_work(pool) as uow:
        uow.repo(Threads).save_in(MARKET, opened("T-1"))
        assert await pool.fetchval("SELECT count(*) FROM threads") == 0  # not written yet
    async with unit_of_work(pool) as uow:
        found = await uow.repo(Threads).get("T-1")
        assert found is not None and found.status is ThreadStatus.OPEN
        assert uow.repo(Threads).market_of("T-1") == MARKET
    with pytest.raises(RuntimeError, match="handler failed"):
        async with unit_of_work(pool) as uow:
            threads = uow.repo(Threads)
            assert await threads.get("T-1") is not None  # loaded: its market is known
            threads.save(replace(opened("T-1"), status=ThreadStatus.ENDED))
            assert await threads.open_count(BUYER.agent_id) == 0  # written inside the transaction
            raise RuntimeError("handler failed")
    assert await pool.fetchval("SELECT status FROM threads WHERE thread_id = 'T-1'") == "open"


async def test_a_row_read_by_id_is_read_once_and_then_kept(pool: asyncpg.Pool) -> None:
    async with unit_of_work(pool) as uow:
        uow.repo(Threads).save_in(MARKET, opened("T-1"))
    async with unit_of_work(pool) as uow:
        threads = uow.repo(Threads)
        await threads.load_many(["T-1", "T-unknown"])
        await uow.conn.execute("DELETE FROM threads")  # behind the repository's back...
        assert (await threads.get("T-1")) is not None  # ...the value read is kept, not read again
        assert await threads.get("T-unknown") is None
        assert uow.repo(Threads) is threads


async def test_outbox_rows_are_numbered_in_emit_order_and_a_repeated_event_is_written_once(
    pool: asyncpg.Pool,
) -> None:
    """The relay publishes in id order, so the ids are each key's order on its topic."""
    envelopes = [
        wrap(AgentRetired(agent_id=f"agent-{i}"), market_id=MARKET, producer="test") for i in range(40)
    ]
    keys = [f"key-{(i * 7) % 3}" for i in range(40)]  # keys interleaved, not sorted
    async with unit_of_work(pool) as uow:
        for key, env in zip(keys, envelopes, strict=True):
            uow.emit("t.events", key, env)
        uow.emit("t.events", keys[3], envelopes[3])  # the same event again: written once
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT event_id, key, payload FROM outbox ORDER BY id")
    assert [r["event_id"] for r in rows] == [env.event_id for env in envelopes]
    assert [r["key"] for r in rows] == keys
    assert [bytes(r["payload"]) for r in rows] == [encode(env) for env in envelopes]


async def test_a_commit_wakes_its_channels_and_a_rollback_wakes_none(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """Listeners hear a unit of work's wake-ups once it commits (the relay's channel when it wrote
    the outbox, and any channel it added), and nothing from one that rolled back."""
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    try:
        for channel in ("uow_relay", "uow_turns"):
            await listener.add_listener(channel, lambda _c, _p, channel, _m: heard.put_nowait(channel))
        env = wrap(AgentRetired(agent_id="agent-wake"), market_id=MARKET, producer="test")

        with pytest.raises(RuntimeError):
            async with unit_of_work(pool, "uow_relay") as uow:
                uow.emit("t.events", "k", env)
                uow.wake.add("uow_turns")
                raise RuntimeError("rolled back")
        async with unit_of_work(pool, "uow_relay") as uow:
            uow.wake.add("uow_turns")  # a wake-up without an outbox row
        assert await asyncio.wait_for(heard.get(), 5) == "uow_turns"
        async with unit_of_work(pool, "uow_relay") as uow:
            uow.emit("t.events", "k", env)
        assert await asyncio.wait_for(heard.get(), 5) == "uow_relay"
        async with unit_of_work(pool, "uow_relay") as uow:  # both, in the one statement
            other = wrap(AgentRetired(agent_id="agent-wake-2"), market_id=MARKET, producer="test")
            uow.emit("t.events", "k2", other)
            uow.wake.add("uow_turns")
        both = {await asyncio.wait_for(heard.get(), 5) for _ in range(2)}
        assert both == {"uow_relay", "uow_turns"}
        async with unit_of_work(pool, "uow_relay"):
            pass  # nothing written, nothing to wake
        await asyncio.sleep(0.3)
        assert heard.empty()
    finally:
        await listener.close()
