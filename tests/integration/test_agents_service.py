"""Agents over real Kafka with every service running: deals within limits, budgets, strategies, restarts."""

from __future__ import annotations

import asyncio

import pytest

from haggle import procs
from haggle_lab.testing import mandates as m
from haggle_lab.testing.observe import of_type
from tests.integration.agents_support import agent_market

pytestmark = pytest.mark.usefixtures("running_services")


async def test_overlapping_ranges_close_a_deal_between_floor_and_max(bootstrap: str, market_id: str) -> None:
    async with agent_market(bootstrap, market_id) as mk:
        await mk.assign(
            m.seller(mk.pid("alice"), [m.sell_item("bike", asking=30_000, floor=20_000)]),
            m.buyer(mk.pid("bob"), [m.want("ride", max_price=26_000)], budget=50_000),
        )
        deal = (await mk.obs.wait_for(of_type("DealAgreed"), "negotiation.events", timeout=60))[0]
        price = deal.payload["price_cents"]
        assert 20_000 <= price <= 26_000
        assert deal.payload["buyer_principal_id"] == mk.pid("bob")
        released = await mk.obs.wait_for(
            of_type("FundsReleased", deal_id=deal.payload["deal_id"]), "settlement.events", timeout=60
        )
        assert released[0].payload["amount_cents"] + released[0].payload["fee_cents"] == price


async def test_disjoint_ranges_end_without_a_deal_and_no_limit_is_crossed(
    bootstrap: str, market_id: str
) -> None:
    async with agent_market(bootstrap, market_id) as mk:
        await mk.assign(
            m.seller(mk.pid("alice"), [m.sell_item("bike", asking=30_000, floor=25_000)]),
            m.buyer(mk.pid("bob"), [m.want("ride", max_price=20_000)], budget=50_000),
        )
        ended = await mk.ended(timeout=90)
        assert ended[0].payload["reason"] in ("rejected", "withdrawn", "expired_deadline")
        await asyncio.sleep(0.5)
        assert not mk.deals()
        assert all(o.payload["price_cents"] >= 25_000 for o in mk.offers_by(mk.pid("alice")))
        assert all(o.payload["price_cents"] <= 20_000 for o in mk.offers_by(mk.pid("bob")))
        assert mk.offers_by(mk.pid("alice")) and mk.offers_by(mk.pid("bob"))


async def test_boulware_beats_conceder_on_price(bootstrap: str, market_id: str) -> None:
    """Faratin et al.: the patient (Boulware) side gets the better price against a conceder."""
    async with agent_market(bootstrap, market_id) as mk:
        tough_seller = m.seller(
            mk.pid("s1"),
            [m.sell_item("b1", 30_000, 18_000, title="Touring bike red")],
            brain=m.strategy("boulware"),
        )
        soft_buyer = m.buyer(
            mk.pid("b1"), [m.want("w1", 28_000, keywords=("red",))], 50_000, brain=m.strategy("conceder")
        )
        soft_seller = m.seller(
            mk.pid("s2"),
            [m.sell_item("b2", 30_000, 18_000, title="Touring bike blue")],
            brain=m.strategy("conceder"),
        )
        tough_buyer = m.buyer(
            mk.pid("b2"), [m.want("w2", 28_000, keywords=("blue",))], 50_000, brain=m.strategy("boulware")
        )
        await mk.assign(tough_seller, soft_buyer, soft_seller, tough_buyer)
        deals = await mk.obs.wait_for(of_type("DealAgreed"), "negotiation.events", count=2, timeout=90)
        price = {d.payload["buyer_principal_id"]: d.payload["price_cents"] for d in deals}
        assert price[mk.pid("b1")] > price[mk.pid("b2")], price


async def test_a_100_dollar_budget_over_five_40_dollar_items_never_commits_more(
    bootstrap: str, market_id: str
) -> None:
    budget = 10_000
    async with agent_market(bootstrap, market_id) as mk:
        colours = ("red", "blue", "green", "black", "white")
        sellers = [
            m.seller(
                mk.pid(f"s{i}"),
                [
                    m.sell_item(
                        f"lamp{i}", 4_000, 3_000, title=f"Desk lamp {c}", category="home", weight_g=1_500
                    )
                ],
            )
            for i, c in enumerate(colours)
        ]
        wants = [m.want(f"w{i}", 4_500, keywords=(c,), category="home") for i, c in enumerate(colours)]
        buyer = m.buyer(mk.pid("bob"), wants, budget=budget, brain=m.strategy("conceder"))
        await mk.assign(*sellers, buyer)
        # The budget buys two lamps with money to spare: the buyer funds two wants at a time and
        # declines the rest until a deal frees money (more than two may follow, never past $100).
        await mk.obs.wait_for(of_type("DealAgreed"), "negotiation.events", count=2, timeout=120)
        await asyncio.sleep(5.0)
        exposure = max_exposure(mk.obs.seen, f"{mk.pid('bob')}.agent")
        assert 0 < exposure <= budget, exposure
        spent = sum(d.payload["price_cents"] for d in mk.deals())
        assert 0 < spent <= budget
        assert len(mk.deals()) >= 2


def max_exposure(seen: list[tuple[str, object]], buyer_agent: str) -> int:
    """The most the buyer could have owed at any moment: its live offers plus its agreed deals."""
    live: dict[str, int] = {}
    agreed, worst = 0, 0
    for topic, env in seen:
        if topic != "negotiation.events":
            continue
        payload = env.payload  # type: ignore[attr-defined]
        thread = payload.get("thread_id")
        if env.type == "OfferMade" and payload["agent_id"] == buyer_agent:  # type: ignore[attr-defined]
            live[thread] = payload["price_cents"] + (
                payload["shipping_cost_cents"] if payload["shipping_paid_by"] == "buyer" else 0
            )
        elif env.type == "DealAgreed" and payload["buyer_agent_id"] == buyer_agent:  # type: ignore[attr-defined]
            live.pop(thread, None)
            agreed += payload["price_cents"]
        elif env.type == "NegotiationEnded":  # type: ignore[attr-defined]
            live.pop(thread, None)
        worst = max(worst, agreed + sum(live.values()))
    return worst


async def test_agents_killed_mid_negotiation_resume_with_the_same_identity(
    bootstrap: str, market_id: str
) -> None:
    async with agent_market(bootstrap, market_id) as mk:
        await mk.assign(
            m.seller(mk.pid("alice"), [m.sell_item("bike", 40_000, 20_000)], m.strategy("boulware")),
            m.buyer(mk.pid("bob"), [m.want("ride", 36_000)], 50_000, m.strategy("boulware")),
        )
        await mk.obs.wait_for(of_type("OfferMade", round=3), "negotiation.events", timeout=60)
        before = procs.pid_of("agents")
        assert procs.crash_and_restart("agents") != before
        ended = await mk.ended(timeout=120)
        assert ended[0].payload["rounds"] > 3
        registrations = mk.obs.matching(of_type("AgentRegistered"), "agent.events")
        assert len({r.payload["public_key"] for r in registrations}) == 2, "an agent got a new key"
        refused = mk.obs.matching(
            lambda e: (
                e.type == "ActionRefused"
                and e.payload["reason"] in ("bad_signature", "unknown_agent", "replayed_seq")
            ),
            "negotiation.events",
        )
        assert not refused
