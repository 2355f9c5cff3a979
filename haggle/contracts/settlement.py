"""settlement.commands and settlement.events: escrow, shipping, inspection, disputes, wallets.

Both topics are keyed by deal_id; wallet messages (FundWallet, WalletFunded)
are keyed by principal_id. The listing service reacts to three of these
events: released funds mark the listing sold, a failed escrow relists it, a
refund closes it.

Agent commands (ship, hand over, accept, dispute) are signed by the agent
(see `haggle.contracts.signing`); operator commands (fund a wallet, resolve a
dispute) are signed with an operator key, agent id "operator", by the
operator's CLI or the market runner.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from haggle.contracts.envelope import Message
from haggle.contracts.goods import Condition, ShippingMethod
from haggle.contracts.negotiation import Party
from haggle.contracts.types import Cents, Id


class SettlementRefusal(StrEnum):
    """Why the settlement service refused a command. Each has a test."""

    INVALID_PAYLOAD = "invalid_payload"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_AGENT = "unknown_agent"
    REPLAYED_SEQ = "replayed_seq"
    UNKNOWN_DEAL = "unknown_deal"
    NOT_A_PARTY = "not_a_party"
    WRONG_PARTY = "wrong_party"
    WRONG_STATE = "wrong_state"
    WRONG_SHIPPING_METHOD = "wrong_shipping_method"
    CONDITION_REQUIRED = "condition_required"
    INSPECTION_CLOSED = "inspection_closed"
    INVALID_AMOUNT = "invalid_amount"
    TRANSFER_ID_CONFLICT = "transfer_id_conflict"
    NOT_OPERATOR = "not_operator"


class EscrowFailure(StrEnum):
    INSUFFICIENT_FUNDS = "insufficient_funds"
    NO_WALLET = "no_wallet"
    APPROVAL_DENIED = "approval_denied"
    APPROVAL_EXPIRED = "approval_expired"
    INVALID_DEAL = "invalid_deal"
    NO_PAYMENT_METHOD = "no_payment_method"
    NO_PAYOUT_ACCOUNT = "no_payout_account"
    PAYMENT_DECLINED = "payment_declined"


class DisputeReason(StrEnum):
    CONDITION_WORSE = "condition_worse"
    NOT_DELIVERED = "not_delivered"
    WRONG_ITEM = "wrong_item"
    CHARGEBACK = "chargeback"
    """The buyer disputed the card payment with their bank (opened by the payment provider)."""


class DisputeOutcome(StrEnum):
    RELEASE = "release"
    REFUND = "refund"
    REFUND_AFTER_RETURN = "refund_after_return"


class Decider(StrEnum):
    RULE = "rule"
    OPERATOR = "operator"


class ShipmentLeg(StrEnum):
    FORWARD = "forward"
    RETURN = "return"


class InspectionEnd(StrEnum):
    ACCEPTED = "accepted"
    WINDOW_ELAPSED = "window_elapsed"
    DISPUTE_RELEASED = "dispute_released"


# Commands (key = deal_id; FundWallet key = principal_id) --------------------


class FundWallet(Message):
    """Operator: credit a principal's wallet in this market from outside. `funding_id` makes it idempotent."""

    type: Literal["FundWallet"] = "FundWallet"
    funding_id: Id
    principal_id: Id
    amount_cents: Cents
    auto_approve_limit_cents: Cents = Field(description="escrow above this needs a human's approval")


class ShipItem(Message):
    """Seller: hand the parcel to the carrier. `packed_condition` is what is really in the box."""

    type: Literal["ShipItem"] = "ShipItem"
    deal_id: Id
    packed_condition: Condition


class ConfirmHandover(Message):
    """Local pickup: each side confirms the hand-over; the seller states the condition handed over.

    While a pickup deal's item goes back (refund after return), the seller's
    confirmation says the item came back.
    """

    type: Literal["ConfirmHandover"] = "ConfirmHandover"
    deal_id: Id
    condition: Condition | None = None


class AcceptGoods(Message):
    """Buyer: the item is as listed; release the escrow now instead of at the window's end."""

    type: Literal["AcceptGoods"] = "AcceptGoods"
    deal_id: Id


class OpenDispute(Message):
    type: Literal["OpenDispute"] = "OpenDispute"
    deal_id: Id
    reason: DisputeReason
    detail: str = Field(default="", max_length=2_000)


class ResolveDispute(Message):
    """Operator: a human's decision on a dispute the rules left open."""

    type: Literal["ResolveDispute"] = "ResolveDispute"
    deal_id: Id
    outcome: DisputeOutcome
    resolved_by: str = Field(max_length=128)
    note: str = Field(default="", max_length=2_000)


class PaymentRole(StrEnum):
    BUYER = "buyer"
    SELLER = "seller"


class LinkPaymentAccount(Message):
    """Operator: a principal's account at the market's payment provider (key = principal_id).

    A buyer brings a Customer with a saved payment method (from a SetupIntent);
    a seller a connected account that receives payouts. `haggle payments
    onboard` creates them and sends this.
    """

    type: Literal["LinkPaymentAccount"] = "LinkPaymentAccount"
    principal_id: Id
    role: PaymentRole
    customer_id: str | None = Field(default=None, max_length=255, pattern=r"^cus_[A-Za-z0-9]+$")
    payment_method_id: str | None = Field(default=None, max_length=255, pattern=r"^pm_[A-Za-z0-9_]+$")
    connected_account_id: str | None = Field(default=None, max_length=255, pattern=r"^acct_[A-Za-z0-9]+$")
    auto_approve_limit_cents: Cents = Field(
        default=0, description="a buyer's escrow above this needs a human"
    )


class ProviderEvent(Message):
    """A payment provider's webhook, exactly as received (key = deal_id from its metadata).

    Anyone may write settlement.commands, so this is trusted by the provider's
    own signature over `payload`, checked again by the handler, never by topic.
    """

    type: Literal["ProviderEvent"] = "ProviderEvent"
    provider: str = Field(max_length=32)
    payload: str = Field(max_length=64_000)
    signature: str = Field(max_length=2_000)


class SetShipTo(Message):
    """Operator (the web app, for the buyer): where this deal's parcel goes, sealed for this deal
    under the shipping key (`haggle.contracts.sealing`); only settlement opens it, to book the label."""

    type: Literal["SetShipTo"] = "SetShipTo"
    deal_id: Id
    sealed_address: str = Field(min_length=16, max_length=4_096)


SETTLEMENT_COMMANDS: tuple[type[Message], ...] = (
    FundWallet,
    ShipItem,
    ConfirmHandover,
    AcceptGoods,
    OpenDispute,
    ResolveDispute,
    LinkPaymentAccount,
    ProviderEvent,
    SetShipTo,
)


# Events (key = deal_id; WalletFunded key = principal_id) --------------------


class WalletFunded(Message):
    type: Literal["WalletFunded"] = "WalletFunded"
    funding_id: Id
    principal_id: Id
    amount_cents: Cents
    auto_approve_limit_cents: Cents
    transfer_id: str = Field(max_length=200)


class EscrowFunded(Message):
    type: Literal["EscrowFunded"] = "EscrowFunded"
    deal_id: Id
    listing_id: Id
    buyer_principal_id: Id
    seller_principal_id: Id
    amount_cents: Cents
    price_cents: Cents
    fee_cents: Cents
    shipping_method: ShippingMethod
    ship_by: datetime
    transfer_id: str = Field(max_length=200)


class EscrowFailed(Message):
    type: Literal["EscrowFailed"] = "EscrowFailed"
    deal_id: Id
    listing_id: Id
    reason: str = Field(max_length=200, description="an EscrowFailure value")
    detail: str = Field(default="", max_length=200, description="the payment provider's decline code")


class ShipmentBooked(Message):
    type: Literal["ShipmentBooked"] = "ShipmentBooked"
    deal_id: Id
    leg: ShipmentLeg = ShipmentLeg.FORWARD
    carrier: str = Field(max_length=64)
    tracking_id: str = Field(max_length=128)
    method: ShippingMethod


class ShippingLabelSealed(Message):
    """The carrier's label for a forward shipment, with the buyer's address: sealed for this deal
    under the shipping key, for the seller's eyes only (the web app opens it on the seller's page)."""

    type: Literal["ShippingLabelSealed"] = "ShippingLabelSealed"
    deal_id: Id
    tracking_id: str = Field(max_length=128)
    sealed_label: str = Field(min_length=16, max_length=8_192)


class ShipmentInTransit(Message):
    type: Literal["ShipmentInTransit"] = "ShipmentInTransit"
    deal_id: Id
    leg: ShipmentLeg = ShipmentLeg.FORWARD
    tracking_id: str = Field(max_length=128)


class HandoverConfirmed(Message):
    type: Literal["HandoverConfirmed"] = "HandoverConfirmed"
    deal_id: Id
    by: Party


class ShipmentDelivered(Message):
    """The item reached its recipient. On the forward leg the buyer's inspection window starts."""

    type: Literal["ShipmentDelivered"] = "ShipmentDelivered"
    deal_id: Id
    listing_id: Id
    leg: ShipmentLeg = ShipmentLeg.FORWARD
    method: ShippingMethod
    tracking_id: str | None = Field(default=None, max_length=128)
    delivered_condition: Condition | None = Field(default=None, description="the item's true condition")
    inspection_ends_at: datetime | None = None


class ShipmentLost(Message):
    type: Literal["ShipmentLost"] = "ShipmentLost"
    deal_id: Id
    leg: ShipmentLeg = ShipmentLeg.FORWARD
    tracking_id: str = Field(max_length=128)


class InspectionPassed(Message):
    type: Literal["InspectionPassed"] = "InspectionPassed"
    deal_id: Id
    ended_by: InspectionEnd


class DisputeOpened(Message):
    type: Literal["DisputeOpened"] = "DisputeOpened"
    deal_id: Id
    reason: DisputeReason
    opened_by: str = Field(max_length=64, description="the buyer agent's id, or 'carrier'")
    detail: str = Field(default="", max_length=2_000)


class DisputeResolved(Message):
    type: Literal["DisputeResolved"] = "DisputeResolved"
    deal_id: Id
    reason: DisputeReason
    outcome: DisputeOutcome
    decided_by: Decider
    rule: str | None = Field(default=None, max_length=64)
    resolved_by: str | None = Field(default=None, max_length=128)
    note: str = Field(default="", max_length=2_000)


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


class SettlementCommandRefused(Message):
    type: Literal["SettlementCommandRefused"] = "SettlementCommandRefused"
    deal_id: str = Field(max_length=128)
    agent_id: str | None = Field(default=None, max_length=128)
    seq: int | None = None
    command_type: str = Field(max_length=64)
    command_event_id: str = Field(max_length=64)
    reason: SettlementRefusal
    detail: str = Field(max_length=1_000)


SETTLEMENT_EVENTS: tuple[type[Message], ...] = (
    WalletFunded,
    EscrowFunded,
    EscrowFailed,
    ShipmentBooked,
    ShipmentInTransit,
    HandoverConfirmed,
    ShipmentDelivered,
    ShipmentLost,
    InspectionPassed,
    DisputeOpened,
    DisputeResolved,
    FundsReleased,
    Refunded,
    SettlementCommandRefused,
    ShippingLabelSealed,
)
SETTLEMENT_INBOX_EVENTS: tuple[type[Message], ...] = tuple(
    e for e in SETTLEMENT_EVENTS if e not in (WalletFunded, ShippingLabelSealed)
)
"""What settlement fans out to the parties' `agent.inbox` (ApprovalRequested rides there too)."""
