"""A principal in a real browser: intake, the negotiation streaming in, an approval, the deal settling.

Every service runs as a process; the seller is another principal whose mandate the
operator handed in. Nothing here reads the page's data from the database: what the
test sees is what the browser shows.
"""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, Page, expect

from haggle.client import Observer, Publisher
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.topics import MARKET_EVENTS
from haggle.runtime.operators import operator_envelope
from haggle_lab.testing import mandates as m
from haggle_lab.testing.market import wait_for_rules
from haggle_lab.testing.observe import of_type
from tests.web.support import shot, sign_in, web_url

pytestmark = pytest.mark.usefixtures("running_services")
FAST = {
    "carrier_pickup_seconds": 1,
    "carrier_transit_seconds": 1,
    "carrier_loss_bps": 0,
    "inspection_window_seconds": 3,
    "approval_timeout_seconds": 600,
}


TOPICS = ("approval.events", "settlement.events", "negotiation.events")
CATALOGUE_TITLE = "Giant Escape 3 hybrid bike"
"""A catalogue item, so the report card has a reference value to hold the price against."""


async def fill_intake(page: Page) -> None:
    await page.click("#start-intake")
    await page.fill("#budget", "500")
    await page.fill("#auto_approve", "50")
    await page.select_option("#style", "linear")
    await page.fill("#want_keywords", "bike")
    await page.fill("#want_category", "bikes")
    await page.fill("#want_max", "260.00")
    await page.select_option("#want_condition", "acceptable")


async def test_a_principal_buys_through_their_agent_and_approves_it(
    bootstrap: str, market_id: str, context: BrowserContext
) -> None:
    async with Publisher(bootstrap) as pub, Observer(bootstrap, *TOPICS, market_id=market_id) as obs:
        rules = MarketRulesSet.model_validate(FAST)
        await pub.send(MARKET_EVENTS.name, market_id, operator_envelope(rules, market_id))
        await wait_for_rules(market_id)
        bike = m.sell_item("bike", asking=30_000, floor=20_000, title=CATALOGUE_TITLE)
        seller = m.seller(f"{market_id}-sam", [bike])
        await m.assign(pub, market_id, seller)
        buyer = f"{market_id}-alice"
        page = await sign_in(context, buyer, market_id)

        await fill_intake(page)
        await page.fill("#want_max", "lots")
        await page.click("#submit-intake")
        await expect(page.locator("#error-want_max")).to_contain_text("enter dollars")
        await shot(page, "intake-error")
        await page.fill("#want_max", "260.00")
        await page.click("#submit-intake")
        await page.wait_for_url("**/me")
        await expect(page.locator("#budget")).to_have_text("$500.00")

        # The negotiation appears on the open page without a reload (EventSource → refresh).
        link = page.locator("#negotiations a").first
        await expect(link).to_be_visible(timeout=60_000)
        await shot(page, "me-negotiating")
        await link.click()
        await expect(page.locator("#moves .price").first).to_be_visible()
        await expect(page.locator("#thread-state")).to_have_text("ended in a deal", timeout=90_000)
        offers = await page.locator("#moves .price").count()
        assert offers >= 2
        await shot(page, "negotiation")

        # Above the auto-approve limit: the purchase waits for me.
        await page.goto(f"{web_url()}/me/approvals")
        approve = page.locator("button.grant").first
        await expect(approve).to_be_visible(timeout=30_000)
        await shot(page, "approvals")
        await approve.click()
        await expect(page.locator("#approvals .status").first).to_have_text("granted", timeout=30_000)
        granted = await obs.wait_for(of_type("ApprovalGranted"), "approval.events", timeout=30)
        assert granted[0].payload["granted_by"] == f"principal:{buyer}"
        assert granted[0].payload["principal_id"] == buyer

        await page.click("#approvals a")
        await expect(page.locator("#deal-phase")).to_have_text("released", timeout=90_000)
        timeline = await page.locator("#timeline").inner_text()
        for step in ("Waiting for the buyer's approval", "Approved", "Escrow held", "Funds released"):
            assert step in timeline
        await shot(page, "deal-settled")
        released = await obs.wait_for(of_type("FundsReleased"), "settlement.events", timeout=30)
        assert released

        await page.goto(f"{web_url()}/me/report")
        await expect(page.locator("#report")).to_contain_text(CATALOGUE_TITLE)
        reference = await page.locator("#report td.reference").first.inner_text()
        assert reference.startswith("$"), reference
        await shot(page, "report-card")

        await page.goto(f"{web_url()}/market/{market_id}/report")
        for chart in ("Price against reference", "Concessions", "Over time", "Approvals"):
            await expect(page.locator(f"figure[aria-label='{chart}'] svg")).to_have_count(1)
        await shot(page, "market-report")
