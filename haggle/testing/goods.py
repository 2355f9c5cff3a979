"""Ready-made goods for tests and benchmarks."""

from __future__ import annotations

from haggle.contracts import Condition, Dimensions, Item, ShippingMethod, ShippingOption
from haggle.contracts.listing import CreateListing
from haggle.testing.actors import ScriptedAgent


def a_listing(
    listing_id: str, seller: ScriptedAgent, price: int = 20_000, weight_g: int = 3_000
) -> CreateListing:
    """A 45 cm espresso machine that ships as a standard parcel or by local pickup."""
    return CreateListing(
        listing_id=listing_id,
        seller_agent_id=seller.agent_id,
        seller_principal_id=seller.principal_id,
        title="Espresso machine, dual boiler",
        description="Works perfectly; descaled last month.",
        category="kitchen",
        condition=Condition.VERY_GOOD,
        price_cents=price,
        item=Item(weight_g=weight_g, dimensions=Dimensions(length_mm=450, width_mm=350, height_mm=400)),
        shipping=(
            ShippingOption(method=ShippingMethod.PARCEL_STANDARD, cost_cents=1_500),
            ShippingOption(method=ShippingMethod.LOCAL_PICKUP, cost_cents=0),
        ),
    )
