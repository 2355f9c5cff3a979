"""A population's principals as agent mandates (`haggle.contracts.mandate.Mandate`).

`mandate_data` is the plain-data form (what a mandate YAML/JSON file holds);
`to_mandate` validates it through the mandate contract's own parser, so a
population that an agent would refuse fails here, with the field at fault
named; `assign_mandate` is the command that starts the principal's agent.
"""

from __future__ import annotations

from typing import Any

from haggle.contracts.mandate import AssignMandate, Mandate, parse_mandate
from haggle.market.goods import SaleItem, WantSpec
from haggle.market.population import Population, Principal
from haggle.market.variants import brain_spec


def _item_data(item: SaleItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "title": item.title,
        "description": item.description,
        "category": item.category,
        "condition": item.condition.value,
        "true_condition": item.true_condition.value,
        "weight_g": item.weight_g,
        "dimensions": item.dimensions.model_dump(),
        "shipping": [option.model_dump(mode="json") for option in item.shipping],
        "asking_price_cents": item.asking_price_cents,
        "floor_cents": item.floor_cents,
    }


def _want_data(want: WantSpec) -> dict[str, Any]:
    return {
        "id": want.id,
        "keywords": list(want.keywords),
        "category": want.category,
        "min_condition": want.min_condition.value,
        "max_price_cents": want.max_price_cents,
    }


def mandate_data(principal: Principal) -> dict[str, Any]:
    return {
        "principal_id": principal.id,
        "budget_cents": principal.budget_cents,
        "auto_approve_limit_cents": principal.auto_approve_limit_cents,
        "brain": brain_spec(principal.variant, principal.brain_seed),
        "items": [_item_data(item) for item in principal.items],
        "wants": [_want_data(want) for want in principal.wants],
    }


def to_mandate(principal: Principal) -> Mandate:
    return parse_mandate(mandate_data(principal), source=f"principal {principal.id}")


def assign_mandate(principal: Principal) -> AssignMandate:
    """The mandate.commands message for this principal, tagged with its variant."""
    return AssignMandate(mandate=to_mandate(principal), variant=principal.variant)


def mandates(population: Population) -> tuple[Mandate, ...]:
    return tuple(to_mandate(principal) for principal in population.principals)
