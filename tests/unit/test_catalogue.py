"""haggle.market.catalogue: the second-hand catalogue loads, is plausible, and ships only what can ship."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from haggle.contracts.goods import CARRIER_LIMITS, Condition, ShippingMethod, shipping_refusal
from haggle.market.build_catalogue import SOURCE_PATH, build
from haggle.market.catalogue import CATALOGUE_PATH, PARCEL_TIERS, Catalogue, load_catalogue, parse_catalogue

NAMED_CATEGORIES = {
    "electronics",
    "sports",
    "furniture",
    "books",
    "kitchen",
    "clothing",
    "toys",
    "tools",
    "music",
    "garden",
    "bikes",
    "baby",
    "photography",
    "home_decor",
}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def _document() -> dict[str, Any]:
    return json.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))


def test_it_has_at_least_200_types_over_the_named_categories(catalogue: Catalogue) -> None:
    assert len(catalogue.entries) >= 200
    assert set(catalogue.categories) >= NAMED_CATEGORIES
    per_category = {c: sum(e.category == c for e in catalogue.entries) for c in catalogue.categories}
    assert min(per_category.values()) >= 10, per_category


def test_every_listed_method_can_really_carry_the_item(catalogue: Catalogue) -> None:
    for entry in catalogue.entries:
        for method in entry.shipping:
            assert shipping_refusal(method, entry.item) is None, (entry.id, method)


def test_big_and_heavy_goods_go_only_by_freight_or_pickup(catalogue: Catalogue) -> None:
    only_big = [e for e in catalogue.entries if e.freight_or_pickup_only]
    assert len(only_big) >= 10
    for entry_id in ("ikea-kivik-sofa", "ikea-pax-wardrobe", "yamaha-u1", "nordictrack-treadmill"):
        entry = catalogue.entry(entry_id)
        assert entry.freight_or_pickup_only
        assert set(entry.shipping) <= {ShippingMethod.FREIGHT, ShippingMethod.LOCAL_PICKUP}
        assert all(CARRIER_LIMITS[tier].refusal(entry.item) for tier in PARCEL_TIERS), entry_id


def test_small_goods_are_not_needlessly_pickup_only(catalogue: Catalogue) -> None:
    phone = catalogue.entry("iphone-12-64gb")
    assert phone.shipping == (ShippingMethod.PARCEL_SMALL, ShippingMethod.LOCAL_PICKUP)
    for entry in catalogue.entries:
        fits_a_parcel = any(shipping_refusal(tier, entry.item) is None for tier in PARCEL_TIERS)
        assert fits_a_parcel != entry.freight_or_pickup_only, entry.id


def test_prices_weights_and_sizes_are_plausible(catalogue: Catalogue) -> None:
    for entry in catalogue.entries:
        assert 0 < entry.used_price_low_cents <= entry.used_price_high_cents <= 4 * entry.used_price_low_cents
        assert 100 <= entry.weight_g <= 250_000, entry.id
        assert all(30 <= side <= 3_000 for side in entry.dimensions.sorted_sides), entry.id
        assert all(word in entry.title.lower() for word in entry.keywords)
    assert catalogue.entry("iphone-12-64gb").weight_g < 1_000
    assert catalogue.entry("yamaha-u1").weight_g > 150_000


def test_value_rises_with_condition_and_stays_in_range_for_used_goods(catalogue: Catalogue) -> None:
    by_rank = sorted(Condition, key=lambda c: c.rank)
    for entry in catalogue.entries:
        values = [entry.value_cents(c) for c in by_rank]
        assert values == sorted(values) and values[0] < values[-1], entry.id
        for condition in (Condition.GOOD, Condition.VERY_GOOD):
            assert entry.used_price_low_cents <= entry.value_cents(condition) <= entry.used_price_high_cents


def test_the_file_says_where_its_figures_come_from() -> None:
    document = _document()
    for source in ("eBay", "Facebook Marketplace", "Craigslist", "spec sheets", "not scraped"):
        assert source in document["sources"]
    assert document["compiled_on"] == "2026-11-27"


def test_the_committed_json_is_built_from_the_source() -> None:
    assert build(SOURCE_PATH.read_text(encoding="utf-8")) == CATALOGUE_PATH.read_text(encoding="utf-8")


def _with_first_entry(**changes: Any) -> str:
    document = _document()
    document["entries"][0] |= changes
    return json.dumps(document)


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"shipping": ["parcel_standard", "local_pickup"]}, "shipping"),
        ({"shipping": ["freight", "local_pickup"]}, "shipping"),
        ({"weight_g": 50_000}, "shipping"),
        ({"keywords": ["toaster"]}, "keywords"),
        ({"keywords": ["IPHONE 12"]}, "keywords"),
        ({"used_price_low_cents": 99_999}, "low above high"),
        ({"used_price_low_cents": 180.5}, "integer"),
    ],
)
def test_an_inconsistent_entry_is_refused_with_the_reason(changes: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        parse_catalogue(_with_first_entry(**changes))


def test_duplicate_ids_are_refused() -> None:
    document = _document()
    document["entries"].append(document["entries"][0])
    with pytest.raises(ValidationError, match="unique"):
        parse_catalogue(json.dumps(document))
