"""Live updates: the feed table, fanned out to each open browser's EventSource.

One listener per process (LISTEN web_feed, with a slow poll in case a NOTIFY is
missed) reads the new feed rows once and hands each to the streams it concerns:
a principal gets rows naming them or one of their agents, an operator every row,
a public market page only its market's listing and market rows. A stream says only
*what* changed (kind and id); the page then fetches itself again, through the same
ownership checks as any request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import orjson
from prometheus_client import Gauge

from haggle.runtime.sessions import session_connection
from services.web.readmodel import FEED_CHANNEL

log = logging.getLogger(__name__)
OPEN_STREAMS = Gauge("haggle_web_sse_streams", "Server-sent event streams open")
PUBLIC_KINDS = frozenset({"listing", "market"})
HEARTBEAT_SECONDS = 15.0
MAX_STREAMS = 2_000


@dataclass(frozen=True)
class Audience:
    """Who a stream is for: a principal, the operator, or the public page of one market."""

    principal_id: str | None = None
    operator: bool = False
    market_id: str | None = None

    def wants(self, row: FeedRow, principals: set[str]) -> bool:
        if self.operator:
            return True
        if self.principal_id is not None:
            return self.principal_id in principals
        return row.market_id == self.market_id and row.kind in PUBLIC_KINDS


@dataclass(frozen=True)
class FeedRow:
    id: int
    market_id: str
    kind: str
    ref_id: str
    audience: tuple[str, ...]


@dataclass(eq=False)
class Stream:
    audience: Audience
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(maxsize=256))


class Hub:
    def __init__(self, pool: asyncpg.Pool, poll_seconds: float = 1.0) -> None:
        self.pool, self.poll_seconds = pool, poll_seconds
        self.streams: set[Stream] = set()
        self._wake = asyncio.Event()
        self._last_id = 0
        self._principal_of: dict[str, str] = {}

    async def run(self) -> None:
        """The live feed's listener; run under the service's supervisor, which restarts it on error."""
        await self._listen()

    async def _listen(self) -> None:
        async with session_connection(self.pool) as conn:
            self._last_id = self._last_id or int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM feed"))
            await conn.add_listener(FEED_CHANNEL, self._on_notify)
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
                self._wake.clear()
                await self._deliver(conn)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _deliver(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            "SELECT id, market_id, kind, ref_id, audience FROM feed WHERE id > $1 ORDER BY id LIMIT 5000",
            self._last_id,
        )
        if not rows:
            return
        self._last_id = rows[-1]["id"]
        if not self.streams:
            return
        feed = [FeedRow(r["id"], r["market_id"], r["kind"], r["ref_id"], tuple(r["audience"])) for r in rows]
        await self._learn_principals(conn, feed)
        for row in feed:
            principals = {self._principal_of.get(a, a) for a in row.audience}
            message = b"data: " + orjson.dumps({"kind": row.kind, "ref": row.ref_id}) + b"\n\n"
            for stream in list(self.streams):
                if stream.audience.wants(row, principals):
                    with contextlib.suppress(asyncio.QueueFull):
                        stream.queue.put_nowait(message)

    async def _learn_principals(self, conn: asyncpg.Connection, feed: list[FeedRow]) -> None:
        unknown = {a for row in feed for a in row.audience if a not in self._principal_of}
        if not unknown:
            return
        found = await conn.fetch(
            "SELECT agent_id, principal_id FROM agent_principals WHERE agent_id = ANY($1::text[])",
            list(unknown),
        )
        self._principal_of.update({r["agent_id"]: r["principal_id"] for r in found})

    @contextlib.asynccontextmanager
    async def open(self, audience: Audience) -> AsyncIterator[Stream]:
        stream = Stream(audience)
        self.streams.add(stream)
        OPEN_STREAMS.inc()
        try:
            yield stream
        finally:
            self.streams.discard(stream)
            OPEN_STREAMS.dec()


async def events(hub: Hub, audience: Audience) -> AsyncIterator[bytes]:
    """The body of one text/event-stream response: a hello, then changes, with heartbeats."""
    async with hub.open(audience) as stream:
        yield b"retry: 2000\n: connected\n\n"
        while True:
            try:
                yield await asyncio.wait_for(stream.queue.get(), timeout=HEARTBEAT_SECONDS)
            except TimeoutError:
                yield b": ping\n\n"
