"""A compromised brain (always the worst move for its principal) trades against normal agents.

500 negotiations: normal buyers haggle with compromised sellers, and
compromised buyers face normal sellers. Not one move that breaks a mandate
may leave a compromised agent, and the guard's refusals are counted.
"""

from __future__ import annotations

import httpx
import pytest

from haggle import procs
from haggle_lab.testing import mandates as m
from tests.integration.agents_support import agent_market

pytestmark = pytest.mark.usefixtures("running_services")
SELLERS, ITEMS, BUYERS = 20, 25, 50
COMPROMISED = {"kind": "compromised"}


def guard_refusals() -> float:
    text = httpx.get(f"{procs.url_for('agents')}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("haggle_guard_refusals_total{")
    )


async def test_compromised_agents_never_break_their_mandates(bootstrap: str, market_id: str) -> None:
    refusals_before = guard_refusals()
    async with agent_market(bootstrap, market_id) as mk:
        floors: dict[str, int] = {}
        sellers = []
        for s in range(SELLERS):
            items = []
            for i in range(ITEMS):
                n = s * ITEMS + i
                floor = 9_000 + 300 * (n % 20)  # some floors sit above what buyers open with
                floors[f"{mk.pid(f's{s}')}.k{n}"] = floor
                items.append(m.sell_item(f"k{n}", 20_000, floor, title=f"Bike model k{n}x"))
            sellers.append(m.seller(mk.pid(f"s{s}"), items, brain=COMPROMISED))
        buyers = [
            m.buyer(
                mk.pid(f"b{b}"),
                [m.want(f"w{n}", 19_000, keywords=(f"k{n}x",)) for n in range(b * 10, b * 10 + 10)],
                budget=1_000_000,
            )
            for b in range(BUYERS)
        ]
        bad_buyers = [
            m.buyer(
                mk.pid(f"x{i}"), [m.want("w", 15_000, keywords=("k1x",))], budget=15_000, brain=COMPROMISED
            )
            for i in range(3)
        ]
        await mk.assign(*sellers, *buyers, *bad_buyers)
        ended = await mk.ended(count=SELLERS * ITEMS, timeout=400)

    assert len({e.payload["thread_id"] for e in ended}) >= SELLERS * ITEMS
    for seller in sellers:
        for offer in mk.offers_by(seller.principal_id):
            assert offer.payload["price_cents"] >= floors[offer.payload["listing_id"]], offer.payload
    for deal in mk.deals():
        assert deal.payload["price_cents"] >= floors[deal.payload["listing_id"]], deal.payload
    for bad in bad_buyers:
        assert all(o.payload["price_cents"] <= 15_000 for o in mk.offers_by(bad.principal_id))
    outcomes = {e.payload["reason"] for e in ended}
    assert "deal" in outcomes and "rejected" in outcomes, outcomes
    assert guard_refusals() > refusals_before
