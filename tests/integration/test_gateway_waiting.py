"""Waiting reads on real PostgreSQL: the agent's change counter, its cursor and the wake-up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.gateway import store
from services.gateway.app import MIGRATIONS
from services.gateway.waiting import Waiters
from tests.integration.scratch import scratch_schema

AGENT = "p.agent"


async def _seed(pool: asyncpg.Pool, listings: tuple[str, ...]) -> None:
    await pool.execute(
        "INSERT INTO principals (principal_id, market_id, agent_id, mandate, mandate_sha256, public_key)"
        " VALUES ('p', 'm', $1, '{}', 'x', 'k')",
        AGENT,
    )
    for listing_id in listings:
        await pool.execute(
            "INSERT INTO negotiations (agent_id, neg_id, listing_id, want_id) VALUES ($1, $2, $3, 'w')",
            AGENT,
            store.neg_id(listing_id, None, selling=False),
            listing_id,
        )


def _entry(n: int) -> dict[str, object]:
    return {"type": "MessagePosted", "payload": {"n": n}, "at": "2026-12-07T00:00:00+00:00"}


async def _change(pool: asyncpg.Pool, listing_id: str) -> None:
    """What a handler does: take the next change under the principal's lock, then change a row."""
    async with pool.acquire() as conn, conn.transaction():
        await store.changed(conn, AGENT)
        await store.add_thread_event(conn, AGENT, store.neg_id(listing_id, None, False), _entry(1), None)


@contextlib.asynccontextmanager
async def _listening(
    database_url: str, listings: tuple[str, ...]
) -> AsyncIterator[tuple[asyncpg.Pool, Waiters]]:
    async with scratch_schema(database_url, "gwwait", MIGRATIONS, size=6) as pool:
        await _seed(pool, listings)
        waiters = Waiters(pool)
        listener = asyncio.create_task(waiters.listen())
        await asyncio.sleep(0.3)  # LISTEN registered
        try:
            yield pool, waiters
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener


@pytest.mark.timeout(120)
async def test_a_change_that_commits_late_wakes_the_waiter_at_once_and_none_is_skipped(
    database_url: str,
) -> None:
    loop = asyncio.get_running_loop()
    async with _listening(database_url, ("l1", "l2")) as (pool, waiters):
        async with pool.acquire() as first:
            slow = first.transaction()
            await slow.start()
            assert await store.changed(first, AGENT) == 1
            await store.add_thread_event(first, AGENT, store.neg_id("l1", None, False), _entry(0), None)
            second = asyncio.create_task(_change(pool, "l2"))  # waits for the principal's row lock
            waiting = asyncio.create_task(waiters.wait(AGENT, 0, timeout=20))
            await asyncio.sleep(1.0)
            assert not waiting.done(), "nothing has committed yet"
            assert not second.done(), "the second change waits for the first to commit"
            committed_at = loop.time()
            await slow.commit()
        found = await asyncio.wait_for(waiting, timeout=10)
        assert loop.time() - committed_at < 5, "woken by the commit, not by the 20 s timeout"
        await second
        seen = {row["listing_id"]: row["changed"] for row in found.negotiations}
        assert seen["l1"] == 1 and found.cursor >= 1
        assert all(changed <= found.cursor for changed in seen.values())
        if found.cursor == 1:  # the second change came after this read: the next wait has it
            later = await asyncio.wait_for(waiters.wait(AGENT, found.cursor, timeout=20), timeout=10)
            seen.update({row["listing_id"]: row["changed"] for row in later.negotiations})
            found = later
        assert seen == {"l1": 1, "l2": 2} and found.cursor == 2

        started = loop.time()
        idle = await waiters.wait(AGENT, 2, timeout=0.5)
        assert (idle.cursor, idle.negotiations, idle.deals) == (2, [], [])
        assert 0.4 <= loop.time() - started < 3

        ahead = await waiters.wait(AGENT, 99, timeout=5)  # a cursor from the future reads it all again
        assert ahead.cursor == 2 and {r["listing_id"] for r in ahead.negotiations} == {"l1", "l2"}
