"""`make demo` until the market runner exists: listings flow through Kafka into PostgreSQL.

Starts the infrastructure and the services, publishes a handful of listing
commands (one of them invalid on purpose), shows the events coming back on
`listing.events`, searches the result over HTTP, and shuts everything down.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
from rich.console import Console
from rich.table import Table

from haggle import infra, procs
from haggle.client import Publisher, collect, tail
from haggle.contracts import (
    Condition,
    Dimensions,
    Item,
    ShippingMethod,
    ShippingOption,
    shipping_refusal,
    wrap,
)
from haggle.contracts.listing import CreateListing
from haggle.contracts.topics import LISTING_COMMANDS_TOPIC, LISTING_EVENTS_TOPIC, all_topic_partitions

console = Console()

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


async def _publish_and_watch(count: int, market_id: str, bootstrap: str) -> list[tuple[str, str]]:
    commands = [*sample_commands(count, market_id), _bad_command(market_id)]
    async with tail(bootstrap, LISTING_EVENTS_TOPIC.name) as consumer, Publisher(bootstrap) as pub:
        items = [
            (c.listing_id, wrap(c, market_id=market_id, producer="demo", correlation_id=c.listing_id))
            for c in commands
        ]
        await pub.send_many(LISTING_COMMANDS_TOPIC.name, items)
        console.print(f"published {len(items)} CreateListing commands to {LISTING_COMMANDS_TOPIC.name}")
        events = await collect(consumer, len(items), timeout=60)
    seen = [(e.payload.get("listing_id", "?"), e.type) for e in events if e.market_id == market_id]
    for listing_id, event_type in seen:
        console.print(f"  listing.events  {event_type:<22} {listing_id}")
    return seen


def _show_search(market_id: str) -> int:
    url = procs.url_for("listing")
    body = httpx.get(f"{url}/listings", params={"market": market_id, "limit": 50}, timeout=10).json()
    table = Table("listing", "title", "condition", "price", "status", title=f"search: market {market_id}")
    for item in body["listings"]:
        price = f"${item['price_cents'] / 100:,.2f}"
        table.add_row(item["listing_id"], item["title"], item["condition"], price, item["status"])
    console.print(table)
    guitars = httpx.get(f"{url}/listings", params={"market": market_id, "q": "guitar"}, timeout=10).json()
    console.print(f"text search 'guitar' → {[g['listing_id'] for g in guitars['listings']]}")
    return int(body["count"])


def run_demo(count: int) -> None:
    started = time.monotonic()
    endpoints = infra.up(progress=console.print)
    infra.ensure_topics(endpoints.kafka_bootstrap, all_topic_partitions())
    try:
        for name in procs.SERVICES:
            procs.start(name)
            procs.wait_ready(name)
            console.print(f"[green]{name} service ready[/] at {procs.url_for(name)}")
        market_id = f"demo-{uuid.uuid4().hex[:6]}"
        seen = asyncio.run(_publish_and_watch(count, market_id, endpoints.kafka_bootstrap))
        published = sum(1 for _, t in seen if t == "ListingPublished")
        refused = sum(1 for _, t in seen if t == "ListingCommandRefused")
        found = _show_search(market_id)
        console.print(
            f"[bold]{published} published, {refused} refused (the 42 kg sofa by parcel), "
            f"{found} searchable in PostgreSQL[/] in {time.monotonic() - started:.1f}s"
        )
    finally:
        for name in reversed(procs.SERVICES):
            procs.stop(name)
        infra.down(progress=console.print)
        console.print("shut down cleanly")
