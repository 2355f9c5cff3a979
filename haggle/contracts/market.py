"""market.events: the rules one market runs under and its lifecycle, read by every service.

A market that never published its rules runs on `MarketRulesSet()` defaults.

Lifecycle, every step operator-signed: open (rules set) → closing
(`MarketClosing`, or the rules' `closes_at` passing) → closed (`MarketClosed`).
While closing, the referee refuses new openings (`market_closing`), open
negotiations run to their deadline, agents start nothing new and settlement
finishes the deals in flight. `MarketClosed` is published only once no
negotiation is open and every deal is final: after it nothing in the market
can change, and a report taken then is final.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from haggle.contracts.envelope import Message


class PaymentProvider(StrEnum):
    """Where a market's money really moves; settlement's ledger is the book of record either way."""

    INTERNAL = "internal"
    """Operator-funded wallets inside the ledger (the local default)."""
    STRIPE = "stripe"
    """Cards held and captured through Stripe, sellers paid through Stripe Connect."""


class MarketRulesSet(Message):
    type: Literal["MarketRulesSet"] = "MarketRulesSet"
    max_rounds: int = Field(default=20, ge=1, le=200)
    negotiation_ttl_seconds: int = Field(default=3_600, ge=1, le=30 * 24 * 3600)
    max_open_threads_per_agent: int = Field(default=50, ge=1, le=100_000)
    fee_bps: int = Field(default=500, ge=0, le=5_000, description="platform fee in basis points")
    inspection_window_seconds: int = Field(default=3 * 24 * 3600, ge=0)
    approval_timeout_seconds: int = Field(default=24 * 3600, ge=1)
    forbid_same_owner_trades: bool = Field(
        default=True, description="refuse wash trades between principals of one owner"
    )
    ship_deadline_seconds: int = Field(
        default=7 * 24 * 3600, ge=1, description="funded but not shipped by then: the buyer is refunded"
    )
    carrier_pickup_seconds: int = Field(
        default=24 * 3600, ge=0, description="simulated carrier: label booked until in transit"
    )
    carrier_transit_seconds: int = Field(
        default=2 * 24 * 3600, ge=0, description="simulated carrier: in transit until delivered or lost"
    )
    carrier_loss_bps: int = Field(default=100, ge=0, le=10_000, description="simulated lost parcels")
    carrier_seed: int = Field(default=0, ge=0, description="seeds the simulated carrier's losses")
    closes_at: datetime | None = Field(
        default=None, description="no negotiation may open from this time on (the market is closing)"
    )
    payment_provider: PaymentProvider = Field(
        default=PaymentProvider.INTERNAL, description="internal wallets, or cards and payouts through Stripe"
    )


class MarketPhase(StrEnum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class MarketEventRefusal(StrEnum):
    """Why a service refused a market event; each has a test."""

    NOT_OPERATOR = "not_operator"
    ALREADY_CLOSING = "already_closing"
    ALREADY_CLOSED = "already_closed"
    NOT_CLOSING = "not_closing"
    UNFINISHED = "unfinished"


LIFECYCLE: dict[tuple[MarketPhase, str], MarketPhase] = {
    (MarketPhase.OPEN, "MarketRulesSet"): MarketPhase.OPEN,
    (MarketPhase.OPEN, "MarketClosing"): MarketPhase.CLOSING,
    (MarketPhase.CLOSING, "MarketClosed"): MarketPhase.CLOSED,
}
"""Every allowed step of a market's life; anything else is refused and changes nothing."""


def next_phase(phase: MarketPhase, event_type: str) -> MarketPhase | MarketEventRefusal:
    """The phase after a market event, or why the event is refused."""
    if (phase, event_type) in LIFECYCLE:
        return LIFECYCLE[(phase, event_type)]
    if phase is MarketPhase.CLOSED:
        return MarketEventRefusal.ALREADY_CLOSED
    if phase is MarketPhase.CLOSING:
        return MarketEventRefusal.ALREADY_CLOSING
    return MarketEventRefusal.NOT_CLOSING


def phase_at(phase: MarketPhase, rules: MarketRulesSet, now: datetime) -> MarketPhase:
    """An open market whose `closes_at` has passed is closing, even before anyone says so."""
    if phase is MarketPhase.OPEN and rules.closes_at is not None and now >= rules.closes_at:
        return MarketPhase.CLOSING
    return phase


class MarketClosing(Message):
    """No new negotiation may open; what is open runs to its deadline, agreed deals settle."""

    type: Literal["MarketClosing"] = "MarketClosing"
    reason: str = Field(default="closed by the operator", max_length=200)


class MarketClosed(Message):
    """Nothing in the market can change any more: no negotiation open, every deal final."""

    type: Literal["MarketClosed"] = "MarketClosed"
    negotiations: int = Field(ge=0, description="negotiations the market saw, all ended")
    deals: int = Field(ge=0, description="deals agreed, all final")


MARKET_EVENTS: tuple[type[Message], ...] = (MarketRulesSet, MarketClosing, MarketClosed)
