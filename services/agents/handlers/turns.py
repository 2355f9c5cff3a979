"""Negotiation turns: fold inbox events into the agent's view, ask the brain, guard, sign, send."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import timedelta

from haggle.contracts import Envelope, Message
from haggle.contracts.listing import ListingFacts
from haggle.contracts.negotiation import (
    ActionRefused,
    DealAgreed,
    EndReason,
    NegotiationEnded,
    OfferMade,
    ThreadOpened,
    WithdrawNegotiation,
)
from haggle.contracts.topics import NEGOTIATION_COMMANDS
from haggle.guard.commands import command_for
from haggle.runtime.outbox import UnitOfWork
from services.agents import shopping, store
from services.agents.brains import BrainUnavailable
from services.agents.brains.base import is_remote
from services.agents.decide import Decision, next_move
from services.agents.handlers import common, shop
from services.agents.moves import Move, Walk
from services.agents.ratelimit import RefundedOnRollback
from services.agents.store import Negotiation, Principal
from services.agents.view import MandateLimits, NegotiationView

log = logging.getLogger(__name__)
RETRYABLE_OPEN_REFUSALS = {"listing_unknown", "rate_limited"}
MAX_OPEN_ATTEMPTS = 8


async def facts_for(uow: UnitOfWork, principal: Principal, neg: Negotiation) -> ListingFacts | None:
    """The listing as the agent knows it; a seller can always fall back on its own mandate."""
    known = await store.listing(uow.conn, neg.listing_id)
    if known is not None:
        return known[0]
    item_id = neg.item_id or common.item_id_of(principal.principal_id, neg.listing_id)
    if neg.role == "seller" and item_id:
        item = principal.mandate.item(item_id)
        return item.to_listing(neg.listing_id, principal.agent_id, principal.principal_id)
    return None


async def take_turn(uow: UnitOfWork, principal: Principal, neg: Negotiation) -> None:
    """Ask the brain for this negotiation's next move, send what the guard lets through, and
    save the negotiation whatever came of it. For a brain that answers at once (a strategy): a
    model's turn is taken in two steps instead, see `Asked`."""
    prepared = await prepare(uow, principal, neg)
    if prepared is not None:
        view, limits = prepared
        limiter = RefundedOnRollback(common.LIMITER, uow.on_rollback)
        try:
            decision = await next_move(common.brain_for(principal), view, limits, limiter=limiter)
        except BrainUnavailable:
            _brain_unavailable(neg)
        else:
            await _apply(uow, principal, neg, view, decision)
    await store.save_negotiation(uow.conn, neg)
    await shop.after_turn(uow, principal, neg)


async def prepare(
    uow: UnitOfWork, principal: Principal, neg: Negotiation, counted: bool = True
) -> tuple[NegotiationView, MandateLimits] | None:
    """What the brain sees for this negotiation's next move, and the limits the guard applies;
    None when there is no move to make (not its turn, the listing gone, no budget to open).
    `counted=False`: a look that will be taken again, so its outcome is not counted."""
    facts = await facts_for(uow, principal, neg)
    if facts is None or not neg.live:
        return None
    if (
        neg.role == "buyer"
        and neg.thread_id is None
        and not await _hold_for_opening(uow, principal, neg, facts, counted)
    ):
        return None
    limits = await common.limits_of(uow, principal, neg)
    view = common.view_of(principal, neg, facts, limits)
    return (view, limits) if view.my_turn else None


@dataclass(frozen=True)
class Asked:
    """A model's answer, asked outside any transaction: a model takes seconds, and a transaction
    open that long would hold the principal's rows (and every batch that touches them)."""

    view: NegotiationView
    limits: MandateLimits
    decision: Decision | None
    """None: the model's backend stayed down."""


async def ask_outside(principal: Principal, view: NegotiationView, limits: MandateLimits) -> Asked:
    try:
        decision = await next_move(common.brain_for(principal), view, limits, limiter=common.LIMITER)
    except BrainUnavailable:
        return Asked(view, limits, None)
    return Asked(view, limits, decision)


async def take_asked_turn(
    uow: UnitOfWork, principal: Principal, neg: Negotiation, asked: Asked | None
) -> None:
    """Send a model's answer if the negotiation is still where the model saw it; if it moved on
    in the meantime (an offer, a message, the deadline), the model is asked again."""
    prepared = await prepare(uow, principal, neg)
    if prepared is not None:
        view, limits = prepared
        if asked is None or not _same_turn(asked.view, view) or asked.limits != limits:
            common.turn_now(uow, neg)
            common.AGENT_TURNS.labels("asked_again").inc()
        elif asked.decision is None:
            _brain_unavailable(neg)
        else:
            await _apply(uow, principal, neg, view, asked.decision)
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


def _same_turn(before: NegotiationView, now: NegotiationView) -> bool:
    """The same position, however much of the clock the model used."""
    return replace(now, time_fraction=before.time_fraction) == before


def _brain_unavailable(neg: Negotiation) -> None:
    neg.retry_at, neg.attempts = common.now() + timedelta(seconds=5), neg.attempts + 1
    common.AGENT_TURNS.labels("brain_unavailable").inc()


async def _apply(
    uow: UnitOfWork, principal: Principal, neg: Negotiation, view: NegotiationView, decision: Decision
) -> None:
    reasons = [refusal.reason.value for refusal in decision.refusals]
    sent = await _send_move(uow, principal, neg, view, decision.move)
    if sent is not None:
        common.record_decision(
            uow, principal, sent, common.brain_name(principal), reasons, decision.fell_back
        )
    price = getattr(decision.move, "price_cents", None)
    kind = type(decision.move).__name__
    await store.record_move(uow.conn, principal.principal_id, neg.listing_id, kind, price, reasons)
    common.AGENT_TURNS.labels("fell_back" if decision.fell_back else "moved").inc()


async def _hold_for_opening(
    uow: UnitOfWork, principal: Principal, neg: Negotiation, facts: ListingFacts, counted: bool = True
) -> bool:
    """Hold the thread's whole cap before opening, or wait until money comes free."""
    free = await common.free_budget(uow, principal, neg)
    cap = common.thread_cap(principal, neg, facts, free)
    could = common.thread_cap(principal, neg, facts, principal.mandate.budget_cents)
    cheapest = min((option.cost_cents for option in facts.shipping), default=0)
    worth = shopping.worth_opening(cap, could, facts.price_cents, cheapest)
    if not worth or str(neg.want_id) not in await _funded_wants(uow, principal):
        neg.status, neg.end_reason, neg.reserved_cents, neg.retry_at = "ended", "declined_to_open", 0, None
        if counted:
            common.AGENT_TURNS.labels("waiting_for_budget").inc()
        return False
    neg.reserved_cents = cap
    return True


async def _funded_wants(uow: UnitOfWork, principal: Principal) -> set[str]:
    """The wants this buyer's budget goes to first (`shopping.funded`)."""
    plans = [
        shopping.WantPlan(
            r["want_id"],
            principal.buying_cap(r["want_id"]),
            shopping.hold_for(
                principal.buying_cap(r["want_id"]), int(r["asking"]), int(r["cheapest"]), 10**12
            ),
            bool(r["holding"]),
        )
        for r in await store.best_candidates(uow.conn, principal.principal_id)
    ]
    return shopping.funded(plans, principal.mandate.budget_cents - principal.committed_cents)


async def _send_move(
    uow: UnitOfWork, principal: Principal, neg: Negotiation, view: NegotiationView, move: Move
) -> Envelope | None:
    command = command_for(move, neg.listing_id, neg.thread_id)
    if command is None:
        if isinstance(move, Walk) and neg.thread_id is None:
            neg.status, neg.end_reason, neg.reserved_cents = "ended", "declined_to_open", 0
        return None
    neg.retry_at = None
    common.AGENT_MOVES.labels(common.brain_label(principal), command.type).inc()
    return await common.send(uow, principal, command, NEGOTIATION_COMMANDS.name, neg.listing_id)


# Inbox: thread events -------------------------------------------------------


async def _locate(uow: UnitOfWork, principal: Principal, event: Message) -> Negotiation | None:
    listing_id, thread_id = str(event.listing_id), getattr(event, "thread_id", None)
    seller_side = getattr(event, "seller_agent_id", None) == principal.agent_id or (
        common.item_id_of(principal.principal_id, listing_id) is not None
    )
    if not seller_side:
        return await store.negotiation(uow.conn, store.buyer_neg_id(principal.principal_id, listing_id))
    neg_id = store.seller_neg_id(principal.principal_id, str(thread_id))
    found = await store.negotiation(uow.conn, neg_id)
    if found is None and isinstance(event, ThreadOpened):
        found = Negotiation(
            neg_id,
            principal.principal_id,
            listing_id,
            "seller",
            item_id=common.item_id_of(principal.principal_id, listing_id),
            thread_id=thread_id,
        )
    return found


async def on_thread_event(uow: UnitOfWork, env: Envelope, event: Message) -> None:
    principal = await store.principal_by_agent(uow.conn, str(env.agent_id))
    if principal is None:
        return
    neg = await _locate(uow, principal, event)
    if neg is None:
        return
    neg.events.append(
        {"type": event.type, "payload": event.model_dump(mode="json"), "at": env.occurred_at.isoformat()}
    )
    if isinstance(event, ThreadOpened):
        neg.thread_id, neg.status, neg.retry_at = event.thread_id, "open", None
    if isinstance(event, NegotiationEnded):
        neg.status = "deal" if event.reason is EndReason.DEAL else "ended"
        neg.end_reason = event.reason.value
        if event.reason is not EndReason.DEAL:
            neg.reserved_cents = 0
    my_turn = isinstance(event, OfferMade) and event.agent_id != principal.agent_id and neg.live
    if my_turn and not is_remote(common.brain_for(principal)):
        await take_turn(uow, principal, neg)  # a strategy answers at once, in this transaction
    else:
        if my_turn:
            common.turn_now(uow, neg)  # a model is asked by the turn scheduler, outside this batch
        await store.save_negotiation(uow.conn, neg)
    if isinstance(event, NegotiationEnded) and neg.role == "buyer" and neg.status == "ended":
        await shop.wake_declined(uow, principal)
        if neg.want_id:
            await shop.reshop(uow, principal, neg.want_id)  # the next candidate for this want


async def on_deal_agreed(uow: UnitOfWork, env: Envelope, event: DealAgreed) -> None:
    principal = await store.principal_by_agent(uow.conn, str(env.agent_id))
    if principal is None:
        return
    neg = await _locate(uow, principal, event)
    if neg is None:
        return
    buyer = principal.agent_id == event.buyer_agent_id
    amount = event.buyer_total_cents if buyer else event.price_cents
    if not await store.save_deal(uow.conn, event.deal_id, neg, amount, event.shipping_method.value):
        return
    neg.status, neg.reserved_cents = "deal", 0
    await store.save_negotiation(uow.conn, neg)
    if buyer:
        await store.add_committed(uow.conn, principal.principal_id, amount)
        principal.committed_cents += amount
        await _drop_other_threads_for(uow, principal, neg)
        await shop.wake_declined(uow, principal)  # the thread held more than the deal took


async def _drop_other_threads_for(uow: UnitOfWork, principal: Principal, won: Negotiation) -> None:
    """One want, one purchase: walk away from the other listings this want was haggling over."""
    for other in await store.negotiations_of(uow.conn, principal.principal_id):
        if other.role != "buyer" or other.want_id != won.want_id or other.neg_id == won.neg_id:
            continue
        other.reserved_cents = 0
        if other.thread_id is not None:
            sent = await common.send(
                uow,
                principal,
                WithdrawNegotiation(listing_id=other.listing_id, thread_id=other.thread_id),
                NEGOTIATION_COMMANDS.name,
                other.listing_id,
            )
            common.record_decision(uow, principal, sent, "rule:want_fulfilled", [], False)
        else:
            other.status, other.end_reason, other.retry_at = "ended", "want_fulfilled", None
        await store.save_negotiation(uow.conn, other)


async def on_refused(uow: UnitOfWork, env: Envelope, event: ActionRefused) -> None:
    principal = await store.principal_by_agent(uow.conn, str(env.agent_id))
    if principal is None:
        return
    log.info(
        "move refused by the referee",
        extra={"agent_id": principal.agent_id, "reason": event.reason.value, "command": event.command_type},
    )
    if event.command_type != "OpenNegotiation":
        return
    neg = await store.negotiation(uow.conn, store.buyer_neg_id(principal.principal_id, event.listing_id))
    if neg is None or neg.status != "opening":
        return
    if event.reason.value in RETRYABLE_OPEN_REFUSALS and neg.attempts < MAX_OPEN_ATTEMPTS:
        neg.attempts += 1
        neg.retry_at = common.now() + timedelta(seconds=0.2 * 2**neg.attempts)
    else:
        neg.status, neg.end_reason, neg.reserved_cents, neg.retry_at = "ended", event.reason.value, 0, None
    await store.save_negotiation(uow.conn, neg)
    await shop.after_turn(uow, principal, neg)
