"""Typed repositories inside a unit of work: each kind of row read once by id, changes written once.

`uow.repo(Threads)` gives the unit of work's one `Threads` repository. `get(id)` and
`load_many(ids)` read rows by id (the kind's load may lock them) and keep them for the rest
of the transaction; `save(value)` keeps the new value and marks it changed. Changes are
written in one statement per kind at commit, or earlier: `query` (any read that is not by
id) first writes every change of the unit of work, so such a read can never miss a change
this transaction made. A kind that reads by anything but id must do it through `query`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import asyncpg

if TYPE_CHECKING:
    from haggle.runtime.outbox import UnitOfWork

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows of statement arguments as one list per column: the arrays of an
    `INSERT … SELECT … FROM unnest($1::t1[], $2::t2[], …)`, which writes many rows in one
    statement (`executemany` runs the statement once per row, each execution costing the
    database and the driver again)."""
    return [list(column) for column in zip(*rows, strict=True)]


class Repository(ABC, Generic[K, V]):
    """One kind of row in one unit of work. A kind says how to key, load and write its values."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self._seen: dict[K, V | None] = {}
        self._changed: dict[K, V] = {}

    @abstractmethod
    def key(self, value: V) -> K:
        """The id of a value."""

    @abstractmethod
    async def _load(self, keys: list[K]) -> dict[K, V]:
        """The stored values of `keys` (absent ones left out), read by id."""

    async def _write(self, values: list[V]) -> None:
        raise TypeError(f"{type(self).__name__} is read only")

    @property
    def conn(self) -> asyncpg.Connection:
        return self.uow.conn

    async def get(self, key: K) -> V | None:
        """The value of `key` as this transaction last saw or saved it (None: not stored)."""
        if key not in self._seen:
            await self.load_many([key])
        return self._seen[key]

    async def load_many(self, keys: Sequence[K]) -> None:
        """Read the values of `keys` not seen yet, in one statement; `get` then finds them."""
        missing = [k for k in dict.fromkeys(keys) if k not in self._seen]
        if not missing:
            return
        found = await self._load(missing)
        for key in missing:
            self._seen[key] = found.get(key)

    def seen(self, key: K) -> bool:
        """Whether this transaction has read or saved `key` (so `get` needs no statement)."""
        return key in self._seen

    def save(self, value: V) -> None:
        """Keep `value` as the current one; it is written at commit or before the next query."""
        key = self.key(value)
        self._seen[key] = value
        self._changed[key] = value
        self.uow.track(self)

    async def flush(self) -> None:
        """Write every change kept so far, in one statement."""
        if not self._changed:
            return
        values = list(self._changed.values())
        self._changed.clear()
        await self._write(values)

    async def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """A read that is not by id: after every change of the unit of work is written."""
        await self.uow.flush_changes()
        rows: list[asyncpg.Record] = await self.conn.fetch(sql, *args)
        return rows
