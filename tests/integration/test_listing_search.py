"""Listing search over HTTP and through `haggle listings search`, against the running service.

One catalogue per module, in its own market, built through Kafka like any other listing:
six active listings, one reserved by a deal, one withdrawn by its seller.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from haggle.cli import app
from haggle.client import Publisher
from haggle.contracts import wrap
from haggle.contracts.goods import ShippingMethod
from haggle.contracts.listing import WithdrawListing
from haggle.contracts.negotiation import DealAgreed, Party
from haggle.contracts.topics import LISTING_COMMANDS_TOPIC, LISTING_EVENTS_TOPIC, NEGOTIATION_EVENTS_TOPIC
from tests.integration.listing_support import create_command, envelope, listing_service, paused, watching

pytestmark = pytest.mark.timeout(180)

CATALOGUE = {
    # key: (title, category, condition, price_cents)
    "guitar": ("Fender acoustic guitar with case", "music", "very_good", 14_000),
    "skillet": ("Cast-iron skillet, 30 cm", "kitchen", "good", 2_500),
    "bike": ("Road bike, 56 cm aluminium frame", "bikes", "good", 32_000),
    "switch": ("Nintendo Switch OLED console", "electronics", "like_new", 21_000),
    "drill": ("Cordless drill 18 V with two batteries", "tools", "acceptable", 6_000),
    "books": ("Complete Tolkien box set, hardback", "books", "new", 4_500),
    "ukulele": ("Soprano ukulele with gig bag", "music", "good", 4_000),
    "amp": ("Guitar amplifier, 20 W", "music", "for_parts", 3_000),
}
ACTIVE = {"guitar", "skillet", "bike", "switch", "drill", "books"}
DESCRIPTIONS = {"skillet": "Heavy enough to hold a guitar stand down."}


@pytest.fixture(scope="module")
def service(endpoints: object) -> Iterator[str]:
    with paused("settlement"), listing_service() as url:
        yield url


@pytest.fixture(scope="module")
async def market(bootstrap: str, service: str) -> str:
    """The catalogue's market id, once every listing in it has reached its state."""
    market_id = f"search-{uuid.uuid4().hex[:8]}"
    async with (
        watching(bootstrap, LISTING_EVENTS_TOPIC.name) as watcher,
        Publisher(bootstrap, "listing-search-tests") as pub,
    ):
        creates = [envelope(catalogue_command(market_id, key), market_id) for key in CATALOGUE]
        await pub.send_many(LISTING_COMMANDS_TOPIC.name, [(str(e.payload["listing_id"]), e) for e in creates])
        for env in creates:
            assert (await watcher.outcome(env)).type == "ListingPublished"
        ukulele, amp = lid(market_id, "ukulele"), lid(market_id, "amp")
        reserve = wrap(deal(ukulele), market_id=market_id, producer="negotiation")
        await pub.send(NEGOTIATION_EVENTS_TOPIC.name, ukulele, reserve)
        withdraw = envelope(WithdrawListing(listing_id=amp, seller_agent_id="seller-1"), market_id)
        await pub.send(LISTING_COMMANDS_TOPIC.name, amp, withdraw)
        assert (await watcher.outcome(reserve)).type == "ListingReserved"
        assert (await watcher.outcome(withdraw)).type == "ListingWithdrawn"
    return market_id


@pytest.fixture(scope="module")
async def http(service: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service, timeout=5) as client:
        yield client


def lid(market_id: str, key: str) -> str:
    return f"{market_id}-{key}"


def catalogue_command(market_id: str, key: str) -> Any:
    title, category, condition, price = CATALOGUE[key]
    return create_command(
        lid(market_id, key),
        title=title,
        description=DESCRIPTIONS.get(key, f"{title}. Collected from a smoke-free home."),
        category=category,
        condition=condition,
        price_cents=price,
        shipping=[{"method": "local_pickup", "cost_cents": 0}],
    )


def deal(listing_id: str) -> DealAgreed:
    return DealAgreed(
        deal_id=f"{listing_id}-deal",
        listing_id=listing_id,
        thread_id="T-1",
        buyer_agent_id="buyer-1",
        buyer_principal_id="principal-b",
        seller_agent_id="seller-1",
        seller_principal_id="principal-1",
        price_cents=3_800,
        shipping_method=ShippingMethod.LOCAL_PICKUP,
        shipping_cost_cents=0,
        shipping_paid_by=Party.BUYER,
        accepted_offer_id="O-1",
    )


async def search(http: httpx.AsyncClient, market: str, **params: Any) -> set[str]:
    response = await http.get("/listings", params={"market": market, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["listings"])
    return {item["listing_id"].removeprefix(f"{market}-") for item in body["listings"]}


# HTTP --------------------------------------------------------------------------------------------


async def test_a_market_shows_its_active_listings_only(http: httpx.AsyncClient, market: str) -> None:
    assert await search(http, market) == ACTIVE
    assert await search(http, f"{market}-elsewhere") == set()


@pytest.mark.parametrize(
    "q, found",
    [
        ("guitar", {"guitar", "skillet"}),
        ("Tolkien", {"books"}),
        ("aluminium frame", {"bike"}),
        ("guitar case", {"guitar"}),
        ("guitar -case", {"skillet"}),
        ("batteries OR console", {"drill", "switch"}),
        ("harpsichord", set()),
    ],
)
async def test_text_search_matches_words_in_title_and_description(
    http: httpx.AsyncClient, market: str, q: str, found: set[str]
) -> None:
    assert await search(http, market, q=q) == found


async def test_text_search_ranks_title_matches_above_description_matches(
    http: httpx.AsyncClient, market: str
) -> None:
    response = await http.get("/listings", params={"market": market, "q": "guitar"})
    ranked = [item["listing_id"] for item in response.json()["listings"]]
    assert ranked == [lid(market, "guitar"), lid(market, "skillet")]


@pytest.mark.parametrize(
    "params, found",
    [
        ({"category": "music"}, {"guitar"}),
        ({"category": "kitchen"}, {"skillet"}),
        ({"category": "Music"}, set()),
        ({"min_price": 4_500, "max_price": 21_000}, {"guitar", "switch", "drill", "books"}),
        ({"min_price": 21_001}, {"bike"}),
        ({"max_price": 2_499}, set()),
        ({"min_condition": "very_good"}, {"guitar", "switch", "books"}),
        ({"min_condition": "new"}, {"books"}),
        ({"min_condition": "for_parts"}, ACTIVE),
        ({"status": "reserved"}, {"ukulele"}),
        ({"status": "withdrawn"}, {"amp"}),
        ({"status": "sold"}, set()),
        ({"category": "music", "status": "reserved"}, {"ukulele"}),
        ({"category": "music", "min_condition": "good", "status": "withdrawn"}, set()),
        ({"q": "guitar", "status": "withdrawn"}, {"amp"}),
        ({"min_condition": "good", "max_price": 10_000, "category": "kitchen"}, {"skillet"}),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else None,
)
async def test_filters_combine(
    http: httpx.AsyncClient, market: str, params: dict[str, Any], found: set[str]
) -> None:
    assert await search(http, market, **params) == found


async def test_results_carry_the_facts_status_and_deal(http: httpx.AsyncClient, market: str) -> None:
    response = await http.get("/listings", params={"market": market, "status": "reserved"})
    (item,) = response.json()["listings"]
    assert item["status"] == "reserved" and item["deal_id"] == f"{lid(market, 'ukulele')}-deal"
    assert item["condition"] == "good" and item["price_cents"] == 4_000 and item["currency"] == "USD"
    assert item["item"]["weight_g"] == 4_500 and item["shipping"] == [
        {"method": "local_pickup", "cost_cents": 0}
    ]


async def test_pages_do_not_overlap_and_cover_everything(http: httpx.AsyncClient, market: str) -> None:
    pages = [await search(http, market, limit=4, offset=offset) for offset in (0, 4, 8)]
    assert [len(p) for p in pages] == [4, 2, 0]
    assert pages[0] | pages[1] == ACTIVE and not pages[0] & pages[1]


@pytest.mark.parametrize(
    "params",
    [
        {"min_condition": "mint"},
        {"status": "lost"},
        {"limit": 0},
        {"limit": 201},
        {"min_price": -1},
        {"max_price": "ten"},
        {"q": "x" * 201},
        {"colour": "red"},
    ],
    ids=lambda p: next(iter(p)),
)
async def test_an_invalid_query_is_a_400_with_the_reason(
    http: httpx.AsyncClient, market: str, params: dict[str, Any]
) -> None:
    response = await http.get("/listings", params={"market": market, **params})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_query"
    assert body["detail"][0]["loc"] == [next(iter(params))]


# CLI ---------------------------------------------------------------------------------------------


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["listings", "search", *args])


def test_cli_text_search_as_json(market: str) -> None:
    result = cli("guitar", "--market", market, "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert [item["listing_id"] for item in body["listings"]] == [
        lid(market, "guitar"),
        lid(market, "skillet"),
    ]


def test_cli_filters_as_json(market: str) -> None:
    result = cli("--market", market, "--min-condition", "very_good", "--max-price", "20000", "--json")
    assert result.exit_code == 0, result.output
    found = {item["listing_id"] for item in json.loads(result.output)["listings"]}
    assert found == {lid(market, "guitar"), lid(market, "books")}


def test_cli_prints_a_table(market: str) -> None:
    result = cli("--market", market, "--category", "kitchen")
    assert result.exit_code == 0, result.output
    assert "Cast-iron" in result.output and "$25.00" in result.output and "kitchen" in result.output
    assert "1 listing(s)" in result.output


def test_cli_reports_a_refused_query(market: str) -> None:
    result = cli("--market", market, "--min-condition", "mint")
    assert result.exit_code == 1
    assert "search refused" in result.output and "min_condition" in result.output


def test_cli_reports_an_unreachable_service() -> None:
    result = cli("--url", "http://127.0.0.1:9", "anything")
    assert result.exit_code == 1
    assert "listing service not reachable" in result.output
