"""Bring your own agent: an agent we do not run trades through the gateway, under its mandate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from haggle import procs
from haggle.client import Publisher
from haggle.contracts import AgentKey, signed
from haggle.contracts.agents import AgentRegistered, Role
from haggle.contracts.goods import ShippingMethod
from haggle.contracts.negotiation import AcceptOffer, CounterOffer, OpenNegotiation
from haggle.contracts.topics import NEGOTIATION_COMMANDS
from haggle_lab.testing import mandates as m
from haggle_lab.testing.observe import Observer, of_type
from services.gateway.domain import key_digest
from tests.integration.gateway_support import (
    external_buyer,
    http_client,
    mcp_tools,
    referee_knows,
    request_id,
    until,
)

TOPICS = ("negotiation.commands", "negotiation.events", "agent.decisions", "settlement.events")
BURST = 30


@pytest.fixture(scope="module")
def gateway(running_services: tuple[str, ...]) -> Iterator[str]:
    procs.stop("gateway")  # one left over from an earlier run would run old code
    procs.start(
        "gateway", {"HAGGLE_GATEWAY_REQUESTS_BURST": str(BURST), "HAGGLE_GATEWAY_REQUESTS_PER_SECOND": "10"}
    )
    procs.wait_ready("gateway")
    yield procs.url_for("gateway")
    procs.stop("gateway")
    procs.start("gateway")  # as `services up` runs it, for the tests after these
    procs.wait_ready("gateway")


async def _market(
    pub: Publisher, market_id: str, api_key: str, max_price: int = 26_000, budget: int = 50_000
) -> str:
    seller = m.seller(f"{market_id}-alice", [m.sell_item("bike", asking=30_000, floor=20_000)])
    buyer = external_buyer(f"{market_id}-ext", api_key, max_price=max_price, budget=budget)
    await m.assign(pub, market_id, seller)
    await m.assign(pub, market_id, buyer)
    return f"{market_id}-alice.bike"


async def _listed(tools: Any, listing_id: str, database_url: str) -> None:
    """Until the gateway and the referee both know the listing."""

    async def seen() -> bool:
        found = await tools.call("search_listings", text="bike")
        return not found.get("error") and any(x["listing_id"] == listing_id for x in found["listings"])

    await until(seen, what="the listing in the gateway")
    await referee_knows(database_url, listing_id)


async def _open(tools: Any, listing_id: str, price: int) -> dict[str, Any]:
    async def opened() -> dict[str, Any] | None:
        answer: dict[str, Any] = await tools.call(
            "open_negotiation",
            request_id=request_id(),
            listing_id=listing_id,
            price_cents=price,
            shipping_method="local_pickup",
        )
        return None if answer.get("refused") == "not_admitted" else answer

    result: dict[str, Any] = await until(opened, what="the agent's admission")
    return result


@pytest.mark.usefixtures("gateway")
async def test_an_mcp_agent_negotiates_a_whole_deal_with_one_of_ours(
    bootstrap: str, market_id: str, database_url: str
) -> None:
    api_key = f"key-{market_id}"
    async with Publisher(bootstrap) as pub, Observer(bootstrap, *TOPICS, market_id=market_id) as obs:
        listing_id = await _market(pub, market_id, api_key)
        async with mcp_tools(api_key) as tools:
            await _listed(tools, listing_id, database_url)
            started = time.perf_counter()
            assert (await _open(tools, listing_id, 18_000))["accepted"] is True
            deal = await _haggle(tools, obs, max_price=26_000)
            took = time.perf_counter() - started
            on_platform = _platform_seconds(obs, deal["buyer_agent_id"])
            print(
                f"\nwhole negotiation through MCP: {took:.2f} s at the client,"
                f" {on_platform:.2f} s on the platform,"
                f" {deal['rounds']} rounds"
            )
            assert 20_000 <= deal["price_cents"] <= 26_000
            assert deal["buyer_agent_id"] == f"{market_id}-ext.agent"
            deals = await until(lambda: _deals(tools), what="the deal in my_deals")
            assert deals[0]["deal_id"] == deal["deal_id"]
    decisions = obs.matching(of_type("MoveDecided"), "agent.decisions")
    assert {d.payload["brain"] for d in decisions if d.agent_id == deal["buyer_agent_id"]} == {
        "gateway:test-mcp"
    }


def _platform_seconds(obs: Observer, buyer_agent_id: str) -> float:
    """From the external agent's first signed command to the deal, by the envelopes' own clocks."""
    first = min(
        e.occurred_at for e in obs.matching(lambda e: e.agent_id == buyer_agent_id, "negotiation.commands")
    )
    deal = obs.matching(of_type("DealAgreed"), "negotiation.events")[0].occurred_at
    return (deal - first).total_seconds()


async def _deals(tools: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await tools.call("my_deals"))["deals"]
    return found


async def _haggle(tools: Any, obs: Observer, max_price: int) -> dict[str, Any]:
    """Counter the seller's offers upwards until one is within our max, then accept it."""
    bid = 18_000
    for _ in range(100):
        if deals := obs.matching(of_type("DealAgreed"), "negotiation.events"):
            return deals[0].payload
        answer = await tools.call("my_negotiations")
        if answer.get("refused") == "rate_limited":  # a polling agent pays for its polls too
            await asyncio.sleep(0.3)
            continue
        mine = answer["negotiations"]
        neg = mine[0] if mine else None
        if neg is None or not neg["my_turn"] or not neg["offers"]:
            await asyncio.sleep(0.1)
            continue
        offer = neg["offers"][-1]
        if offer["price_cents"] <= max_price:
            await tools.call(
                "accept", request_id=request_id(), thread_id=neg["thread_id"], offer_id=offer["offer_id"]
            )
        else:
            bid = min(max_price, bid + 2_000)
            await tools.call(
                "counter",
                request_id=request_id(),
                thread_id=neg["thread_id"],
                price_cents=bid,
                shipping_method="local_pickup",
            )
    deal = await obs.wait_for(of_type("DealAgreed"), "negotiation.events", timeout=30)
    return deal[0].payload


def _commands_of(obs: Observer, agent_id: str) -> list[Any]:
    return obs.matching(lambda e: e.agent_id == agent_id, "negotiation.commands")


@pytest.mark.usefixtures("gateway")
async def test_a_hostile_external_agent_is_refused_and_nothing_changes(
    bootstrap: str, market_id: str, database_url: str
) -> None:
    api_key = f"key-{market_id}"
    agent_id = f"{market_id}-ext.agent"
    async with Publisher(bootstrap) as pub, Observer(bootstrap, *TOPICS, market_id=market_id) as obs:
        listing_id = await _market(pub, market_id, api_key, max_price=22_000, budget=25_000)
        async with mcp_tools(api_key) as tools:
            await _listed(tools, listing_id, database_url)
            over = await _open(tools, listing_id, 24_000)  # over the private max
            assert over == {"error": True, "refused": "guard:above_max", "detail": over["detail"]}
            assert "22000" not in over["detail"]  # the refusal does not tell the limit
            opened = await _open(tools, listing_id, 15_000)
            assert opened["accepted"] is True
            neg = await until(lambda: _my_turn(tools), what="the seller's answer")
            same = request_id()
            first = await tools.call(
                "counter",
                request_id=same,
                thread_id=neg["thread_id"],
                price_cents=16_000,
                shipping_method="local_pickup",
            )
            assert first["accepted"] is True
            replay = await tools.call(
                "counter",
                request_id=same,
                thread_id=neg["thread_id"],
                price_cents=16_000,
                shipping_method="local_pickup",
            )
            assert replay["refused"] == "replayed_request"
        await asyncio.sleep(1.0)
        sent = _commands_of(obs, agent_id)
        assert [c.type for c in sent] == ["OpenNegotiation", "CounterOffer"]  # the refusals sent nothing

        async with http_client("not-the-key") as forged:
            answer = await forged.get("/v1/negotiations")
            assert answer.status_code == 401 and answer.json()["refused"] == "unauthorized"
        await _forged_command(pub, market_id, agent_id, neg, obs)
        async with http_client(api_key) as client:
            await _typed_refusals(client, listing_id)
        async with http_client(api_key) as flood:
            # at once: one after another, a loaded machine may serve them slower than the refill
            answers = await asyncio.gather(*(flood.get("/v1/deals") for _ in range(BURST + 30)))
            codes = [a.status_code for a in answers]
            assert codes.count(200) >= 1 and codes.count(429) >= 5
            assert next(a for a in answers if a.status_code == 429).json()["refused"] == "rate_limited"
        await asyncio.sleep(0.5)
        assert [c.type for c in _commands_of(obs, agent_id)] == [
            "OpenNegotiation",
            "CounterOffer",
            "CounterOffer",
        ]
        assert not obs.matching(of_type("DealAgreed"), "negotiation.events")


async def _typed_refusals(client: Any, listing_id: str) -> None:
    def opening(**fields: Any) -> dict[str, Any]:
        return {
            "request_id": request_id(),
            "listing_id": listing_id,
            "price_cents": 15_000,
            "shipping_method": "local_pickup",
            **fields,
        }

    cases = [
        ("/v1/negotiations", opening(price_cents=150.5), "invalid_request"),
        ("/v1/negotiations", opening(listing_id="no-such-listing"), "unknown_listing"),
        ("/v1/negotiations", opening(), "already_negotiating"),
        (
            "/v1/negotiations/no-such-thread/accept",
            {"request_id": request_id(), "offer_id": "x.1"},
            "unknown_negotiation",
        ),
    ]
    for path, body, reason in cases:
        answer = await client.post(path, json=body)
        assert (answer.status_code, answer.json()["refused"]) == (422, reason), path
    assert (await client.post("/v1/negotiations", content=b"{not json")).json()[
        "refused"
    ] == "invalid_request"


async def _my_turn(tools: Any) -> dict[str, Any] | None:
    mine = (await tools.call("my_negotiations"))["negotiations"]
    return mine[0] if mine and mine[0]["my_turn"] and mine[0]["thread_id"] else None


async def _forged_command(
    pub: Publisher, market_id: str, agent_id: str, neg: dict[str, Any], obs: Observer
) -> None:
    """A move in the external agent's name, signed by a key that is not its own: the referee refuses it."""
    forged = signed(
        CounterOffer(
            listing_id=neg["listing_id"],
            thread_id=neg["thread_id"],
            price_cents=29_000,
            shipping_method="local_pickup",
        ),  # type: ignore[arg-type]
        key=AgentKey.generate(),
        agent_id=agent_id,
        seq=10**9,
        market_id=market_id,
        producer="mallory",
    )
    await pub.send(NEGOTIATION_COMMANDS.name, neg["listing_id"], forged)
    refused = await obs.wait_for(
        lambda e: e.type == "ActionRefused" and e.payload["command_event_id"] == str(forged.event_id),
        "negotiation.events",
    )
    assert refused[0].payload["reason"] == "bad_signature"


class SelfSigning:
    """An external agent with its own key: builds commands from the contracts, signs, posts them."""

    def __init__(self, market_id: str, principal_id: str) -> None:
        self.key, self.market_id, self.principal_id = AgentKey.generate(), market_id, principal_id
        self.agent_id, self.seq = f"{principal_id}.agent", 0

    @property
    def brain(self) -> dict[str, Any]:
        return {"kind": "external", "public_key": self.key.public, "label": "own-key"}

    def mandate(self, max_price: int, budget: int) -> Any:
        return m.buyer(
            self.principal_id, [m.want("ride", max_price=max_price)], budget=budget, brain=self.brain
        )

    async def register(self, role: Role, obs: Observer) -> None:
        """Its self-signed registration, once the gateway knows the mandate; until the referee admits it."""
        registration = AgentRegistered(
            agent_id=self.agent_id, principal_id=self.principal_id, role=role, public_key=self.key.public
        )

        async def registered() -> bool:
            return bool((await self.post(self.sign(registration))).status_code == 202)

        await until(registered, what="the gateway to know the mandate")
        await obs.wait_for(lambda e: e.type == "AgentAdmitted" and e.agent_id == self.agent_id, "agent.inbox")

    def sign(self, message: Any, key: AgentKey | None = None) -> Any:
        self.seq += 1
        return signed(
            message,
            key=key or self.key,
            agent_id=self.agent_id,
            seq=self.seq,
            market_id=self.market_id,
            producer="their-agent",
        )

    async def post(self, envelope: Any) -> Any:
        async with httpx.AsyncClient(base_url=procs.url_for("gateway"), timeout=30) as client:
            return await client.post("/v1/signed", content=envelope.model_dump_json())


@pytest.mark.usefixtures("gateway")
async def test_an_agent_with_its_own_key_trades_and_its_forgeries_and_replays_are_refused(
    bootstrap: str, market_id: str, database_url: str
) -> None:
    agent = SelfSigning(market_id, f"{market_id}-own")
    inbox = ("agent.inbox", *TOPICS)
    async with Publisher(bootstrap) as pub, Observer(bootstrap, *inbox, market_id=market_id) as obs:
        seller = m.seller(f"{market_id}-alice", [m.sell_item("bike", asking=30_000, floor=20_000)])
        await m.assign(pub, market_id, seller)
        await m.assign(pub, market_id, agent.mandate(max_price=26_000, budget=50_000))
        listing_id = f"{market_id}-alice.bike"
        await agent.register(Role.BUYER, obs)

        over = OpenNegotiation(
            listing_id=listing_id, price_cents=27_000, shipping_method=ShippingMethod.LOCAL_PICKUP
        )
        refused = await until(lambda: _listing_known(agent, over), what="the listing in the gateway")
        assert refused.json()["refused"] == "guard:above_max"
        await referee_knows(database_url, listing_id)

        opening = agent.sign(
            OpenNegotiation(
                listing_id=listing_id, price_cents=18_000, shipping_method=ShippingMethod.LOCAL_PICKUP
            )
        )
        assert (await agent.post(opening)).status_code == 202
        replayed = await agent.post(opening)
        assert replayed.status_code == 409 and replayed.json()["refused"] == "replayed_request"

        offer = await _seller_offer(obs, agent.agent_id, 1)
        forged = agent.sign(
            AcceptOffer(listing_id=listing_id, thread_id=offer["thread_id"], offer_id=offer["offer_id"]),
            key=AgentKey.generate(),
        )
        answer = await agent.post(forged)
        assert answer.status_code == 401 and answer.json()["refused"] == "bad_signature", answer.text
        elsewhere = agent.sign(  # its own thread, but another listing than the thread's
            AcceptOffer(listing_id=f"{listing_id}x", thread_id=offer["thread_id"], offer_id=offer["offer_id"])
        )
        answer = await agent.post(elsewhere)
        assert answer.status_code == 422 and answer.json()["refused"] == "wrong_listing", answer.text
        counter = CounterOffer(
            listing_id=listing_id,
            thread_id=offer["thread_id"],
            price_cents=26_000,
            shipping_method=ShippingMethod.LOCAL_PICKUP,
        )
        await _until_accepted(agent, counter)
        deal = await _close(agent, obs, listing_id, offer["thread_id"])
    assert 20_000 <= deal["price_cents"] <= 26_000
    sent = [c for c in obs.matching(lambda e: e.agent_id == agent.agent_id, "negotiation.commands")]
    assert [c.type for c in sent][:2] == ["OpenNegotiation", "CounterOffer"]
    assert all(c.producer == "their-agent" for c in sent)  # forwarded as the agent signed them
    assert not any(c.event_id in (forged.event_id, elsewhere.event_id) for c in sent)


@pytest.mark.usefixtures("gateway")
async def test_an_agent_with_its_own_key_lists_its_principals_item_and_a_buyer_of_ours_opens(
    bootstrap: str, market_id: str, database_url: str
) -> None:
    agent = SelfSigning(market_id, f"{market_id}-own")
    mandate = m.seller(
        agent.principal_id, [m.sell_item("bike", asking=30_000, floor=20_000)], brain=agent.brain
    )
    listing_id = f"{agent.principal_id}.bike"
    own = mandate.items[0].to_listing(listing_id, agent.agent_id, agent.principal_id)  # from the contracts
    inbox = ("agent.inbox", "listing.commands", "listing.events", *TOPICS)
    async with Publisher(bootstrap) as pub, Observer(bootstrap, *inbox, market_id=market_id) as obs:
        await m.assign(pub, market_id, mandate)
        await agent.register(Role.SELLER, obs)
        cases = [
            (own.model_copy(update={"price_cents": 19_999}), "guard:below_floor"),
            (own.model_copy(update={"title": "A carbon racing bike"}), "unknown_item"),
            (own.model_copy(update={"listing_id": f"{market_id}-alice.bike"}), "unknown_item"),
        ]
        refused = [agent.sign(listing) for listing, _ in cases]
        for envelope, (_, reason) in zip(refused, cases, strict=True):
            answer = await agent.post(envelope)
            assert (answer.status_code, answer.json()["refused"]) == (422, reason), answer.text
        listing = own.model_copy(update={"price_cents": 28_000})
        sent = await _published(agent, obs, listing)
        replayed = await agent.post(sent)
        assert replayed.status_code == 409 and replayed.json()["refused"] == "replayed_request"

        async def seen() -> bool:  # read, not probed: a probe the gateway accepted would list it twice
            row = await _gateway_row(
                database_url, "SELECT status FROM listings WHERE listing_id = $1", listing_id
            )
            return row is not None and row["status"] == "active"

        await until(seen, what="the gateway to see the listing")
        again = await agent.post(agent.sign(listing))
        assert again.status_code == 422 and again.json()["refused"] == "already_listed"
        await m.assign(pub, market_id, m.buyer(f"{market_id}-bob", [m.want("ride", 29_000)], budget=50_000))
        opened = await obs.wait_for(
            lambda e: e.type == "ThreadOpened" and e.agent_id == agent.agent_id, "agent.inbox", timeout=60
        )
        assert opened[0].payload["listing_id"] == listing_id
    commands = obs.matching(lambda e: e.agent_id == agent.agent_id, "listing.commands")
    assert commands and all(c.producer == "their-agent" for c in commands)  # forwarded as it signed them
    assert not any(c.event_id in {e.event_id for e in refused} for c in commands)
    published = obs.matching(of_type("ListingPublished"), "listing.events")
    assert [(p.payload["listing_id"], p.payload["price_cents"]) for p in published] == [(listing_id, 28_000)]


async def _published(agent: SelfSigning, obs: Observer, listing: Any) -> Any:
    """Post the listing; the listing service may refuse it while it has not read the agent's
    registration yet: then sign it again (a new seq) and post it again. The envelope it published."""

    def outcome_of(envelope: Any) -> Any:
        def match(e: Any) -> bool:
            if e.payload.get("listing_id") != listing.listing_id:
                return False
            if e.type == "ListingCommandRefused":
                return bool(e.payload["command_event_id"] == str(envelope.event_id))
            return bool(e.type == "ListingPublished")

        return match

    for _ in range(20):
        envelope = agent.sign(listing)
        answer = await agent.post(envelope)
        assert answer.status_code == 202, answer.text
        outcome = await obs.wait_for(outcome_of(envelope), "listing.events")
        if outcome[-1].type == "ListingPublished":
            return envelope
        await asyncio.sleep(0.5)
    raise AssertionError("the listing service never took the agent's listing")


async def _until_accepted(agent: SelfSigning, move: Any) -> None:
    """Post a move; while the gateway has not yet read the offer we answer, it is not our turn there."""

    async def posted() -> bool:
        answer = await agent.post(agent.sign(move))
        if answer.status_code == 422 and answer.json()["refused"] == "guard:not_my_turn":
            return False
        assert answer.status_code == 202, answer.text
        return True

    await until(posted, timeout=10, what="the gateway to see the seller's offer")


async def _listing_known(agent: SelfSigning, over: Any) -> Any:
    answer = await agent.post(agent.sign(over))
    return None if answer.json().get("refused") in ("unknown_listing", "not_admitted") else answer


async def _seller_offer(obs: Observer, agent_id: str, count: int) -> dict[str, Any]:
    found = await obs.wait_for(
        lambda e: e.type == "OfferMade" and e.agent_id == agent_id and e.payload["by"] == "seller",
        "agent.inbox",
        count=count,
    )
    payload: dict[str, Any] = found[-1].payload
    return payload


async def _close(agent: SelfSigning, obs: Observer, listing_id: str, thread_id: str) -> dict[str, Any]:
    """Accept the seller's next offer if it is within the max, else hold at the max; until a deal."""
    answered = 1
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not (deals := obs.matching(of_type("DealAgreed"), "negotiation.events")) and loop.time() < deadline:
        offers = obs.matching(
            lambda e: e.type == "OfferMade" and e.agent_id == agent.agent_id and e.payload["by"] == "seller",
            "agent.inbox",
        )
        if len(offers) <= answered:
            await asyncio.sleep(0.05)
            continue
        answered, offer = len(offers), offers[-1].payload
        if offer["price_cents"] <= 26_000:
            move: Any = AcceptOffer(listing_id=listing_id, thread_id=thread_id, offer_id=offer["offer_id"])
        else:
            move = CounterOffer(
                listing_id=listing_id,
                thread_id=thread_id,
                price_cents=26_000,
                shipping_method=ShippingMethod.LOCAL_PICKUP,
            )
        await _until_accepted(agent, move)
    assert deals, "no deal within 30 s"
    return deals[0].payload


# Open negotiations hold budget ------------------------------------------------------------


async def _gateway_row(database_url: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "gateway"})
    try:
        return await conn.fetchrow(sql, *args)
    finally:
        await conn.close()


async def _held(database_url: str, agent_id: str, listing_id: str) -> int:
    row = await _gateway_row(
        database_url,
        "SELECT held_cents FROM negotiations WHERE agent_id = $1 AND listing_id = $2",
        agent_id,
        listing_id,
    )
    return int(row["held_cents"])


async def _seller_answer(client: httpx.AsyncClient, listing_id: str) -> dict[str, Any]:
    async def answered() -> dict[str, Any] | None:
        mine = (await client.get("/v1/negotiations")).json().get("negotiations", [])
        neg = next((n for n in mine if n["listing_id"] == listing_id), None)
        return neg if neg and neg["my_turn"] and neg["offers"] else None

    found: dict[str, Any] = await until(answered, what=f"the seller's answer on {listing_id}")
    return found


@pytest.mark.usefixtures("gateway")
async def test_open_negotiations_hold_budget_freed_without_a_deal_committed_on_one(
    bootstrap: str, market_id: str, database_url: str
) -> None:
    """Six openings at once on a budget that covers two holds: exactly two go out."""
    api_key, agent_id = f"key-{market_id}", f"{market_id}-ext.agent"
    items = [m.sell_item(f"bike{i}", asking=10_000, floor=7_000) for i in range(7)]
    seller = m.seller(f"{market_id}-alice", items)
    wants = [m.want("ride", max_price=12_000), m.want("spare", max_price=12_000)]
    brain = {"kind": "external", "api_key_sha256": key_digest(api_key), "label": "holds"}
    buyer = m.buyer(f"{market_id}-ext", wants, budget=20_000, brain=brain)
    listings = [f"{market_id}-alice.bike{i}" for i in range(7)]
    async with Publisher(bootstrap) as pub, http_client(api_key) as client:
        await m.assign(pub, market_id, seller)
        await m.assign(pub, market_id, buyer)

        async def all_listed() -> bool:
            found = (await client.get("/v1/listings", params={"limit": 50})).json()
            return len(found.get("listings", [])) == len(listings)

        await until(all_listed, what="every listing in the gateway")
        await referee_knows(database_url, *listings)

        async def opening(listing_id: str) -> httpx.Response:
            body = {
                "request_id": request_id(),
                "listing_id": listing_id,
                "price_cents": 5_000,
                "shipping_method": "local_pickup",
            }
            return await client.post("/v1/negotiations", json=body)

        await until(
            lambda: _admitted(client), what="the agent's admission"
        )  # a refused opening changes nothing, so probing is safe
        answers = await asyncio.gather(*(opening(listing_id) for listing_id in listings[:6]))
        accepted = [lid for lid, a in zip(listings, answers, strict=False) if a.status_code == 202]
        refused = {a.json()["refused"] for a in answers if a.status_code != 202}
        assert len(accepted) == 2, [a.json() for a in answers]
        assert refused == {"budget_held"}
        assert [await _held(database_url, agent_id, lid) for lid in accepted] == [10_000, 10_000]

        walked, dealt = accepted
        offer = await _seller_answer(client, walked)
        answer = await client.post(
            f"/v1/negotiations/{offer['thread_id']}/reject",
            json={"request_id": request_id(), "offer_id": offer["latest_offer_id"]},
        )
        assert answer.status_code == 202, answer.json()
        await until(
            lambda: _freed(database_url, agent_id, walked), what="the hold freed when the thread ended"
        )
        reopened = await opening(listings[6])  # the freed money opens another listing
        assert reopened.status_code == 202, reopened.json()

        offer = await _seller_answer(client, dealt)
        answer = await client.post(
            f"/v1/negotiations/{offer['thread_id']}/accept",
            json={"request_id": request_id(), "offer_id": offer["latest_offer_id"]},
        )
        assert answer.status_code == 202, answer.json()
        deals = await until(lambda: _deal_list(client), what="the deal")
        total = deals[0]["total_cents"]
        principal = await _gateway_row(
            database_url, "SELECT committed_cents FROM principals WHERE agent_id = $1", agent_id
        )
        assert principal["committed_cents"] == total
        assert await _held(database_url, agent_id, dealt) == 0
        # 20 000 less the deal less the 10 000 the reopened thread holds: not enough to open again
        again = await opening(next(lid for lid in listings[:6] if lid not in accepted))
        assert again.status_code == 422
        assert again.json()["refused"] in {"budget_held", "guard:over_budget"}


@pytest.mark.usefixtures("gateway")
async def test_an_opening_the_referee_refused_can_be_opened_again(
    bootstrap: str, market_id: str, database_url: str
) -> None:
    """The gateway knows a listing the referee does not (each reads listing.events on its own)."""
    api_key, agent_id = f"key-{market_id}", f"{market_id}-ext.agent"
    ghost = m.seller(f"{market_id}-ghost", [m.sell_item("bike", asking=20_000, floor=15_000)])
    listing_id = f"{market_id}-ghost.bike"
    facts = ghost.items[0].to_listing(listing_id, f"{market_id}-ghost.agent", ghost.principal_id)
    async with Publisher(bootstrap) as pub, http_client(api_key) as client:
        await m.assign(pub, market_id, external_buyer(f"{market_id}-ext", api_key, 26_000, budget=50_000))
        await until(lambda: _admitted(client), what="the agent's admission")
        conn = await asyncpg.connect(database_url, server_settings={"search_path": "gateway"})
        try:
            await conn.execute(
                "INSERT INTO listings (listing_id, market_id, facts, status) VALUES ($1, $2, $3, 'active')",
                listing_id,
                market_id,
                facts.model_dump_json(),
            )
        finally:
            await conn.close()
        body = {"listing_id": listing_id, "price_cents": 15_000, "shipping_method": "local_pickup"}
        for _ in range(2):  # refused by the referee each time; never already_negotiating
            answer = await client.post("/v1/negotiations", json={"request_id": request_id(), **body})
            assert answer.status_code == 202, answer.json()

            async def refused() -> dict[str, Any] | None:
                mine = (await client.get("/v1/negotiations")).json()["negotiations"]
                return mine[0] if mine and mine[0]["status"] == "ended" else None

            neg = await until(refused, what="the referee's refusal")
            assert neg["thread_id"] is None and neg["last_refusal"]["reason"] == "listing_unknown"
            assert await _held(database_url, agent_id, listing_id) == 0


async def _admitted(client: httpx.AsyncClient) -> bool:
    probe = {
        "request_id": request_id(),
        "listing_id": "none",
        "price_cents": 1,
        "shipping_method": "local_pickup",
    }
    answer = (await client.post("/v1/negotiations", json=probe)).json()
    return answer.get("refused") not in ("not_admitted", "unauthorized")  # the key is not known yet


async def _freed(database_url: str, agent_id: str, listing_id: str) -> bool:
    return await _held(database_url, agent_id, listing_id) == 0


async def _deal_list(client: httpx.AsyncClient) -> list[dict[str, Any]] | None:
    deals: list[dict[str, Any]] = (await client.get("/v1/deals")).json().get("deals", [])
    return deals or None


# The seller side ----------------------------------------------------------------------------


async def _listed_item(tools: Any, item_id: str, asking: int | None = None) -> dict[str, Any] | None:
    arguments: dict[str, Any] = {"request_id": request_id(), "item_id": item_id}
    if asking is not None:
        arguments["asking_price_cents"] = asking
    answer: dict[str, Any] = await tools.call("list_item", **arguments)
    # Not yet: the gateway learns the key from the mandate it consumes (unknown until then), and
    # the agent may act once the referee admits it.
    return None if answer.get("refused") in ("unauthorized", "not_admitted") else answer


async def _sell(tools: Any, obs: Observer, floor_text: str) -> dict[str, Any]:
    """Wait for the buyer's moves; accept 24,000 or more, else counter down towards 22,000."""
    cursor = (await tools.call("my_negotiations"))["cursor"]
    asks = iter([28_000, 26_000, 25_000, 24_000, 23_000, 22_000])
    tried_rules = False
    for _ in range(60):
        if deals := obs.matching(of_type("DealAgreed"), "negotiation.events"):
            return deals[0].payload
        found = await tools.call("wait_for_changes", after=cursor, timeout_seconds=10)
        cursor = found["cursor"]
        neg = next((n for n in found["negotiations"] if n["role"] == "seller"), None)
        if neg is None or not neg["my_turn"] or not neg["offers"]:
            continue
        thread, offer = neg["thread_id"], neg["offers"][-1]
        if not tried_rules:  # the guard holds a seller to its floor and its secrets too
            tried_rules = True
            under = await tools.call(
                "counter",
                request_id=request_id(),
                thread_id=thread,
                price_cents=19_000,
                shipping_method="local_pickup",
            )
            assert under["refused"] == "guard:below_floor", under
            told = await tools.call(
                "send_message",
                request_id=request_id(),
                thread_id=thread,
                text=f"I cannot go under {floor_text}",
            )
            assert told["refused"] == "guard:discloses_private", told
            assert floor_text not in told["detail"]
        if offer["price_cents"] >= 24_000:
            answer = await tools.call(
                "accept", request_id=request_id(), thread_id=thread, offer_id=offer["offer_id"]
            )
        else:
            price = next(asks, 22_000)
            answer = await tools.call(
                "counter",
                request_id=request_id(),
                thread_id=thread,
                price_cents=price,
                shipping_method="local_pickup",
            )
        assert answer.get("accepted") is True, answer
    deal = await obs.wait_for(of_type("DealAgreed"), "negotiation.events", timeout=30)
    return deal[0].payload


@pytest.mark.usefixtures("gateway")
async def test_an_mcp_agent_sells_to_one_of_our_buyers(
    bootstrap: str, market_id: str, database_url: str
) -> None:
    api_key = f"key-{market_id}"
    brain = {"kind": "external", "api_key_sha256": key_digest(api_key), "label": "seller-mcp"}
    seller = m.seller(f"{market_id}-ext", [m.sell_item("bike", asking=30_000, floor=20_000)], brain=brain)
    buyer = m.buyer(f"{market_id}-bob", [m.want("ride", max_price=26_000)], budget=50_000)
    async with Publisher(bootstrap) as pub, Observer(bootstrap, *TOPICS, market_id=market_id) as obs:
        await m.assign(pub, market_id, seller)
        async with mcp_tools(api_key) as tools:
            unknown = await until(lambda: _listed_item(tools, "nope"), what="the agent's admission")
            assert unknown["refused"] == "unknown_item"
            under = await tools.call(
                "list_item", request_id=request_id(), item_id="bike", asking_price_cents=19_999
            )
            assert under["refused"] == "guard:below_floor" and "20000" not in under["detail"]
            listed = await tools.call("list_item", request_id=request_id(), item_id="bike")
            assert listed["accepted"] is True and listed["listing_id"] == f"{market_id}-ext.bike"
            await _listed(tools, listed["listing_id"], database_url)
            again = await tools.call("list_item", request_id=request_id(), item_id="bike")
            assert again["refused"] == "already_listed"
            await m.assign(pub, market_id, buyer)  # one of ours, who shops for a bike
            deal = await _sell(tools, obs, "20000")
            assert deal["seller_agent_id"] == f"{market_id}-ext.agent"
            assert deal["buyer_agent_id"] == f"{market_id}-bob.agent"
            assert 20_000 <= deal["price_cents"] <= 26_000
            deals = await until(lambda: _deals(tools), what="the sale in my_deals")
            assert [(d["deal_id"], d["total_cents"]) for d in deals] == [
                (deal["deal_id"], deal["price_cents"])
            ]
    moves = [
        c for c in obs.matching(lambda e: e.agent_id == f"{market_id}-ext.agent", "negotiation.commands")
    ]
    assert moves and all(c.producer == "gateway" for c in moves)
    prices = [c.payload.get("price_cents") for c in moves if c.type == "CounterOffer"]
    assert 19_000 not in prices  # the refused counter never left
