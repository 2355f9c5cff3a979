"""haggle.runtime.identity against real PostgreSQL: registration, signatures, per-scope seq."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from haggle.contracts import AgentKey, Envelope, signed, wrap
from haggle.contracts.agents import AgentRegistered, AgentRetired, Role
from haggle.contracts.goods import ShippingMethod
from haggle.contracts.negotiation import OpenNegotiation
from haggle.runtime.identity import Agent, AuthFailure, RegistrationOutcome, authenticate, register, retire
from haggle.runtime.outbox import UnitOfWork
from tests.integration.scratch import scratch_schema

pytestmark = pytest.mark.timeout(120)

MARKET = "m-identity"


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema(database_url, "ident") as pool:
        yield pool


@pytest.fixture
def agent_id() -> str:
    return f"agent-{uuid.uuid4().hex[:8]}"


def registration(
    agent_id: str, key: AgentKey, *, signer: AgentKey | None = None, envelope_agent: str | None = None
) -> tuple[Envelope, AgentRegistered]:
    event = AgentRegistered(agent_id=agent_id, principal_id="p-1", role=Role.BUYER, public_key=key.public)
    env = signed(
        event,
        key=signer or key,
        agent_id=envelope_agent or agent_id,
        seq=0,
        market_id=MARKET,
        producer="agent",
    )
    return env, event


def offer(key: AgentKey, agent_id: str, seq: int, *, listing: str = "L-1", market: str = MARKET) -> Envelope:
    cmd = OpenNegotiation(listing_id=listing, price_cents=5_000, shipping_method=ShippingMethod.PARCEL_SMALL)
    return signed(cmd, key=key, agent_id=agent_id, seq=seq, market_id=market, producer="agent")


async def registered(pool: asyncpg.Pool, agent_id: str) -> AgentKey:
    key = AgentKey.generate()
    async with pool.acquire() as conn:
        assert await register(conn, *registration(agent_id, key)) is RegistrationOutcome.REGISTERED
    return key


async def auth(pool: asyncpg.Pool, env: Envelope, scope: str = "L-1") -> Agent | AuthFailure:
    async with pool.acquire() as conn, conn.transaction():
        return await authenticate(UnitOfWork(conn), env, scope)


async def stored_key(pool: asyncpg.Pool, agent_id: str) -> str | None:
    value = await pool.fetchval("SELECT public_key FROM agents WHERE agent_id = $1", agent_id)
    return str(value) if value is not None else None


# Registration ------------------------------------------------------------------------------------


async def test_a_self_signed_registration_binds_the_key(pool: asyncpg.Pool, agent_id: str) -> None:
    key = await registered(pool, agent_id)
    assert await stored_key(pool, agent_id) == key.public
    row = await pool.fetchrow(
        "SELECT principal_id, role, market_id FROM agents WHERE agent_id = $1", agent_id
    )
    assert dict(row) == {"principal_id": "p-1", "role": "buyer", "market_id": MARKET}


async def test_registering_again_with_the_same_key_is_harmless(pool: asyncpg.Pool, agent_id: str) -> None:
    key = await registered(pool, agent_id)
    async with pool.acquire() as conn:
        outcome = await register(conn, *registration(agent_id, key))
    assert outcome is RegistrationOutcome.ALREADY_REGISTERED
    assert await pool.fetchval("SELECT count(*) FROM agents WHERE agent_id = $1", agent_id) == 1


async def test_a_second_key_for_a_registered_agent_is_a_conflict(pool: asyncpg.Pool, agent_id: str) -> None:
    key = await registered(pool, agent_id)
    thief = AgentKey.generate()
    async with pool.acquire() as conn:
        outcome = await register(conn, *registration(agent_id, thief))
    assert outcome is RegistrationOutcome.KEY_CONFLICT
    assert await stored_key(pool, agent_id) == key.public


async def test_a_registration_signed_by_another_key_is_forged(pool: asyncpg.Pool, agent_id: str) -> None:
    claimed, signer = AgentKey.generate(), AgentKey.generate()
    async with pool.acquire() as conn:
        outcome = await register(conn, *registration(agent_id, claimed, signer=signer))
    assert outcome is RegistrationOutcome.BAD_SIGNATURE
    assert await stored_key(pool, agent_id) is None


async def test_a_registration_for_another_agent_id_is_forged(pool: asyncpg.Pool, agent_id: str) -> None:
    key = AgentKey.generate()
    async with pool.acquire() as conn:
        outcome = await register(conn, *registration(agent_id, key, envelope_agent="someone-else"))
    assert outcome is RegistrationOutcome.BAD_SIGNATURE
    assert await stored_key(pool, agent_id) is None


async def test_an_unsigned_registration_is_refused(pool: asyncpg.Pool, agent_id: str) -> None:
    key = AgentKey.generate()
    event = AgentRegistered(agent_id=agent_id, principal_id="p-1", role=Role.SELLER, public_key=key.public)
    env = wrap(event, market_id=MARKET, producer="agent", agent_id=agent_id)
    async with pool.acquire() as conn:
        assert await register(conn, env, event) is RegistrationOutcome.BAD_SIGNATURE
    assert await stored_key(pool, agent_id) is None


async def test_a_tampered_registration_is_refused(pool: asyncpg.Pool, agent_id: str) -> None:
    key = AgentKey.generate()
    env, event = registration(agent_id, key)
    tampered = AgentRegistered.model_validate({**env.payload, "principal_id": "p-rich"})
    env = env.model_copy(update={"payload": tampered.model_dump(mode="json")})
    async with pool.acquire() as conn:
        assert await register(conn, env, tampered) is RegistrationOutcome.BAD_SIGNATURE
    assert event.principal_id == "p-1"


# Authentication ----------------------------------------------------------------------------------


async def test_a_signed_command_from_a_registered_agent_passes(pool: asyncpg.Pool, agent_id: str) -> None:
    key = await registered(pool, agent_id)
    result = await auth(pool, offer(key, agent_id, 1))
    assert isinstance(result, Agent)
    assert (result.agent_id, result.principal_id, result.role) == (agent_id, "p-1", Role.BUYER)


async def test_an_unknown_agent_is_refused(pool: asyncpg.Pool, agent_id: str) -> None:
    assert await auth(pool, offer(AgentKey.generate(), agent_id, 1)) is AuthFailure.UNKNOWN_AGENT


async def test_an_agent_of_another_market_is_unknown_here(pool: asyncpg.Pool, agent_id: str) -> None:
    key = await registered(pool, agent_id)
    assert await auth(pool, offer(key, agent_id, 1, market="m-other")) is AuthFailure.UNKNOWN_AGENT


async def test_a_command_signed_by_another_key_is_refused(pool: asyncpg.Pool, agent_id: str) -> None:
    await registered(pool, agent_id)
    assert await auth(pool, offer(AgentKey.generate(), agent_id, 1)) is AuthFailure.BAD_SIGNATURE


async def test_a_tampered_command_is_refused(pool: asyncpg.Pool, agent_id: str) -> None:
    key = await registered(pool, agent_id)
    env = offer(key, agent_id, 1)
    env = env.model_copy(update={"payload": {**env.payload, "price_cents": 1}})
    assert await auth(pool, env) is AuthFailure.BAD_SIGNATURE


async def test_an_unsigned_command_is_refused(pool: asyncpg.Pool, agent_id: str) -> None:
    await registered(pool, agent_id)
    env = offer(AgentKey.generate(), agent_id, 1).model_copy(update={"signature": None})
    assert await auth(pool, env) is AuthFailure.BAD_SIGNATURE


async def test_a_replayed_seq_is_refused(pool: asyncpg.Pool, agent_id: str) -> None:
    key = await registered(pool, agent_id)
    env = offer(key, agent_id, 1)
    assert isinstance(await auth(pool, env), Agent)
    assert await auth(pool, env) is AuthFailure.REPLAYED_SEQ
    assert await auth(pool, offer(key, agent_id, 1)) is AuthFailure.REPLAYED_SEQ


async def test_an_older_seq_after_a_newer_one_is_refused(pool: asyncpg.Pool, agent_id: str) -> None:
    key = await registered(pool, agent_id)
    assert isinstance(await auth(pool, offer(key, agent_id, 5)), Agent)
    assert await auth(pool, offer(key, agent_id, 3)) is AuthFailure.REPLAYED_SEQ
    assert isinstance(await auth(pool, offer(key, agent_id, 6)), Agent)
    seq = await pool.fetchval(
        "SELECT last_seq FROM agent_seqs WHERE agent_id = $1 AND scope = 'L-1'", agent_id
    )
    assert seq == 6


async def test_seqs_in_different_scopes_are_independent(pool: asyncpg.Pool, agent_id: str) -> None:
    key = await registered(pool, agent_id)
    assert isinstance(await auth(pool, offer(key, agent_id, 10), scope="L-1"), Agent)
    assert isinstance(await auth(pool, offer(key, agent_id, 4, listing="L-2"), scope="L-2"), Agent)
    assert await auth(pool, offer(key, agent_id, 9), scope="L-1") is AuthFailure.REPLAYED_SEQ
    assert await auth(pool, offer(key, agent_id, 4, listing="L-2"), scope="L-2") is AuthFailure.REPLAYED_SEQ


async def test_a_refused_command_does_not_consume_its_seq(pool: asyncpg.Pool, agent_id: str) -> None:
    key = await registered(pool, agent_id)
    assert await auth(pool, offer(AgentKey.generate(), agent_id, 7)) is AuthFailure.BAD_SIGNATURE
    assert isinstance(await auth(pool, offer(key, agent_id, 7)), Agent)


async def test_a_seq_is_consumed_only_if_the_transaction_commits(pool: asyncpg.Pool, agent_id: str) -> None:
    key = await registered(pool, agent_id)
    env = offer(key, agent_id, 1)
    with pytest.raises(RuntimeError, match="handler failed"):
        async with pool.acquire() as conn, conn.transaction():
            assert isinstance(await authenticate(UnitOfWork(conn), env, "L-1"), Agent)
            raise RuntimeError("handler failed")
    assert isinstance(await auth(pool, env), Agent)


async def test_the_same_seq_racing_in_two_transactions_passes_once(pool: asyncpg.Pool, agent_id: str) -> None:
    key = await registered(pool, agent_id)
    env = offer(key, agent_id, 1)
    results = await asyncio.gather(*(auth(pool, env) for _ in range(4)))
    assert sum(isinstance(r, Agent) for r in results) == 1
    assert results.count(AuthFailure.REPLAYED_SEQ) == 3


async def test_a_retired_agent_can_no_longer_act(pool: asyncpg.Pool, agent_id: str) -> None:
    key = await registered(pool, agent_id)
    forged = signed(
        AgentRetired(agent_id=agent_id),
        key=AgentKey.generate(),
        agent_id=agent_id,
        seq=1,
        market_id=MARKET,
        producer="x",
    )
    async with pool.acquire() as conn:
        assert not await retire(conn, forged, agent_id)
    assert isinstance(await auth(pool, offer(key, agent_id, 1)), Agent)
    genuine = signed(
        AgentRetired(agent_id=agent_id), key=key, agent_id=agent_id, seq=2, market_id=MARKET, producer="agent"
    )
    async with pool.acquire() as conn:
        assert await retire(conn, genuine, agent_id)
    assert await auth(pool, offer(key, agent_id, 3)) is AuthFailure.UNKNOWN_AGENT


async def test_the_largest_seq_fits_the_database(pool: asyncpg.Pool, agent_id: str) -> None:
    key = await registered(pool, agent_id)
    assert isinstance(await auth(pool, offer(key, agent_id, 2**63 - 1)), Agent)
    assert await auth(pool, offer(key, agent_id, 2**63 - 1)) is AuthFailure.REPLAYED_SEQ
