"""Carrying out a domain `Outcome`: money moves, carrier bookings, the saved deal, the outbox.

Everything here runs in the caller's unit of work: the transfers, the deal
row and the outgoing events commit together or not at all.
"""

from __future__ import annotations

from datetime import UTC, datetime

from haggle.contracts import Envelope, Message, new_event_id, wrap
from haggle.contracts.approval import ApprovalExpired, ApprovalRequested
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.settlement import SettlementCommandRefused, SettlementRefusal
from haggle.contracts.topics import AGENT_INBOX, APPROVAL_EVENTS, SETTLEMENT_EVENTS_TOPIC
from haggle.runtime.outbox import UnitOfWork
from services.settlement import ledger_store, metrics, store
from services.settlement.carriers import carrier_for
from services.settlement.domain import escrow, fulfilment
from services.settlement.domain.carrier import ShipmentRequest
from services.settlement.domain.deal import Deal, LedgerRefused, Outcome, Refusal, deal_accounts
from services.settlement.domain.ledger import SUCCESS
from services.settlement.handlers import ship_to
from services.settlement.payments import hooks as payments

PRODUCER = "settlement"


def utcnow() -> datetime:
    return datetime.now(UTC)


async def carry_out(
    uow: UnitOfWork, outcome: Outcome, rules: MarketRulesSet, now: datetime
) -> tuple[Deal | None, list[Message]]:
    """Apply the transfers, answer the hold and booking requests, and gather the events."""
    deal, opened = outcome.deal, False
    events: list[Message] = []
    while True:
        deal = outcome.deal or deal
        events += outcome.events
        if deal is None:
            return None, events
        if not opened and (outcome.transfers or outcome.hold):
            await ledger_store.open_accounts(uow.conn, deal.market_id, deal_accounts(deal))
            opened = True
        for transfer in outcome.transfers:
            result = await ledger_store.transfer(uow.conn, deal.market_id, transfer)
            if result not in SUCCESS:
                raise LedgerRefused(f"{transfer.id}: {result}")
        await payments.record_moves(uow.conn, deal, outcome.transfers, rules)
        if outcome.hold is not None and (
            routed := await payments.routed_hold(uow.conn, deal, outcome.hold, rules)
        ):
            outcome = routed
        elif outcome.hold is not None:
            result = await ledger_store.transfer(uow.conn, deal.market_id, outcome.hold)
            outcome = escrow.held(deal, result, rules, now)
        elif outcome.book is not None:
            carrier = carrier_for(rules)
            booking = await carrier.book(
                ShipmentRequest(deal.deal_id, outcome.book, deal.shipping_method, now)
            )
            tracking = await carrier.track(booking, now)
            outcome = fulfilment.booked(deal, outcome.book, booking, tracking, now)
            if outcome.deal is not None:
                await ship_to.label_booked(uow, outcome.deal, rules)
        else:
            return deal, events


async def finish(
    uow: UnitOfWork,
    cause: Envelope | None,
    outcome: Outcome,
    rules: MarketRulesSet,
    now: datetime,
    *,
    new: bool = False,
) -> None:
    """Carry out a decision and save it; a refusal is answered to the command's sender."""
    if outcome.refusal is not None:
        assert cause is not None
        deal_id = outcome.deal.deal_id if outcome.deal else str(cause.payload.get("deal_id", ""))
        await refuse(uow, cause, deal_id, outcome.refusal)
        return
    deal, events = await carry_out(uow, outcome, rules, now)
    if deal is None:
        return
    if new:
        await store.insert_deal(uow.conn, deal)
    else:
        await store.update_deal(uow.conn, deal)
    publish(uow, deal, events, cause)


def _copy(event: Message, deal: Deal, cause: Envelope | None, agent_id: str | None = None) -> Envelope:
    return wrap(
        event,
        market_id=deal.market_id,
        producer=PRODUCER,
        correlation_id=deal.deal_id,
        causation_id=str(cause.event_id) if cause else None,
        agent_id=agent_id,
    )


def publish(uow: UnitOfWork, deal: Deal, events: list[Message], cause: Envelope | None) -> None:
    """Each event on its topic, plus one copy per party who must react, on `agent.inbox`."""
    for event in events:
        metrics.observe(event, deal.price_cents)
        envelope = _copy(event, deal, cause)
        if isinstance(event, ApprovalRequested | ApprovalExpired):
            uow.emit(APPROVAL_EVENTS.name, deal.buyer_principal_id, envelope)
            recipients = [deal.buyer_agent_id] if isinstance(event, ApprovalRequested) else []
        else:
            uow.emit(SETTLEMENT_EVENTS_TOPIC.name, deal.deal_id, envelope)
            recipients = [deal.buyer_agent_id, deal.seller_agent_id]
        for agent_id in recipients:
            uow.emit(AGENT_INBOX.name, agent_id, _copy(event, deal, cause, agent_id))


def printable(text: str, limit: int) -> str:
    """Text from a sender, safe to store: PostgreSQL text and jsonb cannot hold NUL."""
    return text.replace("\x00", "\\0")[:limit]


async def refuse(uow: UnitOfWork, cause: Envelope, raw_deal_id: str, refusal: Refusal, key: str = "") -> None:
    """A typed refusal on settlement.events, and in the sender's inbox when it named itself."""
    metrics.REFUSALS.labels(refusal.reason.value).inc()
    deal_id, detail = printable(raw_deal_id, 128), printable(refusal.detail, 1000)
    await store.record_refusal(uow.conn, deal_id, cause.event_id, refusal.reason.value, detail)
    event = SettlementCommandRefused(
        deal_id=deal_id,
        agent_id=cause.agent_id,
        seq=cause.seq,
        command_type=printable(cause.type, 64),
        command_event_id=str(cause.event_id),
        reason=refusal.reason,
        detail=detail,
    )
    out = wrap(
        event,
        market_id=cause.market_id,
        producer=PRODUCER,
        correlation_id=deal_id or None,
        causation_id=str(cause.event_id),
    )
    uow.emit(SETTLEMENT_EVENTS_TOPIC.name, key or deal_id or "unknown", out)
    if cause.agent_id:
        copy = out.model_copy(update={"event_id": new_event_id(), "agent_id": cause.agent_id})
        uow.emit(AGENT_INBOX.name, cause.agent_id, copy)


def refusal(reason: SettlementRefusal, detail: str) -> Refusal:
    return Refusal(reason, detail)
