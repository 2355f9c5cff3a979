"""settlement.events that other services react to.

The settlement service issue grows this module; the listing service already
reacts: released funds mark the listing sold, a failed escrow relists it, a
refund closes it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from haggle.contracts.envelope import Message
from haggle.contracts.types import Cents, Id


class EscrowFailed(Message):
    type: Literal["EscrowFailed"] = "EscrowFailed"
    deal_id: Id
    listing_id: Id
    reason: str = Field(max_length=200)


class FundsReleased(Message):
    type: Literal["FundsReleased"] = "FundsReleased"
    deal_id: Id
    listing_id: Id
    seller_principal_id: Id
    amount_cents: Cents
    fee_cents: Cents


class Refunded(Message):
    type: Literal["Refunded"] = "Refunded"
    deal_id: Id
    listing_id: Id
    buyer_principal_id: Id
    amount_cents: Cents
    reason: str = Field(max_length=200)


SETTLEMENT_EVENTS: tuple[type[Message], ...] = (EscrowFailed, FundsReleased, Refunded)
