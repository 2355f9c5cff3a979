"""The listing: pure rules and its state machine. No I/O here.

Each decision returns either events or a refusal with a typed reason; the
handler persists whatever it gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from haggle.contracts.goods import shipping_refusal
from haggle.contracts.listing import (
    CreateListing,
    ListingFacts,
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

TITLE_LENGTH = (5, 120)
DESCRIPTION_LENGTH = (0, 5_000)
WEIGHT_G = (1, 2_000_000)  # 1 g .. 2 t
SIDE_MM = (1, 10_000)  # 1 mm .. 10 m
MAX_SHIPPING_COST_CENTS = 500_000


@dataclass(frozen=True)
class Refusal:
    reason: ListingRefusal
    detail: str


@dataclass(frozen=True)
class Listing:
    facts: ListingFacts
    status: ListingStatus
    deal_id: str | None = None

    @property
    def listing_id(self) -> str:
        return self.facts.listing_id

    @property
    def price_cents(self) -> int:
        return self.facts.price_cents


def _price_refusal(price: int) -> Refusal | None:
    if price <= 0 or price > MAX_PRICE_CENTS:
        return Refusal(ListingRefusal.INVALID_PRICE, f"price {price} cents outside 1..{MAX_PRICE_CENTS}")
    return None


def _text_refusal(cmd: CreateListing) -> Refusal | None:
    for name, text in (("title", cmd.title), ("description", cmd.description), ("category", cmd.category)):
        if "\x00" in text:
            # PostgreSQL text cannot hold NUL: without this the save fails and the command is dead-lettered.
            return Refusal(ListingRefusal.INVALID_PAYLOAD, f"{name} contains a NUL character")
    title = cmd.title.strip()
    if not TITLE_LENGTH[0] <= len(title) <= TITLE_LENGTH[1]:
        return Refusal(ListingRefusal.TITLE_LENGTH, f"title of {len(title)} chars, want {TITLE_LENGTH}")
    if not DESCRIPTION_LENGTH[0] <= len(cmd.description) <= DESCRIPTION_LENGTH[1]:
        return Refusal(
            ListingRefusal.DESCRIPTION_LENGTH,
            f"description of {len(cmd.description)} chars, max {DESCRIPTION_LENGTH[1]}",
        )
    return None


def _physical_refusal(cmd: CreateListing) -> Refusal | None:
    weight = cmd.item.weight_g
    if not WEIGHT_G[0] <= weight <= WEIGHT_G[1]:
        return Refusal(ListingRefusal.IMPLAUSIBLE_WEIGHT, f"weight {weight} g outside {WEIGHT_G}")
    sides = cmd.item.dimensions.sorted_sides
    if not all(SIDE_MM[0] <= side <= SIDE_MM[1] for side in sides):
        return Refusal(ListingRefusal.IMPLAUSIBLE_SIZE, f"sides {sides} mm outside {SIDE_MM}")
    return None


def _shipping_refusal(cmd: CreateListing) -> Refusal | None:
    if not cmd.shipping:
        return Refusal(ListingRefusal.NO_SHIPPING_METHOD, "a listing needs at least one shipping method")
    methods = [option.method for option in cmd.shipping]
    if len(set(methods)) != len(methods):
        return Refusal(ListingRefusal.DUPLICATE_SHIPPING_METHOD, f"methods repeated: {methods}")
    for option in cmd.shipping:
        if not 0 <= option.cost_cents <= MAX_SHIPPING_COST_CENTS:
            return Refusal(
                ListingRefusal.INVALID_SHIPPING_COST, f"{option.method}: cost {option.cost_cents} cents"
            )
        if why := shipping_refusal(option.method, cmd.item):
            return Refusal(ListingRefusal.SHIPPING_INFEASIBLE, f"{option.method}: {why}")
    return None


def validate(cmd: CreateListing) -> Refusal | None:
    return (
        _text_refusal(cmd)
        or _price_refusal(cmd.price_cents)
        or _physical_refusal(cmd)
        or _shipping_refusal(cmd)
    )


# Where pydantic already refused a field, the refusal names the closest reason.
_FIELD_REASONS: tuple[tuple[tuple[str | None, ...], ListingRefusal], ...] = (
    (("condition",), ListingRefusal.INVALID_CONDITION),
    (("price_cents",), ListingRefusal.INVALID_PRICE),
    (("title",), ListingRefusal.TITLE_LENGTH),
    (("description",), ListingRefusal.DESCRIPTION_LENGTH),
    (("item", "weight_g"), ListingRefusal.IMPLAUSIBLE_WEIGHT),
    (("item", "dimensions"), ListingRefusal.IMPLAUSIBLE_SIZE),
    (("shipping", None, "cost_cents"), ListingRefusal.INVALID_SHIPPING_COST),
    (("shipping", None, "method"), ListingRefusal.SHIPPING_INFEASIBLE),
)


def _matches(loc: Sequence[str | int], pattern: tuple[str | None, ...]) -> bool:
    if len(loc) < len(pattern):
        return False
    return all(p is None or p == part for p, part in zip(pattern, loc[: len(pattern)], strict=True))


def invalid_payload_reason(locations: Sequence[Sequence[str | int]]) -> ListingRefusal:
    """The reason for a payload that failed its contract, from the failing fields' paths in order."""
    for loc in locations:
        for pattern, reason in _FIELD_REASONS:
            if _matches(loc, pattern):
                return reason
    return ListingRefusal.INVALID_PAYLOAD


def published_event(cmd: CreateListing) -> ListingPublished:
    return ListingPublished(**cmd.model_dump(exclude={"type"}))


def create(
    existing: Listing | None, cmd: CreateListing
) -> tuple[Listing | None, list[ListingPublished], Refusal | None]:
    """A new listing, or nothing when the same listing already exists (an idempotent retry)."""
    if existing is not None:
        if existing.facts.model_dump(exclude={"type"}) == cmd.model_dump(exclude={"type"}):
            return None, [], None
        return None, [], Refusal(ListingRefusal.LISTING_EXISTS, f"listing {cmd.listing_id} exists")
    if refusal := validate(cmd):
        return None, [], refusal
    event = published_event(cmd)
    return Listing(event, ListingStatus.ACTIVE), [event], None


def _owned_active(listing: Listing | None, seller_agent_id: str) -> Refusal | None:
    if listing is None:
        return Refusal(ListingRefusal.UNKNOWN_LISTING, "no such listing")
    if listing.facts.seller_agent_id != seller_agent_id:
        return Refusal(ListingRefusal.NOT_OWNER, f"{seller_agent_id} does not own this listing")
    if listing.status is not ListingStatus.ACTIVE:
        return Refusal(ListingRefusal.LISTING_NOT_ACTIVE, f"listing is {listing.status}")
    return None


def update_price(
    listing: Listing | None, seller_agent_id: str, price: int
) -> tuple[Listing | None, list[ListingPriceUpdated], Refusal | None]:
    if refusal := _owned_active(listing, seller_agent_id) or _price_refusal(price):
        return None, [], refusal
    assert listing is not None
    event = ListingPriceUpdated(
        listing_id=listing.listing_id, price_cents=price, previous_price_cents=listing.price_cents
    )
    facts = listing.facts.model_copy(update={"price_cents": price})
    return replace(listing, facts=facts), [event], None


def withdraw(
    listing: Listing | None, seller_agent_id: str
) -> tuple[Listing | None, list[ListingWithdrawn], Refusal | None]:
    if refusal := _owned_active(listing, seller_agent_id):
        return None, [], refusal
    assert listing is not None
    event = ListingWithdrawn(listing_id=listing.listing_id, reason="withdrawn by seller")
    return replace(listing, status=ListingStatus.WITHDRAWN), [event], None


# Reactions to other services' events. They never refuse: a fact that does not
# fit the current state is ignored (returned as no change) and counted.


def reserve(listing: Listing | None, deal_id: str) -> tuple[Listing | None, list[ListingReserved]]:
    if listing is None or listing.status is not ListingStatus.ACTIVE:
        return None, []
    event = ListingReserved(listing_id=listing.listing_id, deal_id=deal_id)
    return replace(listing, status=ListingStatus.RESERVED, deal_id=deal_id), [event]


def _reserved_for(listing: Listing | None, deal_id: str) -> bool:
    return listing is not None and listing.status is ListingStatus.RESERVED and listing.deal_id == deal_id


def sell(listing: Listing | None, deal_id: str) -> tuple[Listing | None, list[ListingSold]]:
    if not _reserved_for(listing, deal_id):
        return None, []
    assert listing is not None
    return replace(listing, status=ListingStatus.SOLD), [
        ListingSold(listing_id=listing.listing_id, deal_id=deal_id)
    ]


def relist(
    listing: Listing | None, deal_id: str, reason: str
) -> tuple[Listing | None, list[ListingRelisted]]:
    if not _reserved_for(listing, deal_id):
        return None, []
    assert listing is not None
    event = ListingRelisted(listing_id=listing.listing_id, deal_id=deal_id, reason=reason[:200])
    return replace(listing, status=ListingStatus.ACTIVE, deal_id=None), [event]


def close_after_refund(
    listing: Listing | None, deal_id: str, reason: str
) -> tuple[Listing | None, list[ListingWithdrawn]]:
    """A refunded deal ends the listing: the item was lost or misdescribed."""
    if not _reserved_for(listing, deal_id):
        return None, []
    assert listing is not None
    event = ListingWithdrawn(listing_id=listing.listing_id, reason=f"refunded: {reason}"[:200])
    return replace(listing, status=ListingStatus.WITHDRAWN), [event]
