"""Ready-made goods for tests and benchmarks."""

from __future__ import annotations

from haggle.contracts import Condition, Dimensions, Item, ShippingMethod, ShippingOption, shipping_refusal
from haggle.contracts.listing import CreateListing
from haggle_lab.testing.actors import ScriptedAgent


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


SAMPLES = [
    ("Road bike, 56 cm aluminium frame", "bikes", Condition.GOOD, 32_000, 11_000, (1_450, 250, 800)),
    ("Nintendo Switch OLED console", "electronics", Condition.LIKE_NEW, 21_000, 900, (300, 200, 120)),
    ("Three-seat fabric sofa, grey", "furniture", Condition.VERY_GOOD, 25_000, 42_000, (2_100, 900, 850)),
    ("Cast-iron skillet, 30 cm", "kitchen", Condition.GOOD, 2_500, 3_400, (520, 320, 80)),
    ("Fender acoustic guitar with case", "music", Condition.VERY_GOOD, 14_000, 4_500, (1_100, 450, 150)),
    ("Complete Tolkien box set, hardback", "books", Condition.LIKE_NEW, 4_500, 2_600, (260, 180, 160)),
    ("Cordless drill 18 V with two batteries", "tools", Condition.GOOD, 6_000, 2_100, (350, 300, 110)),
    ("Wooden train set, 80 pieces", "toys", Condition.ACCEPTABLE, 3_000, 3_000, (500, 400, 150)),
]


def _shipping(item: Item) -> tuple[ShippingOption, ...]:
    """Local pickup plus the cheapest carrier whose limits fit the item."""
    options = [ShippingOption(method=ShippingMethod.LOCAL_PICKUP, cost_cents=0)]
    for method, cost in CARRIER_COSTS:
        if shipping_refusal(method, item) is None:
            options.append(ShippingOption(method=method, cost_cents=cost))
            break
    return tuple(options)


CARRIER_COSTS = (
    (ShippingMethod.PARCEL_SMALL, 599),
    (ShippingMethod.PARCEL_STANDARD, 1_299),
    (ShippingMethod.PARCEL_HEAVY, 3_499),
    (ShippingMethod.FREIGHT, 8_900),
)


def sample_commands(count: int, market_id: str) -> list[CreateListing]:
    commands = []
    for i in range(count):
        title, category, condition, price, weight, (length, width, height) = SAMPLES[i % len(SAMPLES)]
        dims = Dimensions(length_mm=length, width_mm=width, height_mm=height)
        item = Item(weight_g=weight, dimensions=dims)
        commands.append(
            CreateListing(
                listing_id=f"{market_id}-L{i:03d}",
                seller_agent_id=f"seller-{i % 3}",
                seller_principal_id=f"principal-{i % 3}",
                title=title,
                description=f"{title}. Collected from a home in good order; see photos.",
                category=category,
                condition=condition,
                price_cents=price,
                item=item,
                shipping=_shipping(item),
            )
        )
    return commands


def _bad_command(market_id: str) -> CreateListing:
    """A 42 kg sofa offered by a 30 kg parcel service: the listing service must refuse it."""
    sofa = sample_commands(3, market_id)[2]
    bad_shipping = (ShippingOption(method=ShippingMethod.PARCEL_STANDARD, cost_cents=999),)
    return sofa.model_copy(update={"listing_id": f"{market_id}-BAD", "shipping": bad_shipping})
