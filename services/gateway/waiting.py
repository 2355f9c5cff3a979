"""Waiting reads: an outside agent asks "what changed in my negotiations after cursor N?" and the
call returns as soon as something has, instead of the agent polling.

The cursor is the agent's change counter (`store.changed`): taken under the principal's row lock,
so the numbers commit in order and a reader that sees N sees every change up to N (a change that
commits late still gets a number after every change that committed before it). Each change's
transaction NOTIFYs `gateway_changes` with the agent id at commit; one listener per process wakes
that agent's waiters, which then read the database. A slow re-read covers a missed notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from haggle.runtime.sessions import session_connection
from services.gateway import store

log = logging.getLogger(__name__)
MAX_WAIT_SECONDS = 30.0
REREAD_SECONDS = 5.0
"""A waiter reads again this often even unwoken: a notification lost while the listener reconnected."""


class Waiters:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._waiting: dict[str, set[asyncio.Event]] = {}

    async def listen(self) -> None:
        """The process's one LISTEN connection (a background job; the supervisor restarts it)."""
        async with session_connection(self.pool) as conn:
            await conn.add_listener(store.CHANGES_CHANNEL, self._on_notify)
            self._wake_all()  # anything that changed while nobody listened
            await asyncio.Event().wait()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, agent_id: str) -> None:
        for event in self._waiting.get(agent_id, ()):
            event.set()

    def _wake_all(self) -> None:
        for events in self._waiting.values():
            for event in events:
                event.set()

    @contextlib.asynccontextmanager
    async def _registered(self, agent_id: str) -> AsyncIterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiting.setdefault(agent_id, set()).add(event)
        try:
            yield event
        finally:
            waiting = self._waiting.get(agent_id, set())
            waiting.discard(event)
            if not waiting:
                self._waiting.pop(agent_id, None)

    async def wait(self, agent_id: str, after: int, timeout: float) -> store.Changes:
        """The agent's changes past `after`, as soon as there are any, or none after `timeout` s.
        A cursor ahead of the counter (the agent's own mistake) reads everything again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(timeout, 0.0), MAX_WAIT_SECONDS)
        async with self._registered(agent_id) as woken:
            while True:
                woken.clear()  # before reading: a change that commits after the read still wakes us
                found = await store.changes_since(self.pool, agent_id, after)
                if found.cursor < after:
                    return await store.changes_since(self.pool, agent_id, 0)
                left = deadline - loop.time()
                if found.cursor > after or left <= 0:
                    return found
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout=min(left, REREAD_SECONDS))
