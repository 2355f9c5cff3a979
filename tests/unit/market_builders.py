"""Hand-built market goods for the optimum and report tests."""

from __future__ import annotations

from haggle.contracts.goods import Condition, Dimensions, ShippingMethod, ShippingOption
from haggle.market.goods import SaleItem, WantSpec
from haggle.market.population import Population, Principal

SMALL_BOX = Dimensions(length_mm=250, width_mm=200, height_mm=90)


def sale(
    item_id: str,
    seller: str,
    floor: int,
    *,
    title: str = "Sony WH-1000XM4 headphones",
    category: str = "electronics",
    condition: Condition = Condition.VERY_GOOD,
    true_condition: Condition | None = None,
    asking: int | None = None,
    reference: int | None = None,
    shipping: dict[ShippingMethod, int] | None = None,
) -> SaleItem:
    """A listing; prices in cents. Shipping defaults to a free local pickup."""
    options = shipping or {ShippingMethod.LOCAL_PICKUP: 0}
    return SaleItem(
        id=item_id,
        seller_id=seller,
        catalogue_id="test-type",
        title=title,
        description="",
        category=category,
        condition=condition,
        true_condition=true_condition or condition,
        asking_price_cents=asking or floor * 2,
        floor_cents=floor,
        reference_cents=reference or floor,
        weight_g=700,
        dimensions=SMALL_BOX,
        shipping=tuple(ShippingOption(method=m, cost_cents=c) for m, c in options.items()),
    )


def want(
    want_id: str,
    buyer: str,
    max_price: int,
    *,
    keywords: tuple[str, ...] = ("wh-1000xm4",),
    category: str = "electronics",
    min_condition: Condition = Condition.GOOD,
) -> WantSpec:
    return WantSpec(
        id=want_id,
        buyer_id=buyer,
        catalogue_id="test-type",
        category=category,
        keywords=keywords,
        min_condition=min_condition,
        max_price_cents=max_price,
    )


def population(
    variants: dict[str, str], items: list[SaleItem], wants: list[WantSpec], budget: int = 1_000_000
) -> Population:
    """A population of the given principals (id → variant) owning these items and wants."""
    principals = tuple(
        Principal(
            id=pid,
            variant=variant,
            budget_cents=budget,
            auto_approve_limit_cents=budget // 4,
            brain_seed=0,
            items=tuple(i for i in items if i.seller_id == pid),
            wants=tuple(w for w in wants if w.buyer_id == pid),
        )
        for pid, variant in variants.items()
    )
    ordered = tuple(dict.fromkeys(variants.values()))
    return Population(seed=0, variants=ordered, parallel=False, principals=principals)
