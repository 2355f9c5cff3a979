"""A buyer in the browser approves, disputes a delivered item and sees the operator's decision;
another principal, signed in beside them, can neither see nor touch any of it.

The test plays the referee and the parties' agents (scripted, signed) as the settlement
tests do; the person and the operator act only through the browser.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import BrowserContext, Page, expect

from haggle.contracts import Condition
from haggle.contracts.settlement import ShipItem
from haggle_lab.testing.observe import of_type
from tests.integration.settlement_support import SettlementMarket, settlement_market
from tests.web.support import shot, sign_in, web_url

pytestmark = pytest.mark.usefixtures("running_services")
PRICE = 20_000


@pytest.fixture
async def market(bootstrap: str, database_url: str, market_id: str) -> AsyncIterator[SettlementMarket]:
    async with settlement_market(bootstrap, database_url, market_id) as found:
        yield found


async def csrf_of(page: Page) -> str:
    token = await page.locator("input[name=csrf]").first.get_attribute("value")
    assert token
    return token


async def approval_id_on(page: Page) -> str:
    row = page.locator("#approvals tr[id^=approval-]").first
    await expect(row).to_be_visible(timeout=30_000)
    return str(await row.get_attribute("id")).removeprefix("approval-")


async def test_a_buyer_disputes_a_delivered_item_and_the_operator_decides(
    market: SettlementMarket, context: BrowserContext, other_context: BrowserContext
) -> None:
    await market.open(inspection_window_seconds=120)
    await market.fund(market.buyer, 50_000, limit=1_000)
    deal_id, listing_id = f"{market.market_id}-D1", f"{market.market_id}-L1"
    await market.listing(listing_id, Condition.VERY_GOOD, PRICE)
    await market.agree(market.deal(deal_id, listing_id, PRICE))

    bob = await sign_in(context, market.buyer.principal_id, market.market_id)
    await bob.goto(f"{web_url()}/me/approvals")
    approval_id = await approval_id_on(bob)

    carol = await sign_in(other_context, f"{market.market_id}-carol", market.market_id)
    await refused_everything_of_bob(carol, deal_id, approval_id)
    await expect(bob.locator("button.grant")).to_be_visible()

    no_token = await bob.request.post(f"{web_url()}/me/approvals/{approval_id}", form={"answer": "grant"})
    assert no_token.status == 403
    await bob.click("button.grant")
    await market.event("EscrowFunded", deal_id)
    granted = market.obs.matching(of_type("ApprovalGranted", approval_id=approval_id), "approval.events")
    assert [g.payload["granted_by"] for g in granted] == [f"principal:{market.buyer.principal_id}"]

    await market.command(market.seller, ShipItem(deal_id=deal_id, packed_condition=Condition.VERY_GOOD))
    await bob.goto(f"{web_url()}/me/deals/{deal_id}")
    await expect(bob.locator("#deal-phase")).to_have_text("inspecting", timeout=30_000)
    await bob.reload()
    await shot(bob, "deal-delivered")
    forged = await carol.request.post(
        f"{web_url()}/me/deals/{deal_id}/dispute", form={"csrf": await csrf_of(carol), "reason": "wrong_item"}
    )
    assert forged.status == 404
    await bob.select_option("#reason", "wrong_item")
    await bob.fill("#note", "a toaster, not an espresso machine")
    await bob.click("#open-dispute")
    await market.event("DisputeOpened", deal_id)
    await expect(bob.locator("#dispute-state")).to_have_text("Waiting for a decision")

    ops = await sign_in(other_context, None, market.market_id)
    form = ops.locator(f"#dispute-{deal_id}")
    await expect(form).to_contain_text("a toaster")
    await shot(ops, "ops-dispute")
    await form.locator("select[name=outcome]").select_option("refund")
    await form.locator("button.resolve").click()
    resolved = await market.event("DisputeResolved", deal_id)
    assert (resolved.payload["decided_by"], resolved.payload["outcome"]) == ("operator", "refund")

    # Bob's open page learns the outcome by itself.
    await expect(bob.locator("#dispute-state")).to_have_text("Resolved: refund", timeout=30_000)
    await expect(bob.locator("#deal-phase")).to_have_text("refunded", timeout=30_000)
    await expect(bob.locator("#dispute-form")).to_have_count(0)
    await shot(bob, "deal-refunded")


async def test_a_buyer_accepts_a_delivered_item_and_the_seller_is_paid_at_once(
    market: SettlementMarket, context: BrowserContext, other_context: BrowserContext
) -> None:
    """A person who inspects the goods themselves (`Mandate.inspects_goods`) accepts them in the
    browser well before the window ends; the web app holds no agent key, so settlement takes its
    operator-signed AcceptGoods as the buyer's."""
    await market.open(inspection_window_seconds=600)
    await market.fund(market.buyer, 50_000)
    deal_id, listing_id = f"{market.market_id}-D2", f"{market.market_id}-L2"
    await market.listing(listing_id, Condition.VERY_GOOD, PRICE)
    await market.agree(market.deal(deal_id, listing_id, PRICE))
    await market.event("EscrowFunded", deal_id)
    await market.command(market.seller, ShipItem(deal_id=deal_id, packed_condition=Condition.VERY_GOOD))
    bob = await sign_in(context, market.buyer.principal_id, market.market_id)
    await bob.goto(f"{web_url()}/me/deals/{deal_id}")
    await expect(bob.locator("#deal-phase")).to_have_text("inspecting", timeout=30_000)
    await bob.reload()

    carol = await sign_in(other_context, f"{market.market_id}-carol", market.market_id)
    forged = await carol.request.post(
        f"{web_url()}/me/deals/{deal_id}/accept", form={"csrf": await csrf_of(carol)}
    )
    assert forged.status == 404
    no_token = await bob.request.post(f"{web_url()}/me/deals/{deal_id}/accept", form={})
    assert no_token.status == 403
    assert await market.state(deal_id) == "inspecting"

    await bob.click("#accept-goods")
    passed = await market.event("InspectionPassed", deal_id)
    assert passed.payload["ended_by"] == "accepted"  # not the window: it has ten minutes to run
    await market.event("FundsReleased", deal_id)
    await expect(bob.locator("#deal-phase")).to_have_text("released", timeout=30_000)
    await expect(bob.locator("#accept-form")).to_have_count(0)
    await shot(bob, "deal-accepted")


async def refused_everything_of_bob(carol: Page, deal_id: str, approval_id: str) -> None:
    """Carol gets 404 for each of Bob's ids, reading or acting, and her pages show none of it."""
    base = web_url()
    for path in (f"/me/deals/{deal_id}", "/me/negotiations/th-" + deal_id):
        response = await carol.request.get(base + path)
        assert response.status == 404, path
    csrf = await csrf_of(carol)
    answer = await carol.request.post(
        f"{base}/me/approvals/{approval_id}", form={"csrf": csrf, "answer": "grant"}
    )
    assert answer.status == 404
    for path in ("/me", "/me/approvals", "/me/report"):
        await carol.goto(base + path)
        text = await carol.content()
        assert deal_id not in text and approval_id not in text and "Espresso" not in text, path
        assert "$200.00" not in text and "$500.00" not in text, path
    ops = await carol.request.get(f"{base}/ops")
    assert ops.status == 403
    await shot(carol, "carol-sees-nothing")
