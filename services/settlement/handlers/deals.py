"""Deals arriving from the referee, and a human's answers about them on approval.events."""

from __future__ import annotations

import logging
from collections.abc import Callable

from haggle.contracts import Envelope
from haggle.contracts.approval import ApprovalDenied, ApprovalGranted
from haggle.contracts.negotiation import DealAgreed
from haggle.runtime import operators
from haggle.runtime.outbox import UnitOfWork
from services.settlement import ledger_store, metrics, store
from services.settlement.domain import escrow
from services.settlement.domain.deal import Deal, Outcome
from services.settlement.handlers.outcomes import finish, utcnow

log = logging.getLogger(__name__)
STATUS = {"ApprovalGranted": "granted", "ApprovalDenied": "denied"}


async def on_deal_agreed(uow: UnitOfWork, env: Envelope, event: DealAgreed) -> None:
    """Hold the price in escrow, or ask the buyer's human first. A deal id is settled once."""
    if await store.deal_exists(uow.conn, event.deal_id):
        metrics.IGNORED.labels("DealAgreed:duplicate").inc()
        log.info("deal already known", extra={"deal_id": event.deal_id})
        return
    now = utcnow()
    rules = await store.rules(uow.conn, env.market_id)
    limit = await ledger_store.approve_limit(uow.conn, env.market_id, event.buyer_principal_id)
    outcome = escrow.agree(event, env.market_id, rules, limit, now)
    await finish(uow, env, outcome, rules, now, new=True)


async def _answer(
    uow: UnitOfWork, env: Envelope, deal_id: str, principal_id: str, decide: Callable[[Deal], Outcome]
) -> None:
    """A human's answer; one for a deal that is not waiting (late, repeated, stray) changes nothing."""
    if not operators.is_operator(env):
        metrics.IGNORED.labels(f"{env.type}:not_operator").inc()
        log.warning("approval answer without an operator signature", extra={"deal_id": deal_id})
        return
    deal = await store.load_deal(uow.conn, deal_id)
    if deal is None or deal.market_id != env.market_id or deal.buyer_principal_id != principal_id:
        metrics.IGNORED.labels(f"{env.type}:unknown_deal").inc()
        return
    outcome = decide(deal)
    if outcome.deal is None:
        metrics.IGNORED.labels(f"{env.type}:not_awaiting").inc()
        return
    metrics.APPROVALS.labels(STATUS[env.type]).inc()
    await finish(uow, env, outcome, await store.rules(uow.conn, deal.market_id), utcnow())


async def on_approval_granted(uow: UnitOfWork, env: Envelope, event: ApprovalGranted) -> None:
    await _answer(
        uow, env, event.deal_id, event.principal_id, lambda d: escrow.approval_granted(d, event.approval_id)
    )


async def on_approval_denied(uow: UnitOfWork, env: Envelope, event: ApprovalDenied) -> None:
    await _answer(
        uow, env, event.deal_id, event.principal_id, lambda d: escrow.approval_denied(d, event.approval_id)
    )
