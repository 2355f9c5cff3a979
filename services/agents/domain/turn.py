"""One turn's rules: ask the brain, check with the guard, ask again with the reason; walk away rather
than break the mandate. Pure but for the brain it is given (which may call a model)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from prometheus_client import Counter

from haggle.contracts import Message
from haggle.contracts.listing import ListingFacts
from haggle.contracts.negotiation import (
    Party,
    ThreadOpened,
)
from haggle.guard import commands
from haggle.guard.budget import cheapest_shipping
from haggle.guard.moves import Move, Walk, walk_away
from haggle.guard.ratelimit import Limiter
from haggle.guard.rules import GUARD_REFUSALS, GuardRefusal, check, token_refusal
from haggle.guard.view import ListingView, MandateLimits, NegotiationView, time_fraction
from services.agents.domain import shopping
from services.agents.domain.brain import Brain, BrainUnavailable, confidential_text
from services.agents.domain.budget import Budget
from services.agents.domain.negotiation import EndedBecause, Fold, Negotiation, Role
from services.agents.domain.principal import Principal
from services.agents.domain.usage import LlmUsage

log = logging.getLogger(__name__)

BRAIN_FAILURES = Counter("haggle_brain_failures_total", "Brains that raised instead of answering", ["error"])
FALLBACKS = Counter("haggle_agent_fallbacks_total", "Turns where the agent walked away after refusals")


NO_TOKENS = LlmUsage()


@dataclass(frozen=True, slots=True)
class Decision:
    move: Move
    refusals: tuple[GuardRefusal, ...] = ()
    fell_back: bool = False
    usage: LlmUsage = NO_TOKENS
    """Tokens the brain's model used for this decision (all zero for a strategy)."""


def _usage(brain: Brain) -> LlmUsage:
    usage = getattr(brain, "usage", None)
    return usage if isinstance(usage, LlmUsage) else NO_TOKENS


def _spent(brain: Brain, before: LlmUsage) -> LlmUsage:
    """Tokens used since `before`: a brain that used none (a strategy's every turn) costs nothing to ask."""
    now = _usage(brain)
    return NO_TOKENS if now is before else now - before


async def next_move(
    brain: Brain,
    view: NegotiationView,
    limits: MandateLimits,
    retries: int = 2,
    limiter: Limiter | None = None,
) -> Decision:
    """A move that passed the guard: the brain's, or walking away after `retries` refused re-asks.

    `BrainUnavailable` propagates: whether to wait for the backend or walk is the runtime's call.
    """
    refusals: list[GuardRefusal] = []
    before = _usage(brain)
    for attempt in range(retries + 1):
        spent = token_refusal(_spent(brain, before).total, limits.tokens_left)
        if spent is not None:
            _note_refusal(spent, view, attempt)
            refusals.append(spent)
            break
        try:
            proposed = await brain.decide(view)
        except BrainUnavailable:
            raise
        except Exception as exc:  # a broken or hostile brain must not take the agent down
            BRAIN_FAILURES.labels(type(exc).__name__).inc()
            log.exception("brain failed", extra={"agent_id": view.agent_id, "attempt": attempt})
            break
        verdict = check(proposed, view, limits, limiter, confidential_text(brain, view))
        if not isinstance(verdict, GuardRefusal):
            return Decision(verdict, tuple(refusals), usage=_spent(brain, before))
        _note_refusal(verdict, view, attempt)
        refusals.append(verdict)
        view = replace(view, refusals=(*view.refusals, str(verdict)))
    return Decision(_fallback(view, limits), tuple(refusals), fell_back=True, usage=_spent(brain, before))


def _note_refusal(refusal: GuardRefusal, view: NegotiationView, attempt: int) -> None:
    GUARD_REFUSALS.labels(refusal.reason.value).inc()
    log.warning(
        "guard refused a move",
        extra={
            "agent_id": view.agent_id,
            "listing_id": view.listing.listing_id,
            "reason": refusal.reason.value,
            "detail": refusal.detail,
            "attempt": attempt,
        },
    )


def _fallback(view: NegotiationView, limits: MandateLimits) -> Move:
    FALLBACKS.inc()
    move = walk_away(view)
    # Rejecting can itself be refused (thread over, limits of the wrong role); withdrawing never is.
    return move if not isinstance(check(move, view, limits), GuardRefusal) else Walk()


# What the brain sees, and the limits the guard applies ------------------------


def view_of(
    principal: Principal,
    neg: Negotiation,
    facts: ListingFacts,
    limits: MandateLimits,
    now: datetime,
    max_rounds: int = 20,
) -> NegotiationView:
    """Fold the thread's events (as this agent received them) into what the brain may see. The fold
    is kept on the negotiation (`Negotiation.folded`): the next turn folds only the new events, unless
    the listing, the limits or the events before them changed."""
    role = Party.BUYER if neg.is_buyer else Party.SELLER
    inputs = (principal.agent_id, role, facts, limits, max_rounds)
    events, folded = neg.events, neg.folded
    if folded is not None and folded.follows(inputs, events):
        done, view, opened_at = folded.count, folded.view, folded.opened_at
    else:
        done, opened_at = 0, None
        view = NegotiationView(principal.agent_id, role, ListingView.from_facts(facts), limits, max_rounds)
    new, deadline = [(entry.at, entry.event) for entry in events[done:]], view.deadline
    for at, event in new:
        if isinstance(event, ThreadOpened):
            opened_at, deadline = at, event.deadline
    fraction = None if opened_at is None or deadline is None else time_fraction(opened_at, deadline, now)
    if new or fraction is not None:
        view = view.with_events((event for _, event in new), fraction)
    neg.folded = Fold(inputs, len(events), events[-1] if events else None, view, opened_at)
    return view


def limits_for(
    principal: Principal, neg: Negotiation, budget: Budget, tokens_left: int | None
) -> MandateLimits:
    """The private limits for this negotiation. A buyer's thread spends only the money it holds."""
    mandate = principal.mandate
    secrets: dict[str, int | None] = {
        "budget_cents": mandate.budget_cents,
        "auto_approve_cents": mandate.auto_approve_limit_cents,
        "tokens_left": tokens_left,
    }
    if neg.role is Role.SELLER:
        item_id = neg.item_id or principal.item_id_of(neg.listing_id)
        return MandateLimits.for_seller(mandate.item(str(item_id)).floor_cents, **secrets)
    want = mandate.want(str(neg.want_id))
    free = budget.free_for(neg.neg_id)
    usable = min(free, neg.reserved_cents) if neg.reserved_cents else free
    return MandateLimits.for_buyer(principal.buying_cap(want.id), usable, want.min_condition, **secrets)


def tokens_left(principal: Principal, tokens_used: int) -> int | None:
    """What is left of the principal's model token budget (None: its brain has none)."""
    budget = getattr(principal.mandate.brain, "token_budget", None)
    return None if budget is None else max(0, budget - tokens_used)


def seller_facts(principal: Principal, neg: Negotiation) -> ListingFacts | None:
    """A seller can always fall back on its own mandate for its listing's facts."""
    item_id = neg.item_id or principal.item_id_of(neg.listing_id)
    if neg.role is not Role.SELLER or not item_id:
        return None
    return principal.mandate.item(item_id).to_listing(
        neg.listing_id, principal.agent_id, principal.principal_id
    )


# Opening a buyer thread: hold its whole cap first ----------------------------


def thread_cap(principal: Principal, neg: Negotiation, facts: ListingFacts, free_cents: int | None) -> int:
    """The most one buyer thread could ever commit: held in full from its opening to its end, so
    several threads at once can never promise more than the budget, nor starve each other
    mid-haggle. `free_cents=None`: as if money were no limit."""
    cheapest = cheapest_shipping(facts.shipping)
    return shopping.hold_for(
        principal.buying_cap(str(neg.want_id)), facts.price_cents, cheapest, free_cents=free_cents
    )


def hold_for_opening(
    principal: Principal, neg: Negotiation, facts: ListingFacts, budget: Budget, funded_wants: set[str]
) -> Budget | None:
    """The budget with this buyer thread holding its cap, or None: the negotiation is declined
    (ended, nothing held) because its want's money goes to other wants first (`UNFUNDED`), or what
    there is for it is not worth opening on (`DECLINED_TO_OPEN`)."""
    if neg.want_id not in funded_wants:
        neg.end(EndedBecause.UNFUNDED)
        return None
    cap = thread_cap(principal, neg, facts, budget.free_for(neg.neg_id))
    could = thread_cap(principal, neg, facts, principal.mandate.budget_cents)
    cheapest = cheapest_shipping(facts.shipping)
    if not shopping.worth_opening(cap, could, facts.price_cents, cheapest):
        neg.end(EndedBecause.DECLINED_TO_OPEN)
        return None
    held = budget.reserve(neg.neg_id, cap)
    neg.reserved_cents = held.held_by(neg.neg_id)
    return held


# One move, as the command the referee gets -------------------------------------


def command_for(neg: Negotiation, move: Move) -> Message | None:
    """The command a guarded move becomes (`haggle.guard.commands`); None: nothing to send. A walk
    before the thread opens declines the negotiation."""
    if neg.thread_id is None and isinstance(move, Walk):
        neg.end(EndedBecause.DECLINED_TO_OPEN)
    return commands.command_for(move, neg.listing_id, neg.thread_id)


def same_turn(before: NegotiationView, now: NegotiationView) -> bool:
    """The same position, however much of the clock the model used."""
    return replace(now, time_fraction=before.time_fraction) == before
