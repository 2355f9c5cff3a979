"""The catalogue of second-hand item types a market population draws its goods from.

`catalogue.json` is generated from the hand-written `catalogue_source.psv` by
`python -m haggle.market.build_catalogue`, which adds the shipping methods
computed from `haggle.contracts.goods.CARRIER_LIMITS`. Where the figures come
from: typical used prices (in good to very good condition) as commonly seen on
eBay sold listings, Facebook Marketplace and Craigslist, and weights and
packed sizes from manufacturer spec sheets plus packaging — estimates compiled
by hand, not scraped; the file's `sources` and `compiled_on` fields say so.

Loading validates every entry: prices, sizes, keywords that find the entry's
own title, and shipping methods that are exactly the ones the carrier limits
allow (`sensible_methods`), so a size edited without rebuilding is caught.
"""

from __future__ import annotations

import json
from functools import cache, cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from haggle.contracts.goods import Condition, Dimensions, Item, ShippingMethod, shipping_refusal
from haggle.contracts.types import Id

CATALOGUE_PATH = Path(__file__).with_name("catalogue.json")

PARCEL_TIERS = (ShippingMethod.PARCEL_SMALL, ShippingMethod.PARCEL_STANDARD, ShippingMethod.PARCEL_HEAVY)

# Where a condition sits in an item type's used-price range (low = 0, high = 1).
# The range is quoted for items in good to very good condition; the rest extrapolate.
CONDITION_POSITION: dict[Condition, float] = {
    Condition.NEW: 1.45,
    Condition.LIKE_NEW: 1.15,
    Condition.VERY_GOOD: 0.8,
    Condition.GOOD: 0.35,
    Condition.ACCEPTABLE: -0.35,
    Condition.FOR_PARTS: -1.4,
}
MIN_VALUE_SHARE = 0.1
"""No condition is worth less than this share of the range's low end."""


def sensible_methods(item: Item) -> tuple[ShippingMethod, ...]:
    """The methods a seller would offer: the smallest parcel service that takes it, else freight; pickup."""
    for tier in PARCEL_TIERS:
        if shipping_refusal(tier, item) is None:
            return (tier, ShippingMethod.LOCAL_PICKUP)
    if shipping_refusal(ShippingMethod.FREIGHT, item) is None:
        return (ShippingMethod.FREIGHT, ShippingMethod.LOCAL_PICKUP)
    return (ShippingMethod.LOCAL_PICKUP,)


class CatalogueEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: Id
    category: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=5, max_length=120)
    keywords: tuple[str, ...] = Field(min_length=1, max_length=5)
    description: str = Field(min_length=1, max_length=300)
    used_price_low_cents: int = Field(strict=True, gt=0)
    used_price_high_cents: int = Field(strict=True, gt=0)
    weight_g: int = Field(strict=True, gt=0, le=1_000_000)
    dimensions: Dimensions
    shipping: tuple[ShippingMethod, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> CatalogueEntry:
        if self.used_price_low_cents > self.used_price_high_cents:
            raise ValueError(f"{self.id}: used price low above high")
        if min(self.dimensions.sorted_sides) <= 0:
            raise ValueError(f"{self.id}: every side must be positive")
        if not all(word and word == word.lower() and word in self.title.lower() for word in self.keywords):
            raise ValueError(f"{self.id}: keywords must be lower case and found in the title")
        if self.shipping != sensible_methods(self.item):
            raise ValueError(f"{self.id}: shipping {self.shipping} is not {sensible_methods(self.item)}")
        return self

    @property
    def item(self) -> Item:
        return Item(weight_g=self.weight_g, dimensions=self.dimensions)

    @property
    def reference_cents(self) -> int:
        """The middle of the used-price range: the item type's reference price."""
        return (self.used_price_low_cents + self.used_price_high_cents) // 2

    @property
    def freight_or_pickup_only(self) -> bool:
        """True when no parcel service can carry it: freight or local pickup only."""
        return not any(method in PARCEL_TIERS for method in self.shipping)

    def value_cents(self, condition: Condition) -> int:
        """What an item of this type typically sells for in `condition`."""
        low, high = self.used_price_low_cents, self.used_price_high_cents
        value = low + CONDITION_POSITION[condition] * (high - low)
        return max(round(value), round(low * MIN_VALUE_SHARE), 1)


class Catalogue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    sources: str = Field(min_length=20)
    compiled_on: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    currency: str = "USD"
    entries: tuple[CatalogueEntry, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalogue:
        ids = [entry.id for entry in self.entries]
        if len(set(ids)) != len(ids):
            raise ValueError("catalogue ids must be unique")
        return self

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted({entry.category for entry in self.entries}))

    def entry(self, entry_id: str) -> CatalogueEntry:
        return self.by_id[entry_id]

    @cached_property
    def by_id(self) -> dict[str, CatalogueEntry]:
        return {entry.id: entry for entry in self.entries}


def parse_catalogue(text: str) -> Catalogue:
    return Catalogue.model_validate(json.loads(text))


@cache
def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    """The catalogue shipped with haggle, validated; read once per process."""
    return parse_catalogue(path.read_text(encoding="utf-8"))
