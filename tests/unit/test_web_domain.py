"""The web app's pure rules: a deal's phase from its events, money for people, the intake form."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from haggle.contracts.mandate import Mandate
from haggle.guard.rules import GuardRefusalReason
from services.web import intake
from services.web.domain import (
    GUARD_UNKNOWN,
    GUARD_WORDS,
    DealPhase,
    can_open_dispute,
    deal_phase,
    dollars,
    guard_words,
    parse_dollars,
    plain_dollars,
)

FORM = {
    "budget": "500",
    "auto_approve": "50.00",
    "style": "boulware",
    "sell_title": "Giant Escape 3 hybrid bike",
    "sell_description": "Ridden twice.",
    "sell_category": "bikes",
    "sell_condition": "very_good",
    "sell_weight_g": "14000",
    "sell_length_mm": "1400",
    "sell_width_mm": "800",
    "sell_height_mm": "250",
    "sell_shipping": ["parcel_heavy", "local_pickup"],
    "sell_asking": "300",
    "sell_floor": "$250.00",
    "want_keywords": "kettle, steel",
    "want_category": "",
    "want_max": "40",
    "want_condition": "good",
}


def test_a_phase_is_the_furthest_step_whatever_the_arrival_order() -> None:
    steps = ["ApprovalRequested", "EscrowFunded", "ShipmentBooked", "ShipmentDelivered", "FundsReleased"]
    assert deal_phase(steps) is DealPhase.RELEASED
    assert deal_phase(reversed(steps)) is DealPhase.RELEASED
    assert deal_phase([]) is DealPhase.AGREED
    assert deal_phase(["ShipmentDelivered", "DisputeOpened", "ShipmentDelivered"]) is DealPhase.DISPUTED
    assert deal_phase(["EscrowFunded", "ShipmentDelivered"]) is DealPhase.INSPECTING
    assert deal_phase(["ApprovalRequested", "EscrowFailed"]) is DealPhase.FAILED
    assert deal_phase(["SomethingNew", "EscrowFunded"]) is DealPhase.ESCROW_HELD


def test_only_an_item_in_inspection_can_be_disputed() -> None:
    assert [p for p in DealPhase if can_open_dispute(p)] == [DealPhase.INSPECTING]


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_dollars_show_every_cent_and_read_back(cents: int) -> None:
    shown = dollars(cents)
    assert shown.lstrip("-").startswith("$") and shown.endswith(f"{abs(cents) % 100:02d}")
    if cents >= 0:
        assert parse_dollars(shown) == cents
        assert parse_dollars(plain_dollars(cents)) == cents


def test_what_is_no_amount_is_handed_back_unchanged() -> None:
    for text in ("lots", "12.345", "1.2.3", "-5", "", "12,50.1a"):
        assert parse_dollars(text) == text
    assert parse_dollars("12.5") == 1_250
    assert parse_dollars(" $1,200 ") == 120_000


def test_a_good_form_is_a_mandate_with_shipping_priced_by_weight() -> None:
    mandate = intake.validate("alice", FORM)
    assert isinstance(mandate, Mandate)
    assert (mandate.budget_cents, mandate.auto_approve_limit_cents) == (50_000, 5_000)
    item = mandate.items[0]
    assert (item.asking_price_cents, item.floor_cents) == (30_000, 25_000)
    assert {o.method.value for o in item.shipping} == {"parcel_heavy", "local_pickup"}
    assert all(o.cost_cents > 0 for o in item.shipping if o.method.value != "local_pickup")
    assert mandate.wants[0].keywords == ("kettle", "steel") and mandate.wants[0].category is None
    assert intake.validate("alice", intake.form_of(mandate)) == mandate
    # A person inspects what arrives unless they tick the box that lets their agent accept it.
    assert mandate.inspects_goods
    trusting = intake.validate("alice", {**FORM, "agent_accepts": "on"})
    assert isinstance(trusting, Mandate) and not trusting.inspects_goods
    assert intake.validate("alice", intake.form_of(trusting)) == trusting


def test_each_problem_is_shown_beside_its_field() -> None:
    bad = {**FORM, "sell_floor": "350", "want_max": "900", "sell_shipping": ["parcel_small"], "budget": "x"}
    errors = intake.validate("alice", bad)
    assert isinstance(errors, dict)
    assert errors["budget"] == "enter dollars, such as 120 or 120.50"
    assert "cannot carry it" in errors["sell_shipping"]
    assert errors["sell_floor"] == "floor above asking price"
    mandate_level = intake.validate("alice", {**FORM, "want_max": "900"})
    assert mandate_level == {"want_max": "max price above the budget"}


def test_an_empty_form_asks_for_something_and_a_half_filled_one_names_the_gaps() -> None:
    assert intake.validate("alice", {"budget": "10", "auto_approve": "0"}) == {
        "_form": "give something to sell, something to buy, or both"
    }
    errors = intake.validate("alice", {"budget": "10", "auto_approve": "0", "sell_title": "Old kettle"})
    assert isinstance(errors, dict)
    assert {"sell_category", "sell_condition", "sell_asking"} <= set(errors)
    assert "_form" not in errors


def test_every_guard_refusal_has_a_plain_sentence_without_a_number() -> None:
    assert set(GUARD_WORDS) == set(GuardRefusalReason)
    for reason in GuardRefusalReason:
        sentence = guard_words(reason.value)
        assert sentence == GUARD_WORDS[reason] and sentence.endswith(".")
        assert not any(ch.isdigit() for ch in sentence) and "_" not in sentence
    assert guard_words("above_max: 26000 > 25000") == GUARD_UNKNOWN
    assert guard_words("<script>") == GUARD_UNKNOWN
