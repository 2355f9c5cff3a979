"""The buyer's address reaches the carrier and only the deal's seller sees the booked label.

The buyer saves an address in the browser; the test plays the referee and the agents (signed)
as the settlement tests do. The web app sends the address sealed for the deal to settlement
(`SetShipTo`), settlement opens it in memory to print the carrier's label, and the label comes
back sealed for the seller. Then every topic, every table and every service log of the run is
read for the address in clear, and none has it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from playwright.async_api import BrowserContext, expect

from haggle.contracts import Condition
from haggle.contracts.settlement import ShipItem
from haggle.contracts.topics import all_topic_partitions
from haggle.infra.state import Settings
from tests.integration.settlement_support import SettlementMarket, settlement_market
from tests.web.support import shot, sign_in, web_url

pytestmark = pytest.mark.usefixtures("running_services")


@pytest.fixture
async def market(bootstrap: str, database_url: str, market_id: str) -> AsyncIterator[SettlementMarket]:
    async with settlement_market(bootstrap, database_url, market_id) as found:
        yield found


async def in_topics(bootstrap: str, needle: bytes) -> list[str]:
    """Every record of every topic, from the start: the topics holding `needle`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(t, p) for t, count in all_topic_partitions().items() for p in range(count)
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: set[str] = set()
        left = {tp for tp in partitions if ends[tp] > 0}
        while left:
            batches = await consumer.getmany(*left, timeout_ms=2_000)
            for tp, records in batches.items():
                found |= {tp.topic for r in records if needle in (r.value or b"") + (r.key or b"")}
                if records and records[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
        return sorted(found)
    finally:
        await consumer.stop()


async def in_tables(database_url: str, needle: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
        )
        found = []
        for t in tables:
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            if await conn.fetchval(f"SELECT count(*) FROM {name} x WHERE x::text LIKE $1", f"%{needle}%"):
                found.append(name)
        return found
    finally:
        await conn.close()


def in_logs(needle: str) -> list[str]:
    logs = (Settings.from_env().state_dir / "services").glob("*.log")
    return [log.name for log in logs if needle in log.read_text(errors="replace")]


async def test_the_address_reaches_the_carrier_and_only_the_seller_sees_the_label(
    market: SettlementMarket,
    bootstrap: str,
    database_url: str,
    context: BrowserContext,
    other_context: BrowserContext,
) -> None:
    street = f"{uuid.uuid4().hex[:12]} Quayside Lane"
    await market.open()
    await market.fund(market.buyer, 50_000)
    deal_id, listing_id = f"{market.market_id}-D1", f"{market.market_id}-L1"
    await market.listing(listing_id)

    bob = await sign_in(context, market.buyer.principal_id, market.market_id)
    await bob.goto(f"{web_url()}/me/address")
    await bob.fill("#address", f"Flat 7\n{street}\nNewcastle NE1 3DX")
    await bob.click("#save-address")
    await expect(bob.locator("#address-shown")).to_contain_text("Newcastle")

    await market.agree(market.deal(deal_id, listing_id))
    await market.event("EscrowFunded", deal_id)
    await market.command(market.seller, ShipItem(deal_id=deal_id, packed_condition=Condition.VERY_GOOD))
    sealed = await market.event("ShippingLabelSealed", deal_id)
    assert street not in sealed.model_dump_json()

    sam = await sign_in(other_context, market.seller.principal_id, market.market_id)
    await sam.goto(f"{web_url()}/me/deals/{deal_id}")
    await sam.click("#label-link")
    label = sam.locator("#label")
    await expect(label).to_contain_text(street)
    await expect(label).to_contain_text(str(sealed.payload["tracking_id"]))
    await shot(sam, "shipping-label")
    # The buyer, and anyone else, gets 404 for the seller's label.
    assert (await bob.request.get(f"{web_url()}/me/deals/{deal_id}/label")).status == 404
    carol = await sign_in(other_context, f"{market.market_id}-carol", market.market_id)
    response = await carol.request.get(f"{web_url()}/me/deals/{deal_id}/label")
    assert response.status == 404 and street not in await response.text()

    assert await in_topics(bootstrap, street.encode()) == []
    assert await in_tables(database_url, street) == []
    assert in_logs(street) == []
