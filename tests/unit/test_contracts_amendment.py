"""The mandate contract's amendment rule: limits change, nothing else does."""

from __future__ import annotations

from typing import Any

import pytest

from haggle.contracts.mandate import Mandate, amendment_problems
from haggle_lab.testing import mandates as m

ITEM = m.sell_item("lamp", asking=5_000, floor=4_000, title="Brass desk lamp", category="lamps")


def running() -> Mandate:
    data = m.buyer("p-amend", [m.want("w1", 20_000), m.want("w2", 9_000, keywords=("kettle",))], 50_000)
    return Mandate.model_validate(
        {**data.model_dump(mode="json"), "items": [ITEM], "auto_approve_limit_cents": 5_000}
    )


def changed(old: Mandate, **top: Any) -> Mandate:
    return Mandate.model_validate({**old.model_dump(mode="json"), **top})


def with_want(old: Mandate, index: int, **fields: Any) -> Mandate:
    data = old.model_dump(mode="json")
    data["wants"][index] |= fields
    return Mandate.model_validate(data)


def test_the_limits_may_change() -> None:
    old = running()
    new = with_want(changed(old, auto_approve_limit_cents=30_000), 1, max_price_cents=12_000)
    new = with_want(new, 0, min_condition="very_good")
    assert amendment_problems(old, new) == []
    assert amendment_problems(old, old) == []


@pytest.mark.parametrize(
    ("top", "path"),
    [
        ({"budget_cents": 90_000}, "budget_cents"),
        ({"principal_id": "p-other"}, "principal_id"),
        ({"owner_id": "o-1"}, "owner_id"),
        ({"brain": {"kind": "strategy", "name": "boulware"}}, "brain"),
        ({"items": []}, "items"),
    ],
)
def test_everything_else_stays_fixed(top: dict[str, Any], path: str) -> None:
    problems = amendment_problems(running(), changed(running(), **top))
    assert problems == [f"{path}: cannot change once the agent runs"]


@pytest.mark.parametrize(
    "fields",
    [{"keywords": ["bike", "red"]}, {"category": "tools"}, {"keywords": ["lamp"], "max_price_cents": 1}],
)
def test_a_want_keeps_what_it_is(fields: dict[str, Any]) -> None:
    problems = amendment_problems(running(), with_want(running(), 0, **fields))
    assert problems == ["wants[0]: only the max price and minimum condition may change"]


def test_wants_are_not_added_removed_or_reordered() -> None:
    old = running()
    for wants in (old.wants[:1], old.wants[::-1], (*old.wants, old.wants[0].model_copy(update={"id": "w3"}))):
        assert amendment_problems(old, old.model_copy(update={"wants": wants})) == [
            "wants: wants cannot be added, removed or reordered"
        ]
