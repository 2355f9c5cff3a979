"""The gateway's pure rules: wants, the shared guard, commands and moves, typed refusals."""

from __future__ import annotations

import pytest

from haggle.contracts.goods import ShippingMethod
from haggle.contracts.listing import ListingFacts
from haggle.contracts.mandate import ExternalBrainConfig
from haggle.contracts.negotiation import OfferMade
from haggle.contracts.samples import sample_payload
from haggle.guard.moves import Accept, MakeOffer, Say
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


def standing(
    budget: int = 50_000, held: int = 26_000, max_price: int = 26_000, auto_approve: int = 10_000_000
) -> Standing:
    brain = {"kind": "external", "api_key_sha256": "0" * 64}
    want = m.want("ride", max_price=max_price)
    mandate = m.buyer("b", [want], budget=budget, brain=brain, auto_approve=auto_approve)
    return Standing("b.agent", mandate, held, facts(), mandate.wants[0])


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


def test_a_negotiation_spends_only_what_it_holds() -> None:
    refused = refusal(MakeOffer(20_000, PICKUP), standing(held=15_000))
    assert refused.code == "guard:over_budget"
    assert domain.guarded(MakeOffer(15_000, PICKUP), standing(held=15_000), check) == MakeOffer(
        15_000, PICKUP
    )


def test_an_opening_holds_its_cap_what_is_free_or_is_refused() -> None:
    mandate, want = standing().mandate, standing().want
    # the listing asks 30 000 with free pickup; the want's max is 26 000; the budget 50 000
    assert domain.hold(mandate, want, facts(), committed_cents=0, held_cents=0) == 26_000
    assert domain.hold(mandate, want, facts(), committed_cents=10_000, held_cents=26_000) == 14_000
    assert domain.hold(mandate, want, facts(price=9_000), committed_cents=0, held_cents=0) == 9_000
    with pytest.raises(Refused) as refused:
        domain.hold(mandate, want, facts(), committed_cents=24_000, held_cents=26_000)
    assert refused.value.reason is GatewayRefusal.BUDGET_HELD
    assert "50000" not in refused.value.detail


@pytest.mark.parametrize("secret", ["50000", "$500", "500.00", "41000"])
def test_words_that_give_away_the_budget_or_the_approval_limit_are_refused(secret: str) -> None:
    where = standing(budget=50_000, auto_approve=41_000)
    assert refusal(Say(f"between us, I can go to {secret}"), where).code == "guard:discloses_private"
    offer = MakeOffer(15_000, PICKUP, message=f"my limit is {secret}")
    assert refusal(offer, where).code == "guard:discloses_private"


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


def test_a_command_that_sends_nothing_is_an_invalid_request() -> None:
    with pytest.raises(Refused) as refused:
        domain.command_for(Accept("t.1"), "s.bike", None)  # no thread to accept in
    assert refused.value.reason is GatewayRefusal.INVALID_REQUEST


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


def seller_standing() -> Standing:
    brain = {"kind": "external", "api_key_sha256": "0" * 64}
    mandate = m.seller("s", [m.sell_item("bike", asking=30_000, floor=20_000)], brain=brain)
    return Standing("s.agent", mandate, 0, facts(), None, item_id="bike")


def test_a_seller_is_held_to_its_floor_and_keeps_it_secret() -> None:
    where = seller_standing()
    assert where.limits().floor_cents == 20_000
    opened = {
        "type": "ThreadOpened",
        "payload": {
            "thread_id": "t",
            "listing_id": "s.bike",
            "buyer_agent_id": "b.agent",
            "seller_agent_id": "s.agent",
            "deadline": "2030-01-01T00:00:00+00:00",
            "max_rounds": 20,
        },
    }
    offer = sample_payload(OfferMade)
    offer.update(
        thread_id="t", listing_id="s.bike", offer_id="t.1", by="buyer", agent_id="b.agent", price_cents=15_000
    )
    offer.update(shipping_method="local_pickup", shipping_cost_cents=0, shipping_paid_by="buyer", final=False)
    where = Standing(
        "s.agent",
        where.mandate,
        0,
        facts(),
        None,
        ({**opened}, {"type": "OfferMade", "payload": offer}),
        "bike",
    )
    assert refusal(MakeOffer(19_000, PICKUP), where).code == "guard:below_floor"
    assert refusal(Say("my floor is 20000"), where).code == "guard:discloses_private"
    assert domain.guarded(MakeOffer(25_000, PICKUP), where, check) == MakeOffer(25_000, PICKUP)


def test_an_item_is_listed_from_the_mandate_never_under_its_floor() -> None:
    mandate = seller_standing().mandate
    listing = domain.listing_for(mandate, "s.agent", "bike", None)
    assert (listing.listing_id, listing.price_cents, listing.seller_agent_id) == ("s.bike", 30_000, "s.agent")
    assert domain.listing_for(mandate, "s.agent", "bike", 25_000).price_cents == 25_000
    with pytest.raises(Refused) as refused:
        domain.listing_for(mandate, "s.agent", "car", None)
    assert refused.value.reason is GatewayRefusal.UNKNOWN_ITEM
    with pytest.raises(Refused) as refused:
        domain.listing_for(mandate, "s.agent", "bike", 19_999)
    assert refused.value.code == "guard:below_floor" and "20000" not in refused.value.detail


def test_a_self_signed_listing_must_be_the_mandates_item_at_or_over_its_floor() -> None:
    mandate = seller_standing().mandate
    own = domain.listing_for(mandate, "s.agent", "bike", 26_000)
    assert domain.own_listing(mandate, "s.agent", own) == own
    changed = {
        "title": own.model_copy(update={"title": "a better bike"}),
        "seller": own.model_copy(update={"seller_agent_id": "t.agent"}),
        "principal": own.model_copy(update={"listing_id": "t.bike"}),
        "item": own.model_copy(update={"listing_id": "s.car"}),
    }
    for what, listing in changed.items():
        with pytest.raises(Refused) as refused:
            domain.own_listing(mandate, "s.agent", listing)
        assert refused.value.reason is GatewayRefusal.UNKNOWN_ITEM, what
    with pytest.raises(Refused) as refused:
        domain.own_listing(mandate, "s.agent", own.model_copy(update={"price_cents": 19_999}))
    assert refused.value.code == "guard:below_floor"
