"""How far a service has handled its command topics, as a time: what keeps a deadline's timer from
firing while a command sent before the deadline may still wait in Kafka (say, after an outage).

Command topics stamp each record with the broker's append time (`LogAppendTime`). A sample notes
the time t, then every partition's end offset e, then the offset the service's consumer group
has handled (committed: offsets are committed only after the database commit). Every record
appended before t lies below e, so once the handled offset reaches e the partition is handled
through t. The cutoff is the earliest such time over all partitions, less a margin for the
broker's clock against ours and for a record the leader holds but has not yet replicated (it is
above the end offset a consumer sees). A deadline before the cutoff may fire: every command
appended before it has been handled and judged.

A cutoff never goes back, so while Kafka does not answer the last one stands: timers wait, they
never guess. Kafka is asked only when a deadline is due that the cutoff does not yet cover.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from haggle.runtime.lag import handled_offsets
from haggle.runtime.service import ServiceContext, group_id

log = logging.getLogger(__name__)

MARGIN = timedelta(seconds=1)
REFRESH_SECONDS = 0.5
MAX_NOTED = 1_000
"""End offsets kept per partition while its consumer is behind; dropping the oldest only delays
the cutoff (a later note proves less, never too much)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Watermark:
    """Pure: the end offsets noted per partition at sample times, and the time each partition is
    proven handled through."""

    _noted: dict[Hashable, list[tuple[datetime, int]]] = field(default_factory=dict)
    _through: dict[Hashable, datetime] = field(default_factory=dict)

    def observe(self, at: datetime, offsets: Mapping[Hashable, tuple[int, int]]) -> None:
        """`offsets`: each partition's (handled, end), the end offsets read after `at`."""
        for part, (handled, end) in offsets.items():
            noted = self._noted.setdefault(part, [])
            if noted and noted[-1][1] == end:
                noted[-1] = (at, end)  # no record since: the later time proves more
            else:
                noted.append((at, end))
            proven = [t for t, e in noted if e <= handled]
            if proven:
                self._through[part] = max(proven[-1], self._through.get(part, proven[-1]))
                noted[:] = [(t, e) for t, e in noted if t > proven[-1]]
            del noted[:-MAX_NOTED]

    def cutoff(self) -> datetime | None:
        """Every record appended before this time has been handled; None until every partition
        seen has been proven once."""
        if not self._noted or any(part not in self._through for part in self._noted):
            return None
        return min(self._through.values())


class HandledThrough:
    """The cutoff of a service's consumer group on its topics (topic → group), from Kafka."""

    def __init__(
        self,
        bootstrap: str,
        client_id: str,
        groups: Mapping[str, str],
        *,
        margin: timedelta = MARGIN,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._bootstrap, self._client_id, self._groups = bootstrap, client_id, dict(groups)
        self._margin, self._refresh_seconds, self._clock = margin, refresh_seconds, clock
        self._watermark = Watermark()
        self._asked_at = float("-inf")
        self._clients: tuple[AIOKafkaAdminClient, AIOKafkaConsumer] | None = None

    async def fire_until(self, earliest_due: datetime | None) -> datetime | None:
        """Up to when deadlines may fire now: the clock held back to the cutoff. None when
        nothing may fire (nothing due, or the first deadline due is not yet covered)."""
        now = self._clock()
        if earliest_due is None or earliest_due > now:
            return None
        cutoff = self.cutoff()
        if cutoff is None or cutoff < earliest_due:
            await self.sample()
            cutoff = self.cutoff()
        if cutoff is None or cutoff < earliest_due:
            return None
        return min(now, cutoff)

    def cutoff(self) -> datetime | None:
        cutoff = self._watermark.cutoff()
        return None if cutoff is None else cutoff - self._margin

    async def sample(self) -> None:
        """Note the end offsets and what the groups handled, at most every `refresh_seconds`;
        a failure keeps the cutoff as it was."""
        if time.monotonic() - self._asked_at < self._refresh_seconds:
            return
        self._asked_at = time.monotonic()
        try:
            admin, consumer = await self._connected()
            for topic, group in self._groups.items():
                at = self._clock()
                offsets = await handled_offsets(admin, consumer, group, topic)
                if offsets is not None:
                    self._watermark.observe(at, {(tp.topic, tp.partition): o for tp, o in offsets.items()})
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("handled offsets not read; deadlines wait", extra={"error": repr(exc)})
            await self.close()

    async def _connected(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._clients is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, client_id=self._client_id)
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap, client_id=self._client_id, enable_auto_commit=False
            )
            self._clients = (admin, consumer)
            await admin.start()
            await consumer.start()
        return self._clients

    async def close(self) -> None:
        if self._clients is None:
            return
        admin, consumer = self._clients
        self._clients = None
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await admin.close()


def for_service(ctx: ServiceContext, topics: Sequence[str]) -> HandledThrough:
    """The cutoff of the service's own consumer group on `topics`."""
    groups = {topic: group_id(ctx.settings, ctx.name) for topic in topics}
    return HandledThrough(ctx.settings.kafka_bootstrap_servers, f"haggle-{ctx.name}-handled", groups)
