"""From an agreed deal to money held in escrow: approval, the hold, or a typed failure. Pure."""

from __future__ import annotations

import hashlib
from datetime import datetime

from haggle.contracts.approval import ApprovalExpired, ApprovalRequested
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.negotiation import DealAgreed
from haggle.contracts.settlement import EscrowFailure, EscrowFunded
from haggle.contracts.types import MAX_PRICE_CENTS
from services.settlement.domain.deal import (
    Deal,
    DealState,
    LedgerRefused,
    Outcome,
    failed,
    fee_for,
    hold_id,
    hold_transfer,
    seconds,
)
from services.settlement.domain.ledger import TransferResult


def new_deal(event: DealAgreed, market_id: str, rules: MarketRulesSet) -> Deal:
    return Deal(
        deal_id=event.deal_id,
        market_id=market_id,
        listing_id=event.listing_id,
        buyer_agent_id=event.buyer_agent_id,
        buyer_principal_id=event.buyer_principal_id,
        seller_agent_id=event.seller_agent_id,
        seller_principal_id=event.seller_principal_id,
        price_cents=event.price_cents,
        fee_cents=fee_for(event.price_cents, rules) if event.price_cents > 0 else 0,
        shipping_method=event.shipping_method,
        shipping_cost_cents=event.shipping_cost_cents,
        shipping_paid_by=event.shipping_paid_by,
        state=DealState.AWAITING_APPROVAL,
    )


def deal_defect(deal: Deal) -> str | None:
    if not 0 < deal.price_cents <= MAX_PRICE_CENTS:
        return f"price {deal.price_cents} cents outside 1..{MAX_PRICE_CENTS}"
    if not 0 <= deal.shipping_cost_cents <= MAX_PRICE_CENTS:
        return f"shipping cost {deal.shipping_cost_cents} cents is invalid"
    if deal.buyer_principal_id == deal.seller_principal_id:
        return "buyer and seller are the same principal"
    return None


def agree(
    event: DealAgreed, market_id: str, rules: MarketRulesSet, approve_limit: int | None, now: datetime
) -> Outcome:
    """A new deal: fail it, ask a human, or ask the ledger for the hold.

    `approve_limit` is the buyer's auto-approve limit, None when the buyer has no wallet here.
    """
    deal = new_deal(event, market_id, rules)
    if deal_defect(deal):
        return failed(deal, EscrowFailure.INVALID_DEAL)
    if approve_limit is None:
        return failed(deal, EscrowFailure.NO_WALLET)
    if deal.escrow_cents <= approve_limit:
        return Outcome(deal, hold=hold_transfer(deal))
    expires_at = now + seconds(rules.approval_timeout_seconds)
    approval_id = approval_id_for(deal.deal_id)
    request = ApprovalRequested(
        approval_id=approval_id,
        deal_id=deal.deal_id,
        listing_id=deal.listing_id,
        principal_id=deal.buyer_principal_id,
        buyer_agent_id=deal.buyer_agent_id,
        amount_cents=deal.escrow_cents,
        auto_approve_limit_cents=approve_limit,
        expires_at=expires_at,
    )
    waiting = deal.after(state=DealState.AWAITING_APPROVAL, approval_id=approval_id, due_at=expires_at)
    return Outcome(waiting, (request,))


def approval_id_for(deal_id: str) -> str:
    """One approval per deal, named after it (hashed when the name would be too long)."""
    name = f"apr-{deal_id}"
    return name if len(name) <= 64 else f"apr-{hashlib.sha256(deal_id.encode()).hexdigest()[:40]}"


def _awaiting(deal: Deal, approval_id: str) -> bool:
    return deal.state is DealState.AWAITING_APPROVAL and deal.approval_id == approval_id


def approval_granted(deal: Deal, approval_id: str) -> Outcome:
    """A late or stray answer changes nothing."""
    if not _awaiting(deal, approval_id):
        return Outcome()
    return Outcome(deal, hold=hold_transfer(deal))


def approval_denied(deal: Deal, approval_id: str) -> Outcome:
    if not _awaiting(deal, approval_id):
        return Outcome()
    return failed(deal, EscrowFailure.APPROVAL_DENIED)


def approval_expired(deal: Deal) -> Outcome:
    assert deal.approval_id is not None
    expired = ApprovalExpired(
        approval_id=deal.approval_id, deal_id=deal.deal_id, principal_id=deal.buyer_principal_id
    )
    return failed(deal, EscrowFailure.APPROVAL_EXPIRED, expired)


def held(deal: Deal, result: TransferResult, rules: MarketRulesSet, now: datetime) -> Outcome:
    """The ledger's answer to the hold: funded, or failed for want of funds."""
    if result is TransferResult.EXCEEDS_CREDITS:
        return failed(deal, EscrowFailure.INSUFFICIENT_FUNDS)
    if result not in (TransferResult.OK, TransferResult.EXISTS):
        raise LedgerRefused(f"hold for {deal.deal_id}: {result}")
    ship_by = now + seconds(rules.ship_deadline_seconds)
    funded = EscrowFunded(
        deal_id=deal.deal_id,
        listing_id=deal.listing_id,
        buyer_principal_id=deal.buyer_principal_id,
        seller_principal_id=deal.seller_principal_id,
        amount_cents=deal.escrow_cents,
        price_cents=deal.price_cents,
        fee_cents=deal.fee_cents,
        shipping_method=deal.shipping_method,
        ship_by=ship_by,
        transfer_id=hold_id(deal.deal_id),
    )
    return Outcome(deal.after(state=DealState.FUNDED, due_at=ship_by), (funded,))
