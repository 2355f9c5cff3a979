"""A principal raises a want's max in the browser and their running agent starts to haggle.

With the first max the bike is hopeless (asking more than twice the max), so the agent leaves
it alone; after the amendment the agents service applies the new limits and looks again at what
is for sale. Another principal's crafted POST is refused with 404 and changes nothing.
"""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, expect

from haggle.client import Publisher
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.topics import MARKET_EVENTS
from haggle.runtime.operators import operator_envelope
from haggle_lab.testing import mandates as m
from haggle_lab.testing.market import wait_for_rules
from tests.web.support import shot, sign_in, web_url
from tests.web.test_principal_flow import CATALOGUE_TITLE, FAST, fill_intake

pytestmark = pytest.mark.usefixtures("running_services")


async def test_an_amended_max_takes_effect_and_nobody_else_can_amend_it(
    bootstrap: str, market_id: str, context: BrowserContext, other_context: BrowserContext
) -> None:
    async with Publisher(bootstrap) as pub:
        await pub.send(
            MARKET_EVENTS.name, market_id, operator_envelope(MarketRulesSet.model_validate(FAST), market_id)
        )
        await wait_for_rules(market_id)
        bike = m.sell_item("bike", asking=30_000, floor=20_000, title=CATALOGUE_TITLE)
        await m.assign(pub, market_id, m.seller(f"{market_id}-sam", [bike]))
    buyer = f"{market_id}-alice"
    page = await sign_in(context, buyer, market_id)
    await fill_intake(page)
    await page.fill("#want_max", "100")
    await page.click("#submit-intake")
    await page.wait_for_url("**/me")
    await page.goto(f"{web_url()}/market/{market_id}")
    await expect(page.locator("body")).to_contain_text(CATALOGUE_TITLE, timeout=60_000)

    carol = await sign_in(other_context, f"{market_id}-carol", market_id)
    csrf = await carol.locator("input[name=csrf]").first.get_attribute("value")
    crafted = await carol.request.post(
        f"{web_url()}/me/mandate",
        form={"csrf": str(csrf), "principal_id": buyer, "auto_approve": "1", "want_max_0": "499"},
    )
    assert crafted.status == 404

    await page.goto(f"{web_url()}/me")
    await expect(page.locator(".want-max").first).to_have_text("$100.00")
    await expect(page.locator("#negotiations")).to_contain_text("None yet")
    await page.click("#amend-mandate")
    await page.fill("#want_max_0", "600")
    await page.click("#submit-amend")
    await expect(page.locator("#error-want_max_0")).to_contain_text("above the budget")
    await shot(page, "amend-error")
    await page.fill("#want_max_0", "260")
    await page.fill("#auto_approve", "400")
    await page.click("#submit-amend")
    await page.wait_for_url("**/me")
    await expect(page.locator(".want-max").first).to_have_text("$260.00")
    await expect(page.locator("#auto-approve")).to_have_text("$400.00")
    await expect(page.locator("main")).to_contain_text("acceptable or better")
    # The running agent took the new max: it opens a negotiation on the bike it had left alone.
    await expect(page.locator("#negotiations a").first).to_be_visible(timeout=60_000)
    await shot(page, "amended")
