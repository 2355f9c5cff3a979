"""services.agents.domain.steps: each handler's decide step, the one copy the service's handlers and
the in-process engine (`haggle sim`) both call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from haggle.contracts import AgentKey
from haggle.contracts.goods import Condition, ShippingMethod
from haggle.contracts.listing import ListingPublished
from haggle.contracts.negotiation import (
    DealAgreed,
    EndReason,
    NegotiationEnded,
    OfferMade,
    Party,
    ThreadOpened,
)
from haggle.contracts.settlement import (
    AcceptGoods,
    ConfirmHandover,
    Decider,
    DisputeOutcome,
    DisputeReason,
    DisputeResolved,
    EscrowFailed,
    EscrowFunded,
    OpenDispute,
    ShipItem,
    ShipmentDelivered,
    ShipmentLeg,
)
from services.agents.domain import Negotiation, Principal, Role, Status, steps
from services.agents.domain.deals import Deal
from services.agents.mandate import load_mandate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mandates"
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.fixture
def bob() -> Principal:
    mandate = load_mandate(EXAMPLES / "buyer.json")
    return Principal("bob", "m", "bob.agent", "v", mandate, AgentKey.generate(), True, 0)


@pytest.fixture
def alice() -> Principal:
    mandate = load_mandate(EXAMPLES / "seller.yaml")
    return Principal("alice", "m", "alice.agent", "v", mandate, AgentKey.generate(), True, 0)


def listing(alice: Principal, item_id: str = "alice-headphones") -> ListingPublished:
    create = alice.mandate.item(item_id).to_listing(alice.listing_id_for(item_id), "alice.agent", "alice")
    return ListingPublished.model_validate(create.model_dump() | {"type": "ListingPublished"})


def opened(listing_id: str) -> ThreadOpened:
    return ThreadOpened(
        thread_id="t1",
        listing_id=listing_id,
        buyer_agent_id="bob.agent",
        seller_agent_id="alice.agent",
        deadline=NOW + timedelta(minutes=1),
        max_rounds=12,
    )


def offer(listing_id: str, by: str, price: int = 15_000) -> OfferMade:
    return OfferMade(
        thread_id="t1",
        listing_id=listing_id,
        offer_id=f"o-{by}",
        by=Party.BUYER if by == "bob.agent" else Party.SELLER,
        agent_id=by,
        round=1,
        price_cents=price,
        shipping_method=ShippingMethod.PARCEL_SMALL,
        shipping_cost_cents=650,
        shipping_paid_by=Party.BUYER,
    )


def test_a_thread_opened_on_my_listing_starts_a_seller_negotiation_only_then(alice: Principal) -> None:
    listing_id = alice.listing_id_for("alice-headphones")
    found = steps.locate(alice, opened(listing_id))
    assert found.fresh is not None and found.fresh.neg_id == found.neg_id
    assert (found.fresh.role, found.fresh.item_id, found.fresh.thread_id) == (
        Role.SELLER,
        "alice-headphones",
        "t1",
    )
    later = steps.locate(alice, offer(listing_id, "bob.agent"))
    assert later.neg_id == found.neg_id and later.fresh is None


def test_a_buyer_finds_its_negotiation_by_listing(bob: Principal) -> None:
    found = steps.locate(bob, opened("alice.alice-headphones"))
    assert found.fresh is None and found.neg_id.endswith("alice.alice-headphones")


def test_the_other_sides_offer_is_my_turn_and_mine_is_not(alice: Principal) -> None:
    listing_id = alice.listing_id_for("alice-headphones")
    neg = steps.locate(alice, opened(listing_id)).fresh
    assert neg is not None
    first = steps.on_thread_event(alice, neg, opened(listing_id), NOW)
    assert (first.my_turn, first.buyer_ended, neg.status) == (False, False, Status.OPEN)
    assert steps.on_thread_event(alice, neg, offer(listing_id, "bob.agent"), NOW).my_turn
    assert not steps.on_thread_event(alice, neg, offer(listing_id, "alice.agent"), NOW).my_turn
    assert [e.saved()["type"] for e in neg.events] == ["ThreadOpened", "OfferMade", "OfferMade"]


def test_a_buyers_thread_ending_makes_room_for_the_want(bob: Principal) -> None:
    neg = Negotiation("b|bob|l", "bob", "l", Role.BUYER, want_id="bob-headphones")
    steps.on_thread_event(bob, neg, opened("l"), NOW)
    ended = NegotiationEnded(
        thread_id="t1",
        listing_id="l",
        buyer_agent_id="bob.agent",
        seller_agent_id="alice.agent",
        reason=EndReason.WITHDRAWN,
        rounds=1,
    )
    step = steps.on_thread_event(bob, neg, ended, NOW)
    assert step.buyer_ended and not step.my_turn
    assert steps.reshops_after_turn(neg) == "bob-headphones"


def test_an_unfunded_opening_is_declined_and_holds_nothing(alice: Principal, bob: Principal) -> None:
    facts = listing(alice)
    neg = Negotiation("b|bob|x", "bob", facts.listing_id, Role.BUYER, want_id="bob-headphones")
    assert steps.needs_funding(neg)
    budget = bob.budget([neg])
    assert steps.prepare(bob, neg, facts, budget, set(), None, NOW) is steps.NoTurn.DECLINED
    assert (neg.status, neg.reserved_cents) == (Status.ENDED, 0)
    assert (
        steps.prepare(bob, neg, facts, budget, {"bob-headphones"}, None, NOW) is steps.NoTurn.NOTHING_TO_SEE
    )


def test_a_funded_opening_holds_its_cap_and_the_limits_spend_only_that(
    alice: Principal, bob: Principal
) -> None:
    facts = listing(alice)
    neg = Negotiation("b|bob|x", "bob", facts.listing_id, Role.BUYER, want_id="bob-headphones")
    prepared = steps.prepare(bob, neg, facts, bob.budget([neg]), {"bob-headphones"}, None, NOW)
    assert not isinstance(prepared, steps.NoTurn)
    view, limits = prepared
    assert view.my_turn and neg.reserved_cents > 0
    assert limits.remaining_budget_cents == neg.reserved_cents


def test_a_seller_waits_for_the_buyers_first_offer(alice: Principal) -> None:
    listing_id = alice.listing_id_for("alice-headphones")
    neg = steps.locate(alice, opened(listing_id)).fresh
    assert neg is not None
    steps.on_thread_event(alice, neg, opened(listing_id), NOW)
    assert not steps.needs_funding(neg)
    prepared = steps.prepare(alice, neg, listing(alice), alice.budget(()), None, None, NOW)
    assert prepared is steps.NoTurn.NOT_MY_TURN


def test_my_side_of_a_deal_is_the_buyers_total_or_the_sellers_price(alice: Principal, bob: Principal) -> None:
    deal = DealAgreed(
        deal_id="d1",
        thread_id="t1",
        listing_id="l",
        buyer_agent_id="bob.agent",
        buyer_principal_id="bob",
        seller_agent_id="alice.agent",
        seller_principal_id="alice",
        accepted_offer_id="o1",
        price_cents=15_000,
        shipping_method=ShippingMethod.PARCEL_SMALL,
        shipping_cost_cents=650,
        shipping_paid_by=Party.BUYER,
    )
    assert steps.my_side(bob, deal) == (True, 15_650)
    assert steps.my_side(alice, deal) == (False, 15_000)


def funded(method: ShippingMethod, listing_id: str = "alice.alice-lens") -> EscrowFunded:
    return EscrowFunded(
        deal_id="d1",
        listing_id=listing_id,
        buyer_principal_id="bob",
        seller_principal_id="alice",
        amount_cents=10_000,
        price_cents=10_000,
        fee_cents=0,
        shipping_method=method,
        ship_by=NOW,
        transfer_id="x",
    )


def test_held_money_makes_the_seller_ship_what_is_really_in_the_box(alice: Principal, bob: Principal) -> None:
    lens = alice.listing_id_for("alice-lens")
    shipped = steps.on_escrow_funded(alice, funded(ShippingMethod.PARCEL_SMALL, lens))
    assert shipped == ShipItem(deal_id="d1", packed_condition=Condition.GOOD)  # listed like_new
    handed = steps.on_escrow_funded(alice, funded(ShippingMethod.LOCAL_PICKUP, lens))
    assert handed == ConfirmHandover(deal_id="d1", condition=Condition.GOOD)
    assert steps.on_escrow_funded(bob, funded(ShippingMethod.LOCAL_PICKUP)) == ConfirmHandover(deal_id="d1")
    assert steps.on_escrow_funded(bob, funded(ShippingMethod.PARCEL_SMALL)) is None


def delivered(condition: Condition | None, leg: ShipmentLeg = ShipmentLeg.FORWARD) -> ShipmentDelivered:
    return ShipmentDelivered(
        deal_id="d1",
        listing_id="alice.alice-lens",
        leg=leg,
        method=ShippingMethod.PARCEL_SMALL,
        delivered_condition=condition,
    )


def test_the_buyer_accepts_what_matches_the_listing_and_disputes_what_is_worse(
    alice: Principal, bob: Principal
) -> None:
    facts = listing(alice, "alice-lens")  # listed like_new
    assert steps.inspect(bob, delivered(Condition.LIKE_NEW), facts) == AcceptGoods(deal_id="d1")
    disputed = steps.inspect(bob, delivered(Condition.GOOD), facts)
    assert isinstance(disputed, OpenDispute) and disputed.reason is DisputeReason.CONDITION_WORSE
    assert disputed.detail == "listed as like_new, arrived good"
    assert steps.inspect(bob, delivered(Condition.GOOD, ShipmentLeg.RETURN), facts) is None
    assert steps.inspect(bob, delivered(None), facts) is None
    assert steps.inspect(bob, delivered(Condition.GOOD), None) is None
    assert steps.inspect(alice, delivered(Condition.GOOD), facts) is None  # its own listing


def test_a_pickup_refunded_after_return_is_confirmed_back_by_its_seller(alice: Principal) -> None:
    def deal(role: Role, method: ShippingMethod) -> Deal:
        return Deal("d1", "alice", role, "alice.alice-lens", None, 10_000, method.value)

    def resolved(outcome: DisputeOutcome) -> DisputeResolved:
        return DisputeResolved(
            deal_id="d1", reason=DisputeReason.CONDITION_WORSE, outcome=outcome, decided_by=Decider.RULE
        )

    back = steps.on_dispute_resolved(
        alice, deal(Role.SELLER, ShippingMethod.LOCAL_PICKUP), resolved(DisputeOutcome.REFUND_AFTER_RETURN)
    )
    assert back == ConfirmHandover(deal_id="d1", condition=Condition.GOOD)
    for role, method, outcome in [
        (Role.BUYER, ShippingMethod.LOCAL_PICKUP, DisputeOutcome.REFUND_AFTER_RETURN),
        (Role.SELLER, ShippingMethod.PARCEL_SMALL, DisputeOutcome.REFUND_AFTER_RETURN),
        (Role.SELLER, ShippingMethod.LOCAL_PICKUP, DisputeOutcome.REFUND),
    ]:
        assert steps.on_dispute_resolved(alice, deal(role, method), resolved(outcome)) is None


def test_only_a_buyers_denied_or_expired_purchase_is_never_tried_again() -> None:
    def failed(reason: str) -> EscrowFailed:
        return EscrowFailed.model_validate({"deal_id": "d1", "listing_id": "l", "reason": reason})

    buyer = Deal("d1", "bob", Role.BUYER, "l", "w", 10_000, "parcel_small")
    seller = Deal("d1", "alice", Role.SELLER, "l", None, 10_000, "parcel_small")
    assert steps.refuses_again(buyer, failed("approval_denied"))
    assert not steps.refuses_again(seller, failed("approval_denied"))
    assert not steps.refuses_again(buyer, failed("insufficient_funds"))
