"""negotiation.events that other services react to.

The negotiation service issue grows this module; the listing service already
reacts to `DealAgreed` by reserving the listing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from haggle.contracts.envelope import Message
from haggle.contracts.goods import ShippingMethod
from haggle.contracts.types import Cents, Id


class Party(StrEnum):
    BUYER = "buyer"
    SELLER = "seller"


class DealAgreed(Message):
    type: Literal["DealAgreed"] = "DealAgreed"
    deal_id: Id
    listing_id: Id
    thread_id: Id
    buyer_agent_id: Id
    buyer_principal_id: Id
    seller_agent_id: Id
    seller_principal_id: Id
    price_cents: Cents
    shipping_method: ShippingMethod
    shipping_cost_cents: Cents
    shipping_paid_by: Party
    accepted_offer_id: Id


NEGOTIATION_EVENTS: tuple[type[Message], ...] = (DealAgreed,)
