"""The listing service over real Kafka and PostgreSQL, running as its own process.

Commands go in on listing.commands; answers come back on listing.events. "Nothing else
happened" is checked without sleeping: a later command on the same key (so the same
partition, handled in order) acts as a marker, or the inbox shows the message was handled
and the outbox shows it caused nothing.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from haggle.client import Publisher
from haggle.contracts import Envelope, wrap
from haggle.contracts.agents import Role
from haggle.contracts.listing import (
    ListingCommandRefused,
    ListingRefusal,
    UpdateListingPrice,
    WithdrawListing,
)
from haggle.contracts.topics import LISTING_COMMANDS_TOPIC, LISTING_EVENTS_TOPIC
from haggle.contracts.types import MAX_PRICE_CENTS
from haggle_lab.testing.actors import ScriptedAgent
from tests.integration.listing_support import (
    Watcher,
    create_command,
    envelope,
    eventually,
    listing_service,
    raw_envelope,
    watching,
)

pytestmark = pytest.mark.timeout(180)

COMMANDS = LISTING_COMMANDS_TOPIC.name


@pytest.fixture(scope="module")
def service(endpoints: object) -> Iterator[str]:
    with listing_service() as url:
        yield url


@pytest.fixture(scope="module")
async def watcher(bootstrap: str, service: str) -> AsyncIterator[Watcher]:
    async with watching(bootstrap, LISTING_EVENTS_TOPIC.name, LISTING_COMMANDS_TOPIC.dlq) as found:
        yield found


@pytest.fixture(scope="module")
async def http(service: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service, timeout=5) as client:
        yield client


@pytest.fixture(scope="module")
async def publisher(bootstrap: str) -> AsyncIterator[Publisher]:
    async with Publisher(bootstrap, "listing-tests") as pub:
        yield pub


@pytest.fixture(scope="module")
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    yield pool
    await pool.close()


async def send(publisher: Publisher, env: Envelope, key: str | None = None) -> Envelope:
    await publisher.send(COMMANDS, key or str(env.payload.get("listing_id") or "none"), env)
    return env


async def row(db: asyncpg.Pool, listing_id: str) -> dict[str, Any] | None:
    found = await db.fetchrow(
        "SELECT market_id, status, deal_id, price_cents, title FROM listing.listings WHERE listing_id = $1",
        listing_id,
    )
    return dict(found) if found else None


async def refused(watcher: Watcher, env: Envelope) -> ListingCommandRefused:
    answer = await watcher.outcome(env)
    assert answer.type == "ListingCommandRefused", answer
    return ListingCommandRefused.model_validate(answer.payload)


async def published(
    publisher: Publisher, watcher: Watcher, market_id: str, listing_id: str, **kw: Any
) -> None:
    env = await send(publisher, envelope(create_command(listing_id, **kw), market_id))
    assert (await watcher.outcome(env)).type == "ListingPublished"


async def marker(publisher: Publisher, watcher: Watcher, market_id: str, listing_id: str) -> None:
    """A command that changes nothing, on the same key: once it is answered, all before it were too."""
    env = await send(
        publisher, envelope(WithdrawListing(listing_id=listing_id, seller_agent_id="marker"), market_id)
    )
    assert (await refused(watcher, env)).reason in (ListingRefusal.NOT_OWNER, ListingRefusal.UNKNOWN_LISTING)


async def metric(http: httpx.AsyncClient, name: str, **labels: str) -> float:
    text = (await http.get("/metrics")).text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and line.split("}")[0].count('="') == len(labels):
            got = ",".join(sorted(line[len(name) + 1 : line.index("}")].split(",")))
            if got == want:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_handled_command_is_timed_from_the_broker_when_read_and_when_started(
    publisher: Publisher, watcher: Watcher, http: httpx.AsyncClient, market_id: str
) -> None:
    """The subscriber hands its records to the consumer as read (no FastStream decoding), and each
    one's age is observed twice: when its batch came back, and when its handler began."""
    labels = {"service": "listing", "topic": LISTING_COMMANDS_TOPIC.name}
    name = "haggle_record_age_seconds_count"
    before = {stage: await metric(http, name, **labels, stage=stage) for stage in ("read", "started")}

    await published(publisher, watcher, market_id, f"{market_id}-aged")

    for stage, count in before.items():
        assert await metric(http, name, **labels, stage=stage) >= count + 1, stage


# Create, exactly once ----------------------------------------------------------------------------


async def test_a_valid_create_publishes_once_and_is_searchable(
    publisher: Publisher, watcher: Watcher, db: asyncpg.Pool, http: httpx.AsyncClient, market_id: str
) -> None:
    listing_id = f"{market_id}-L1"
    cmd = create_command(listing_id)
    env = await send(publisher, envelope(cmd, market_id))
    answer = await watcher.outcome(env)
    assert answer.type == "ListingPublished"
    assert (
        answer.market_id == market_id and answer.correlation_id == listing_id and answer.producer == "listing"
    )
    assert {k: v for k, v in answer.payload.items() if k != "type"} == cmd.model_dump(
        mode="json", exclude={"type"}
    )
    assert await row(db, listing_id) == {
        "market_id": market_id,
        "status": "active",
        "deal_id": None,
        "price_cents": 14_000,
        "title": cmd.title,
    }
    found = (await http.get("/listings", params={"market": market_id})).json()
    assert [item["listing_id"] for item in found["listings"]] == [listing_id]
    await marker(publisher, watcher, market_id, listing_id)
    assert len(watcher.of(listing_id, "ListingPublished")) == 1


async def test_the_same_command_twice_makes_one_listing(
    publisher: Publisher, watcher: Watcher, db: asyncpg.Pool, http: httpx.AsyncClient, market_id: str
) -> None:
    listing_id = f"{market_id}-L1"
    duplicates_before = await metric(http, "haggle_duplicates_total", service="listing", topic=COMMANDS)
    env = envelope(create_command(listing_id), market_id)
    await send(publisher, env)
    await send(publisher, env)
    await marker(publisher, watcher, market_id, listing_id)
    assert len(watcher.of(listing_id, "ListingPublished")) == 1
    assert len(watcher.caused_by(env)) == 1
    assert await db.fetchval("SELECT count(*) FROM listing.listings WHERE market_id = $1", market_id) == 1
    assert (
        await metric(http, "haggle_duplicates_total", service="listing", topic=COMMANDS)
        >= duplicates_before + 1
    )


async def test_the_same_body_under_a_new_event_id_changes_nothing(
    publisher: Publisher, watcher: Watcher, db: asyncpg.Pool, market_id: str
) -> None:
    listing_id = f"{market_id}-L1"
    await published(publisher, watcher, market_id, listing_id)
    retry = await send(publisher, envelope(create_command(listing_id), market_id))
    await marker(publisher, watcher, market_id, listing_id)
    assert watcher.caused_by(retry) == []
    assert await db.fetchval("SELECT 1 FROM listing.inbox WHERE event_id = $1", retry.event_id) == 1
    assert len(watcher.of(listing_id, "ListingPublished")) == 1


async def test_the_same_listing_id_with_another_body_is_refused(
    publisher: Publisher, watcher: Watcher, db: asyncpg.Pool, market_id: str
) -> None:
    listing_id = f"{market_id}-L1"
    await published(publisher, watcher, market_id, listing_id)
    other = await send(publisher, envelope(create_command(listing_id, price_cents=1), market_id))
    refusal = await refused(watcher, other)
    assert refusal.reason is ListingRefusal.LISTING_EXISTS
    assert refusal.listing_id == listing_id and refusal.command_event_id == str(other.event_id)
    assert (await row(db, listing_id) or {})["price_cents"] == 14_000


# One refusal per reason --------------------------------------------------------------------------


def body(listing_id: str, **changes: Any) -> dict[str, Any]:
    """A create command's JSON with raw changes that may break its contract."""
    return {**create_command("placeholder").model_dump(mode="json"), "listing_id": listing_id, **changes}


SOFA = {"weight_g": 40_000, "dimensions": {"length_mm": 2_100, "width_mm": 900, "height_mm": 850}}
CREATE_REFUSALS: list[tuple[str, dict[str, Any], ListingRefusal]] = [
    ("title too short", {"title": "Ba"}, ListingRefusal.TITLE_LENGTH),
    ("title beyond the contract", {"title": "t" * 2_001}, ListingRefusal.TITLE_LENGTH),
    ("description too long", {"description": "d" * 5_001}, ListingRefusal.DESCRIPTION_LENGTH),
    ("zero price", {"price_cents": 0}, ListingRefusal.INVALID_PRICE),
    ("negative price", {"price_cents": -500}, ListingRefusal.INVALID_PRICE),
    ("price above the maximum", {"price_cents": MAX_PRICE_CENTS + 1}, ListingRefusal.INVALID_PRICE),
    ("float price", {"price_cents": 140.5}, ListingRefusal.INVALID_PRICE),
    ("condition not in the enum", {"condition": "mint"}, ListingRefusal.INVALID_CONDITION),
    ("zero weight", {"item": {**body("x")["item"], "weight_g": 0}}, ListingRefusal.IMPLAUSIBLE_WEIGHT),
    ("float weight", {"item": {**body("x")["item"], "weight_g": 4.5}}, ListingRefusal.IMPLAUSIBLE_WEIGHT),
    (
        "zero side",
        {"item": {"weight_g": 10, "dimensions": {"length_mm": 0, "width_mm": 1, "height_mm": 1}}},
        ListingRefusal.IMPLAUSIBLE_SIZE,
    ),
    ("no shipping method", {"shipping": []}, ListingRefusal.NO_SHIPPING_METHOD),
    (
        "duplicate method",
        {"shipping": [{"method": "local_pickup", "cost_cents": 0}] * 2},
        ListingRefusal.DUPLICATE_SHIPPING_METHOD,
    ),
    (
        "40 kg sofa by 30 kg parcel",
        {"item": SOFA, "shipping": [{"method": "parcel_standard", "cost_cents": 1_299}]},
        ListingRefusal.SHIPPING_INFEASIBLE,
    ),
    (
        "negative shipping cost",
        {"shipping": [{"method": "parcel_standard", "cost_cents": -1}]},
        ListingRefusal.INVALID_SHIPPING_COST,
    ),
    (
        "float shipping cost",
        {"shipping": [{"method": "parcel_standard", "cost_cents": 12.99}]},
        ListingRefusal.INVALID_SHIPPING_COST,
    ),
    ("missing field", {"category": None}, ListingRefusal.INVALID_PAYLOAD),
    ("NUL in the title", {"title": "Guitar\x00 with case"}, ListingRefusal.INVALID_PAYLOAD),
]


@pytest.mark.parametrize(
    "changes, reason", [(c, r) for _, c, r in CREATE_REFUSALS], ids=[n for n, _, _ in CREATE_REFUSALS]
)
async def test_an_invalid_create_is_refused_with_its_reason(
    publisher: Publisher,
    watcher: Watcher,
    db: asyncpg.Pool,
    market_id: str,
    changes: dict[str, Any],
    reason: ListingRefusal,
) -> None:
    listing_id = f"{market_id}-bad"
    env = await send(publisher, raw_envelope(market_id, body(listing_id, **changes)))
    refusal = await refused(watcher, env)
    assert refusal.reason is reason, refusal.detail
    assert refusal.listing_id == listing_id and refusal.command_type == "CreateListing"
    assert await row(db, listing_id) is None
    stored = await db.fetchval(
        "SELECT reason FROM listing.listing_refusals WHERE event_id = $1", env.event_id
    )
    assert stored == reason.value


async def test_an_unknown_command_type_is_refused_without_a_metric_series_of_its_own(
    publisher: Publisher, watcher: Watcher, http: httpx.AsyncClient, market_id: str
) -> None:
    odd_type = f"Steal{market_id.replace('-', '')}"
    env = await send(publisher, raw_envelope(market_id, {"type": odd_type, "listing_id": f"{market_id}-x"}))
    refusal = await refused(watcher, env)
    assert refusal.reason is ListingRefusal.INVALID_PAYLOAD and refusal.command_type == odd_type
    assert odd_type not in (await http.get("/metrics")).text


async def test_an_invalid_listing_id_with_a_nul_is_refused_not_dead_lettered(
    publisher: Publisher, watcher: Watcher, market_id: str
) -> None:
    env = await send(publisher, raw_envelope(market_id, body(f"{market_id}\x00evil")), key=f"{market_id}-nul")
    refusal = await refused(watcher, env)
    assert refusal.reason is ListingRefusal.INVALID_PAYLOAD
    assert "\x00" not in refusal.listing_id and refusal.listing_id.startswith(market_id)


async def test_a_price_update_for_an_unknown_listing_is_refused(
    publisher: Publisher, watcher: Watcher, market_id: str
) -> None:
    cmd = UpdateListingPrice(listing_id=f"{market_id}-ghost", seller_agent_id="seller-1", price_cents=100)
    refusal = await refused(watcher, await send(publisher, envelope(cmd, market_id)))
    assert refusal.reason is ListingRefusal.UNKNOWN_LISTING


async def test_a_withdrawal_by_someone_else_is_refused(
    publisher: Publisher, watcher: Watcher, db: asyncpg.Pool, market_id: str
) -> None:
    listing_id = f"{market_id}-L1"
    await published(publisher, watcher, market_id, listing_id)
    cmd = WithdrawListing(listing_id=listing_id, seller_agent_id="seller-2")
    refusal = await refused(watcher, await send(publisher, envelope(cmd, market_id)))
    assert refusal.reason is ListingRefusal.NOT_OWNER
    assert (await row(db, listing_id) or {})["status"] == "active"


async def test_withdrawing_twice_is_refused_as_not_active(
    publisher: Publisher, watcher: Watcher, market_id: str
) -> None:
    listing_id = f"{market_id}-L1"
    await published(publisher, watcher, market_id, listing_id)
    first = await send(
        publisher, envelope(WithdrawListing(listing_id=listing_id, seller_agent_id="seller-1"), market_id)
    )
    assert (await watcher.outcome(first)).type == "ListingWithdrawn"
    again = await send(
        publisher, envelope(WithdrawListing(listing_id=listing_id, seller_agent_id="seller-1"), market_id)
    )
    assert (await refused(watcher, again)).reason is ListingRefusal.LISTING_NOT_ACTIVE


def test_every_refusal_reason_has_a_service_test() -> None:
    covered = {reason for _, _, reason in CREATE_REFUSALS}
    covered |= {ListingRefusal.LISTING_EXISTS, ListingRefusal.UNKNOWN_LISTING, ListingRefusal.NOT_OWNER}
    covered |= {ListingRefusal.LISTING_NOT_ACTIVE}
    # Authentication: tested below (unsigned, unregistered agent, replayed seq).
    covered |= {ListingRefusal.BAD_SIGNATURE, ListingRefusal.UNKNOWN_AGENT, ListingRefusal.REPLAYED_SEQ}
    assert covered == set(ListingRefusal)


@pytest.mark.parametrize("price", [0, 12.5])
async def test_an_invalid_price_update_is_refused(
    publisher: Publisher, watcher: Watcher, db: asyncpg.Pool, market_id: str, price: float
) -> None:
    listing_id = f"{market_id}-L1"
    await published(publisher, watcher, market_id, listing_id)
    payload = {"type": "UpdateListingPrice", "listing_id": listing_id, "seller_agent_id": "seller-1"}
    refusal = await refused(
        watcher, await send(publisher, raw_envelope(market_id, {**payload, "price_cents": price}))
    )
    assert refusal.reason is ListingRefusal.INVALID_PRICE
    assert (await row(db, listing_id) or {})["price_cents"] == 14_000


# Seller flows ------------------------------------------------------------------------------------


async def test_update_price_then_withdraw(
    publisher: Publisher, watcher: Watcher, db: asyncpg.Pool, http: httpx.AsyncClient, market_id: str
) -> None:
    listing_id = f"{market_id}-L1"
    await published(publisher, watcher, market_id, listing_id)
    update = envelope(
        UpdateListingPrice(listing_id=listing_id, seller_agent_id="seller-1", price_cents=12_500), market_id
    )
    answer = await watcher.outcome(await send(publisher, update))
    assert answer.type == "ListingPriceUpdated"
    assert (answer.payload["price_cents"], answer.payload["previous_price_cents"]) == (12_500, 14_000)
    assert (await row(db, listing_id) or {})["price_cents"] == 12_500
    hits = (await http.get("/listings", params={"market": market_id})).json()["listings"]
    assert [h["price_cents"] for h in hits] == [12_500]

    withdraw = envelope(WithdrawListing(listing_id=listing_id, seller_agent_id="seller-1"), market_id)
    answer = await watcher.outcome(await send(publisher, withdraw))
    assert answer.type == "ListingWithdrawn" and answer.payload["reason"] == "withdrawn by seller"
    assert (await row(db, listing_id) or {})["status"] == "withdrawn"
    assert (await http.get("/listings", params={"market": market_id})).json()["count"] == 0

    again = envelope(
        UpdateListingPrice(listing_id=listing_id, seller_agent_id="seller-1", price_cents=9_000), market_id
    )
    refusal = await refused(watcher, await send(publisher, again))
    assert refusal.reason is ListingRefusal.LISTING_NOT_ACTIVE
    assert (await row(db, listing_id) or {})["price_cents"] == 12_500


# Malformed bytes: the dead-letter topic, and the service carries on ------------------------------


@pytest.mark.parametrize(
    "raw, error",
    [
        (b"not json{", "not JSON"),
        (b'{"type": "CreateListing"}', "not an envelope"),
        (b'{"pad": "' + b"x" * 300_000 + b'"}', "over the 262144 limit"),
    ],
    ids=["not-json", "not-an-envelope", "oversize"],
)
async def test_malformed_bytes_are_dead_lettered_and_consumption_continues(
    publisher: Publisher, watcher: Watcher, db: asyncpg.Pool, market_id: str, raw: bytes, error: str
) -> None:
    key = f"{market_id}-junk"
    await publisher.send_raw(COMMANDS, key, raw)
    listing_id = f"{market_id}-after"
    after = await send(publisher, envelope(create_command(listing_id), market_id), key=key)
    letter = await watcher.dead_letter(key)
    assert letter["reason"] == "malformed" and error in letter["error"]
    assert letter["topic"] == COMMANDS and letter["service"] == "listing"
    assert base64.b64decode(letter["value_b64"]) == raw[:65_536]
    assert (await watcher.outcome(after)).type == "ListingPublished"
    assert (await row(db, listing_id) or {})["status"] == "active"


async def test_the_service_stays_ready_after_bad_input(http: httpx.AsyncClient) -> None:
    response = await http.get("/readyz")
    assert response.status_code == 200 and response.json()["ready"] is True


async def test_answers_come_back_in_command_order(
    publisher: Publisher, watcher: Watcher, market_id: str
) -> None:
    listing_id = f"{market_id}-L1"
    first = await send(publisher, raw_envelope(market_id, body(listing_id, price_cents=0)))
    second = await send(publisher, raw_envelope(market_id, body(listing_id, title="Ba")))
    third = await send(publisher, envelope(create_command(listing_id), market_id))
    answers = await watcher.wait(lambda e: e.payload.get("listing_id") == listing_id, count=3)
    assert [a.causation_id for a in answers] == [str(e.event_id) for e in (first, second, third)]
    assert [a.type for a in answers] == ["ListingCommandRefused", "ListingCommandRefused", "ListingPublished"]


# Who may touch a listing ------------------------------------------------------------------------


async def test_an_unsigned_create_is_refused_as_unauthenticated(
    publisher: Publisher, watcher: Watcher, db: asyncpg.Pool, market_id: str
) -> None:
    listing_id = f"{market_id}-unsigned"
    unsigned = wrap(create_command(listing_id), market_id=market_id, producer="someone")
    refusal = await refused(watcher, await send(publisher, unsigned))
    assert refusal.reason is ListingRefusal.BAD_SIGNATURE
    ghost = ScriptedAgent(f"{market_id}-ghost", f"{market_id}-p-ghost", Role.SELLER, market_id)
    create = create_command(
        listing_id, seller_agent_id=ghost.agent_id, seller_principal_id=ghost.principal_id
    )
    refusal = await refused(watcher, await send(publisher, ghost.sign(create)))
    assert refusal.reason is ListingRefusal.UNKNOWN_AGENT
    assert await row(db, listing_id) is None


async def test_an_agent_lists_its_own_item_but_cannot_withdraw_another_sellers(
    publisher: Publisher, watcher: Watcher, db: asyncpg.Pool, market_id: str
) -> None:
    owner = ScriptedAgent(f"{market_id}-owner", f"{market_id}-p-owner", Role.SELLER, market_id)
    rival = ScriptedAgent(f"{market_id}-rival", f"{market_id}-p-rival", Role.SELLER, market_id)
    for agent in (owner, rival):
        await agent.register(publisher)
    listing_id = f"{market_id}-owned"
    create = create_command(
        listing_id, seller_agent_id=owner.agent_id, seller_principal_id=owner.principal_id
    )

    async def listed() -> Envelope | None:
        answer = await watcher.outcome(await send(publisher, owner.sign(create)))
        return answer if answer.type == "ListingPublished" else None  # retry while agent.events catches up

    await eventually(listed, 30, "the owner's signed listing published")
    forged = rival.sign(WithdrawListing(listing_id=listing_id, seller_agent_id=owner.agent_id))
    assert (await refused(watcher, await send(publisher, forged))).reason is ListingRefusal.NOT_OWNER
    stolen_key = owner.sign(WithdrawListing(listing_id=listing_id, seller_agent_id=owner.agent_id))
    replay = stolen_key.model_copy(update={"event_id": uuid.uuid4()})
    await send(publisher, stolen_key)
    assert (await refused(watcher, await send(publisher, replay))).reason is ListingRefusal.REPLAYED_SEQ
    assert (await row(db, listing_id) or {}).get("status") == "withdrawn"
