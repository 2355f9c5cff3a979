"""What my agent's guard stopped, in plain words, on that negotiation's page; and only for me.

The test plays the referee (a thread on negotiation.events) and the buyer's agent: it signs
`MoveDecided` records on agent.decisions as the agents service does. The seller, a second
principal and a forger see none of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from haggle.contracts import AgentKey
from haggle.contracts.agents import Role
from haggle.contracts.decisions import MoveDecided
from haggle.contracts.negotiation import ThreadOpened
from haggle.contracts.signing import signed
from haggle.contracts.topics import AGENT_DECISIONS, NEGOTIATION_EVENTS_TOPIC
from haggle.guard.rules import GuardRefusalReason
from haggle_lab.testing.actors import ScriptedAgent
from services.web.domain import GUARD_UNKNOWN, GUARD_WORDS
from tests.integration.settlement_support import SettlementMarket, eventually, settlement_market
from tests.web.support import shot, sign_in, web_url

pytestmark = pytest.mark.usefixtures("running_services")
DIGEST = "0" * 64


@pytest.fixture
async def market(bootstrap: str, database_url: str, market_id: str) -> AsyncIterator[SettlementMarket]:
    async with settlement_market(bootstrap, database_url, market_id) as found:
        yield found


def decided(
    market: SettlementMarket,
    thread_id: str,
    listing_id: str,
    *reasons: str,
    buyer: ScriptedAgent | None = None,
) -> MoveDecided:
    buyer = buyer or market.buyer
    return MoveDecided(
        agent_id=buyer.agent_id,
        principal_id=buyer.principal_id,
        listing_id=listing_id,
        thread_id=thread_id,
        command_event_id="c-" + thread_id,
        command_type="MakeOffer",
        brain="claude:test",
        guard_refusals=reasons,
        mandate_sha256=DIGEST,
    )


async def open_thread(market: SettlementMarket, buyer: ScriptedAgent) -> tuple[str, str]:
    """A listing of the market's seller and the buyer's thread on it: (listing id, thread id)."""
    listing_id, thread_id = f"{market.market_id}-L1", f"{market.market_id}-T1"
    await market.listing(listing_id)
    opened = ThreadOpened(
        thread_id=thread_id,
        listing_id=listing_id,
        buyer_agent_id=buyer.agent_id,
        seller_agent_id=market.seller.agent_id,
        deadline=datetime.now(UTC) + timedelta(hours=1),
        max_rounds=10,
    )
    await market.pub.send(NEGOTIATION_EVENTS_TOPIC.name, listing_id, market.envelope(opened, "negotiation"))
    return listing_id, thread_id


async def test_my_agents_guard_refusals_in_plain_words_for_me_alone(
    market: SettlementMarket, context: BrowserContext, other_context: BrowserContext
) -> None:
    await market.open()
    listing_id, thread_id = await open_thread(market, market.buyer)
    # A forger who knows the agent's id but not its key: dropped, never shown.
    forged = signed(
        decided(market, thread_id, listing_id, GuardRefusalReason.TOKEN_BUDGET_SPENT.value),
        key=AgentKey.generate(),
        agent_id=market.buyer.agent_id,
        seq=999,
        market_id=market.market_id,
        producer="forger",
    )
    await market.pub.send(AGENT_DECISIONS.name, market.buyer.agent_id, forged)
    reasons = (GuardRefusalReason.ABOVE_MAX.value, GuardRefusalReason.DISCLOSES_PRIVATE.value, "no_such_code")
    record = market.buyer.sign(decided(market, thread_id, listing_id, *reasons))
    await market.pub.send(AGENT_DECISIONS.name, market.buyer.agent_id, record)

    bob = await sign_in(context, market.buyer.principal_id, market.market_id)
    await bob.goto(f"{web_url()}/me/negotiations/{thread_id}")
    shown = bob.locator("#guard-refusals li")
    await expect(shown).to_have_count(3, timeout=30_000)
    text = await bob.locator("#guard-refusals").inner_text()
    assert GUARD_WORDS[GuardRefusalReason.ABOVE_MAX] in text
    assert GUARD_WORDS[GuardRefusalReason.DISCLOSES_PRIVATE] in text
    assert GUARD_UNKNOWN in text
    assert "above_max" not in text and "no_such_code" not in text
    assert GUARD_WORDS[GuardRefusalReason.TOKEN_BUDGET_SPENT] not in text
    await shot(bob, "guard-refusals")

    # The seller is a party to the thread, but the refusals are the buyer's agent's.
    sam = await sign_in(other_context, market.seller.principal_id, market.market_id)
    await sam.goto(f"{web_url()}/me/negotiations/{thread_id}")
    await expect(sam.locator("#thread-state")).to_be_visible()
    assert await sam.locator("#guard-refusals").count() == 0
    assert GUARD_WORDS[GuardRefusalReason.ABOVE_MAX] not in await sam.content()
    carol = await sign_in(other_context, f"{market.market_id}-carol", market.market_id)
    response = await carol.request.get(f"{web_url()}/me/negotiations/{thread_id}")
    assert response.status == 404
    assert GUARD_WORDS[GuardRefusalReason.ABOVE_MAX] not in await response.text()


async def test_a_record_before_its_agents_registration_waits_for_it(
    market: SettlementMarket, database_url: str, context: BrowserContext
) -> None:
    """agent.decisions and agent.events are separate topics: a record read before the agent's
    registration is kept until the registration brings the key to check it by; a forged one of
    the same agent is still dropped."""
    await market.open()
    late = market.agent("late", Role.BUYER)
    listing_id, thread_id = await open_thread(market, late)
    forged = signed(
        decided(market, thread_id, listing_id, GuardRefusalReason.TOKEN_BUDGET_SPENT.value, buyer=late),
        key=AgentKey.generate(),
        agent_id=late.agent_id,
        seq=999,
        market_id=market.market_id,
        producer="forger",
    )
    record = late.sign(decided(market, thread_id, listing_id, GuardRefusalReason.ABOVE_MAX.value, buyer=late))
    for env in (forged, record):
        await market.pub.send(AGENT_DECISIONS.name, late.agent_id, env)
    web = await asyncpg.connect(database_url, server_settings={"search_path": "web"})
    query = "SELECT count(*) FROM pending_decisions WHERE agent_id = $1"
    try:

        async def both_read() -> bool:
            return await web.fetchval(query, late.agent_id) == 2

        await eventually(both_read, "the web app to read both records before the registration")
        await late.register(market.pub)
        me = await sign_in(context, late.principal_id, market.market_id)
        await me.goto(f"{web_url()}/me/negotiations/{thread_id}")
        await expect(me.locator("#guard-refusals li")).to_have_count(1, timeout=30_000)
        text = await me.locator("#guard-refusals").inner_text()
        assert GUARD_WORDS[GuardRefusalReason.ABOVE_MAX] in text
        assert GUARD_WORDS[GuardRefusalReason.TOKEN_BUDGET_SPENT] not in text
        assert (
            await web.fetchval("SELECT count(*) FROM pending_decisions WHERE agent_id = $1", late.agent_id)
            == 0
        )
    finally:
        await web.close()
