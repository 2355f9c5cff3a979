"""Watch topics from a test: collect every envelope, wait for the one you expect."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer

from haggle.client import _pin_to_end
from haggle.contracts import Envelope, MalformedMessage, decode

Match = Callable[[Envelope], bool]


class Observer:
    """A group-less consumer from the end of `topics`, filling `seen` in the background."""

    def __init__(self, bootstrap: str, *topics: str, market_id: str | None = None) -> None:
        self.bootstrap, self.topics, self.market_id = bootstrap, topics, market_id
        self.seen: list[tuple[str, Envelope]] = []
        self.arrived: list[float] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> Observer:
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        await self._consumer.start()
        await _pin_to_end(self._consumer)
        self._task = asyncio.create_task(self._pump())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer:
            await self._consumer.stop()

    async def _pump(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=100, max_records=1000)
            for records in batches.values():
                for record in records:
                    with contextlib.suppress(MalformedMessage):
                        env = decode(record.value)
                        if self.market_id is None or env.market_id == self.market_id:
                            self.seen.append((record.topic, env))
                            self.arrived.append(time.perf_counter())
            if batches:
                self._changed.set()

    def matching(self, match: Match, topic: str | None = None) -> list[Envelope]:
        return [env for t, env in self.seen if (topic is None or t == topic) and match(env)]

    async def wait_for(
        self, match: Match, topic: str | None = None, count: int = 1, timeout: float = 30
    ) -> list[Envelope]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.matching(match, topic)
            if len(found) >= count:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"saw {len(found)}/{count} matching on {topic or self.topics}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))


def of_type(type_name: str, **fields: object) -> Match:
    def match(env: Envelope) -> bool:
        return env.type == type_name and all(env.payload.get(k) == v for k, v in fields.items())

    return match


def to_agent(agent_id: str, type_name: str, **fields: object) -> Match:
    inner = of_type(type_name, **fields)
    return lambda env: env.agent_id == agent_id and inner(env)
