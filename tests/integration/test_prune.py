"""What a service forgets, against real PostgreSQL: sent outbox rows after an hour, handled event
ids once Kafka can no longer deliver the event again; nothing unsent, nothing recent."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from haggle.runtime.outbox import INBOX_KEEP_SECONDS, prune_received, prune_sent
from tests.integration.scratch import scratch_schema

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema(database_url, "prune") as pool:
        yield pool


async def test_handled_ids_are_kept_while_kafka_could_deliver_them_again(pool: asyncpg.Pool) -> None:
    assert INBOX_KEEP_SECONDS > 14 * 24 * 3600, "topics keep 7 days, and a segment rolls after 7"
    ages = {"just now": timedelta(0), "a week": timedelta(days=7), "two weeks": timedelta(days=14)}
    ages |= {"long gone": timedelta(seconds=INBOX_KEEP_SECONDS, days=1)}
    ids = {name: uuid.uuid4() for name in ages}
    for name, age in ages.items():
        await pool.execute(
            "INSERT INTO inbox (event_id, received_at) VALUES ($1, now() - $2::interval)", ids[name], age
        )

    assert await prune_received(pool) == 1
    kept = {r["event_id"] for r in await pool.fetch("SELECT event_id FROM inbox")}
    assert kept == {ids[name] for name in ("just now", "a week", "two weeks")}


async def test_sent_rows_go_after_an_hour_and_unsent_ones_stay(pool: asyncpg.Pool) -> None:
    rows = {
        "sent long ago": timedelta(hours=2),
        "sent just now": timedelta(0),
        "never sent": None,
    }
    for name, sent_ago in rows.items():
        await pool.execute(
            "INSERT INTO outbox (event_id, topic, key, payload, created_at, sent_at)"
            " VALUES ($1, 't', $2, '\\x00', now() - interval '3 hours', now() - $3::interval)",
            uuid.uuid4(),
            name,
            sent_ago,
        )

    assert await prune_sent(pool) == 1
    left = {r["key"] for r in await pool.fetch("SELECT key FROM outbox")}
    assert left == {"sent just now", "never sent"}
