"""A listing the listing service refused as `unknown_agent` is created again at a scheduled time
(a `listing_retries` row taken by the turn scheduler), over the live services."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from haggle.contracts.listing import ListingCommandRefused, ListingRefusal
from haggle.contracts.topics import LISTING_EVENTS_TOPIC
from haggle_lab.testing import mandates as m
from haggle_lab.testing.observe import of_type
from tests.integration.agents_support import agent_market
from tests.integration.listing_support import envelope

pytestmark = pytest.mark.usefixtures("running_services")


def refused(listing_id: str, reason: ListingRefusal) -> ListingCommandRefused:
    return ListingCommandRefused(
        listing_id=listing_id,
        command_type="CreateListing",
        command_event_id=uuid.uuid4().hex,
        reason=reason,
        detail="the listing service has not read agent.events this far",
    )


async def retries(database_url: str, listing_id: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchrow(
            "SELECT attempts, due_at FROM agents.listing_retries WHERE listing_id = $1", listing_id
        )
    finally:
        await conn.close()


async def test_a_listing_refused_as_unknown_agent_is_created_again_when_due(
    bootstrap: str, database_url: str, market_id: str
) -> None:
    async with agent_market(bootstrap, market_id, "listing.commands") as mk:
        await mk.assign(m.seller(mk.pid("alice"), [m.sell_item("bike", asking=30_000, floor=20_000)]))
        listing_id = f"{mk.pid('alice')}.bike"
        creates = of_type("CreateListing", listing_id=listing_id)
        await mk.obs.wait_for(
            of_type("ListingPublished", listing_id=listing_id), "listing.events", timeout=60
        )
        # The listing service may itself have refused the first create as `unknown_agent` (it had not
        # read agent.events yet) — the very race this retry exists for. Each extra create answers one.
        genuine = mk.obs.matching(
            of_type("ListingCommandRefused", listing_id=listing_id, reason="unknown_agent"),
            "listing.events",
        )
        before = 1 + len(genuine)
        await mk.obs.wait_for(creates, "listing.commands", count=before, timeout=30)
        assert len(mk.obs.matching(creates, "listing.commands")) == before

        # Not every refusal is retried: a payload the service could not read is final.
        await mk.pub.send(
            LISTING_EVENTS_TOPIC.name,
            listing_id,
            envelope(refused(listing_id, ListingRefusal.INVALID_PAYLOAD), market_id),
        )
        sent_at = time.monotonic()
        await mk.pub.send(
            LISTING_EVENTS_TOPIC.name,
            listing_id,
            envelope(refused(listing_id, ListingRefusal.UNKNOWN_AGENT), market_id),
        )
        again = await mk.obs.wait_for(creates, "listing.commands", count=before + 1, timeout=30)
        assert time.monotonic() - sent_at >= 0.1  # scheduled 0.1 s on at least, not sent at once
        assert again[-1].payload == again[0].payload
        assert again[-1].seq > again[-2].seq  # signed afresh with the agent's next seq

        row = await retries(database_url, listing_id)
        assert row is not None and row["attempts"] == before and row["due_at"] is None  # taken once
        await asyncio.sleep(1.5)
        assert len(mk.obs.matching(creates, "listing.commands")) == before + 1
