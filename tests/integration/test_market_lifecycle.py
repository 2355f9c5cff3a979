"""A market's life over the running services: open → closing → closed, refusals that change nothing,
and approvals nobody answers."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from haggle import procs
from haggle.client import Publisher
from haggle.contracts import AgentKey, signed
from haggle.contracts.agents import Role
from haggle.contracts.goods import ShippingMethod
from haggle.contracts.market import MarketClosed, MarketClosing, MarketRulesSet
from haggle.contracts.negotiation import OpenNegotiation
from haggle.contracts.topics import MARKET_EVENTS
from haggle.market.lifecycle import CloseRefused, close_market
from haggle.runtime.operators import operator_envelope
from haggle_lab.testing import mandates as m
from haggle_lab.testing.market import TOPICS, Market, a_listing
from haggle_lab.testing.observe import Observer, of_type
from tests.integration.agents_support import agent_market

pytestmark = pytest.mark.usefixtures("running_services")


async def _phase(market_id: str, service: str = "negotiation") -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        found = await client.get(f"{procs.url_for(service)}/markets/{market_id}")
    return str(found.json()["phase"])


async def _until_phase(market_id: str, phase: str, services: tuple[str, ...] = ("negotiation",)) -> None:
    for _ in range(100):
        if all([await _phase(market_id, s) == phase for s in services]):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{market_id} never became {phase}")


def _refused_total(service: str, reason: str) -> float:
    text = httpx.get(f"{procs.url_for(service)}/metrics", timeout=5).text
    line = f'haggle_market_events_refused_total{{reason="{reason}",service="{service}"}}'
    return sum(float(row.split()[-1]) for row in text.splitlines() if row.startswith(line))


def _opening(listing_id: str) -> OpenNegotiation:
    return OpenNegotiation(
        listing_id=listing_id, price_cents=5_000, shipping_method=ShippingMethod.LOCAL_PICKUP
    )


async def test_open_closing_closed_and_openings_refused_once_closing(bootstrap: str, market_id: str) -> None:
    async with Publisher(bootstrap) as pub, Observer(bootstrap, *TOPICS, market_id=market_id) as obs:
        mk = Market(market_id, pub, obs)
        await mk.rules(negotiation_ttl_seconds=3)
        seller, first, late = (
            mk.agent(n, r) for n, r in [("s", Role.SELLER), ("b1", Role.BUYER), ("b2", Role.BUYER)]
        )
        await mk.admit(seller, first, late)
        await mk.list_item(a_listing(f"{market_id}-l1", seller, price=8_000))
        opened = await mk.open(first, _opening(f"{market_id}-l1"))
        assert opened.type == "ThreadOpened"

        await pub.send(MARKET_EVENTS.name, market_id, operator_envelope(MarketClosing(), market_id))
        await _until_phase(market_id, "closing", ("negotiation", "settlement", "agents"))
        refused = await mk.outcome(late, await late.send(pub, _opening(f"{market_id}-l1")))
        assert refused.type == "ActionRefused" and refused.payload["reason"] == "market_closing"

        # Closed only when nothing is open: the referee refuses a premature MarketClosed.
        before = _refused_total("negotiation", "unfinished")
        await pub.send(
            MARKET_EVENTS.name, market_id, operator_envelope(MarketClosed(negotiations=1, deals=0), market_id)
        )
        for _ in range(50):
            if _refused_total("negotiation", "unfinished") > before:
                break
            await asyncio.sleep(0.1)
        assert _refused_total("negotiation", "unfinished") == before + 1
        assert await _phase(market_id) == "closing"

        # The open thread ends by its deadline; then the operator's close completes.
        await obs.wait_for(of_type("NegotiationEnded"), "negotiation.events", timeout=30)
        view = await close_market(pub, market_id, timeout=60, say=lambda _: None)
        assert view.all_in(view.phases["negotiation"]) and view.phases["negotiation"].value == "closed"
        assert view.threads == 1 and view.threads_open == 0
        refused = await mk.outcome(late, await late.send(pub, _opening(f"{market_id}-l1")))
        assert refused.payload["reason"] == "market_closed"
        with pytest.raises(CloseRefused):
            await close_market(pub, market_id, timeout=5, say=lambda _: None)


async def test_a_forged_or_second_close_is_refused_and_changes_nothing(
    bootstrap: str, market_id: str
) -> None:
    async with Publisher(bootstrap) as pub, Observer(bootstrap, *TOPICS, market_id=market_id) as obs:
        mk = Market(market_id, pub, obs)
        await mk.rules()
        forger = AgentKey.generate()
        forged = signed(
            MarketClosing(), key=forger, agent_id="operator", seq=0, market_id=market_id, producer="x"
        )
        before = _refused_total("negotiation", "not_operator")
        await pub.send(MARKET_EVENTS.name, market_id, forged)
        for _ in range(50):
            if _refused_total("negotiation", "not_operator") > before:
                break
            await asyncio.sleep(0.1)
        assert _refused_total("negotiation", "not_operator") == before + 1
        assert await _phase(market_id) == "open"

        await pub.send(MARKET_EVENTS.name, market_id, operator_envelope(MarketClosing(), market_id))
        await _until_phase(market_id, "closing")
        async with httpx.AsyncClient() as client:
            first = (await client.get(f"{procs.url_for('negotiation')}/markets/{market_id}")).json()
        before = _refused_total("negotiation", "already_closing")
        await pub.send(
            MARKET_EVENTS.name, market_id, operator_envelope(MarketClosing(reason="again"), market_id)
        )
        # Rules cannot be changed once closing either (a later close time, more rounds).
        await pub.send(
            MARKET_EVENTS.name, market_id, operator_envelope(MarketRulesSet(max_rounds=99), market_id)
        )
        for _ in range(50):
            if _refused_total("negotiation", "already_closing") >= before + 2:
                break
            await asyncio.sleep(0.1)
        assert _refused_total("negotiation", "already_closing") == before + 2
        async with httpx.AsyncClient() as client:
            again = (await client.get(f"{procs.url_for('negotiation')}/markets/{market_id}")).json()
            rules = (await client.get(f"{procs.url_for('negotiation')}/markets/{market_id}/rules")).json()
        assert again == first and rules["rules"]["max_rounds"] != 99


async def test_an_unanswered_approval_expires_once_and_the_buyer_does_not_buy_again(
    bootstrap: str, market_id: str
) -> None:
    """Before: the buyer's agent, its approval expired, went on to buy the same want elsewhere above
    its auto-approve limit and asked again. Now: that listing never again, the want only within the limit."""
    async with agent_market(bootstrap, market_id, "approval.events") as mk:
        await mk.pub.send(
            MARKET_EVENTS.name,
            market_id,
            operator_envelope(
                MarketRulesSet(approval_timeout_seconds=2, negotiation_ttl_seconds=20), market_id
            ),
        )
        await _until_phase(market_id, "open", ("negotiation", "settlement"))
        await mk.assign(
            m.seller(
                mk.pid("s"), [m.sell_item("bike1", asking=8_000, floor=6_000, title="Touring bike red")]
            ),
            m.buyer(mk.pid("b"), [m.want("ride", max_price=9_000)], budget=20_000, auto_approve=5_000),
        )
        requested = await mk.obs.wait_for(of_type("ApprovalRequested"), "approval.events", timeout=90)
        expired = await mk.obs.wait_for(of_type("ApprovalExpired"), "approval.events", timeout=30)
        await mk.obs.wait_for(of_type("ListingRelisted"), "listing.events", timeout=30)
        # A second bike for the same want, priced above the auto-approve limit: a buyer that ignored
        # the expiry would buy it and ask for approval again.
        await mk.assign(
            m.seller(
                mk.pid("s2"), [m.sell_item("bike2", asking=8_000, floor=6_000, title="Touring bike red")]
            )
        )
        await mk.obs.wait_for(
            of_type("ListingPublished", listing_id=f"{mk.pid('s2')}.bike2"), "listing.events"
        )
        await asyncio.sleep(12)
        approvals = mk.obs.matching(of_type("ApprovalRequested"), "approval.events")
        assert len(requested) == 1 and len(expired) == 1
        assert len(approvals) == 1, [a.payload["listing_id"] for a in approvals]
        assert len(mk.obs.matching(of_type("ApprovalExpired"), "approval.events")) == 1
        first_listing = requested[0].payload["listing_id"]
        reopened = [
            e
            for e in mk.obs.matching(of_type("ThreadOpened", listing_id=first_listing), "negotiation.events")
            if e.occurred_at > expired[0].occurred_at
        ]
        assert not reopened
        bought = [d for d in mk.deals() if d.occurred_at > expired[0].occurred_at]
        assert all(d.payload["price_cents"] + d.payload["shipping_cost_cents"] <= 5_000 for d in bought)
