"""Agent identity for every service that takes signed commands.

A service consumes `agent.events` into its own `agents` table and checks each
signed command against it: known agent, valid Ed25519 signature over the
canonical form, and a `seq` above the last one seen from that agent in the
same scope. The scope is the command topic's key (a listing, a deal): all
commands of one scope arrive in order on one partition, so a per-agent
monotonic counter is monotonic within every scope, while commands for
different scopes may be handled in any order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import asyncpg

from haggle.contracts import Envelope, envelope_signature_valid
from haggle.contracts.agents import AgentRegistered, Role
from haggle.runtime.outbox import UnitOfWork
from haggle.runtime.repository import Repository

IDENTITY_SQL = """
CREATE TABLE IF NOT EXISTS agents (
    agent_id      text PRIMARY KEY,
    principal_id  text NOT NULL,
    owner_id      text,
    role          text NOT NULL,
    public_key    text NOT NULL,
    market_id     text NOT NULL,
    retired       boolean NOT NULL DEFAULT false,
    registered_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS agent_seqs (
    agent_id text NOT NULL,
    scope    text NOT NULL,
    last_seq bigint NOT NULL,
    PRIMARY KEY (agent_id, scope)
);
"""


class AuthFailure(StrEnum):
    UNKNOWN_AGENT = "unknown_agent"
    BAD_SIGNATURE = "bad_signature"
    REPLAYED_SEQ = "replayed_seq"


class RegistrationOutcome(StrEnum):
    REGISTERED = "registered"
    ALREADY_REGISTERED = "already_registered"
    KEY_CONFLICT = "key_conflict"
    BAD_SIGNATURE = "bad_signature"


@dataclass(frozen=True)
class Agent:
    agent_id: str
    principal_id: str
    owner_id: str | None
    role: Role
    public_key: str
    market_id: str


async def register(conn: asyncpg.Connection, env: Envelope, event: AgentRegistered) -> RegistrationOutcome:
    """First registration of an id binds its key; it must be signed by that key."""
    if env.agent_id != event.agent_id or not envelope_signature_valid(env, event.public_key):
        return RegistrationOutcome.BAD_SIGNATURE
    existing = await conn.fetchrow("SELECT public_key FROM agents WHERE agent_id = $1", event.agent_id)
    if existing is not None:
        if existing["public_key"] == event.public_key:
            return RegistrationOutcome.ALREADY_REGISTERED
        return RegistrationOutcome.KEY_CONFLICT
    await conn.execute(
        "INSERT INTO agents (agent_id, principal_id, owner_id, role, public_key, market_id)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (agent_id) DO NOTHING",
        event.agent_id,
        event.principal_id,
        event.owner_id,
        event.role.value,
        event.public_key,
        env.market_id,
    )
    return RegistrationOutcome.REGISTERED


async def retire(conn: asyncpg.Connection, env: Envelope, agent_id: str) -> bool:
    """Only the agent itself (signed) can retire itself."""
    agent = await load(conn, agent_id)
    if agent is None or env.agent_id != agent_id or not envelope_signature_valid(env, agent.public_key):
        return False
    await conn.execute("UPDATE agents SET retired = true WHERE agent_id = $1", agent_id)
    return True


async def load(conn: asyncpg.Connection, agent_id: str) -> Agent | None:
    """A registered, not retired agent (in a unit of work: `uow.repo(Agents).get`)."""
    row = await conn.fetchrow(f"{_SELECT_AGENTS} WHERE agent_id = $1 AND NOT retired", agent_id)
    return _agent(row) if row is not None else None


_SELECT_AGENTS = "SELECT agent_id, principal_id, owner_id, role, public_key, market_id FROM agents"


def _agent(row: asyncpg.Record) -> Agent:
    return Agent(
        row["agent_id"],
        row["principal_id"],
        row["owner_id"],
        Role(row["role"]),
        row["public_key"],
        row["market_id"],
    )


class Agents(Repository[str, Agent]):
    """Registered, not retired agents, read once per unit of work (a batch's senders at once)."""

    def key(self, value: Agent) -> str:
        return value.agent_id

    async def _load(self, keys: list[str]) -> dict[str, Agent]:
        rows = await self.conn.fetch(
            f"{_SELECT_AGENTS} WHERE agent_id = ANY($1::text[]) AND NOT retired", keys
        )
        return {r["agent_id"]: _agent(r) for r in rows}


@dataclass(frozen=True)
class Seq:
    """The last seq consumed from an agent in a scope."""

    agent_id: str
    scope: str
    last: int


class Seqs(Repository[tuple[str, str], Seq]):
    """Seqs by (agent, scope). Loaded (`load_many`) only while holding what serialises each scope
    (the referee's listing row locks), so no other transaction advances them in between; then
    `authenticate` checks and advances them in memory and they are written in one statement at
    commit. A seq not loaded is checked and advanced in the database, one statement each."""

    def key(self, value: Seq) -> tuple[str, str]:
        return value.agent_id, value.scope

    async def _load(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Seq]:
        rows = await self.conn.fetch(
            "SELECT s.agent_id, s.scope, s.last_seq FROM agent_seqs s"
            " JOIN unnest($1::text[], $2::text[]) AS p(agent_id, scope) USING (agent_id, scope)",
            [a for a, _ in keys],
            [s for _, s in keys],
        )
        return {(r["agent_id"], r["scope"]): Seq(r["agent_id"], r["scope"], r["last_seq"]) for r in rows}

    async def _write(self, values: list[Seq]) -> None:
        await self.conn.execute(
            "INSERT INTO agent_seqs (agent_id, scope, last_seq)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])"
            " ON CONFLICT (agent_id, scope) DO UPDATE SET last_seq = EXCLUDED.last_seq"
            " WHERE agent_seqs.last_seq < EXCLUDED.last_seq",
            [v.agent_id for v in values],
            [v.scope for v in values],
            [v.last for v in values],
        )


async def authenticate(uow: UnitOfWork, env: Envelope, scope: str) -> Agent | AuthFailure:
    """Check a signed command and, if it passes, consume its seq in `scope`."""
    if env.agent_id is None or env.seq is None or env.signature is None:
        return AuthFailure.BAD_SIGNATURE
    agent = await uow.repo(Agents).get(env.agent_id)
    if agent is None or agent.market_id != env.market_id:
        return AuthFailure.UNKNOWN_AGENT
    if not envelope_signature_valid(env, agent.public_key):
        return AuthFailure.BAD_SIGNATURE
    seqs, pair = uow.repo(Seqs), (agent.agent_id, scope)
    if seqs.seen(pair):  # loaded under the scope's lock: checked here, written at commit
        last = await seqs.get(pair)
        if last is not None and env.seq <= last.last:
            return AuthFailure.REPLAYED_SEQ
        seqs.save(Seq(agent.agent_id, scope, env.seq))
        return agent
    advanced = await uow.conn.fetchval(
        """
        INSERT INTO agent_seqs (agent_id, scope, last_seq) VALUES ($1, $2, $3)
        ON CONFLICT (agent_id, scope) DO UPDATE SET last_seq = EXCLUDED.last_seq
            WHERE agent_seqs.last_seq < EXCLUDED.last_seq
        RETURNING 1
        """,
        agent.agent_id,
        scope,
        env.seq,
    )
    if advanced is None:
        return AuthFailure.REPLAYED_SEQ
    return agent


# The signing side: a service that signs for the agents it keeps ------------------------------

SeqKey = Literal["principal_id", "agent_id"]
_SEQ_KEYS: dict[str, str] = {"principal_id": "principal_id", "agent_id": "agent_id"}
"""The only column names `take_seq` puts in its SQL."""


async def take_seq(conn: asyncpg.Connection, key: str, by: SeqKey = "principal_id") -> int:
    """The next seq an agent we sign for signs with: its principal's `principals.next_seq` (from 1),
    taken and advanced in the caller's transaction, so a rolled-back move leaves no gap.

    Every service that keeps agents' keys (agents, gateway) has a `principals` table in its own
    schema with `principal_id`, `agent_id` and `next_seq`; `by` says which names the row."""
    seq = await conn.fetchval(
        f"UPDATE principals SET next_seq = next_seq + 1 WHERE {_SEQ_KEYS[by]} = $1 RETURNING next_seq - 1",
        key,
    )
    if seq is None:
        raise LookupError(f"no principal with {by} {key!r} to sign for")
    return int(seq)


async def managed(pool: asyncpg.Pool, agent_ids: list[str]) -> list[str]:
    """Which of these agents this service keeps (its `principals` table): the others' inbox is not ours."""
    rows = await pool.fetch("SELECT agent_id FROM principals WHERE agent_id = ANY($1::text[])", agent_ids)
    return [r["agent_id"] for r in rows]
