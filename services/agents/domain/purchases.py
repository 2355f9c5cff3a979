"""What a buyer may still buy: the market's phase and its principal's answers. Pure.

A principal who denies a purchase, or lets its approval expire, has not consented to it: the
agent never buys that listing again, and buys for that want only what needs no approval (at most
the auto-approve limit) — a fresh mandate is the way to say otherwise. A market that is not open
gets no new negotiations or listings from the agents.
"""

from __future__ import annotations

from haggle.contracts.market import MarketPhase
from haggle.contracts.settlement import EscrowFailure

NOT_CONSENTED = frozenset({EscrowFailure.APPROVAL_DENIED, EscrowFailure.APPROVAL_EXPIRED})


def consent_refused(reason: EscrowFailure | str) -> bool:
    """`reason`: an `EscrowFailure` value (an `EscrowFailed` event carries it as text)."""
    return reason in NOT_CONSENTED


def buying_cap(want_max_cents: int, auto_approve_limit_cents: int, consent_refused_before: bool) -> int:
    """The most the agent may agree to pay for one want, shipping included."""
    return min(want_max_cents, auto_approve_limit_cents) if consent_refused_before else want_max_cents


def may_start(phase: MarketPhase) -> bool:
    """New listings and new negotiations only while the market is open."""
    return phase is MarketPhase.OPEN
