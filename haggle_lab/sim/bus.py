"""The in-memory bus: the same topics and envelopes as Kafka, delivered on the simulated clock.

`publish` wraps a message in an `Envelope` stamped with the clock's time and a counted event id
(so a run is the same byte for byte), keeps a copy of what an observer of the market would see
(the runner's topics, never `agent.inbox` or the command topics), and hands the message to every
subscriber of its topic one hop later.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable

from haggle.contracts import Envelope, Message
from haggle.market.runner import TOPICS
from haggle_lab.sim.clock import Clock

Handler = Callable[[Envelope, Message], Awaitable[None] | None]
HOP_SECONDS = 0.005
"""One message's way from producer to consumer (the live system takes a few milliseconds)."""
OBSERVED = frozenset(TOPICS)


class Bus:
    def __init__(self, clock: Clock, market_id: str, hop_seconds: float = HOP_SECONDS) -> None:
        self.clock, self.market_id, self.hop = clock, market_id, hop_seconds
        self.seen: list[tuple[str, Envelope]] = []
        self._subscribers: dict[str, list[Handler]] = defaultdict(list)
        self._count = 0

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._subscribers[topic].append(handler)

    def publish(
        self,
        topic: str,
        message: Message,
        *,
        producer: str,
        agent_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Envelope:
        self._count += 1
        env = Envelope.model_construct(
            event_id=uuid.UUID(int=self._count),
            type=message.type,
            schema_version=message.SCHEMA_VERSION,
            occurred_at=self.clock.now,
            market_id=self.market_id,
            correlation_id=correlation_id,
            causation_id=None,
            producer=producer,
            agent_id=agent_id,
            seq=None,
            signature=None,
            payload=message.model_dump(mode="json") if topic in OBSERVED else {},
        )
        if topic in OBSERVED:
            self.seen.append((topic, env))
        for handler in self._subscribers.get(topic, ()):
            self.clock.after(self.hop, _delivery(handler, env, message))
        return env


def _delivery(handler: Handler, env: Envelope, message: Message) -> Callable[[], Awaitable[None] | None]:
    return lambda: handler(env, message)
