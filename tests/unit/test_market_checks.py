"""The report's invariant checks must catch a broken mandate, and only a broken one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from haggle.contracts import Envelope, Message, wrap
from haggle.contracts.goods import ShippingMethod
from haggle.contracts.negotiation import DealAgreed, OfferMade, Party
from haggle.contracts.settlement import Refunded
from haggle.market.checks import no_listing_sold_twice, no_mandate_broken
from haggle.market.collect import Scope
from haggle.market.population import Population, Principal
from tests.unit.market_builders import sale, want

SCOPE = Scope("m1")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def population(budget: int = 10_000) -> Population:
    seller = Principal(
        id="p1",
        variant="linear",
        budget_cents=1,
        auto_approve_limit_cents=0,
        brain_seed=1,
        items=(sale("s1", "p1", floor=3_000), sale("s2", "p1", floor=3_000)),
    )
    buyer = Principal(
        id="p2",
        variant="linear",
        budget_cents=budget,
        auto_approve_limit_cents=0,
        brain_seed=2,
        wants=(want("w1", "p2", 6_000), want("w2", "p2", 6_000)),
    )
    return Population(seed=1, variants=("linear",), parallel=False, principals=(seller, buyer))


def event(message: Message, at: int) -> tuple[str, Envelope]:
    env = wrap(message, market_id="m1", producer="test")
    return "t", env.model_copy(update={"occurred_at": T0 + timedelta(seconds=at)})


def offer(by: Party, price: int, item: str = "s1") -> OfferMade:
    agent = "m1.p1.agent" if by is Party.SELLER else "m1.p2.agent"
    return OfferMade(
        thread_id="t1",
        listing_id=f"m1.p1.{item}",
        offer_id="t1.1",
        by=by,
        agent_id=agent,
        round=1,
        price_cents=price,
        shipping_method=ShippingMethod.LOCAL_PICKUP,
        shipping_cost_cents=0,
        shipping_paid_by=Party.BUYER,
    )


def deal(deal_id: str, price: int, item: str = "s1") -> DealAgreed:
    return DealAgreed(
        deal_id=deal_id,
        listing_id=f"m1.p1.{item}",
        thread_id="t1",
        buyer_agent_id="m1.p2.agent",
        buyer_principal_id="m1.p2",
        seller_agent_id="m1.p1.agent",
        seller_principal_id="m1.p1",
        price_cents=price,
        shipping_method=ShippingMethod.LOCAL_PICKUP,
        shipping_cost_cents=0,
        shipping_paid_by=Party.BUYER,
        accepted_offer_id="t1.1",
    )


def test_offers_and_deals_within_limits_keep_the_mandates() -> None:
    seen = [
        event(offer(Party.BUYER, 4_000), 0),
        event(offer(Party.SELLER, 5_000), 1),
        event(deal("d1", 5_000), 2),
    ]
    assert no_mandate_broken(seen, population(), SCOPE) == (True, [])


def test_a_seller_offer_under_its_floor_breaks_the_mandate() -> None:
    ok, why = no_mandate_broken([event(offer(Party.SELLER, 2_999), 0)], population(), SCOPE)
    assert not ok and "under the seller's floor" in why[0]


def test_a_buyer_offer_or_deal_over_its_max_breaks_the_mandate() -> None:
    ok, why = no_mandate_broken(
        [event(offer(Party.BUYER, 6_001), 0), event(deal("d1", 6_001), 1)], population(), SCOPE
    )
    assert not ok and len(why) == 2


def test_live_deals_over_the_budget_break_it_but_a_refund_frees_the_money() -> None:
    over = [event(deal("d1", 6_000), 0), event(deal("d2", 5_000, "s2"), 1)]
    assert not no_mandate_broken(over, population(budget=10_000), SCOPE)[0]
    refund = Refunded(
        deal_id="d1",
        listing_id="m1.p1.s1",
        buyer_principal_id="m1.p2",
        amount_cents=6_000,
        reason="lost_parcel",
    )
    freed = [over[0], event(refund, 1), event(deal("d2", 5_000, "s2"), 2)]
    assert no_mandate_broken(freed, population(budget=10_000), SCOPE) == (True, [])


def test_a_listing_sold_twice_is_caught() -> None:
    from haggle.contracts.listing import ListingSold

    once = [event(ListingSold(listing_id="L", deal_id="d1"), 0)]
    assert no_listing_sold_twice(once) == (True, [])
    assert not no_listing_sold_twice([*once, event(ListingSold(listing_id="L", deal_id="d2"), 1)])[0]


def test_a_sale_delivered_twice_is_one_sale() -> None:
    # A chaos run's settlement was killed after its relay published FundsReleased and before it
    # marked it sent: the new process published the same event (one event id) again.
    from haggle.contracts.listing import ListingSold

    sold = event(ListingSold(listing_id="L", deal_id="d1"), 0)
    assert no_listing_sold_twice([sold, sold]) == (True, [])
