"""Ask the brain, check with the guard, ask again with the reason; walk away rather than break the mandate."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from prometheus_client import Counter

from services.agents.brains.base import Brain, BrainUnavailable, confidential_text
from services.agents.brains.model_calls import LlmUsage
from services.agents.guard import GUARD_REFUSALS, GuardRefusal, check, token_refusal
from services.agents.moves import Move, Walk, walk_away
from services.agents.ratelimit import Limiter
from services.agents.view import MandateLimits, NegotiationView

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
    return usage if isinstance(usage, LlmUsage) else LlmUsage()


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
        spent = token_refusal((_usage(brain) - before).total, limits.tokens_left)
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
            return Decision(verdict, tuple(refusals), usage=_usage(brain) - before)
        _note_refusal(verdict, view, attempt)
        refusals.append(verdict)
        view = replace(view, refusals=(*view.refusals, str(verdict)))
    return Decision(_fallback(view, limits), tuple(refusals), fell_back=True, usage=_usage(brain) - before)


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
