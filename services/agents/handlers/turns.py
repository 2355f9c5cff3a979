"""Negotiation turns: load the negotiation, let the domain decide (brain + guard → move), save and send."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from haggle.contracts import Envelope
from haggle.contracts.listing import ListingFacts
from haggle.contracts.negotiation import (
    ActionRefused,
    DealAgreed,
    NegotiationEnded,
    OfferMade,
    ThreadOpened,
    WithdrawNegotiation,
)
from haggle.contracts.topics import NEGOTIATION_COMMANDS
from haggle.guard.view import MandateLimits, NegotiationView
from haggle.runtime.outbox import UnitOfWork
from services.agents import store
from services.agents.domain import Negotiation, Principal, Status, deals, steps, turn
from services.agents.domain.brain import BrainUnavailable, is_remote
from services.agents.domain.negotiation import buyer_neg_id
from services.agents.domain.turn import Decision, next_move
from services.agents.handlers import common, shop
from services.agents.handlers.common import Toolkit
from services.agents.ratelimit import RefundedOnRollback

log = logging.getLogger(__name__)


async def facts_for(uow: UnitOfWork, principal: Principal, neg: Negotiation) -> ListingFacts | None:
    """The listing as the agent knows it; a seller can always fall back on its own mandate."""
    known = await store.listing(uow.conn, neg.listing_id)
    return known[0] if known is not None else turn.seller_facts(principal, neg)


async def take_turn(tools: Toolkit, uow: UnitOfWork, principal: Principal, neg: Negotiation) -> None:
    """Ask the brain for this negotiation's next move, send what the guard lets through, and
    save the negotiation whatever came of it. For a brain that answers at once (a strategy): a
    model's turn is taken in two steps instead, see `Asked`."""
    prepared = await prepare(uow, principal, neg)
    if prepared is not None:
        view, limits = prepared
        limiter = RefundedOnRollback(tools.limiter, uow.on_rollback)
        try:
            decision = await next_move(tools.brain_for(principal), view, limits, limiter=limiter)
        except BrainUnavailable:
            _brain_unavailable(neg)
        else:
            await _apply(tools, uow, principal, neg, decision)
    await store.save_negotiation(uow.conn, neg)
    await shop.after_turn(uow, principal, neg)


async def prepare(
    uow: UnitOfWork, principal: Principal, neg: Negotiation, counted: bool = True
) -> tuple[NegotiationView, MandateLimits] | None:
    """What the brain sees for this negotiation's next move, and the limits the guard applies;
    None when there is no move to make (not its turn, the listing gone, no budget to open:
    `steps.prepare`). `counted=False`: a look that will be taken again, so its outcome is not
    counted."""
    facts = await facts_for(uow, principal, neg)
    if facts is None or not neg.live:
        return None
    budget = await store.budget(uow.conn, principal)
    funded = await _funded_wants(uow, principal) if steps.needs_funding(neg) else None
    tokens = await common.tokens_left(uow, principal)
    prepared = steps.prepare(principal, neg, facts, budget, funded, tokens, common.now())
    if prepared is steps.NoTurn.DECLINED and counted:
        common.AGENT_TURNS.labels("waiting_for_budget").inc()
    return prepared if not isinstance(prepared, steps.NoTurn) else None


@dataclass(frozen=True)
class Asked:
    """A model's answer, asked outside any transaction: a model takes seconds, and a transaction
    open that long would hold the principal's rows (and every batch that touches them)."""

    view: NegotiationView
    limits: MandateLimits
    decision: Decision | None
    """None: the model's backend stayed down."""


async def ask_outside(
    tools: Toolkit, principal: Principal, view: NegotiationView, limits: MandateLimits
) -> Asked:
    try:
        decision = await next_move(tools.brain_for(principal), view, limits, limiter=tools.limiter)
    except BrainUnavailable:
        return Asked(view, limits, None)
    return Asked(view, limits, decision)


async def take_asked_turn(
    tools: Toolkit, uow: UnitOfWork, principal: Principal, neg: Negotiation, asked: Asked | None
) -> None:
    """Send a model's answer if the negotiation is still where the model saw it; if it moved on
    in the meantime (an offer, a message, the deadline), the model is asked again."""
    prepared = await prepare(uow, principal, neg)
    if prepared is not None:
        view, limits = prepared
        if asked is None or not turn.same_turn(asked.view, view) or asked.limits != limits:
            common.turn_now(uow, neg)
            common.AGENT_TURNS.labels("asked_again").inc()
        elif asked.decision is None:
            _brain_unavailable(neg)
        else:
            await _apply(tools, uow, principal, neg, asked.decision)
    await store.save_negotiation(uow.conn, neg)
    if asked is not None and asked.decision is not None and asked.decision.usage.total:
        # Spent whether or not the answer was sent: the cost of this negotiation either way.
        await store.record_model_usage(
            uow.conn,
            principal.principal_id,
            neg.listing_id,
            common.brain_label(principal),
            asked.decision.usage,
        )
    await shop.after_turn(uow, principal, neg)


def _brain_unavailable(neg: Negotiation) -> None:
    neg.brain_unavailable(common.now())
    common.AGENT_TURNS.labels("brain_unavailable").inc()


async def _apply(
    tools: Toolkit, uow: UnitOfWork, principal: Principal, neg: Negotiation, decision: Decision
) -> None:
    reasons = [refusal.reason.value for refusal in decision.refusals]
    command = steps.command_for(neg, decision)
    if command is not None:
        common.AGENT_MOVES.labels(common.brain_label(principal), command.type).inc()
        sent = await common.send(uow, principal, command, NEGOTIATION_COMMANDS.name, neg.listing_id)
        common.record_decision(
            uow, principal, sent, common.brain_name(principal), reasons, decision.fell_back
        )
    price = getattr(decision.move, "price_cents", None)
    kind = type(decision.move).__name__
    await store.record_move(uow.conn, principal.principal_id, neg.listing_id, kind, price, reasons)
    common.AGENT_TURNS.labels("fell_back" if decision.fell_back else "moved").inc()


async def _funded_wants(uow: UnitOfWork, principal: Principal) -> set[str]:
    """The wants this buyer's budget goes to first (`steps.funded_wants`)."""
    return steps.funded_wants(principal, await store.live_candidates(uow.conn, principal.principal_id))


# Inbox: thread events -------------------------------------------------------


async def _locate(uow: UnitOfWork, principal: Principal, event: steps.AboutThread) -> Negotiation | None:
    """The negotiation the event is about (`steps.locate`); a thread opened on the seller's listing
    starts one (saved by the caller)."""
    located = steps.locate(principal, event)
    found = await store.negotiation(uow.conn, located.neg_id)
    return found if found is not None else located.fresh


async def on_thread_event(
    tools: Toolkit, uow: UnitOfWork, env: Envelope, event: ThreadOpened | OfferMade | NegotiationEnded
) -> None:
    principal = await store.principal_by_agent(uow.conn, str(env.agent_id))
    if principal is None:
        return
    neg = await _locate(uow, principal, event)
    if neg is None:
        return
    step = steps.on_thread_event(principal, neg, event, env.occurred_at)
    my_turn = step.my_turn
    if my_turn and not is_remote(tools.brain_for(principal)):
        await take_turn(tools, uow, principal, neg)  # a strategy answers at once, in this transaction
    else:
        if my_turn:
            common.turn_now(uow, neg)  # a model is asked by the turn scheduler, outside this batch
        await store.save_negotiation(uow.conn, neg)
    if step.buyer_ended:
        await shop.wake_declined(uow, principal)
        if neg.want_id:
            await shop.reshop(uow, [(principal.principal_id, neg.want_id)])  # the want's next candidate


async def on_deal_agreed(tools: Toolkit, uow: UnitOfWork, env: Envelope, event: DealAgreed) -> None:
    principal = await store.principal_by_agent(uow.conn, str(env.agent_id))
    if principal is None:
        return
    neg = await _locate(uow, principal, event)
    if neg is None:
        return
    buyer, amount = steps.my_side(principal, event)
    if not await store.save_deal(uow.conn, event.deal_id, neg, amount, event.shipping_method.value):
        return
    if not buyer:
        deals.seller_deal_agreed(neg)
        await store.save_negotiation(uow.conn, neg)
        return
    budget = await store.budget(uow.conn, principal)
    others = await store.negotiations_of(uow.conn, principal.principal_id)
    outcome = deals.buyer_deal_agreed(neg, amount, budget, others)
    if outcome.overdrawn:
        log.error("deal over the budget's hold and free money", extra={"deal_id": event.deal_id})
    await store.save_negotiation(uow.conn, neg)
    await store.save_budget(uow.conn, principal, outcome.budget)
    for other in outcome.withdraw:
        assert other.thread_id is not None
        withdraw = WithdrawNegotiation(listing_id=other.listing_id, thread_id=other.thread_id)
        sent = await common.send(uow, principal, withdraw, NEGOTIATION_COMMANDS.name, other.listing_id)
        common.record_decision(uow, principal, sent, "rule:want_fulfilled", [], False)
    await store.save_negotiations(uow.conn, [*outcome.withdraw, *outcome.dropped])
    await shop.wake_declined(uow, principal)  # the thread held more than the deal took


async def on_refused(tools: Toolkit, uow: UnitOfWork, env: Envelope, event: ActionRefused) -> None:
    principal = await store.principal_by_agent(uow.conn, str(env.agent_id))
    if principal is None:
        return
    log.info(
        "move refused by the referee",
        extra={"agent_id": principal.agent_id, "reason": event.reason.value, "command": event.command_type},
    )
    if event.command_type != "OpenNegotiation":
        return
    neg = await store.negotiation(uow.conn, buyer_neg_id(principal.principal_id, event.listing_id))
    if neg is None or neg.status is not Status.OPENING:
        return
    neg.opening_refused(event.reason, common.now())
    await store.save_negotiation(uow.conn, neg)
    await shop.after_turn(uow, principal, neg)
