"""The intake form: what a person sells and wants, made into a mandate by the mandate contract.

The form's fields are flat strings; `mandate_data` shapes them as the contract
expects and `validate` lets `parse_mandate` judge them, then puts each problem
beside the form field it is about. The interview fills the same fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from haggle.contracts.goods import Condition, ShippingMethod
from haggle.contracts.mandate import Mandate, MandateError, StrategyName, parse_mandate
from haggle.market.goods import shipping_cost_cents
from services.web.domain import parse_dollars, plain_dollars

ITEM_ID = "item-1"
WANT_ID = "want-1"
SELL_FIELDS = (
    "sell_title",
    "sell_description",
    "sell_category",
    "sell_condition",
    "sell_weight_g",
    "sell_length_mm",
    "sell_width_mm",
    "sell_height_mm",
    "sell_asking",
    "sell_floor",
)
WANT_FIELDS = ("want_keywords", "want_category", "want_max", "want_condition")
FIELDS = ("budget", "auto_approve", "style", *SELL_FIELDS, *WANT_FIELDS)
"""Every text field of the form (plus `sell_shipping`, a list of methods)."""

_CONTRACT_TO_FIELD = {
    "budget_cents": "budget",
    "auto_approve_limit_cents": "auto_approve",
    "brain": "style",
    "items[0].title": "sell_title",
    "items[0].description": "sell_description",
    "items[0].category": "sell_category",
    "items[0].condition": "sell_condition",
    "items[0].weight_g": "sell_weight_g",
    "items[0].dimensions.length_mm": "sell_length_mm",
    "items[0].dimensions.width_mm": "sell_width_mm",
    "items[0].dimensions.height_mm": "sell_height_mm",
    "items[0].dimensions": "sell_length_mm",
    "items[0].shipping": "sell_shipping",
    "items[0].asking_price_cents": "sell_asking",
    "items[0].floor_cents": "sell_floor",
    "wants[0].keywords": "want_keywords",
    "wants[0].category": "want_category",
    "wants[0].max_price_cents": "want_max",
    "wants[0].min_condition": "want_condition",
}


def _number(text: str) -> int | str:
    cleaned = text.strip().replace(",", "")
    return int(cleaned) if cleaned.isdigit() else text


def _filled(form: Mapping[str, Any], names: tuple[str, ...]) -> bool:
    return any(str(form.get(name, "")).strip() for name in names)


def _item(form: Mapping[str, Any]) -> dict[str, Any]:
    weight = _number(str(form.get("sell_weight_g", "")))
    methods = [m for m in form.get("sell_shipping", ()) if m in ShippingMethod.__members__.values()]
    shipping = [
        {
            "method": m,
            "cost_cents": shipping_cost_cents(ShippingMethod(m), weight) if isinstance(weight, int) else 0,
        }
        for m in methods
    ]
    return {
        "id": ITEM_ID,
        "title": str(form.get("sell_title", "")).strip(),
        "description": str(form.get("sell_description", "")).strip(),
        "category": str(form.get("sell_category", "")).strip(),
        "condition": form.get("sell_condition", ""),
        "weight_g": weight,
        "dimensions": {
            side: _number(str(form.get(f"sell_{side}", "")))
            for side in ("length_mm", "width_mm", "height_mm")
        },
        "shipping": shipping,
        "asking_price_cents": parse_dollars(str(form.get("sell_asking", ""))),
        "floor_cents": parse_dollars(str(form.get("sell_floor", ""))),
    }


def _want(form: Mapping[str, Any]) -> dict[str, Any]:
    keywords = [w for w in re.split(r"[,\s]+", str(form.get("want_keywords", ""))) if w]
    category = str(form.get("want_category", "")).strip() or None
    return {
        "id": WANT_ID,
        "keywords": keywords,
        "category": category,
        "min_condition": form.get("want_condition") or Condition.ACCEPTABLE.value,
        "max_price_cents": parse_dollars(str(form.get("want_max", ""))),
    }


def mandate_data(principal_id: str, form: Mapping[str, Any]) -> dict[str, Any]:
    """The form as the mandate contract's input; an empty half (no item, no want) is left out."""
    style = str(form.get("style", "")) or StrategyName.LINEAR.value
    return {
        "principal_id": principal_id,
        "budget_cents": parse_dollars(str(form.get("budget", ""))),
        "auto_approve_limit_cents": parse_dollars(str(form.get("auto_approve", ""))),
        "brain": {"kind": "strategy", "name": style},
        "items": [_item(form)] if _filled(form, SELL_FIELDS) else [],
        "wants": [_want(form)] if _filled(form, WANT_FIELDS) else [],
        "inspects_goods": not form.get("agent_accepts"),
    }


def field_of(problem: str) -> tuple[str, str]:
    """`items[0].floor_cents: floor above asking price` → ("sell_floor", "floor above asking price")."""
    path, _, message = problem.partition(": ")
    for prefix in sorted(_CONTRACT_TO_FIELD, key=len, reverse=True):
        if path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "["):
            return _CONTRACT_TO_FIELD[prefix], message
    return "_form", problem


MONEY_FIELDS = ("budget", "auto_approve", "sell_asking", "sell_floor", "want_max")


def _money_format(form: Mapping[str, Any]) -> dict[str, str]:
    """Amounts that are not dollars and cents at all (the contract would only say 'not an integer')."""
    return {
        name: "enter dollars, such as 120 or 120.50"
        for name in MONEY_FIELDS
        if str(form.get(name, "")).strip() and isinstance(parse_dollars(str(form[name])), str)
    }


def validate(principal_id: str, form: Mapping[str, Any]) -> Mandate | dict[str, str]:
    """The mandate, or each problem beside its field (the first per field)."""
    data = mandate_data(principal_id, form)
    if not data["items"] and not data["wants"]:
        return {"_form": "give something to sell, something to buy, or both"}
    try:
        return parse_mandate(data, "intake")
    except MandateError as exc:
        errors = _money_format(form)
        for problem in exc.problems:
            name, message = field_of(problem)
            errors.setdefault(name, message)
        return errors


def form_of(mandate: Mandate) -> dict[str, Any]:
    """A mandate back as form fields (the interview's review shows its draft this way)."""
    form: dict[str, Any] = {
        "budget": plain_dollars(mandate.budget_cents),
        "auto_approve": plain_dollars(mandate.auto_approve_limit_cents),
        "style": getattr(mandate.brain, "name", StrategyName.LINEAR.value),
    }
    if not mandate.inspects_goods:
        form["agent_accepts"] = "on"
    if mandate.items:
        item = mandate.items[0]
        dims = item.dimensions
        form |= {
            "sell_title": item.title,
            "sell_description": item.description,
            "sell_category": item.category,
            "sell_condition": item.condition.value,
            "sell_weight_g": str(item.weight_g),
            "sell_length_mm": str(dims.length_mm),
            "sell_width_mm": str(dims.width_mm),
            "sell_height_mm": str(dims.height_mm),
            "sell_shipping": [o.method.value for o in item.shipping],
            "sell_asking": plain_dollars(item.asking_price_cents),
            "sell_floor": plain_dollars(item.floor_cents),
        }
    if mandate.wants:
        want = mandate.wants[0]
        form |= {
            "want_keywords": " ".join(want.keywords),
            "want_category": want.category or "",
            "want_max": plain_dollars(want.max_price_cents),
            "want_condition": want.min_condition.value,
        }
    return form
