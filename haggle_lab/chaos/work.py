"""Who did the work: each service instance's handled records, sampled from its /metrics.

A killed instance starts again with its counters at zero, so the sampler keeps the highest
count seen per process (pid) and sums a slot's processes: what instance 1 of negotiation
handled over the whole run, across its restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

import httpx
from prometheus_client.parser import text_string_to_metric_families

from haggle import procs

HANDLED = "haggle_messages_in"
"""Counter family (`haggle_messages_in_total`): records a service consumed and handled."""


def handled(metrics_text: str) -> float:
    """The sum of a /metrics page's handled-records counter over topics and types."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        if family.name == HANDLED
        for sample in family.samples
        if sample.name.endswith("_total")
    )


class Sampler:
    """`async with Sampler() as s:` polls every instance while the block runs; `s.totals()` after."""

    def __init__(self, every: float = 1.0) -> None:
        self.every = every
        self._peak: dict[tuple[str, int, int], float] = defaultdict(float)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Sampler:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.sample()

    async def _poll(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self.every)

    async def sample(self) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            for name in procs.SERVICES:
                for instance in procs.instances(name):
                    pid = procs.pid_of(name, instance)
                    if pid is None:
                        continue
                    with contextlib.suppress(httpx.HTTPError):
                        page = await client.get(f"{procs.url_for(name, instance)}/metrics")
                        key = (name, instance, pid)
                        self._peak[key] = max(self._peak[key], handled(page.text))

    def totals(self) -> dict[str, dict[int, float]]:
        result: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        for (name, instance, _pid), count in self._peak.items():
            result[name][instance] += count
        return {name: dict(by_instance) for name, by_instance in result.items()}
