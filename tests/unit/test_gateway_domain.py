"""The gateway's pure rules: wants, the shared guard, commands and moves, typed refusals."""

from __future__ import annotations

import pytest

from haggle.contracts.goods import ShippingMethod
from haggle.contracts.listing import ListingFacts
from haggle.contracts.mandate import ExternalBrainConfig
from haggle.contracts.negotiation import (
    AcceptOffer,
    CounterOffer,
    OpenNegotiation,
    Party,
    WithdrawNegotiation,
)
from haggle.contracts.samples import sample_payload
from haggle.guard.moves import Accept, MakeOffer, Walk
from haggle.guard.rules import check
from haggle_lab.testing import mandates as m
from services.gateway import domain
from services.gateway.domain import GatewayRefusal, Refused, Standing

PICKUP = ShippingMethod.LOCAL_PICKUP


def facts(price: int = 30_000, title: str = "A road bike") -> ListingFacts:
    data = sample_payload(ListingFacts)
    data.update(
        listing_id="s.bike",
        category="bikes",
        title=title,
        price_cents=price,
        condition="good",
        shipping=[{"method": "local_pickup", "cost_cents": 0}],
    )
    return ListingFacts.model_validate(data)


def standing(budget: int = 50_000, committed: int = 0, max_price: int = 26_000) -> Standing:
    brain = {"kind": "external", "api_key_sha256": "0" * 64}
    mandate = m.buyer("b", [m.want("ride", max_price=max_price)], budget=budget, brain=brain)
    return Standing("b.agent", mandate, committed, facts(), mandate.wants[0])


def refusal(move: object, where: Standing) -> Refused:
    with pytest.raises(Refused) as refused:
        domain.guarded(move, where, check)
    return refused.value


def test_an_offer_within_the_mandate_passes_the_guard_unchanged() -> None:
    move = MakeOffer(20_000, PICKUP)
    assert domain.guarded(move, standing(), check) == move


def test_over_the_private_max_is_the_guards_typed_refusal_without_the_limit() -> None:
    refused = refusal(MakeOffer(27_000, PICKUP), standing())
    assert refused.code == "guard:above_max" and refused.reason is GatewayRefusal.GUARD
    assert "26000" not in refused.detail and "26_000" not in refused.detail


def test_committed_deals_shrink_the_budget_the_guard_sees() -> None:
    refused = refusal(MakeOffer(20_000, PICKUP), standing(budget=30_000, committed=15_000))
    assert refused.code == "guard:over_budget"


def test_shipping_the_listing_does_not_offer_is_refused() -> None:
    assert (
        refusal(MakeOffer(20_000, ShippingMethod.PARCEL_SMALL), standing()).code
        == "guard:shipping_not_offered"
    )


def test_accepting_an_offer_that_is_not_on_the_table_is_refused() -> None:
    assert refusal(Accept("nope"), standing()).code == "guard:not_latest_offer"


def test_a_listing_no_want_matches_is_no_matching_want() -> None:
    mandate = standing().mandate
    with pytest.raises(Refused) as refused:
        domain.want_for(mandate, facts(title="A toaster"), None, set())
    assert refused.value.reason is GatewayRefusal.NO_MATCHING_WANT
    with pytest.raises(Refused):
        domain.want_for(mandate, facts(), None, {"ride"})  # the want is fulfilled
    assert domain.want_for(mandate, facts(), None, set()).id == "ride"


def test_a_signed_command_is_the_move_it_makes_and_back() -> None:
    opening = OpenNegotiation(listing_id="s.bike", price_cents=100, shipping_method=PICKUP)
    move, listing, thread = domain.move_of(opening)
    assert (move, listing, thread) == (MakeOffer(100, PICKUP, "", Party.BUYER), "s.bike", None)
    assert domain.command_for(move, listing, thread) == opening
    counter = CounterOffer(listing_id="s.bike", thread_id="t", price_cents=200, shipping_method=PICKUP)
    assert domain.command_for(*domain.move_of(counter)) == counter
    accept = AcceptOffer(listing_id="s.bike", thread_id="t", offer_id="t.2")
    assert domain.command_for(*domain.move_of(accept)) == accept
    assert domain.move_of(WithdrawNegotiation(listing_id="s.bike", thread_id="t"))[0] == Walk()


def test_an_external_brain_needs_exactly_one_credential() -> None:
    ExternalBrainConfig.model_validate({"kind": "external", "api_key_sha256": "a" * 64})
    ExternalBrainConfig.model_validate({"kind": "external", "public_key": "k" * 43})
    with pytest.raises(ValueError, match="exactly one"):
        ExternalBrainConfig.model_validate({"kind": "external"})
    with pytest.raises(ValueError, match="exactly one"):
        ExternalBrainConfig.model_validate(
            {"kind": "external", "api_key_sha256": "a" * 64, "public_key": "k" * 43}
        )


def test_a_request_must_carry_its_own_id_and_whole_cents() -> None:
    with pytest.raises(ValueError):
        domain.CounterRequest.model_validate(
            {"thread_id": "t", "price_cents": 1.5, "shipping_method": "local_pickup"}
        )
    with pytest.raises(ValueError):
        domain.CounterRequest.model_validate(
            {"request_id": "r" * 10, "thread_id": "t", "price_cents": 1.5, "shipping_method": "local_pickup"}
        )
