"""One deal's settlement: the record, its states, and the money moves of each outcome. Pure.

    awaiting_approval ─granted─▶ (hold) ─▶ funded ─ship─▶ shipping ─delivered─▶ inspecting ─▶ released
           │ denied/expired        │ insufficient  │ pickup: both confirm ─────────▶│   │ dispute
           ▼                       ▼               ▼ not shipped in time            │   ▼
         failed                  failed          refunded ◀─lost─ shipping        disputed / returning
                                                                                    ─▶ released | refunded

In a card market (payments/) the hold waits in `authorizing` while the card is
authorized: authorized → funded, declined → failed.

A decision returns an `Outcome`: the new record, the events, the transfers
that must succeed, and at most one request for the handler to carry out and
feed back (`hold` → `held`, `book` → `booked`), since the ledger's answer and
the carrier's booking are facts the rules need but cannot fetch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from haggle.contracts.envelope import Message
from haggle.contracts.goods import Condition, ShippingMethod
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.negotiation import Party
from haggle.contracts.settlement import (
    DisputeReason,
    EscrowFailed,
    EscrowFailure,
    SettlementRefusal,
    ShipmentLeg,
)
from services.settlement.domain.carrier import TrackingStatus
from services.settlement.domain.ledger import Account, AccountKind, Phase, Transfer


class DealState(StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"
    AUTHORIZING = "authorizing"
    """A card market's hold is being authorized by the payment provider (see payments/)."""
    FUNDED = "funded"
    SHIPPING = "shipping"
    INSPECTING = "inspecting"
    DISPUTED = "disputed"
    RETURNING = "returning"
    RELEASED = "released"
    REFUNDED = "refunded"
    FAILED = "failed"


FINAL_STATES = frozenset({DealState.RELEASED, DealState.REFUNDED, DealState.FAILED})


class RefundReason(StrEnum):
    LOST_PARCEL = "lost_parcel"
    CONDITION_BELOW_LISTING = "condition_below_listing"
    NOT_SHIPPED = "not_shipped"
    DISPUTE_REFUND = "dispute_refund"
    RETURNED = "returned"
    AUTHORIZATION_LAPSED = "authorization_lapsed"


class Deal(BaseModel):
    """The settlement record of one deal; `due_at` is when the timer job must look at it next."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deal_id: str
    market_id: str
    listing_id: str
    buyer_agent_id: str
    buyer_principal_id: str
    seller_agent_id: str
    seller_principal_id: str
    price_cents: int
    fee_cents: int
    shipping_method: ShippingMethod
    shipping_cost_cents: int
    shipping_paid_by: Party
    state: DealState
    due_at: datetime | None = None
    approval_id: str | None = None
    packed_condition: Condition | None = None
    delivered_condition: Condition | None = None
    leg: ShipmentLeg | None = None
    carrier: str | None = None
    tracking_id: str | None = None
    booked_at: datetime | None = None
    tracking_status: TrackingStatus | None = None
    seller_handed_over: bool = False
    buyer_received: bool = False
    dispute_reason: DisputeReason | None = None
    dispute_detail: str = ""
    ended_reason: str | None = None

    @property
    def local_pickup(self) -> bool:
        return self.shipping_method is ShippingMethod.LOCAL_PICKUP

    @property
    def shipping_in_escrow_cents(self) -> int:
        """The buyer pays the carrier through escrow; a seller pays it outside the ledger."""
        if self.local_pickup or self.shipping_paid_by is not Party.BUYER:
            return 0
        return self.shipping_cost_cents

    @property
    def escrow_cents(self) -> int:
        return self.price_cents + self.shipping_in_escrow_cents

    @property
    def payout_cents(self) -> int:
        return self.price_cents - self.fee_cents

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def party_of(self, agent_id: str) -> Party | None:
        if agent_id == self.buyer_agent_id:
            return Party.BUYER
        if agent_id == self.seller_agent_id:
            return Party.SELLER
        return None

    def after(self, **changes: object) -> Deal:
        return self.model_copy(update=changes)


@dataclass(frozen=True)
class Refusal:
    reason: SettlementRefusal
    detail: str


@dataclass(frozen=True)
class Outcome:
    deal: Deal | None = None
    """The record to save; None when nothing changes."""
    events: tuple[Message, ...] = ()
    transfers: tuple[Transfer, ...] = ()
    """Money moves that must succeed (OK, or EXISTS on a replay)."""
    hold: Transfer | None = None
    """Try this hold; its result goes to `held`."""
    book: ShipmentLeg | None = None
    """Book this shipment; the booking goes to `booked`."""
    refusal: Refusal | None = None

    def then(self, later: Outcome) -> Outcome:
        """This outcome's events and transfers followed by a later decision's."""
        return Outcome(
            later.deal or self.deal,
            self.events + later.events,
            self.transfers + later.transfers,
            later.hold,
            later.book,
            later.refusal,
        )


class LedgerRefused(Exception):
    """A transfer the rules require was refused: a bug or a tampered ledger, never the user's input."""


def refused(reason: SettlementRefusal, detail: str) -> Outcome:
    return Outcome(refusal=Refusal(reason, detail))


# Accounts and money moves ------------------------------------------------------


def wallet_account_id(market_id: str, principal_id: str) -> str:
    return f"wallet:{market_id}:{principal_id}"


def escrow_account_id(deal_id: str) -> str:
    return f"escrow:{deal_id}"


def fees_account_id(market_id: str) -> str:
    return f"fees:{market_id}"


def carrier_account_id(market_id: str) -> str:
    return f"carrier:{market_id}"


def external_account_id(market_id: str) -> str:
    return f"external:{market_id}"


def funding(
    market_id: str, principal_id: str, funding_id: str, amount_cents: int
) -> tuple[tuple[Account, Account], Transfer]:
    """Money in from outside: the principal's wallet and the market's external account, and the
    transfer between them (its id is the funding id, so a replay is the same transfer)."""
    wallet, source = wallet_account_id(market_id, principal_id), external_account_id(market_id)
    accounts = (
        Account(wallet, AccountKind.WALLET),
        Account(source, AccountKind.EXTERNAL, no_overdraft=False),
    )
    transfer = Transfer(
        f"fund:{market_id}:{funding_id}", Phase.SINGLE, source, wallet, amount_cents, code="funding"
    )
    return accounts, transfer


def hold_id(deal_id: str) -> str:
    return f"hold:{deal_id}"


def deal_accounts(deal: Deal) -> tuple[Account, ...]:
    """Every account a deal's transfers touch, to open before the first one (idempotently)."""
    return (
        Account(wallet_account_id(deal.market_id, deal.buyer_principal_id), AccountKind.WALLET),
        Account(wallet_account_id(deal.market_id, deal.seller_principal_id), AccountKind.WALLET),
        Account(escrow_account_id(deal.deal_id), AccountKind.ESCROW),
        Account(fees_account_id(deal.market_id), AccountKind.FEES),
        Account(carrier_account_id(deal.market_id), AccountKind.CARRIER),
    )


def hold_transfer(deal: Deal) -> Transfer:
    return Transfer(
        hold_id(deal.deal_id),
        Phase.PENDING,
        wallet_account_id(deal.market_id, deal.buyer_principal_id),
        escrow_account_id(deal.deal_id),
        deal.escrow_cents,
        code="hold",
        deal_id=deal.deal_id,
    )


def release_transfers(deal: Deal) -> tuple[Transfer, ...]:
    """Post the hold into escrow, then pay it out: seller (price less fee), fees, carrier."""
    deal_id, escrow = deal.deal_id, escrow_account_id(deal.deal_id)

    def pay(code: str, account_id: str, amount: int) -> Transfer:
        return Transfer(f"{code}:{deal_id}", Phase.SINGLE, escrow, account_id, amount, None, code, deal_id)

    moves = [
        Transfer(f"post:{deal_id}", Phase.POST, pending_id=hold_id(deal_id), code="post", deal_id=deal_id),
        pay("release", wallet_account_id(deal.market_id, deal.seller_principal_id), deal.payout_cents),
    ]
    if deal.fee_cents:
        moves.append(pay("fee", fees_account_id(deal.market_id), deal.fee_cents))
    if deal.shipping_in_escrow_cents:
        moves.append(pay("shipping", carrier_account_id(deal.market_id), deal.shipping_in_escrow_cents))
    return tuple(moves)


def refund_transfers(deal: Deal) -> tuple[Transfer, ...]:
    return (
        Transfer(
            f"void:{deal.deal_id}",
            Phase.VOID,
            pending_id=hold_id(deal.deal_id),
            code="void",
            deal_id=deal.deal_id,
        ),
    )


def fee_for(price_cents: int, rules: MarketRulesSet) -> int:
    """The platform's fee, rounded down: the seller never pays a fraction of a cent too much."""
    return price_cents * rules.fee_bps // 10_000


def seconds(value: int) -> timedelta:
    return timedelta(seconds=value)


def failed(deal: Deal, reason: EscrowFailure, *first: Message) -> Outcome:
    event = EscrowFailed(deal_id=deal.deal_id, listing_id=deal.listing_id, reason=reason.value)
    ended = deal.after(state=DealState.FAILED, due_at=None, ended_reason=reason.value)
    return Outcome(ended, (*first, event))
