"""Rate limits that hold across gateway instances: a token bucket per (scope, key) in PostgreSQL.

`haggle services up --instances N` runs N gateways over one database; a bucket in each process's
memory would let a key make N times its rate. Here one statement refills the bucket by the time
elapsed on the database's clock and takes a token only if there is one: concurrent takes of one key
queue on its row, so together the instances never grant more than `burst` at once and `per_second`
after. Taken on a transaction's connection, a token is given back if the transaction rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

_REFILLED = "least($3, b.tokens + greatest(0, extract(epoch FROM clock_timestamp() - b.updated_at)) * $4)"
_TAKE = (
    "INSERT INTO rate_buckets AS b (scope, key, tokens, updated_at)"
    " VALUES ($1, $2, $3 - 1, clock_timestamp())"
    " ON CONFLICT (scope, key) DO UPDATE"
    f" SET tokens = {_REFILLED} - 1, updated_at = clock_timestamp()"
    f" WHERE {_REFILLED} >= 1"
    " RETURNING 1"
)


@dataclass(frozen=True)
class Bucket:
    """`burst` calls at once, then `per_second`, per key in this scope, for all instances together."""

    scope: str
    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError(f"rate limit {self.scope}: needs per_second > 0 and burst >= 1")

    async def take(self, conn: asyncpg.Pool | asyncpg.Connection, key: str) -> bool:
        """One token for `key` if it has one (on a transaction's connection: refunded on rollback)."""
        taken = await conn.fetchval(_TAKE, self.scope, key, float(self.burst), self.per_second)
        return taken is not None
