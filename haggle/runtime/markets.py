"""A market's rules and phase as every service keeps them, and the one handler of market.events.

Each service that reads market.events has a `market_rules` table in its own
schema (`market_id`, `rules`, `phase`); the transition rule itself is pure and
lives on the contract (`haggle.contracts.market.next_phase`). A refused event
(not the operator's, a second close, a close while something is unfinished)
changes nothing and is counted and logged with its typed reason.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from prometheus_client import Counter

from haggle.contracts import Envelope
from haggle.contracts.market import (
    MarketClosed,
    MarketClosing,
    MarketEventRefusal,
    MarketPhase,
    MarketRulesSet,
    next_phase,
    phase_at,
)
from haggle.runtime import operators
from haggle.runtime.outbox import UnitOfWork

log = logging.getLogger(__name__)
MARKET_EVENTS_REFUSED = Counter(
    "haggle_market_events_refused_total", "Market events refused, by reason", ["service", "reason"]
)
MARKET_PHASES = Counter("haggle_market_phase_changes_total", "Market phase changes applied", ["phase"])

MarketEvent = MarketRulesSet | MarketClosing | MarketClosed
Unfinished = Callable[[asyncpg.Connection, str], Awaitable[str | None]]
"""What a service still has in flight in a market (None: nothing), asked before it accepts MarketClosed."""


@dataclass(frozen=True)
class MarketState:
    rules: MarketRulesSet
    phase: MarketPhase
    configured: bool
    closing_at: datetime | None = None
    """When this service saw the market start closing."""
    closed_at: datetime | None = None

    def phase_at(self, now: datetime) -> MarketPhase:
        return phase_at(self.phase, self.rules, now)

    def view(self, market_id: str, now: datetime) -> dict[str, object]:
        """What a service's `/markets/{id}` says of the phase."""
        return {
            "market_id": market_id,
            "phase": self.phase_at(now).value,
            "closing_at": self.closing_at.isoformat() if self.closing_at else None,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
        }


async def load(conn: asyncpg.Connection | asyncpg.Pool, market_id: str) -> MarketState:
    row = await conn.fetchrow(
        "SELECT rules, phase, closing_at, closed_at FROM market_rules WHERE market_id = $1", market_id
    )
    if row is None:
        return MarketState(MarketRulesSet(), MarketPhase.OPEN, configured=False)
    rules = MarketRulesSet.model_validate_json(row["rules"])
    return MarketState(rules, MarketPhase(row["phase"]), True, row["closing_at"], row["closed_at"])


async def _save(conn: asyncpg.Connection, market_id: str, state: MarketState) -> None:
    await conn.execute(
        "INSERT INTO market_rules (market_id, rules, phase, closing_at, closed_at)"
        " VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (market_id) DO UPDATE SET rules = EXCLUDED.rules, phase = EXCLUDED.phase,"
        " closing_at = EXCLUDED.closing_at, closed_at = EXCLUDED.closed_at",
        market_id,
        state.rules.model_dump_json(),
        state.phase.value,
        state.closing_at,
        state.closed_at,
    )


def refuse(service: str, env: Envelope, reason: MarketEventRefusal, detail: str = "") -> None:
    MARKET_EVENTS_REFUSED.labels(service, reason.value).inc()
    log.warning(
        "market event refused",
        extra={"market_id": env.market_id, "type": env.type, "reason": reason.value, "detail": detail},
    )


async def apply(
    uow: UnitOfWork,
    env: Envelope,
    event: MarketEvent,
    service: str,
    unfinished: Unfinished | None = None,
) -> MarketPhase | None:
    """Apply one operator-signed market event; the new phase, or None when it was refused."""
    if not operators.is_operator(env):
        refuse(service, env, MarketEventRefusal.NOT_OPERATOR)
        return None
    state = await load(uow.conn, env.market_id)
    step = next_phase(state.phase, event.type)
    if isinstance(step, MarketEventRefusal):
        refuse(service, env, step)
        return None
    if isinstance(event, MarketClosed) and unfinished is not None:
        left = await unfinished(uow.conn, env.market_id)
        if left is not None:
            refuse(service, env, MarketEventRefusal.UNFINISHED, left)
            return None
    now = datetime.now(UTC)
    after = MarketState(
        rules=event if isinstance(event, MarketRulesSet) else state.rules,
        phase=step,
        configured=True,
        closing_at=now if step is MarketPhase.CLOSING and state.closing_at is None else state.closing_at,
        closed_at=now if step is MarketPhase.CLOSED else state.closed_at,
    )
    await _save(uow.conn, env.market_id, after)
    if step is not state.phase:
        MARKET_PHASES.labels(step.value).inc()
        log.info("market phase", extra={"market_id": env.market_id, "phase": step.value})
    return step
