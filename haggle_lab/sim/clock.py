"""Simulated time: a clock that jumps from one scheduled moment to the next. Nothing sleeps.

`Clock.at(when, step)` schedules a step; `run()` takes the steps in time order (ties in the
order they were scheduled), setting `now` to each step's moment, until none is left (or until a
moment given). Steps may be coroutines (a brain's turn is one): they are awaited in turn, so one
market runs on one task and the same schedule always gives the same run.
"""

from __future__ import annotations

import heapq
import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

START = datetime(2026, 1, 1, tzinfo=UTC)
"""Every simulated market starts at this moment: a run's times do not depend on the wall clock."""

Step = Callable[[], Awaitable[None] | None]


class Clock:
    def __init__(self, start: datetime = START) -> None:
        self.now = start
        self.start = start
        self._queue: list[tuple[datetime, int, Step]] = []
        self._seq = 0
        self.steps = 0
        self._spans: dict[float, timedelta] = {}
        """`after`'s delays, each made a `timedelta` once (a market uses a handful of them)."""

    def at(self, when: datetime, step: Step) -> None:
        """Take `step` at `when` (at once if `when` has passed)."""
        self._seq += 1
        heapq.heappush(self._queue, (max(when, self.now), self._seq, step))

    def after(self, seconds: float, step: Step) -> None:
        span = self._spans.get(seconds)
        if span is None:
            span = self._spans[seconds] = timedelta(seconds=seconds)
        self.at(self.now + span, step)

    @property
    def idle(self) -> bool:
        return not self._queue

    @property
    def elapsed(self) -> float:
        return (self.now - self.start).total_seconds()

    def advance(self, until: datetime) -> None:
        """`run` for steps that are all plain functions (no brain): the clock ends at `until`."""
        while self._queue and self._queue[0][0] <= until:
            when, _, step = heapq.heappop(self._queue)
            self.now = when
            self.steps += 1
            result = step()
            if result is not None and inspect.isawaitable(result):
                raise TypeError("a coroutine step: use `await clock.run(...)`")
        self.now = max(self.now, until)

    async def run(self, until: datetime | None = None, max_steps: int = 10_000_000) -> None:
        """Take every step due (up to `until`, if given); with `until`, the clock ends there."""
        while self._queue and (until is None or self._queue[0][0] <= until):
            when, _, step = heapq.heappop(self._queue)
            self.now = when
            self.steps += 1
            if self.steps > max_steps:
                raise RuntimeError(f"the simulation took more than {max_steps} steps: a loop?")
            result = step()
            if result is not None and inspect.isawaitable(result):
                await result
        if until is not None and until > self.now:
            self.now = until
