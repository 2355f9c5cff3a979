"""The in-memory bus: the same topics and envelopes as Kafka, delivered on the simulated clock.

`publish` stamps a message with the clock's time and a counted event id (so a run is the same
byte for byte) and hands it to every subscriber of its topic one hop later, as a `Delivery`: the
envelope's fields a handler reads, beside the message itself. What an observer of the market
would see (the runner's topics, never `agent.inbox` or the command topics) is kept, and becomes
`Envelope`s, payload included, when `seen` is read: most messages are never observed, and a
pydantic envelope costs several times a delivery.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from haggle.contracts import Envelope, Message
from haggle.market.runner import TOPICS
from haggle_lab.sim.clock import Clock

HOP_SECONDS = 0.005
"""One message's way from producer to consumer (the live system takes a few milliseconds)."""
OBSERVED = frozenset(TOPICS)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message's envelope without its payload: what the sim's handlers read of it."""

    number: int
    """The bus's count of messages: the event id."""
    occurred_at: datetime
    market_id: str
    producer: str
    agent_id: str | None
    correlation_id: str | None

    @property
    def event_id(self) -> uuid.UUID:
        return uuid.UUID(int=self.number)

    def envelope(self, message: Message) -> Envelope:
        return Envelope.model_construct(
            event_id=self.event_id,
            type=message.type,
            schema_version=message.SCHEMA_VERSION,
            occurred_at=self.occurred_at,
            market_id=self.market_id,
            correlation_id=self.correlation_id,
            causation_id=None,
            producer=self.producer,
            agent_id=self.agent_id,
            seq=None,
            signature=None,
            payload=message.model_dump(mode="json"),
        )


Handler = Callable[[Delivery, Message], Awaitable[None] | None]


class Bus:
    def __init__(self, clock: Clock, market_id: str, hop_seconds: float = HOP_SECONDS) -> None:
        self.clock, self.market_id, self.hop = clock, market_id, hop_seconds
        self._observed: list[tuple[str, Delivery, Message]] = []
        self._seen: list[tuple[str, Envelope]] = []
        self._subscribers: dict[str, list[Handler]] = defaultdict(list)
        self._count = 0

    @property
    def seen(self) -> list[tuple[str, Envelope]]:
        """What an observer of the market read so far, in order: each envelope is built once."""
        for topic, delivery, message in self._observed[len(self._seen) :]:
            self._seen.append((topic, delivery.envelope(message)))
        return self._seen

    def observed(self) -> list[tuple[str, Message]]:
        """What an observer of the market read so far, as messages (`seen` without envelopes)."""
        return [(topic, message) for topic, _, message in self._observed]

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
    ) -> None:
        self._count += 1
        delivery = Delivery(self._count, self.clock.now, self.market_id, producer, agent_id, correlation_id)
        if topic in OBSERVED:
            self._observed.append((topic, delivery, message))
        for handler in self._subscribers.get(topic, ()):
            self.clock.after(self.hop, partial(handler, delivery, message))
