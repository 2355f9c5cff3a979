"""Mandates live in `haggle.contracts.mandate` (the market runner and the agents share them);
here, the private limits a mandate gives one negotiation."""

from __future__ import annotations

from haggle.contracts.mandate import (
    BrainConfig,
    ClaudeBrainConfig,
    CompromisedBrainConfig,
    Mandate,
    MandateError,
    NarratorBrainConfig,
    OpenAIBrainConfig,
    SellItem,
    StrategyBrainConfig,
    StrategyName,
    StrategyParams,
    Want,
    load_mandate,
    parse_mandate,
)
from services.agents.view import MandateLimits

__all__ = [
    "BrainConfig",
    "ClaudeBrainConfig",
    "CompromisedBrainConfig",
    "Mandate",
    "MandateError",
    "NarratorBrainConfig",
    "OpenAIBrainConfig",
    "SellItem",
    "StrategyBrainConfig",
    "StrategyName",
    "StrategyParams",
    "Want",
    "limits_for_sale",
    "limits_for_want",
    "load_mandate",
    "parse_mandate",
]


def limits_for_sale(mandate: Mandate, item_id: str) -> MandateLimits:
    return MandateLimits.for_seller(
        mandate.item(item_id).floor_cents, mandate.budget_cents, mandate.auto_approve_limit_cents
    )


def limits_for_want(mandate: Mandate, want_id: str, committed_cents: int = 0) -> MandateLimits:
    """Buyer limits; `committed_cents` is what deals and open holds already took from the budget."""
    want = mandate.want(want_id)
    remaining = max(0, mandate.budget_cents - committed_cents)
    return MandateLimits.for_buyer(
        want.max_price_cents,
        remaining,
        want.min_condition,
        mandate.budget_cents,
        mandate.auto_approve_limit_cents,
    )
