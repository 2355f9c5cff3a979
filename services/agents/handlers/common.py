"""What every agent handler shares: signing and sending, brains, views and limits."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime

from prometheus_client import Counter

from haggle.contracts import Envelope, Message, signed
from haggle.contracts.decisions import decision_for, mandate_digest
from haggle.contracts.listing import ListingFacts
from haggle.contracts.negotiation import Party, ThreadOpened
from haggle.contracts.topics import AGENT_DECISIONS
from haggle.guard.commands import THREAD_EVENTS
from haggle.runtime import identity
from haggle.runtime.outbox import UnitOfWork
from services.agents import shopping, store
from services.agents.brains import Brain, build_brain
from services.agents.ratelimit import RateLimiter
from services.agents.store import Negotiation, Principal
from services.agents.view import ListingView, MandateLimits, NegotiationView, time_fraction

PRODUCER = "agents"
AGENT_MOVES = Counter(
    "haggle_agent_moves_total", "Moves that left an agent, after the guard", ["brain", "type"]
)
AGENT_TURNS = Counter("haggle_agent_turns_total", "Turns an agent took", ["outcome"])

LIMITER = RateLimiter(
    per_second=float(os.environ.get("HAGGLE_AGENT_MOVES_PER_SECOND", "20")),
    burst=int(os.environ.get("HAGGLE_AGENT_MOVE_BURST", "40")),
)
_brains: dict[str, Brain] = {}


def now() -> datetime:
    return datetime.now(UTC)


def brain_for(principal: Principal) -> Brain:
    if principal.principal_id not in _brains:
        _brains[principal.principal_id] = build_brain(principal.mandate.brain)
    return _brains[principal.principal_id]


def brain_label(principal: Principal) -> str:
    config = principal.mandate.brain
    return getattr(config, "model", None) or str(getattr(config, "name", None) or config.kind)


TURNS_CHANNEL = "agents_turns"


def turn_now(uow: UnitOfWork, neg: Negotiation) -> None:
    """Due now: the turn scheduler takes it as soon as this transaction commits."""
    neg.retry_at = now()
    uow.wake.add(TURNS_CHANNEL)


async def send(uow: UnitOfWork, principal: Principal, payload: Message, topic: str, key: str) -> Envelope:
    """Sign with the agent's key and next seq, and queue in the outbox (sent after commit)."""
    seq = await identity.take_seq(uow.conn, principal.principal_id)
    env = signed(
        payload,
        key=principal.key,
        agent_id=principal.agent_id,
        seq=seq,
        market_id=principal.market_id,
        producer=PRODUCER,
    )
    uow.emit(topic, key, env)
    return env


def record_decision(
    uow: UnitOfWork, principal: Principal, command: Envelope, brain: str, refusals: list[str], fell_back: bool
) -> None:
    """The audit's record of how a signed command came about (agent.decisions), signed with the same key."""
    env = decision_for(
        command,
        key=principal.key,
        principal_id=principal.principal_id,
        brain=brain,
        mandate_sha256=mandate_digest(principal.mandate),
        refusals=tuple(refusals),
        fell_back=fell_back,
        producer=PRODUCER,
    )
    uow.emit(AGENT_DECISIONS.name, principal.agent_id, env)


def brain_name(principal: Principal) -> str:
    """What the audit names as the move's proposer: the brain's kind and its strategy or model."""
    config = principal.mandate.brain
    return f"{config.kind}:{brain_label(principal)}"


def listing_id_for(principal_id: str, item_id: str) -> str:
    return f"{principal_id}.{item_id}"


def item_id_of(principal_id: str, listing_id: str) -> str | None:
    prefix = f"{principal_id}."
    return listing_id[len(prefix) :] if listing_id.startswith(prefix) else None


def listing_view(facts: ListingFacts) -> ListingView:
    return ListingView.from_facts(facts)


def view_of(
    principal: Principal, neg: Negotiation, facts: ListingFacts, limits: MandateLimits, max_rounds: int = 20
) -> NegotiationView:
    """Fold the thread's events (as this agent received them) into what the brain may see."""
    role = Party.BUYER if neg.role == "buyer" else Party.SELLER
    view = NegotiationView(principal.agent_id, role, listing_view(facts), limits, max_rounds)
    opened_at: datetime | None = None
    for entry in neg.events:
        event = THREAD_EVENTS[entry["type"]].model_validate(entry["payload"])
        if isinstance(event, ThreadOpened):
            opened_at = datetime.fromisoformat(entry["at"])
        view = view.with_event(event)
    if opened_at is not None and view.deadline is not None:
        view = replace(view, time_fraction=time_fraction(opened_at, view.deadline, now()))
    return view


async def limits_of(uow: UnitOfWork, principal: Principal, neg: Negotiation) -> MandateLimits:
    """The private limits for this negotiation. A buyer's thread spends only the money it holds."""
    mandate = principal.mandate
    secrets: dict[str, int | None] = {
        "budget_cents": mandate.budget_cents,
        "auto_approve_cents": mandate.auto_approve_limit_cents,
        "tokens_left": await tokens_left(uow, principal),
    }
    if neg.role == "seller":
        item_id = neg.item_id or item_id_of(principal.principal_id, neg.listing_id)
        return MandateLimits.for_seller(mandate.item(str(item_id)).floor_cents, **secrets)
    want = mandate.want(str(neg.want_id))
    free = await free_budget(uow, principal, neg)
    usable = min(free, neg.reserved_cents) if neg.reserved_cents else free
    return MandateLimits.for_buyer(principal.buying_cap(want.id), usable, want.min_condition, **secrets)


async def tokens_left(uow: UnitOfWork, principal: Principal) -> int | None:
    """What is left of the principal's model token budget (None: its brain has none)."""
    budget = getattr(principal.mandate.brain, "token_budget", None)
    if budget is None:
        return None
    return max(0, budget - await store.tokens_used(uow.conn, principal.principal_id))


async def free_budget(uow: UnitOfWork, principal: Principal, neg: Negotiation) -> int:
    """Budget less agreed deals less what the buyer's other live negotiations hold."""
    held = await store.held_by_other_threads(uow.conn, principal.principal_id, neg.neg_id)
    return max(0, principal.mandate.budget_cents - principal.committed_cents - held)


def thread_cap(principal: Principal, neg: Negotiation, facts: ListingFacts, free: int) -> int:
    """The most one buyer thread could ever commit: held in full from its opening to its end, so
    several threads at once can never promise more than the budget, nor starve each other mid-haggle."""
    cheapest = min((option.cost_cents for option in facts.shipping), default=0)
    return shopping.hold_for(principal.buying_cap(str(neg.want_id)), facts.price_cents, cheapest, free)
