"""Real money beside the ledger: the provider operation each ledger move needs, and what the
provider's answers mean for a deal. Pure.

    ledger move            provider operation (idempotency key = "<kind>:<ledger transfer id>")
    hold:<deal> (pending)  authorize: a PaymentIntent, capture_method=manual, for the buyer's total
    post:<deal>            capture (unless it was captured early, before the authorization lapsed)
    release:<deal>         payout: a Transfer to the seller's connected account, price less fee
    void:<deal>            void: cancel the PaymentIntent, or refund it once captured

In a card market a deal's hold is not taken from a wallet: the deal waits in
`authorizing` while the provider is asked (outside any transaction), and the
answer either takes the hold from the buyer's card account into escrow or
fails the deal with the provider's decline code. Fees and buyer-paid shipping
stay on the platform's balance, as they stay in its ledger accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from haggle.contracts.market import MarketRulesSet, PaymentProvider
from haggle.contracts.settlement import DisputeOpened, DisputeReason, EscrowFailed, EscrowFailure
from services.settlement.domain.deal import (
    Deal,
    DealState,
    Outcome,
    RefundReason,
    escrow_account_id,
    failed,
    hold_id,
    seconds,
)
from services.settlement.domain.fulfilment import refund
from services.settlement.domain.ledger import Account, AccountKind, Phase, Transfer

PROVIDER_OPENER = "payment_provider"
HELD = frozenset(
    {DealState.FUNDED, DealState.SHIPPING, DealState.INSPECTING, DealState.DISPUTED, DealState.RETURNING}
)
"""States in which the buyer's money is held for the deal (authorized or captured)."""


class OpKind(StrEnum):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    PAYOUT = "payout"
    VOID = "void"


class OpStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class Answer(StrEnum):
    """What the provider made of one operation."""

    OK = "ok"
    """It took effect (now, or on an earlier try with the same idempotency key)."""
    DECLINED = "declined"
    """The card was declined: final, with the provider's code."""
    GONE = "gone"
    """The object is past the point where the operation applies (say, a lapsed authorization)."""


@dataclass(frozen=True)
class PaymentOp:
    kind: OpKind
    market_id: str
    deal_id: str
    transfer_id: str
    """The ledger transfer this operation moves real money for."""
    amount_cents: int

    @property
    def key(self) -> str:
        """Our idempotency key: the same operation is the same request, however often it is sent."""
        return f"{self.kind.value}:{self.transfer_id}"


@dataclass(frozen=True)
class ProviderResult:
    answer: Answer
    provider_id: str | None = None
    """The PaymentIntent, Transfer or Refund the operation made or found."""
    charge_id: str | None = None
    status: str = ""
    code: str = ""
    """The provider's decline or error code."""


def uses_provider(rules: MarketRulesSet) -> bool:
    return rules.payment_provider is not PaymentProvider.INTERNAL


def card_account_id(market_id: str, principal_id: str) -> str:
    return f"card:{market_id}:{principal_id}"


def card_account(deal: Deal) -> Account:
    """Where a card market's buyer money comes from: outside the platform, like funding."""
    return Account(
        card_account_id(deal.market_id, deal.buyer_principal_id), AccountKind.EXTERNAL, no_overdraft=False
    )


def card_hold(deal: Deal) -> Transfer:
    """The escrow hold once the card is authorized: card → escrow, same id as a wallet hold."""
    return Transfer(
        hold_id(deal.deal_id),
        Phase.PENDING,
        card_account(deal).id,
        escrow_account_id(deal.deal_id),
        deal.escrow_cents,
        code="hold",
        deal_id=deal.deal_id,
    )


def authorize_op(deal: Deal) -> PaymentOp:
    return PaymentOp(OpKind.AUTHORIZE, deal.market_id, deal.deal_id, hold_id(deal.deal_id), deal.escrow_cents)


def capture_op(deal: Deal) -> PaymentOp:
    """One capture per deal, whoever asks first (an early capture or the release)."""
    return PaymentOp(OpKind.CAPTURE, deal.market_id, deal.deal_id, hold_id(deal.deal_id), deal.escrow_cents)


def routed_hold(deal: Deal, hold: Transfer, rules: MarketRulesSet) -> PaymentOp | None:
    """A card market's wallet hold becomes an authorization; None leaves the hold to the ledger."""
    if not uses_provider(rules) or hold.debit_account_id == card_account(deal).id:
        return None
    return authorize_op(deal)


def authorizing(deal: Deal, has_payment_method: bool, has_payout_account: bool) -> Outcome:
    """Authorize only what can be paid out: the buyer's saved card and the seller's connected account."""
    if not has_payment_method:
        return failed(deal, EscrowFailure.NO_PAYMENT_METHOD)
    if not has_payout_account:
        return failed(deal, EscrowFailure.NO_PAYOUT_ACCOUNT)
    return Outcome(deal.after(state=DealState.AUTHORIZING, due_at=None))


def ops_for(deal: Deal, transfers: tuple[Transfer, ...], rules: MarketRulesSet) -> tuple[PaymentOp, ...]:
    """The provider operations a decision's ledger moves need, in the order they must run."""
    if not uses_provider(rules):
        return ()
    ops: list[PaymentOp] = []
    for transfer in transfers:
        if transfer.code == "post":
            ops.append(capture_op(deal))
        elif transfer.code == "release":
            ops.append(PaymentOp(OpKind.PAYOUT, deal.market_id, deal.deal_id, transfer.id, transfer.amount))
        elif transfer.code == "void":
            ops.append(PaymentOp(OpKind.VOID, deal.market_id, deal.deal_id, transfer.id, deal.escrow_cents))
    return tuple(ops)


def declined(deal: Deal, code: str) -> Outcome:
    ended = failed(deal, EscrowFailure.PAYMENT_DECLINED)
    event = ended.events[-1]
    assert isinstance(event, EscrowFailed)
    return Outcome(ended.deal, (event.model_copy(update={"detail": code[:200]}),))


def authorized(deal: Deal, result: ProviderResult) -> Outcome:
    """The provider's answer to the authorization: take the hold from the card, or fail the deal.

    A deal no longer authorizing (an answer seen twice: our call, then the webhook) changes nothing.
    """
    if deal.state is not DealState.AUTHORIZING:
        return Outcome()
    if result.answer is Answer.OK:
        return Outcome(deal, hold=card_hold(deal))
    return declined(deal, result.code or result.answer.value)


def capture_before(authorized_at: datetime, validity: timedelta, margin: timedelta) -> datetime:
    """The last safe moment to capture: the authorization's lapse, less a margin for retries."""
    return authorized_at + validity - margin


def capture_now(deal: Deal, before: datetime, rules: MarketRulesSet, now: datetime) -> bool:
    """Capture early when the deal would outlast the authorization.

    Funded but not shipped: only at the last safe moment (a seller who never ships costs a
    cancel, not a refund). Once the goods move: as soon as shipping plus the inspection window
    would end after it; a dispute or a return has no known end, so it is captured at once.
    """
    if deal.state not in HELD:
        return False
    if now >= before:
        return True
    if deal.state is DealState.SHIPPING:
        left = rules.carrier_pickup_seconds + rules.carrier_transit_seconds + rules.inspection_window_seconds
        return now + seconds(left) > before
    if deal.state is DealState.INSPECTING:
        return deal.due_at is None or deal.due_at > before
    return deal.state in (DealState.DISPUTED, DealState.RETURNING)


class VoidMove(StrEnum):
    CANCEL = "cancel"
    REFUND = "refund"


def void_move(captured: bool) -> VoidMove:
    """Giving a buyer's money back: cancel an uncaptured authorization, refund a captured one."""
    return VoidMove.REFUND if captured else VoidMove.CANCEL


# Webhooks -------------------------------------------------------------------------


class Fact(StrEnum):
    """What a provider's webhook tells settlement."""

    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    PAYMENT_FAILED = "payment_failed"
    CANCELED = "canceled"
    REFUNDED = "refunded"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_UPDATED = "dispute_updated"
    DISPUTE_CLOSED = "dispute_closed"


FACTS = {
    "payment_intent.amount_capturable_updated": Fact.AUTHORIZED,
    "payment_intent.succeeded": Fact.CAPTURED,
    "payment_intent.payment_failed": Fact.PAYMENT_FAILED,
    "payment_intent.canceled": Fact.CANCELED,
    "charge.refunded": Fact.REFUNDED,
    "charge.dispute.created": Fact.DISPUTE_OPENED,
    "charge.dispute.updated": Fact.DISPUTE_UPDATED,
    "charge.dispute.funds_withdrawn": Fact.DISPUTE_UPDATED,
    "charge.dispute.funds_reinstated": Fact.DISPUTE_UPDATED,
    "charge.dispute.closed": Fact.DISPUTE_CLOSED,
}

CHARGEBACK_REASONS = {
    "product_not_received": DisputeReason.NOT_DELIVERED,
    "product_unacceptable": DisputeReason.CONDITION_WORSE,
}


def fact_of(event_type: str) -> Fact | None:
    """None for the types settlement does not act on (they are acknowledged and dropped)."""
    return FACTS.get(event_type)


def on_fact(deal: Deal, fact: Fact, captured: bool, code: str) -> Outcome:
    """A webhook's meaning for the deal. Most facts only confirm what our own calls saw.

    - a failed payment while authorizing declines the deal (our call's answer may be lost);
    - a cancelled authorization while the money is held and not captured means it lapsed:
      the buyer was never charged, so the deal ends refunded;
    - a chargeback opens our dispute (a deal already paid out is left to the operator).
    """
    if fact is Fact.PAYMENT_FAILED and deal.state is DealState.AUTHORIZING:
        return declined(deal, code or "payment_failed")
    if fact is Fact.CANCELED and deal.state in HELD and not captured:
        return refund(deal, RefundReason.AUTHORIZATION_LAPSED)
    if fact is Fact.DISPUTE_OPENED and deal.state in HELD and deal.state is not DealState.DISPUTED:
        return chargeback(deal, code)
    return Outcome()


def chargeback(deal: Deal, provider_reason: str) -> Outcome:
    reason = CHARGEBACK_REASONS.get(provider_reason, DisputeReason.CHARGEBACK)
    detail = f"chargeback: {provider_reason or 'unknown'}"[:2_000]
    opened = DisputeOpened(deal_id=deal.deal_id, reason=reason, opened_by=PROVIDER_OPENER, detail=detail)
    disputed = deal.after(state=DealState.DISPUTED, due_at=None, dispute_reason=reason, dispute_detail=detail)
    return Outcome(disputed, (opened,))
