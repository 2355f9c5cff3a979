"""Sign-in links (expired, reused, unknown, rate-limited), the operator closing a market, the public
market page, the address kept secret, and the service's own face (/metrics, /healthz, /readyz)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from haggle import procs
from haggle.client import Observer, Publisher
from haggle.infra.state import Settings
from haggle.runtime.operators import is_operator
from haggle_lab.testing import mandates as m
from haggle_lab.testing.observe import of_type
from services.web import auth
from tests.web.support import link_for, shot, sign_in, web_url

pytestmark = pytest.mark.usefixtures("running_services")


async def test_an_expired_a_reused_or_an_unknown_link_signs_nobody_in(
    market_id: str, context: BrowserContext, other_context: BrowserContext
) -> None:
    expired = await link_for(f"{market_id}-late", market_id, ttl=timedelta(milliseconds=300))
    used = await link_for(f"{market_id}-early", market_id)
    await asyncio.sleep(0.5)
    page = await context.new_page()
    for link, words in (
        (expired, "expired"),
        (used + "x", "not valid"),
    ):
        await page.goto(link)
        await page.click("#signin-button")
        await expect(page.locator("#signin-error")).to_contain_text(words)
    await shot(page, "signin-expired")
    first = await other_context.new_page()
    await first.goto(used)
    await first.click("#signin-button")
    await first.wait_for_url("**/me")
    await page.goto(used)
    await page.click("#signin-button")
    await expect(page.locator("#signin-error")).to_contain_text("already used")
    await page.goto(f"{web_url()}/me")
    assert page.url.endswith("/signin")
    assert not [c for c in await context.cookies() if c["name"] == auth.SESSION_COOKIE]
    cookie = next(c for c in await other_context.cookies() if c["name"] == auth.SESSION_COOKIE)
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Lax")


async def test_sign_in_failures_are_rate_limited_per_client(database_url: str) -> None:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "web"})
    client = f"test-{uuid.uuid4().hex}"
    try:
        for _ in range(auth.SIGNIN_LIMIT):
            assert await auth.attempt_allowed(conn, client)
            await auth.record_failure(conn, client)
        assert not await auth.attempt_allowed(conn, client)
        assert await auth.attempt_allowed(conn, f"{client}-other")
    finally:
        await conn.close()


async def test_an_operator_opens_and_closes_a_market_seen_by_the_public(
    bootstrap: str, market_id: str, context: BrowserContext
) -> None:
    async with Publisher(bootstrap) as pub, Observer(bootstrap, "market.events", market_id=market_id) as obs:
        ops = await sign_in(context, None, market_id)
        await ops.fill("#new-market", market_id)
        await ops.click("form[action='/ops/markets'] button")
        rules = await obs.wait_for(of_type("MarketRulesSet"), "market.events", timeout=20)
        assert is_operator(rules[0])
        row = ops.locator(f"#market-{market_id}")
        await expect(row).to_be_visible()
        item = m.sell_item("bike", asking=30_000, floor=20_000, title="Giant Escape 3 hybrid bike")
        await m.assign(pub, market_id, m.seller(f"{market_id}-sam", [item]))
        await expect(row.locator("td").nth(2)).to_have_text("1", timeout=30_000)
        await shot(ops, "ops-console")

        public = await context.new_page()
        await public.goto(f"{web_url()}/market/{market_id}?q=hybrid")
        await expect(public.locator("#listings")).to_contain_text("Giant Escape 3 hybrid bike")
        text = await public.content()
        assert "$300.00" in text and "$200.00" not in text
        await shot(public, "market-page")
        await public.goto(f"{web_url()}/market/{market_id}?q=toaster")
        await expect(public.locator("#listings")).to_contain_text("Nothing for sale")

        await row.locator("button.close-market").click()
        closing = await obs.wait_for(of_type("MarketClosing"), "market.events", timeout=20)
        assert is_operator(closing[0])
        await expect(ops.locator(f"#market-{market_id} .phase")).to_have_text("closing")
        await public.goto(f"{web_url()}/market/{market_id}")
        await expect(public.locator("#market-phase")).to_have_text("closing")


async def test_a_shipping_address_is_never_in_clear_in_events_tables_or_logs(
    database_url: str, market_id: str, context: BrowserContext
) -> None:
    street = f"{uuid.uuid4().hex[:12]} Wallaby Way"
    page = await sign_in(context, f"{market_id}-nemo", market_id)
    await page.goto(f"{web_url()}/me/address")
    await page.fill("#address", f"{street}\nSydney 2000")
    await page.click("#save-address")
    await expect(page.locator("#address-shown")).to_contain_text("Sydney 2000")
    assert street not in await page.content()
    await shot(page, "address")
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        for t in tables:
            found = await conn.fetchval(
                f'SELECT count(*) FROM "{t["table_schema"]}"."{t["table_name"]}" x WHERE x::text LIKE $1',
                f"%{street[:12]}%",
            )
            assert found == 0, f"{t['table_schema']}.{t['table_name']}"
        outbox = await conn.fetch("SELECT payload FROM web.outbox")
        assert all(street[:12].encode() not in bytes(r["payload"]) for r in outbox)
    finally:
        await conn.close()
    for log in (Settings.from_env().state_dir / "services").glob("*.log"):
        assert street[:12] not in log.read_text(errors="replace"), log.name


async def test_the_web_service_reports_its_requests_streams_and_health() -> None:
    async with httpx.AsyncClient(base_url=web_url(), timeout=10) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).json()["ready"] is True
        assert (await client.get("/")).status_code == 200
        async with client.stream("GET", "/market/nowhere/stream") as stream:
            await anext(stream.aiter_bytes())
            metrics = (await client.get("/metrics")).text
    assert 'haggle_web_requests_total{method="GET",route="index",status="200"}' in metrics
    assert "haggle_web_request_seconds_bucket" in metrics
    streams = next(line for line in metrics.splitlines() if line.startswith("haggle_web_sse_streams "))
    assert float(streams.split()[1]) >= 1
    assert procs.status("web").ready
