"""The goods of a market population: items for sale and wants, with their private figures.

The private figures (a seller's floor, an item's true condition, a buyer's
max price) never leave the principal's agent; the runner keeps them only to
measure the market afterwards.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from haggle.contracts.goods import Condition, Dimensions, Item, ShippingMethod, ShippingOption
from haggle.contracts.types import Id

# Rough 2026 US retail rates: (base cents, cents per started kilogram).
SHIPPING_RATES: dict[ShippingMethod, tuple[int, int]] = {
    ShippingMethod.PARCEL_SMALL: (550, 150),
    ShippingMethod.PARCEL_STANDARD: (1_100, 70),
    ShippingMethod.PARCEL_HEAVY: (3_000, 90),
    ShippingMethod.FREIGHT: (15_000, 20),
    ShippingMethod.LOCAL_PICKUP: (0, 0),
}


def shipping_cost_cents(method: ShippingMethod, weight_g: int) -> int:
    """What the simulated carrier charges to move `weight_g` by `method`; pickup is free."""
    base, per_kg = SHIPPING_RATES[method]
    return base + per_kg * -(-weight_g // 1_000)


class SaleItem(BaseModel):
    """One listing-to-be. `condition` is what the listing says; `true_condition` what is in the box."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: Id
    seller_id: Id
    catalogue_id: Id
    title: str = Field(min_length=5, max_length=120)
    description: str = Field(max_length=300)
    category: str = Field(min_length=1, max_length=64)
    condition: Condition
    true_condition: Condition
    asking_price_cents: int = Field(strict=True, gt=0)
    floor_cents: int = Field(strict=True, gt=0, description="private: the least the seller nets")
    reference_cents: int = Field(strict=True, gt=0, description="catalogue value at the listed condition")
    weight_g: int = Field(strict=True, gt=0)
    dimensions: Dimensions
    shipping: tuple[ShippingOption, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _sane(self) -> SaleItem:
        if self.floor_cents > self.asking_price_cents:
            raise ValueError(f"{self.id}: floor above asking price")
        if self.true_condition.rank > self.condition.rank:
            raise ValueError(f"{self.id}: nobody lists an item worse than it is")
        return self

    @property
    def item(self) -> Item:
        return Item(weight_g=self.weight_g, dimensions=self.dimensions)

    @property
    def misdescribed(self) -> bool:
        return self.true_condition is not self.condition

    @property
    def cheapest_shipping_cents(self) -> int:
        return min(option.cost_cents for option in self.shipping)


class WantSpec(BaseModel):
    """Something a principal wants to buy; `max_price_cents` is private and includes shipping."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: Id
    buyer_id: Id
    catalogue_id: Id = Field(description="the item type it was drawn for; matching uses category + keywords")
    category: str = Field(min_length=1, max_length=64)
    keywords: tuple[str, ...] = Field(min_length=1, max_length=20)
    min_condition: Condition
    max_price_cents: int = Field(strict=True, gt=0)

    def matches(self, item: SaleItem) -> bool:
        """The same rule as the agents' `Want.matches`: same category, every keyword in the title."""
        lowered = item.title.lower()
        return item.category == self.category and all(word in lowered for word in self.keywords)

    def accepts(self, item: SaleItem) -> bool:
        """A buyer's agent would negotiate for it: it matches and is LISTED at least as good as required."""
        return self.matches(item) and item.condition.at_least(self.min_condition)
