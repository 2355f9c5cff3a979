"""The intake interview in a browser: a model (the local Messages API server) asks, fills the form
through tool use, and the person reviews it before it becomes a mandate. The saved address
never reaches the model."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from playwright.async_api import BrowserContext, expect

from haggle import procs
from haggle_lab.testing.fake_anthropic import FakeAnthropic, text_reply, tool_reply
from tests.web.support import shot, sign_in, web_url

pytestmark = pytest.mark.usefixtures("running_services")
DRAFT = {
    "budget": "500",
    "auto_approve": "50",
    "style": "boulware",
    "want_keywords": "bike",
    "want_category": "bikes",
    "want_max": "900",
    "want_condition": "good",
}


@pytest.fixture
def interviewer(running_services: tuple[str, ...]) -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    procs.stop("web")
    procs.start("web", {"ANTHROPIC_BASE_URL": server.base_url, "ANTHROPIC_API_KEY": "sk-ant-test"})
    procs.wait_ready("web")
    try:
        yield server
    finally:
        procs.stop("web")
        procs.start("web")
        procs.wait_ready("web")
        server.stop()


async def test_an_interview_drafts_the_form_and_the_person_submits_it(
    interviewer: FakeAnthropic, market_id: str, context: BrowserContext
) -> None:
    street = f"{uuid.uuid4().hex[:10]} Wallaby Way"
    page = await sign_in(context, f"{market_id}-ivy", market_id)
    await page.goto(f"{web_url()}/me/address")
    await page.fill("#address", f"{street}\nSydney 2000")
    await page.click("#save-address")

    interviewer.script(
        text_reply("What condition should it be in, at least?"), tool_reply("fill_form", DRAFT)
    )
    await page.goto(f"{web_url()}/me")
    await page.click("#start-interview")
    await page.fill("#say", f"A bike under 260 dollars; budget 500, ask me above 50. Ship to {street}.")
    await page.click("#send")
    await expect(page.locator("#transcript")).to_contain_text("What condition should it be in")
    await page.fill("#say", "Anything that works.")
    await page.click("#send")
    await page.wait_for_url("**/me/interview/review")
    await expect(page.locator("#draft-note")).to_be_visible()
    await expect(page.locator("#want_max")).to_have_value("900")
    await expect(page.locator("#style")).to_have_value("boulware")
    await shot(page, "interview-review")

    # The model's draft is judged by the mandate contract like a typed form: 900 > the budget.
    await page.click("#submit-intake")
    await expect(page.locator("#error-want_max")).to_have_text("max price above the budget")
    await page.fill("#want_max", "260")
    await page.click("#submit-intake")
    await page.wait_for_url("**/me")
    await expect(page.locator("#budget")).to_have_text("$500.00")

    sent = json.dumps(interviewer.requests)
    assert len(interviewer.requests) == 2
    assert "Anything that works." in sent and "[address withheld]" in sent
    assert street not in sent and "Sydney 2000" not in sent
    assert interviewer.requests[0]["tools"][0]["name"] == "fill_form"
