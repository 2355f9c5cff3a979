"""market.events: the rules one market runs under, read by every service.

A market that never published its rules runs on `MarketRulesSet()` defaults.
"""

from __future__ import annotations

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
    payment_provider: PaymentProvider = Field(
        default=PaymentProvider.INTERNAL, description="internal wallets, or cards and payouts through Stripe"
    )


MARKET_EVENTS: tuple[type[Message], ...] = (MarketRulesSet,)
