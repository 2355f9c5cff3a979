"""Rate limits per key hold across gateway instances: two gateways' HTTP apps over one database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import httpx
import pytest

from haggle.contracts import AgentKey
from haggle.contracts.decisions import mandate_digest
from haggle.runtime.db import create_pool
from haggle.runtime.http import build_app
from haggle_lab.testing import mandates as m
from services.gateway import store
from services.gateway.api import Gateway
from services.gateway.app import MIGRATIONS
from services.gateway.domain import listing_for
from services.gateway.faces import http_routes
from services.gateway.limits import Bucket
from services.gateway.waiting import Waiters
from tests.integration.gateway_support import external_buyer, request_id
from tests.integration.scratch import scratch_schema

API_KEY = "key-of-an-outside-agent"
AGENT = "ext.agent"
LISTINGS = ("alice.bike1", "alice.bike2")


async def _seed(pool: asyncpg.Pool) -> None:
    """An admitted outside buyer with an API key, and two listings it may open on."""
    mandate = external_buyer("ext", API_KEY, max_price=26_000, budget=100_000)
    async with pool.acquire() as conn:
        digest = mandate_digest(mandate)
        await store.insert_principal(conn, "m", mandate, digest, AGENT, AgentKey.generate())
        await store.set_admitted(conn, AGENT)
        items = [m.sell_item(lid.split(".")[1], asking=30_000, floor=20_000) for lid in LISTINGS]
        seller = m.seller("alice", items)
        for item in seller.items:
            await store.save_listing(conn, "m", listing_for(seller, "alice.agent", item.id, None))


@contextlib.asynccontextmanager
async def _instances(
    database_url: str, requests: Bucket, moves: Bucket
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, asyncpg.Pool]]:
    """Two gateway instances (each its own pool and app) over one schema, with the same limits."""
    async with scratch_schema(database_url, "gwlimits", MIGRATIONS) as pool:
        await _seed(pool)
        schema = await pool.fetchval("SELECT current_schema()")
        other = await create_pool(database_url, schema, size=4)
        try:
            clients = []
            for instance in (pool, other):
                own = replace(requests), replace(moves)  # nothing shared but the database
                gateway = Gateway(instance, "unused", *own, Waiters(instance))
                app = build_app(lambda: {}, http_routes(gateway))
                transport = httpx.ASGITransport(app=app)
                headers = {"Authorization": f"Bearer {API_KEY}"}
                clients.append(httpx.AsyncClient(transport=transport, base_url="http://gw", headers=headers))
            async with clients[0] as first, clients[1] as second:
                yield first, second, pool
        finally:
            await other.close()


@pytest.mark.timeout(120)
async def test_two_instances_together_refuse_a_keys_call_past_its_burst(database_url: str) -> None:
    requests = Bucket("requests", per_second=0.001, burst=5)
    async with _instances(database_url, requests, Bucket("moves", 5, 10)) as (first, second, _):
        answers = [await (first if n % 2 else second).get("/v1/deals") for n in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert answers[-1].json()["refused"] == "rate_limited"
        for client in (first, second):  # neither instance has a token left for this key
            refused = await client.get("/v1/negotiations")
            assert (refused.status_code, refused.json()["refused"]) == (429, "rate_limited")
        stranger = await first.get("/v1/deals", headers={"Authorization": "Bearer another-key"})
        assert stranger.status_code == 401  # its own bucket: refused for what it is, not for the rate


async def test_guessed_keys_share_one_bucket_and_leave_no_row_each(database_url: str) -> None:
    requests = Bucket("requests", per_second=0.001, burst=3)
    async with _instances(database_url, requests, Bucket("moves", 5, 10)) as (first, second, pool):
        guesses = [{"Authorization": f"Bearer guess-{n}"} for n in range(5)]
        clients = [first, second] * 3
        answers = [await c.get("/v1/deals", headers=h) for c, h in zip(clients, guesses, strict=False)]
        assert [a.status_code for a in answers] == [401] * 3 + [429] * 2
        assert await pool.fetchval("SELECT count(*) FROM rate_buckets") == 1
        assert (await first.get("/v1/deals")).status_code == 200  # the real key keeps its own bucket


@pytest.mark.timeout(120)
async def test_a_move_past_the_agents_move_burst_on_another_instance_is_refused_and_changes_nothing(
    database_url: str,
) -> None:
    moves = Bucket("moves", per_second=0.001, burst=1)
    async with _instances(database_url, Bucket("requests", 20, 40), moves) as (first, second, pool):

        def opening(listing_id: str, price: int = 18_000) -> dict[str, object]:
            return {
                "request_id": request_id(),
                "listing_id": listing_id,
                "price_cents": price,
                "shipping_method": "local_pickup",
            }

        over = await first.post("/v1/negotiations", json=opening(LISTINGS[1], price=27_000))
        assert over.json()["refused"] == "guard:above_max"  # refused by the guard first: no token spent
        opened = await first.post("/v1/negotiations", json=opening(LISTINGS[0]))
        assert opened.status_code == 202, opened.json()
        refused = await second.post("/v1/negotiations", json=opening(LISTINGS[1]))
        assert (refused.status_code, refused.json()["refused"]) == (422, "guard:rate_limited")
        rows = await pool.fetch("SELECT listing_id, held_cents FROM negotiations WHERE agent_id = $1", AGENT)
        assert [(r["listing_id"], r["held_cents"]) for r in rows] == [(LISTINGS[0], 26_000)]
        outbox = await pool.fetchval("SELECT count(*) FROM outbox WHERE topic = 'negotiation.commands'")
        assert outbox == 1


@pytest.mark.timeout(120)
async def test_a_token_taken_in_a_transaction_that_rolls_back_is_given_back(database_url: str) -> None:
    moves = Bucket("moves", per_second=0.001, burst=1)
    async with scratch_schema(database_url, "gwbucket", MIGRATIONS) as pool:
        with contextlib.suppress(RuntimeError):
            async with pool.acquire() as conn, conn.transaction():
                assert await moves.take(conn, AGENT)
                raise RuntimeError("the move was refused later in its transaction")
        assert await moves.take(pool, AGENT)
        assert not await moves.take(pool, AGENT)
        assert await moves.take(pool, "another.agent")
