"""For event consumers: `haggle events tail` and the GMV-by-category example, on the real broker."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from haggle.client import Publisher
from haggle.contracts import Envelope, Message, wrap
from haggle.contracts.listing import ListingPublished
from haggle.contracts.negotiation import DealAgreed
from haggle.contracts.samples import sample_payload
from haggle.contracts.settlement import FundsReleased, Refunded
from haggle.events import Filter, Record, read

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gmv_by_category.py"


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gmv_by_category", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def made(model: type[Message], **fields: Any) -> Message:
    return model.model_validate({**sample_payload(model), **fields})


def env(model: type[Message], market_id: str, **fields: Any) -> Envelope:
    return wrap(made(model, **fields), market_id=market_id, producer="test")


def listing(market_id: str, listing_id: str, category: str) -> Envelope:
    return env(ListingPublished, market_id, listing_id=listing_id, category=category)


def deal(market_id: str, deal_id: str, listing_id: str, price: int) -> Envelope:
    return env(DealAgreed, market_id, deal_id=deal_id, listing_id=listing_id, price_cents=price)


async def publish(bootstrap: str, items: list[tuple[str, str, Envelope]]) -> None:
    async with Publisher(bootstrap) as pub:
        for topic, key, envelope in items:
            await pub.send(topic, key, envelope)


def tail(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "haggle", "events", "tail", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_tail_prints_one_markets_messages_of_one_type_as_json(bootstrap: str, market_id: str) -> None:
    other = f"{market_id}-other"
    await publish(
        bootstrap,
        [
            ("listing.events", "l1", listing(market_id, "l1", "books")),
            ("listing.events", "l2", listing(market_id, "l2", "toys")),
            ("listing.events", "l3", listing(other, "l3", "books")),
            ("listing.events", "l1", env(Refunded, market_id, listing_id="l1")),
        ],
    )
    done = await asyncio.to_thread(
        tail, "listing.events", "--market", market_id, "--type", "ListingPublished", "--json"
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(line["envelope"]["payload"]["listing_id"] for line in lines) == ["l1", "l2"]
    assert {line["topic"] for line in lines} == {"listing.events"}
    human = await asyncio.to_thread(tail, "listing.events", "--market", market_id)
    assert human.returncode == 0
    assert human.stdout.count(market_id) == 3 and "Refunded" in human.stdout


def test_tail_refuses_an_unknown_topic() -> None:
    done = tail("no.such.topic")
    assert done.returncode == 2
    assert "unknown topic" in done.stderr


async def test_follow_sees_a_message_sent_after_it_started(bootstrap: str, market_id: str) -> None:
    seen: list[Record] = []

    async def follow() -> None:
        async for item in read(
            bootstrap, ["listing.events"], Filter(market_id), follow=True, from_start=False
        ):
            assert isinstance(item, Record)
            seen.append(item)

    task = asyncio.create_task(follow())
    await asyncio.sleep(1.5)  # the reader is positioned at the end
    await publish(bootstrap, [("listing.events", "l9", listing(market_id, "l9", "garden"))])
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.1)
    task.cancel()
    assert [r.envelope.payload["listing_id"] for r in seen] == ["l9"]


async def test_the_gmv_example_counts_each_deal_once_by_category(bootstrap: str, market_id: str) -> None:
    gmv = example()
    a, b = deal(market_id, "d1", "l1", 1_000), deal(market_id, "d2", "l2", 2_500)
    await publish(
        bootstrap,
        [
            ("listing.events", "l1", listing(market_id, "l1", "books")),
            ("listing.events", "l2", listing(market_id, "l2", "toys")),
            ("listing.events", "l3", listing(market_id, "l3", "books")),
            ("negotiation.events", "l1", a),
            ("negotiation.events", "l1", a),  # a replay: the same event again
            ("negotiation.events", "l2", b),
            ("negotiation.events", "l3", deal(market_id, "d3", "l3", 700)),
            ("negotiation.events", "lx", deal(f"{market_id}-other", "dx", "l1", 99_999)),
            ("settlement.events", "d1", env(FundsReleased, market_id, deal_id="d1", listing_id="l1")),
            ("settlement.events", "d2", env(Refunded, market_id, deal_id="d2", listing_id="l2")),
        ],
    )
    view = gmv.GmvByCategory()
    await gmv.run(bootstrap, market_id, view, follow=False)
    rows = {
        category: (r.deals, r.agreed_cents, r.settled_cents, r.refunded_cents) for category, r in view.rows()
    }
    assert rows == {"books": (2, 1_700, 1_000, 0), "toys": (1, 2_500, 0, 2_500)}
    assert view.render().splitlines()[1].startswith("toys")

    live = gmv.GmvByCategory()
    task = asyncio.create_task(gmv.run(bootstrap, market_id, live))
    await publish(bootstrap, [("negotiation.events", "l3", deal(market_id, "d4", "l3", 300))])
    for _ in range(100):
        if live.by_category["books"].deals == 3:
            break
        await asyncio.sleep(0.1)
    task.cancel()
    assert live.by_category["books"].agreed_cents == 2_000
