"""`shop.consider` against real PostgreSQL: many (buyer, listing) pairs in one go, as a listing's
buyers or an admitted buyer's listings, with the outcome of considering each pair alone."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from haggle.contracts.listing import ListingPublished
from haggle.runtime.outbox import unit_of_work
from haggle_lab.testing import mandates
from services.agents import app, store
from services.agents.domain import Negotiation, Role, Status, buyer_neg_id
from services.agents.domain.negotiation import EndedBecause
from services.agents.handlers import shop
from tests.integration.agents_support import add_principal
from tests.integration.scratch import scratch_schema

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema(database_url, "consider", Path(app.__file__).parent / "migrations") as pool:
        yield pool


def bike(market_id: str, seller: str, number: int, price: int) -> ListingPublished:
    item = mandates.sell_item(f"s{number}", asking=price, floor=price // 2)
    listing_id = f"{market_id}.{seller}.s{number}"
    cmd = mandates.seller(seller, [item]).items[0].to_listing(listing_id, f"{seller}.agent", seller)
    return ListingPublished.model_validate({**cmd.model_dump(), "type": "ListingPublished"})


async def negotiations(pool: asyncpg.Pool, *principal_ids: str) -> dict[str, Negotiation]:
    async with pool.acquire() as conn:
        return {n.neg_id: n for pid in principal_ids for n in await store.negotiations_of(conn, pid, False)}


async def test_a_listing_joins_each_matching_buyers_shortlist_once(pool: asyncpg.Pool) -> None:
    market_id = f"m-{uuid.uuid4().hex[:8]}"
    keen, tried, elsewhere = (f"{market_id}.{name}" for name in ("keen", "tried", "elsewhere"))
    bikes = [mandates.want("w1", 40_000)]
    async with pool.acquire() as conn:
        await add_principal(conn, market_id, mandates.buyer(keen, bikes, 100_000))
        await add_principal(conn, market_id, mandates.buyer(tried, bikes, 100_000))
        await add_principal(
            conn,
            market_id,
            mandates.buyer(elsewhere, [mandates.want("w1", 40_000, ("drill",), "tools")], 100_000),
        )
        dear, cheap = bike(market_id, "seller", 1, 30_000), bike(market_id, "seller", 2, 20_000)
        for listing in (dear, cheap):
            await store.save_listing(conn, market_id, listing)
        before = Negotiation(
            buyer_neg_id(tried, dear.listing_id), tried, dear.listing_id, Role.BUYER, want_id="w1"
        )
        before.end(EndedBecause.OUTRANKED)
        await store.save_negotiation(conn, before)

    async with unit_of_work(pool) as uow:  # a listing's buyers
        buyers = [p for pid in (keen, tried, elsewhere) if (p := await store.principal(uow.conn, pid))]
        await shop.consider(uow, [(p, dear) for p in buyers])

    found = await negotiations(pool, keen, tried, elsewhere)
    assert set(found) == {buyer_neg_id(keen, dear.listing_id), buyer_neg_id(tried, dear.listing_id)}
    first = found[buyer_neg_id(keen, dear.listing_id)]
    assert first.status is Status.OPENING and first.retry_at is not None, "the want's one candidate opens"
    again = found[buyer_neg_id(tried, dear.listing_id)]
    assert again.status is Status.ENDED and again.retry_at is None, "a pair already known is not retried"

    async with unit_of_work(pool) as uow:  # an admitted buyer's listings: the cheaper one goes first
        principal = await store.principal(uow.conn, keen)
        assert principal is not None
        await shop.consider(uow, [(principal, cheap), (principal, dear)])

    found = await negotiations(pool, keen)
    assert len(found) == 2
    assert found[buyer_neg_id(keen, cheap.listing_id)].retry_at is not None
    waiting = found[buyer_neg_id(keen, dear.listing_id)]
    assert waiting.status is Status.OPENING and waiting.retry_at is None, "the dearer one waits its turn"
