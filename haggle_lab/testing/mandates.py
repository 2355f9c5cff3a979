"""Mandates built in code, for tests, benchmarks and the red-team suite."""

from __future__ import annotations

from typing import Any

from haggle.client import Publisher
from haggle.contracts.mandate import AssignMandate, Mandate
from haggle.contracts.settlement import FundWallet
from haggle.contracts.topics import MANDATE_COMMANDS, SETTLEMENT_COMMANDS
from haggle.runtime.operators import operator_envelope


def strategy(name: str = "linear", seed: int = 1, **params: Any) -> dict[str, Any]:
    return {"kind": "strategy", "name": name, "params": {"seed": seed, **params}}


def sell_item(
    item_id: str,
    asking: int,
    floor: int,
    title: str = "Road bike, 56 cm aluminium frame",
    category: str = "bikes",
    condition: str = "good",
    true_condition: str | None = None,
    weight_g: int = 11_000,
) -> dict[str, Any]:
    return {
        "id": item_id,
        "title": title,
        "description": "Serviced last spring; new tyres.",
        "category": category,
        "condition": condition,
        "true_condition": true_condition or condition,
        "weight_g": weight_g,
        "dimensions": {"length_mm": 1_100, "width_mm": 250, "height_mm": 700},
        "shipping": [
            {"method": "parcel_standard", "cost_cents": 0},
            {"method": "local_pickup", "cost_cents": 0},
        ],
        "asking_price_cents": asking,
        "floor_cents": floor,
    }


def want(
    want_id: str,
    max_price: int,
    keywords: tuple[str, ...] = ("bike",),
    category: str | None = "bikes",
    min_condition: str = "acceptable",
) -> dict[str, Any]:
    return {
        "id": want_id,
        "keywords": list(keywords),
        "category": category,
        "min_condition": min_condition,
        "max_price_cents": max_price,
    }


def seller(principal_id: str, items: list[dict[str, Any]], brain: dict[str, Any] | None = None) -> Mandate:
    return Mandate.model_validate(
        {
            "principal_id": principal_id,
            "budget_cents": 0,
            "auto_approve_limit_cents": 10_000_000,
            "brain": brain or strategy(),
            "items": items,
        }
    )


def buyer(
    principal_id: str,
    wants: list[dict[str, Any]],
    budget: int,
    brain: dict[str, Any] | None = None,
    auto_approve: int = 10_000_000,
) -> Mandate:
    return Mandate.model_validate(
        {
            "principal_id": principal_id,
            "budget_cents": budget,
            "auto_approve_limit_cents": auto_approve,
            "brain": brain or strategy(),
            "wants": wants,
        }
    )


async def assign(
    pub: Publisher, market_id: str, mandate: Mandate, variant: str = "default", fund: bool = True
) -> None:
    """Fund the principal's wallet with its budget, then hand the mandate to the agents service."""
    if fund and mandate.budget_cents > 0:
        funding = FundWallet(
            funding_id=f"fund-{mandate.principal_id}",
            principal_id=mandate.principal_id,
            amount_cents=mandate.budget_cents,
            auto_approve_limit_cents=mandate.auto_approve_limit_cents,
        )
        await pub.send(
            SETTLEMENT_COMMANDS.name,
            mandate.principal_id,
            operator_envelope(funding, market_id),
        )
    cmd = AssignMandate(mandate=mandate, variant=variant)
    await pub.send(MANDATE_COMMANDS.name, mandate.principal_id, operator_envelope(cmd, market_id))
