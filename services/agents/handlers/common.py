"""What every agent handler shares: the per-app toolkit, signing and sending, limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import Counter

from haggle.contracts import Envelope, Message, signed
from haggle.contracts.decisions import decision_for, mandate_digest
from haggle.contracts.mandate import BrainConfig
from haggle.contracts.topics import AGENT_DECISIONS
from haggle.guard.ratelimit import RateLimiter
from haggle.runtime import identity
from haggle.runtime.outbox import UnitOfWork
from haggle.runtime.settings import Settings
from services.agents import store
from services.agents.brains import Brain, build_brain
from services.agents.domain import Negotiation, Principal, turn

PRODUCER = "agents"
AGENT_MOVES = Counter(
    "haggle_agent_moves_total", "Moves that left an agent, after the guard", ["brain", "type"]
)
AGENT_TURNS = Counter("haggle_agent_turns_total", "Turns an agent took", ["outcome"])


@dataclass
class Toolkit:
    """What the agents' handlers share within one app, built once in `app.build` (the composition
    root): the moves rate limiter and each principal's brain (a model client is built once)."""

    limiter: RateLimiter
    build_brain: Callable[[BrainConfig], Brain] = build_brain
    brains: dict[str, Brain] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Toolkit:
        return cls(RateLimiter(per_second=settings.agent_moves_per_second, burst=settings.agent_move_burst))

    def brain_for(self, principal: Principal) -> Brain:
        if principal.principal_id not in self.brains:
            self.brains[principal.principal_id] = self.build_brain(principal.mandate.brain)
        return self.brains[principal.principal_id]


def now() -> datetime:
    return datetime.now(UTC)


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


async def tokens_left(uow: UnitOfWork, principal: Principal) -> int | None:
    if getattr(principal.mandate.brain, "token_budget", None) is None:
        return None
    return turn.tokens_left(principal, await store.tokens_used(uow.conn, principal.principal_id))
