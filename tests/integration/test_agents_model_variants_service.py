"""The OpenAI-compatible and narrator brains inside the running agents service, against local API
servers: they trade, a leak the model writes is refused by the guard, the narrator's requests carry
no private number, and every model call's tokens are recorded per agent negotiation."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from haggle import procs
from haggle_lab.testing import mandates as m
from haggle_lab.testing.fake_anthropic import FakeAnthropic, Reply, messages_text, text_reply, tool_reply
from haggle_lab.testing.fake_openai import FakeOpenAI
from haggle_lab.testing.observe import of_type
from tests.integration.agents_support import agent_market

pytestmark = pytest.mark.usefixtures("running_services")
MAX = 8_700  # the buyers' private max: no listing, shipping or offer price equals it


def leaky_buyer(body: dict[str, Any]) -> Reply:
    """Opens at 6,000 saying its max (the guard refuses; on feedback it opens without it), then
    raises to 7,600 and accepts."""
    text = messages_text(body)
    table = re.search(r"offer on the table for you: (t-\S+)", text)
    if table is None:
        note = "" if "discloses_private" in text else f"My max is {MAX // 100} bucks."
        return tool_reply(
            "make_offer", {"price_cents": 6_000, "shipping_method": "parcel_standard", "message": note}
        )
    if len(re.findall(r"buyer offered", text)) < 2:
        return tool_reply("counter", {"price_cents": 7_600, "shipping_method": "parcel_standard"})
    return tool_reply("accept", {"offer_id": table.group(1)})


@pytest.fixture
def fakes() -> Iterator[tuple[FakeOpenAI, FakeAnthropic]]:
    openai_fake = FakeOpenAI(policy=leaky_buyer).start()
    anthropic_fake = FakeAnthropic(policy=lambda body: text_reply("Here is my offer; happy to talk.")).start()
    procs.stop("agents")
    procs.start(
        "agents",
        {
            "OPENAI_BASE_URL": openai_fake.base_url,
            "OPENAI_API_KEY": "sk-test",
            "ANTHROPIC_BASE_URL": anthropic_fake.base_url,
            "ANTHROPIC_API_KEY": "sk-ant-test",
        },
    )
    procs.wait_ready("agents")
    yield openai_fake, anthropic_fake
    procs.stop("agents")
    procs.start("agents")
    procs.wait_ready("agents")
    openai_fake.stop()
    anthropic_fake.stop()


async def test_openai_and_narrator_buyers_trade_keep_secrets_and_are_costed(
    fakes: tuple[FakeOpenAI, FakeAnthropic], bootstrap: str, database_url: str, market_id: str
) -> None:
    openai_fake, anthropic_fake = fakes
    kettle = m.sell_item(
        "kettle", 9_000, 7_500, title="Electric kettle steel", category="kitchen", weight_g=1_500
    )
    lamp = m.sell_item("lamp", 9_000, 7_000, title="Desk lamp brass", category="lighting", weight_g=1_000)
    toaster = m.sell_item(
        "toaster", 9_000, 7_000, title="Retro toaster chrome", category="kitchen", weight_g=1_500
    )
    narrator = {"kind": "narrator", "model": "claude-haiku-4-5", "strategy": "conceder"}
    thrifty = {"kind": "openai", "model": "local-model", "token_budget": 1}
    async with agent_market(bootstrap, market_id) as mk:
        await mk.assign(
            m.seller(mk.pid("s1"), [kettle], m.strategy("linear")),
            m.seller(mk.pid("s2"), [lamp], m.strategy("conceder")),
            m.buyer(
                mk.pid("b1"),
                [m.want("w", MAX, keywords=("kettle",), category="kitchen")],
                51_300,
                {"kind": "openai", "model": "local-model"},
                auto_approve=43_100,
            ),
            m.buyer(
                mk.pid("b2"),
                [m.want("w", MAX, keywords=("lamp",), category="lighting")],
                51_300,
                narrator,
                auto_approve=43_100,
            ),
            m.seller(mk.pid("s3"), [toaster], m.strategy("linear")),
            m.buyer(
                mk.pid("b3"), [m.want("w", MAX, keywords=("toaster",), category="kitchen")], 51_300, thrifty
            ),
        )
        await mk.obs.wait_for(of_type("DealAgreed"), "negotiation.events", timeout=120)
        await mk.ended(count=2, timeout=150)

    b1_texts = [o.payload.get("message", "") for o in mk.offers_by(mk.pid("b1"))]
    assert b1_texts and not any("87" in text for text in b1_texts), b1_texts
    assert any("discloses_private" in messages_text(body) for body in openai_fake.requests)
    assert anthropic_fake.requests, "the narrator asked its model for words"
    for body in anthropic_fake.requests:
        flat = json.dumps(body)
        for secret in ("8700", "8,700", "87.00", "51300", "513", "43100", "431"):
            assert not re.search(rf"(?<![\d.,]){re.escape(secret)}(?![\d,])", flat), secret
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT principal_id, model,"
            " sum(input_tokens + cache_read_tokens + cache_write_tokens) AS prompt,"
            " sum(output_tokens) AS output FROM agents.model_usage WHERE principal_id = ANY($1::text[])"
            " GROUP BY principal_id, model",
            [mk.pid("b1"), mk.pid("b2"), mk.pid("b3")],
        )
        reasons = await conn.fetchval(
            "SELECT array_agg(r) FROM agents.moves, unnest(refusal_reasons) r WHERE principal_id = $1",
            mk.pid("b1"),
        )
        b3_reasons = await conn.fetchval(
            "SELECT array_agg(r) FROM agents.moves, unnest(refusal_reasons) r WHERE principal_id = $1",
            mk.pid("b3"),
        )
    finally:
        await conn.close()
    used = {r["principal_id"]: (r["model"], r["prompt"], r["output"]) for r in rows}
    assert used[mk.pid("b1")][0] == "local-model" and used[mk.pid("b1")][2] > 0
    assert used[mk.pid("b2")][0] == "claude-haiku-4-5" and used[mk.pid("b2")][1] > 0
    assert reasons and "discloses_private" in reasons, reasons
    # b3's model wrote its max once; the re-ask would pass its 1-token budget: it walks, never opens.
    assert not mk.offers_by(mk.pid("b3")) and used[mk.pid("b3")][2] == openai_fake.output_tokens
    assert "token_budget_spent" in b3_reasons, b3_reasons
