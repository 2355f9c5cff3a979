"""An external agent's side of the gateway, for the tests: an MCP client and an HTTP client."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from haggle import procs
from haggle.contracts.mandate import Mandate
from haggle_lab.testing import mandates as m
from services.gateway.domain import key_digest


def external_buyer(principal_id: str, api_key: str, max_price: int, budget: int) -> Mandate:
    brain = {"kind": "external", "api_key_sha256": key_digest(api_key), "label": "test-mcp"}
    return m.buyer(principal_id, [m.want("ride", max_price=max_price)], budget=budget, brain=brain)


def request_id() -> str:
    return uuid.uuid4().hex


class Tools:
    """The gateway's MCP tools through the official client: a result, or the refusal's JSON."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, name: str, **arguments: Any) -> dict[str, Any]:
        result = await self.client.call_tool(name, arguments)
        text = result.content[0].text  # type: ignore[union-attr]
        body = json.loads(text[text.index("{") :])  # a tool error's text is prefixed by the SDK
        return {"error": True, **body} if result.is_error else body


@asynccontextmanager
async def mcp_tools(api_key: str) -> AsyncIterator[Tools]:
    url = f"{procs.url_for('gateway')}/mcp/"
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
    async with Client(streamable_http_client(url, http_client=http)) as client:
        yield Tools(client)


@asynccontextmanager
async def http_client(api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=procs.url_for("gateway"), headers=headers, timeout=30) as client:
        yield client


async def until(probe: Callable[[], Awaitable[Any]], timeout: float = 60, what: str = "condition") -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if found := await probe():
            return found
        await asyncio.sleep(0.1)
    raise TimeoutError(f"waited {timeout}s for {what}")


async def referee_knows(database_url: str, *listing_ids: str) -> None:
    """Until the referee has read these listings. The gateway reads listing.events on its own: an
    opening sent before the referee has is refused `listing_unknown` (the agent may open again)."""

    async def known() -> bool:
        conn = await asyncpg.connect(database_url)
        try:
            found = await conn.fetchval(
                "SELECT count(*) FROM negotiation.listings_view WHERE listing_id = ANY($1::text[])",
                list(listing_ids),
            )
        finally:
            await conn.close()
        return bool(found == len(listing_ids))

    await until(known, what="the referee to read the listings")
