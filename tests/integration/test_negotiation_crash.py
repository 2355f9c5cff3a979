"""Kill -9 the referee while 200 negotiations run: every one still ends, nothing lost or doubled."""

from __future__ import annotations

from collections import defaultdict

import asyncpg
import pytest

from haggle import procs
from haggle.client import Publisher
from haggle_lab.testing.autoplay import AutoMarket
from haggle_lab.testing.market import TOPICS
from haggle_lab.testing.observe import Observer, of_type

pytestmark = pytest.mark.usefixtures("running_services")
PAIRS = 200


async def test_referee_killed_mid_load_loses_and_doubles_nothing(
    bootstrap: str, database_url: str, market_id: str
) -> None:
    async with Publisher(bootstrap) as pub, Observer(bootstrap, *TOPICS, market_id=market_id) as obs:
        auto = AutoMarket(market_id, pub, obs, pairs=PAIRS)
        await auto.setup()
        await auto.open_all()
        await auto.play(until_ended=PAIRS // 8, timeout=180)
        before = procs.pid_of("negotiation")
        assert procs.crash_and_restart("negotiation") != before
        await auto.play(until_ended=PAIRS, timeout=300)
        procs.wait_ready("negotiation")

    ended: dict[str, set[str]] = defaultdict(set)
    for env in obs.matching(of_type("NegotiationEnded"), "negotiation.events"):
        ended[str(env.payload["thread_id"])].add(str(env.event_id))
    assert len(ended) == PAIRS, "every negotiation ends"
    assert all(len(ids) == 1 for ids in ended.values()), "a thread ended twice under different event ids"

    deals: dict[str, set[str]] = defaultdict(set)
    for env in obs.matching(of_type("DealAgreed"), "negotiation.events"):
        deals[str(env.payload["listing_id"])].add(str(env.payload["deal_id"]))
    assert deals and all(len(ids) == 1 for ids in deals.values()), "a listing got two deals"

    offers: dict[str, set[str]] = defaultdict(set)
    for env in obs.matching(of_type("OfferMade"), "negotiation.events"):
        offers[str(env.payload["offer_id"])].add(str(env.event_id))
    assert all(len(ids) == 1 for ids in offers.values()), "an offer was applied twice"

    outcomes = auto.outcomes()
    lost = [key for key, caused in outcomes.items() if not caused]
    assert not lost, f"{len(lost)} commands have no outcome"

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT listing_id, count(*) AS n FROM negotiation.deals WHERE listing_id LIKE $1 || '%'"
            " GROUP BY listing_id",
            market_id,
        )
    finally:
        await conn.close()
    assert {r["listing_id"] for r in rows} == set(deals)
    assert all(r["n"] == 1 for r in rows)
