"""listing.commands and listing.events: what a seller asks for and what the listing service says."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from haggle.contracts.envelope import Message
from haggle.contracts.goods import Condition, Item, ShippingOption
from haggle.contracts.types import CURRENCY, Cents, Id


class ListingStatus(StrEnum):
    ACTIVE = "active"
    RESERVED = "reserved"
    SOLD = "sold"
    WITHDRAWN = "withdrawn"


class ListingRefusal(StrEnum):
    """Why the listing service refused a command. Each has a test."""

    INVALID_PAYLOAD = "invalid_payload"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_AGENT = "unknown_agent"
    REPLAYED_SEQ = "replayed_seq"
    TITLE_LENGTH = "title_length"
    DESCRIPTION_LENGTH = "description_length"
    INVALID_PRICE = "invalid_price"
    INVALID_CONDITION = "invalid_condition"
    IMPLAUSIBLE_WEIGHT = "implausible_weight"
    IMPLAUSIBLE_SIZE = "implausible_size"
    NO_SHIPPING_METHOD = "no_shipping_method"
    DUPLICATE_SHIPPING_METHOD = "duplicate_shipping_method"
    SHIPPING_INFEASIBLE = "shipping_infeasible"
    INVALID_SHIPPING_COST = "invalid_shipping_cost"
    LISTING_EXISTS = "listing_exists"
    UNKNOWN_LISTING = "unknown_listing"
    NOT_OWNER = "not_owner"
    LISTING_NOT_ACTIVE = "listing_not_active"


class ListingFacts(Message):
    """The structured facts of a listing, shared by the create command and the published event."""

    listing_id: Id
    seller_agent_id: Id
    seller_principal_id: Id
    title: str = Field(max_length=2_000)
    description: str = Field(max_length=50_000)
    category: str = Field(max_length=64)
    condition: Condition
    price_cents: Cents
    currency: Literal["USD"] = CURRENCY
    item: Item
    shipping: tuple[ShippingOption, ...] = Field(max_length=16)


# Commands (imperative) -----------------------------------------------------


class CreateListing(ListingFacts):
    type: Literal["CreateListing"] = "CreateListing"


class UpdateListingPrice(Message):
    type: Literal["UpdateListingPrice"] = "UpdateListingPrice"
    listing_id: Id
    seller_agent_id: Id
    price_cents: Cents


class WithdrawListing(Message):
    type: Literal["WithdrawListing"] = "WithdrawListing"
    listing_id: Id
    seller_agent_id: Id


# Events (past tense) -------------------------------------------------------


class ListingPublished(ListingFacts):
    type: Literal["ListingPublished"] = "ListingPublished"


class ListingPriceUpdated(Message):
    type: Literal["ListingPriceUpdated"] = "ListingPriceUpdated"
    listing_id: Id
    price_cents: Cents
    previous_price_cents: Cents


class ListingWithdrawn(Message):
    type: Literal["ListingWithdrawn"] = "ListingWithdrawn"
    listing_id: Id
    reason: str = Field(max_length=200)


class ListingReserved(Message):
    type: Literal["ListingReserved"] = "ListingReserved"
    listing_id: Id
    deal_id: Id


class ListingSold(Message):
    type: Literal["ListingSold"] = "ListingSold"
    listing_id: Id
    deal_id: Id


class ListingRelisted(Message):
    type: Literal["ListingRelisted"] = "ListingRelisted"
    listing_id: Id
    deal_id: Id
    reason: str = Field(max_length=200)


class ListingCommandRefused(Message):
    type: Literal["ListingCommandRefused"] = "ListingCommandRefused"
    listing_id: str = Field(max_length=128)
    command_type: str = Field(max_length=64)
    command_event_id: str = Field(max_length=64)
    reason: ListingRefusal
    detail: str = Field(max_length=1_000)


LISTING_COMMANDS = (CreateListing, UpdateListingPrice, WithdrawListing)
LISTING_EVENTS = (
    ListingPublished,
    ListingPriceUpdated,
    ListingWithdrawn,
    ListingReserved,
    ListingSold,
    ListingRelisted,
    ListingCommandRefused,
)
