"""A token bucket per agent, on an injectable clock so tests and simulations control time."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

Clock = Callable[[], float]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class Limiter(Protocol):
    def allow(self, key: str) -> bool: ...


class RateLimiter:
    """`burst` moves at once, then `per_second` moves a second, per key."""

    def __init__(self, per_second: float = 2.0, burst: int = 10, clock: Clock = time.monotonic) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("a rate limiter needs per_second > 0 and burst >= 1")
        self.per_second = per_second
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, key: str) -> bool:
        """Take one token for `key` if there is one."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.per_second)
        bucket.updated = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def refund(self, key: str) -> None:
        """Give back a token taken for a move that was never sent (its transaction rolled back)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.tokens = min(float(self.burst), bucket.tokens + 1.0)


class RefundedOnRollback:
    """A limiter for moves decided inside a transaction: a token taken is given back if the
    transaction rolls back (a batch redone record by record must not pay twice)."""

    def __init__(self, limiter: RateLimiter, on_rollback: list[Callable[[], None]]) -> None:
        self.limiter, self.on_rollback = limiter, on_rollback

    def allow(self, key: str) -> bool:
        if not self.limiter.allow(key):
            return False
        self.on_rollback.append(lambda: self.limiter.refund(key))
        return True
