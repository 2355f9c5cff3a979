"""services.listing.domain: every refusal reason, the state machine, idempotent create. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haggle.contracts.goods import Condition, Dimensions, Item
from haggle.contracts.listing import (
    CreateListing,
    ListingPriceUpdated,
    ListingPublished,
    ListingRefusal,
    ListingRelisted,
    ListingReserved,
    ListingSold,
    ListingStatus,
    ListingWithdrawn,
)
from haggle.contracts.types import MAX_PRICE_CENTS
from services.listing import domain
from services.listing.domain import Listing

SELLER = "seller-1"


def create_command(**overrides: object) -> CreateListing:
    fields: dict[str, object] = {
        "listing_id": "L-1",
        "seller_agent_id": SELLER,
        "seller_principal_id": "p-1",
        "title": "Fender acoustic guitar with case",
        "description": "Plays well; new strings.",
        "category": "music",
        "condition": Condition.VERY_GOOD,
        "price_cents": 14_000,
        "item": {"weight_g": 4_500, "dimensions": {"length_mm": 1_100, "width_mm": 450, "height_mm": 150}},
        "shipping": [
            {"method": "parcel_standard", "cost_cents": 1_299},
            {"method": "local_pickup", "cost_cents": 0},
        ],
    }
    return CreateListing.model_validate({**fields, **overrides})


def sized(weight_g: int, length: int, width: int = 100, height: int = 100) -> Item:
    return Item(weight_g=weight_g, dimensions=Dimensions(length_mm=length, width_mm=width, height_mm=height))


def shipping(*options: tuple[str, int]) -> list[dict[str, object]]:
    return [{"method": method, "cost_cents": cost} for method, cost in options]


def active(**overrides: object) -> Listing:
    listing, events, refusal = domain.create(None, create_command(**overrides))
    assert refusal is None and listing is not None and len(events) == 1
    return listing


def reserved(deal_id: str = "D-1") -> Listing:
    listing, _ = domain.reserve(active(), deal_id)
    assert listing is not None
    return listing


# Create: every refusal a create can meet ---------------------------------------------------------

CREATE_REFUSALS: list[tuple[str, dict[str, object], ListingRefusal]] = [
    ("short title", {"title": "Ba"}, ListingRefusal.TITLE_LENGTH),
    ("blank title", {"title": "        "}, ListingRefusal.TITLE_LENGTH),
    ("long title", {"title": "x" * 121}, ListingRefusal.TITLE_LENGTH),
    ("long description", {"description": "d" * 5_001}, ListingRefusal.DESCRIPTION_LENGTH),
    ("zero price", {"price_cents": 0}, ListingRefusal.INVALID_PRICE),
    ("negative price", {"price_cents": -100}, ListingRefusal.INVALID_PRICE),
    ("price above max", {"price_cents": MAX_PRICE_CENTS + 1}, ListingRefusal.INVALID_PRICE),
    ("zero weight", {"item": sized(0, 100)}, ListingRefusal.IMPLAUSIBLE_WEIGHT),
    (
        "three tonnes",
        {"item": sized(3_000_000, 100), "shipping": shipping(("local_pickup", 0))},
        ListingRefusal.IMPLAUSIBLE_WEIGHT,
    ),
    ("zero side", {"item": sized(500, 100, 0)}, ListingRefusal.IMPLAUSIBLE_SIZE),
    ("negative side", {"item": sized(500, 100, 100, -5)}, ListingRefusal.IMPLAUSIBLE_SIZE),
    (
        "eleven metres",
        {"item": sized(500, 11_000), "shipping": shipping(("local_pickup", 0))},
        ListingRefusal.IMPLAUSIBLE_SIZE,
    ),
    ("no shipping", {"shipping": []}, ListingRefusal.NO_SHIPPING_METHOD),
    (
        "same method twice",
        {"shipping": shipping(("parcel_heavy", 100), ("parcel_heavy", 200))},
        ListingRefusal.DUPLICATE_SHIPPING_METHOD,
    ),
    (
        "40 kg sofa by 30 kg parcel",
        {
            "item": sized(40_000, 2_100, 900, 850),
            "shipping": shipping(("local_pickup", 0), ("parcel_standard", 1_299)),
        },
        ListingRefusal.SHIPPING_INFEASIBLE,
    ),
    (
        "too long for small parcel",
        {"item": sized(500, 700), "shipping": shipping(("parcel_small", 599))},
        ListingRefusal.SHIPPING_INFEASIBLE,
    ),
    (
        "negative shipping cost",
        {"shipping": shipping(("parcel_standard", -1))},
        ListingRefusal.INVALID_SHIPPING_COST,
    ),
    (
        "shipping cost above max",
        {"shipping": shipping(("parcel_standard", domain.MAX_SHIPPING_COST_CENTS + 1))},
        ListingRefusal.INVALID_SHIPPING_COST,
    ),
    ("NUL in title", {"title": "Guitar\x00 with case"}, ListingRefusal.INVALID_PAYLOAD),
    ("NUL in description", {"description": "fine\x00"}, ListingRefusal.INVALID_PAYLOAD),
    ("NUL in category", {"category": "mu\x00sic"}, ListingRefusal.INVALID_PAYLOAD),
]


@pytest.mark.parametrize(
    "overrides, reason", [(o, r) for _, o, r in CREATE_REFUSALS], ids=[n for n, _, _ in CREATE_REFUSALS]
)
def test_create_refuses_with_its_reason_and_changes_nothing(
    overrides: dict[str, object], reason: ListingRefusal
) -> None:
    listing, events, refusal = domain.create(None, create_command(**overrides))
    assert refusal is not None
    assert refusal.reason is reason
    assert refusal.detail
    assert listing is None and events == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"title": "Bike!"},
        {"title": "x" * 120},
        {"description": ""},
        {"description": "d" * 5_000},
        {"price_cents": 1},
        {"price_cents": MAX_PRICE_CENTS},
        {"item": sized(1, 1, 1, 1), "shipping": shipping(("parcel_small", 0))},
        {"item": sized(2_000_000, 10_000), "shipping": shipping(("local_pickup", 0))},
        {"shipping": shipping(("parcel_standard", domain.MAX_SHIPPING_COST_CENTS))},
    ],
    ids=lambda o: ",".join(o),
)
def test_create_accepts_the_edges_of_every_range(overrides: dict[str, object]) -> None:
    listing, events, refusal = domain.create(None, create_command(**overrides))
    assert refusal is None
    assert listing is not None and listing.status is ListingStatus.ACTIVE
    assert len(events) == 1


def test_a_valid_create_publishes_the_facts_as_given() -> None:
    cmd = create_command()
    listing, events, refusal = domain.create(None, cmd)
    assert refusal is None and listing is not None
    assert events == [listing.facts]
    published = events[0]
    assert isinstance(published, ListingPublished)
    assert published.model_dump(exclude={"type"}) == cmd.model_dump(exclude={"type"})
    assert listing.deal_id is None


def test_create_again_with_the_same_body_is_an_idempotent_no_op() -> None:
    existing = active()
    listing, events, refusal = domain.create(existing, create_command())
    assert (listing, events, refusal) == (None, [], None)


def test_create_again_with_another_body_is_refused_as_listing_exists() -> None:
    existing = active()
    listing, events, refusal = domain.create(existing, create_command(price_cents=13_999))
    assert refusal is not None and refusal.reason is ListingRefusal.LISTING_EXISTS
    assert listing is None and events == []


def test_an_existing_listing_is_reported_even_when_the_new_body_is_invalid() -> None:
    _, _, refusal = domain.create(active(), create_command(price_cents=0))
    assert refusal is not None and refusal.reason is ListingRefusal.LISTING_EXISTS


# Seller commands -------------------------------------------------------------------------------


def test_update_price_emits_old_and_new_price() -> None:
    listing, events, refusal = domain.update_price(active(), SELLER, 12_000)
    assert refusal is None and listing is not None
    assert listing.price_cents == 12_000 and listing.status is ListingStatus.ACTIVE
    assert events == [ListingPriceUpdated(listing_id="L-1", price_cents=12_000, previous_price_cents=14_000)]


def test_withdraw_ends_the_listing() -> None:
    listing, events, refusal = domain.withdraw(active(), SELLER)
    assert refusal is None and listing is not None
    assert listing.status is ListingStatus.WITHDRAWN
    assert events == [ListingWithdrawn(listing_id="L-1", reason="withdrawn by seller")]


SellerCommand = Callable[[Listing | None, str], tuple[Any, Sequence[Any], domain.Refusal | None]]
SELLER_COMMANDS: dict[str, SellerCommand] = {
    "update_price": lambda listing, seller: domain.update_price(listing, seller, 9_000),
    "withdraw": domain.withdraw,
}


@pytest.mark.parametrize("command", SELLER_COMMANDS)
def test_seller_commands_refuse_an_unknown_listing(command: str) -> None:
    listing, events, refusal = SELLER_COMMANDS[command](None, SELLER)
    assert refusal is not None and refusal.reason is ListingRefusal.UNKNOWN_LISTING
    assert listing is None and events == []


@pytest.mark.parametrize("command", SELLER_COMMANDS)
def test_seller_commands_refuse_someone_who_is_not_the_owner(command: str) -> None:
    listing, events, refusal = SELLER_COMMANDS[command](active(), "seller-2")
    assert refusal is not None and refusal.reason is ListingRefusal.NOT_OWNER
    assert listing is None and events == []


@pytest.mark.parametrize("command", SELLER_COMMANDS)
@pytest.mark.parametrize("status", [ListingStatus.RESERVED, ListingStatus.SOLD, ListingStatus.WITHDRAWN])
def test_seller_commands_refuse_a_listing_that_is_not_active(command: str, status: ListingStatus) -> None:
    listing = Listing(active().facts, status, "D-1")
    after, events, refusal = SELLER_COMMANDS[command](listing, SELLER)
    assert refusal is not None and refusal.reason is ListingRefusal.LISTING_NOT_ACTIVE
    assert after is None and events == []


@pytest.mark.parametrize("price", [0, -1, MAX_PRICE_CENTS + 1])
def test_update_price_refuses_an_invalid_price(price: int) -> None:
    listing, events, refusal = domain.update_price(active(), SELLER, price)
    assert refusal is not None and refusal.reason is ListingRefusal.INVALID_PRICE
    assert listing is None and events == []


# Payloads pydantic refused: the closest reason ------------------------------------------------

INVALID_FIELDS: list[tuple[list[tuple[str | int, ...]], ListingRefusal]] = [
    ([("condition",)], ListingRefusal.INVALID_CONDITION),
    ([("price_cents",)], ListingRefusal.INVALID_PRICE),
    ([("title",)], ListingRefusal.TITLE_LENGTH),
    ([("description",)], ListingRefusal.DESCRIPTION_LENGTH),
    ([("item", "weight_g")], ListingRefusal.IMPLAUSIBLE_WEIGHT),
    ([("item", "dimensions", "height_mm")], ListingRefusal.IMPLAUSIBLE_SIZE),
    ([("shipping", 2, "cost_cents")], ListingRefusal.INVALID_SHIPPING_COST),
    ([("shipping", 0, "method")], ListingRefusal.SHIPPING_INFEASIBLE),
    ([("listing_id",)], ListingRefusal.INVALID_PAYLOAD),
    ([("item",)], ListingRefusal.INVALID_PAYLOAD),
    ([("shipping",)], ListingRefusal.INVALID_PAYLOAD),
    ([], ListingRefusal.INVALID_PAYLOAD),
    ([("listing_id",), ("price_cents",)], ListingRefusal.INVALID_PRICE),
    ([("condition",), ("price_cents",)], ListingRefusal.INVALID_CONDITION),
]


@pytest.mark.parametrize("locations, reason", INVALID_FIELDS)
def test_invalid_payload_reason_follows_the_failing_field(
    locations: list[tuple[str | int, ...]], reason: ListingRefusal
) -> None:
    assert domain.invalid_payload_reason(locations) is reason


def test_every_refusal_reason_has_a_domain_test() -> None:
    covered = {r for _, _, r in CREATE_REFUSALS} | {r for _, r in INVALID_FIELDS}
    covered |= {ListingRefusal.LISTING_EXISTS, ListingRefusal.UNKNOWN_LISTING, ListingRefusal.NOT_OWNER}
    covered |= {ListingRefusal.LISTING_NOT_ACTIVE}
    # Who signed the command is the handler's question, not the domain's (see the service tests).
    authentication = {ListingRefusal.BAD_SIGNATURE, ListingRefusal.UNKNOWN_AGENT, ListingRefusal.REPLAYED_SEQ}
    assert covered == set(ListingRefusal) - authentication


# Reactions: reserve → sold | relisted | closed -----------------------------------------------


def test_a_deal_reserves_an_active_listing() -> None:
    listing, events = domain.reserve(active(), "D-1")
    assert listing is not None
    assert (listing.status, listing.deal_id) == (ListingStatus.RESERVED, "D-1")
    assert events == [ListingReserved(listing_id="L-1", deal_id="D-1")]


def test_released_funds_sell_the_reserved_listing() -> None:
    listing, events = domain.sell(reserved("D-1"), "D-1")
    assert listing is not None
    assert (listing.status, listing.deal_id) == (ListingStatus.SOLD, "D-1")
    assert events == [ListingSold(listing_id="L-1", deal_id="D-1")]


def test_failed_escrow_relists_and_forgets_the_deal() -> None:
    listing, events = domain.relist(reserved("D-1"), "D-1", "insufficient funds")
    assert listing is not None
    assert (listing.status, listing.deal_id) == (ListingStatus.ACTIVE, None)
    assert events == [ListingRelisted(listing_id="L-1", deal_id="D-1", reason="insufficient funds")]
    again, _ = domain.reserve(listing, "D-2")
    assert again is not None and again.deal_id == "D-2"


def test_a_refund_closes_the_listing() -> None:
    listing, events = domain.close_after_refund(reserved("D-1"), "D-1", "item not as described")
    assert listing is not None and listing.status is ListingStatus.WITHDRAWN
    assert events == [ListingWithdrawn(listing_id="L-1", reason="refunded: item not as described")]


def test_long_upstream_reasons_are_cut_to_the_contract() -> None:
    _, relisted = domain.relist(reserved("D-1"), "D-1", "r" * 500)
    ListingRelisted.model_validate(relisted[0].model_dump())
    _, closed = domain.close_after_refund(reserved("D-1"), "D-1", "r" * 500)
    ListingWithdrawn.model_validate(closed[0].model_dump())


Reaction = Callable[[Listing | None, str], tuple[Listing | None, Sequence[Any]]]
REACTIONS: dict[str, Reaction] = {
    "sell": domain.sell,
    "relist": lambda listing, deal: domain.relist(listing, deal, "escrow failed"),
    "close": lambda listing, deal: domain.close_after_refund(listing, deal, "refund"),
}


@pytest.mark.parametrize("reaction", REACTIONS)
def test_settlement_events_for_another_deal_are_ignored(reaction: str) -> None:
    assert REACTIONS[reaction](reserved("D-1"), "D-other") == (None, [])


@pytest.mark.parametrize("reaction", REACTIONS)
@pytest.mark.parametrize("status", [ListingStatus.ACTIVE, ListingStatus.SOLD, ListingStatus.WITHDRAWN])
def test_settlement_events_for_a_listing_not_reserved_are_ignored(
    reaction: str, status: ListingStatus
) -> None:
    listing = Listing(active().facts, status, "D-1" if status is not ListingStatus.ACTIVE else None)
    assert REACTIONS[reaction](listing, "D-1") == (None, [])


@pytest.mark.parametrize("reaction", [*REACTIONS, "reserve"])
def test_events_for_an_unknown_listing_are_ignored(reaction: str) -> None:
    react = REACTIONS.get(reaction, domain.reserve)
    assert react(None, "D-1") == (None, [])


@pytest.mark.parametrize("status", [ListingStatus.RESERVED, ListingStatus.SOLD, ListingStatus.WITHDRAWN])
def test_a_second_deal_cannot_reserve_a_listing_that_is_not_active(status: ListingStatus) -> None:
    listing = Listing(active().facts, status, "D-1")
    assert domain.reserve(listing, "D-2") == (None, [])


# The state machine under random sequences ------------------------------------------------------

TERMINAL = {ListingStatus.SOLD, ListingStatus.WITHDRAWN}
ALLOWED = {
    (ListingStatus.ACTIVE, ListingStatus.ACTIVE),  # a price change
    (ListingStatus.ACTIVE, ListingStatus.RESERVED),
    (ListingStatus.ACTIVE, ListingStatus.WITHDRAWN),
    (ListingStatus.RESERVED, ListingStatus.SOLD),
    (ListingStatus.RESERVED, ListingStatus.ACTIVE),
    (ListingStatus.RESERVED, ListingStatus.WITHDRAWN),
}

deals = st.sampled_from(["D-1", "D-2"])
sellers = st.sampled_from([SELLER, "seller-2"])
steps = st.one_of(
    st.tuples(st.just("reserve"), deals),
    st.tuples(st.just("sell"), deals),
    st.tuples(st.just("relist"), deals),
    st.tuples(st.just("close"), deals),
    st.tuples(st.just("withdraw"), sellers),
    st.tuples(st.just("price"), sellers, st.integers(-10, MAX_PRICE_CENTS + 10)),
)


def apply(listing: Listing, step: tuple[Any, ...]) -> tuple[Listing | None, Sequence[Any]]:
    name, arg = step[0], str(step[1])
    if name == "reserve":
        return domain.reserve(listing, arg)
    if name in REACTIONS:
        return REACTIONS[name](listing, arg)
    if name == "withdraw":
        withdrawn, ended, _ = domain.withdraw(listing, arg)
        return withdrawn, ended
    updated, changed, _ = domain.update_price(listing, arg, int(step[2]))
    return updated, changed


@settings(max_examples=300, deadline=None)
@given(st.lists(steps, max_size=25))
def test_random_sequences_keep_the_state_machine_invariants(sequence: list[tuple[Any, ...]]) -> None:
    listing = active()
    for step in sequence:
        after, events = apply(listing, step)
        if after is None:
            assert events == []
            continue
        assert len(events) == 1, "a change emits exactly one event"
        assert listing.status not in TERMINAL, f"{listing.status} is terminal but {step} changed it"
        assert (listing.status, after.status) in ALLOWED
        if after.status in (ListingStatus.RESERVED, ListingStatus.SOLD):
            assert after.deal_id is not None
        if after.status is ListingStatus.ACTIVE:
            assert after.deal_id is None
        if after.price_cents != listing.price_cents:
            assert step[0] == "price" and 0 < after.price_cents <= MAX_PRICE_CENTS
        assert after.facts.model_dump(exclude={"price_cents"}) == listing.facts.model_dump(
            exclude={"price_cents"}
        )
        listing = after
