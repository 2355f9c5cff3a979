"""What an item is: its condition, its size, and the carriers that can move it.

Condition is a closed enum with written definitions; free text in a listing
never overrides it. Shipping methods carry their carrier limits so an
infeasible term (a 40 kg sofa by a 30 kg parcel service) is refused when it is
offered, not discovered at the depot.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from haggle.contracts.types import Cents, Grams, Millimetres


class Condition(StrEnum):
    NEW = "new"
    LIKE_NEW = "like_new"
    VERY_GOOD = "very_good"
    GOOD = "good"
    ACCEPTABLE = "acceptable"
    FOR_PARTS = "for_parts"

    @property
    def rank(self) -> int:
        """Higher is better: new = 5, for_parts = 0."""
        return len(CONDITION_DEFINITIONS) - 1 - list(CONDITION_DEFINITIONS).index(self)

    def at_least(self, other: Condition) -> bool:
        return self.rank >= other.rank


CONDITION_DEFINITIONS: dict[Condition, str] = {
    Condition.NEW: "Unused, unopened, in the original packaging.",
    Condition.LIKE_NEW: "Used briefly; no visible wear; complete with all accessories.",
    Condition.VERY_GOOD: "Light signs of use, fully working, nothing missing.",
    Condition.GOOD: "Visible wear such as scratches or scuffs; fully working.",
    Condition.ACCEPTABLE: "Heavy wear or cosmetic damage, or missing non-essential parts; works.",
    Condition.FOR_PARTS: "Does not work as intended; sold for parts or repair.",
}


class Dimensions(BaseModel):
    """Outer packed size of one item, in millimetres."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    length_mm: Millimetres
    width_mm: Millimetres
    height_mm: Millimetres

    @property
    def sorted_sides(self) -> tuple[int, int, int]:
        a, b, c = sorted((self.length_mm, self.width_mm, self.height_mm), reverse=True)
        return a, b, c

    @property
    def longest_mm(self) -> int:
        return self.sorted_sides[0]

    @property
    def length_plus_girth_mm(self) -> int:
        longest, mid, short = self.sorted_sides
        return longest + 2 * (mid + short)


class Item(BaseModel):
    """The physical facts of an item: what carriers care about."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    weight_g: Grams
    dimensions: Dimensions


class ShippingMethod(StrEnum):
    PARCEL_SMALL = "parcel_small"
    PARCEL_STANDARD = "parcel_standard"
    PARCEL_HEAVY = "parcel_heavy"
    FREIGHT = "freight"
    LOCAL_PICKUP = "local_pickup"


@dataclass(frozen=True, slots=True)
class CarrierLimits:
    max_weight_g: int | None
    max_length_mm: int | None
    max_length_plus_girth_mm: int | None
    local_pickup: bool = False

    def refusal(self, item: Item) -> str | None:
        """Why this carrier cannot take the item, or None when it can."""
        if self.max_weight_g is not None and item.weight_g > self.max_weight_g:
            return f"weight {item.weight_g} g over the {self.max_weight_g} g limit"
        dims = item.dimensions
        if self.max_length_mm is not None and dims.longest_mm > self.max_length_mm:
            return f"length {dims.longest_mm} mm over the {self.max_length_mm} mm limit"
        girth_cap = self.max_length_plus_girth_mm
        if girth_cap is not None and dims.length_plus_girth_mm > girth_cap:
            return f"length+girth {dims.length_plus_girth_mm} mm over the {girth_cap} mm limit"
        return None


CARRIER_LIMITS: dict[ShippingMethod, CarrierLimits] = {
    # Typical small-parcel service (postal small parcel).
    ShippingMethod.PARCEL_SMALL: CarrierLimits(2_000, 600, 900),
    # Typical national parcel service (30 kg, 120 cm, 300 cm length+girth).
    ShippingMethod.PARCEL_STANDARD: CarrierLimits(30_000, 1_200, 3_000),
    # Express heavy parcel (70 kg, 274 cm, 400 cm length+girth, as UPS/FedEx ground).
    ShippingMethod.PARCEL_HEAVY: CarrierLimits(70_000, 2_740, 4_000),
    # Pallet freight: one tonne, six metres, no girth rule.
    ShippingMethod.FREIGHT: CarrierLimits(1_000_000, 6_000, None),
    ShippingMethod.LOCAL_PICKUP: CarrierLimits(None, None, None, local_pickup=True),
}


def shipping_refusal(method: ShippingMethod, item: Item) -> str | None:
    return CARRIER_LIMITS[method].refusal(item)


class ShippingOption(BaseModel):
    """A shipping method the seller offers for one listing, and what it costs."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    method: ShippingMethod
    cost_cents: Cents = Field(description="what the carrier charges; 0 for local pickup")
