"""services.agents.mandate: loading, validation errors that name the field, the limits a mandate yields."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from haggle.contracts.goods import Condition
from haggle.contracts.negotiation import Party
from services.agents.mandate import (
    ClaudeBrainConfig,
    MandateError,
    StrategyBrainConfig,
    StrategyName,
    limits_for_sale,
    limits_for_want,
    load_mandate,
    parse_mandate,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mandates"


@pytest.fixture
def seller_data() -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / "seller.yaml").read_text())


def test_example_seller_loads_with_its_private_floors() -> None:
    mandate = load_mandate(EXAMPLES / "seller.yaml")
    assert mandate.principal_id == "alice"
    assert isinstance(mandate.brain, StrategyBrainConfig)
    assert mandate.brain.name is StrategyName.BOULWARE and mandate.brain.params.e == 0.2
    assert [item.id for item in mandate.items] == ["alice-headphones", "alice-table", "alice-lens"]
    assert all(item.floor_cents <= item.asking_price_cents for item in mandate.items)
    limits = limits_for_sale(mandate, "alice-table")
    assert limits.role is Party.SELLER and limits.floor_cents == 30_000


def test_true_condition_defaults_to_listed_and_can_differ() -> None:
    mandate = load_mandate(EXAMPLES / "seller.yaml")
    assert mandate.item("alice-headphones").true_condition is Condition.VERY_GOOD
    lens = mandate.item("alice-lens")
    assert (lens.condition, lens.true_condition) == (Condition.LIKE_NEW, Condition.GOOD)


def test_example_buyer_loads_as_a_claude_brain_with_wants() -> None:
    mandate = load_mandate(EXAMPLES / "buyer.json")
    assert isinstance(mandate.brain, ClaudeBrainConfig)
    assert mandate.brain.model == "claude-sonnet-4-6"
    limits = limits_for_want(mandate, "bob-headphones", committed_cents=50_000)
    assert limits.role is Party.BUYER
    assert (limits.max_price_cents, limits.remaining_budget_cents) == (16_000, 10_000)
    assert limits.min_condition is Condition.VERY_GOOD
    assert limits.buyer_cap_cents == 10_000


def test_a_listing_made_from_an_item_never_carries_the_floor() -> None:
    item = load_mandate(EXAMPLES / "seller.yaml").item("alice-headphones")
    listing = item.to_listing("L-1", "agent-alice", "alice")
    assert listing.price_cents == 18_000 and listing.condition is Condition.VERY_GOOD
    assert "13500" not in listing.model_dump_json()


def test_want_matches_on_keywords_and_category() -> None:
    want = load_mandate(EXAMPLES / "buyer.json").want("bob-headphones")
    assert want.matches("Sony Noise-Cancelling HEADPHONES", "electronics")
    assert not want.matches("Sony noise-cancelling earbuds", "electronics")
    assert not want.matches("Sony noise-cancelling headphones", "audio")


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("items", 2, "floor_cents"), 11_001, "items[2].floor_cents: floor above asking price"),
        (("items", 0, "floor_cents"), 0, "items[0].floor_cents: floor must be a positive number of cents"),
        (
            ("items", 1, "asking_price_cents"),
            420.5,
            "items[1].asking_price_cents: Input should be a valid integer",
        ),
        (
            ("items", 0, "asking_price_cents"),
            "18000",
            "items[0].asking_price_cents: Input should be a valid integer",
        ),
        (("items", 0, "condition"), "mint", "items[0].condition: Input should be"),
        (
            ("items", 1, "shipping", 0, "method"),
            "parcel_small",
            "items[1].shipping: parcel_small cannot carry it",
        ),
        (("items", 0, "title"), "abc", "items[0].title: String should have at least 5 characters"),
        (("brain", "name"), "greedy", "brain.name: Input should be"),
        (("brain", "kind"), "oracle", "brain: Input tag 'oracle' found"),
        (("budget_cents",), -1, "budget_cents: must be 0.."),
        (("principal_id",), "no spaces allowed", "principal_id: String should match pattern"),
    ],
)
def test_validation_errors_name_the_field(
    seller_data: dict[str, Any], path: tuple[Any, ...], value: Any, expected: str
) -> None:
    with pytest.raises(MandateError) as caught:
        parse_mandate(_set(seller_data, path, value))
    assert any(problem.startswith(expected) for problem in caught.value.problems), caught.value.problems


def test_cross_field_rules_name_the_field(seller_data: dict[str, Any]) -> None:
    data = copy.deepcopy(seller_data)
    data["items"].append(copy.deepcopy(data["items"][0]))
    data["budget_cents"] = 10_000
    data["wants"] = [
        {"id": "w1", "keywords": ["lamp"], "max_price_cents": 5_000},
        {"id": "w2", "category": "lamps", "max_price_cents": 20_000},
        {"id": "w3", "max_price_cents": 100},
    ]
    with pytest.raises(MandateError) as caught:
        parse_mandate(data)
    problems = caught.value.problems
    assert "wants[2].category: give keywords, a category, or both" in problems
    data["wants"].pop()
    with pytest.raises(MandateError) as caught:
        parse_mandate(data)
    assert caught.value.problems == [
        "items[3].id: id alice-headphones used twice",
        "wants[1].max_price_cents: max price above the budget",
    ]


def test_a_floor_equal_to_the_asking_price_is_fine(seller_data: dict[str, Any]) -> None:
    mandate = parse_mandate(_set(seller_data, ("items", 0, "floor_cents"), 18_000))
    assert mandate.items[0].floor_cents == 18_000


def test_unknown_keys_are_refused(seller_data: dict[str, Any]) -> None:
    with pytest.raises(MandateError, match=r"items\[0\]\.floor: Extra inputs are not permitted"):
        parse_mandate(_set(seller_data, ("items", 0, "floor"), 1))


def test_file_problems(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "m.yaml"
    bad_yaml.write_text("principal_id: [unclosed")
    with pytest.raises(MandateError, match="not valid yaml"):
        load_mandate(bad_yaml)
    toml = tmp_path / "m.toml"
    toml.write_text("x = 1")
    with pytest.raises(MandateError, match="unknown extension"):
        load_mandate(toml)
    as_json = tmp_path / "m.json"
    as_json.write_text(json.dumps({"principal_id": "p"}))
    with pytest.raises(MandateError) as caught:
        load_mandate(as_json)
    assert "budget_cents: Field required" in caught.value.problems
