"""Floods: too many threads, oversized and garbage messages. Others must still get through."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import orjson
from aiokafka import AIOKafkaConsumer

from haggle.client import tail
from haggle.contracts import Envelope, ShippingMethod
from haggle.contracts.agents import Role
from haggle.contracts.codec import MAX_MESSAGE_BYTES, encode
from haggle.contracts.negotiation import AcceptOffer, SendMessage
from haggle.contracts.signing import signing_bytes
from haggle.contracts.topics import LISTING_COMMANDS_TOPIC, NEGOTIATION_COMMANDS
from haggle.runtime.operators import operator_envelope
from haggle_lab.redteam.attack import Attack, AttackResult, RedTeamContext, expect_refusal
from haggle_lab.redteam.protocol import Scene, counter, move, opening, scene
from haggle_lab.testing.actors import ScriptedAgent
from haggle_lab.testing.market import Market, a_listing
from haggle_lab.testing.observe import of_type

CAP = 20
FLOOD_LISTINGS = 100
BATCH = 500
PAIR_BOUND_SECONDS = 30.0
DLQ = NEGOTIATION_COMMANDS.dlq


async def dead_letters(consumer: AIOKafkaConsumer, key: str, count: int, timeout: float = 30) -> list[dict]:
    """DLQ records (decoded) whose key is `key`, until `count` arrived or the timeout."""
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=200, max_records=1_000)
        for records in batches.values():
            found += [orjson.loads(r.value) for r in records if r.key and r.key.decode() == key]
    return found


async def _listings_known(ctx: RedTeamContext, market_id: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with ctx.db() as conn:
        while time.monotonic() < deadline:
            known = await conn.fetchval(
                "SELECT count(*) FROM negotiation.listings_view WHERE market_id = $1", market_id
            )
            if known >= count:
                return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"the referee knows {known}/{count} listings")


async def _stock(ctx: RedTeamContext, mk: Market, seller: ScriptedAgent) -> list[str]:
    ids = [f"{mk.market_id}-f{i:03d}" for i in range(FLOOD_LISTINGS)]
    commands = [(i, operator_envelope(a_listing(i, seller), mk.market_id, "redteam")) for i in ids]
    await mk.pub.send_many(LISTING_COMMANDS_TOPIC.name, commands)
    await _listings_known(ctx, mk.market_id, FLOOD_LISTINGS)
    return ids


async def _flood(mk: Market, attacker: ScriptedAgent, listing_ids: list[str], total: int) -> None:
    envs = [attacker.sign(opening(listing_ids[n % len(listing_ids)], 9_000)) for n in range(total)]
    for start in range(0, total, BATCH):
        batch = envs[start : start + BATCH]
        await mk.pub.send_many(NEGOTIATION_COMMANDS.name, [(e.payload["listing_id"], e) for e in batch])


async def _normal_pair(mk: Market, s: Scene) -> float:
    """A whole negotiation between well-behaved agents: open, counter, accept. Seconds it took."""
    started = time.perf_counter()
    opened = await mk.open(s.buyer, opening(s.listing_id, 15_000))
    s.thread_id = opened.payload["thread_id"]
    offer = await move(s, s.seller, counter(s, 17_000), s.buyer)
    accept = AcceptOffer(listing_id=s.listing_id, thread_id=s.thread_id, offer_id=offer.payload["offer_id"])
    await s.buyer.send(mk.pub, accept)
    await mk.obs.wait_for(of_type("DealAgreed", listing_id=s.listing_id), "negotiation.events", timeout=60)
    return time.perf_counter() - started


def _answers(mk: Market, attacker_id: str) -> tuple[int, Counter[str]]:
    opened = len(mk.obs.matching(of_type("ThreadOpened", buyer_agent_id=attacker_id), "negotiation.events"))
    refused = mk.obs.matching(of_type("ActionRefused", agent_id=attacker_id), "negotiation.events")
    return opened, Counter(str(e.payload["reason"]) for e in refused)


async def thread_flood(ctx: RedTeamContext) -> AttackResult:
    total = ctx.flood_threads
    async with ctx.market("thread_flood", max_open_threads_per_agent=CAP) as mk:
        s = await scene(mk, open_at=None)
        attacker = mk.agent("flooder", Role.BUYER)
        await mk.admit(attacker)
        listing_ids = await _stock(ctx, mk, s.seller)
        started = time.perf_counter()
        flooding = asyncio.create_task(_flood(mk, attacker, listing_ids, total))
        pair_seconds = await _normal_pair(mk, s)
        await flooding
        await mk.obs.wait_for(
            lambda e: (
                e.type in ("ThreadOpened", "ActionRefused")
                and attacker.agent_id in (e.payload.get("agent_id"), e.payload.get("buyer_agent_id"))
            ),
            "negotiation.events",
            count=total,
            timeout=120,
        )
        flood_seconds = time.perf_counter() - started
        opened, reasons = _answers(mk, attacker.agent_id)
        async with ctx.db() as conn:
            stored = await conn.fetchval(
                "SELECT count(*) FROM negotiation.threads WHERE buyer_agent_id = $1", attacker.agent_id
            )
    ctx.timings.update(
        normal_pair_seconds=round(pair_seconds, 2), flood_seconds=round(flood_seconds, 1), flood_size=total
    )
    held = (
        opened <= CAP
        and stored <= CAP
        and set(reasons) <= {"too_many_threads", "thread_exists"}
        and opened + sum(reasons.values()) == total
        and pair_seconds < PAIR_BOUND_SECONDS
    )
    detail = (
        f"{total} opens: {opened} opened (cap {CAP}), refused {dict(reasons)}; threads stored {stored}; "
        f"normal pair's deal in {pair_seconds:.2f}s, flood answered in {flood_seconds:.1f}s"
    )
    return AttackResult(held, reasons.most_common(1)[0][0] if reasons else "none", detail)


def _resigned(agent: ScriptedAgent, env: Envelope, payload: dict) -> Envelope:
    """The same command with a payload no model would build, signed properly so only its size is wrong."""
    assert env.seq is not None
    signature = agent.key.sign(signing_bytes(env.market_id, agent.agent_id, env.seq, payload))
    return env.model_copy(update={"payload": payload, "signature": signature})


async def oversized_chat(ctx: RedTeamContext) -> AttackResult:
    async with ctx.market("oversized_chat") as mk:
        s = await scene(mk)
        env = s.buyer.sign(SendMessage(listing_id=s.listing_id, thread_id=s.thread_id, text="hi"))
        env = _resigned(s.buyer, env, {**env.payload, "text": "Buy now! " * 1_000})
        await mk.pub.send(NEGOTIATION_COMMANDS.name, s.listing_id, env)
        return await expect_refusal(mk, s.buyer, env, ("invalid_payload",))


async def oversized_message(ctx: RedTeamContext) -> AttackResult:
    async with ctx.market("oversized_message") as mk, tail(ctx.bootstrap, DLQ) as dlq:
        s = await scene(mk)
        env = s.buyer.sign(SendMessage(listing_id=s.listing_id, thread_id=s.thread_id, text="hi"))
        raw = encode(env.model_copy(update={"payload": {**env.payload, "text": "x" * (300 * 1024)}}))
        assert len(raw) > MAX_MESSAGE_BYTES
        await mk.pub.send_raw(NEGOTIATION_COMMANDS.name, s.listing_id, raw)
        found = await dead_letters(dlq, s.listing_id, 1)
        seen = str(found[0]["reason"]) if found else "nothing in the DLQ"
        answered = mk.obs.matching(lambda e: e.causation_id == str(env.event_id))
        detail = f"{len(raw)} bytes; referee answers: {len(answered)}"
        return AttackResult(seen == "malformed" and not answered, seen, detail)


async def garbage_flood(ctx: RedTeamContext, count: int = 500) -> AttackResult:
    async with ctx.market("garbage_flood") as mk, tail(ctx.bootstrap, DLQ) as dlq:
        s = await scene(mk, open_at=None)
        await mk.open(
            s.buyer, opening(s.listing_id, 1, ShippingMethod.FREIGHT)
        )  # the referee knows the listing
        junk = [uuid.uuid4().bytes * (1 + n % 50) for n in range(count)]
        started = time.perf_counter()
        for value in junk:
            await mk.pub.producer.send(NEGOTIATION_COMMANDS.name, value, key=s.listing_id.encode())
        valid = await s.buyer.send(mk.pub, opening(s.listing_id, 12_000))
        outcome = await mk.outcome(s.buyer, valid, timeout=60)
        behind = time.perf_counter() - started
        found = await dead_letters(dlq, s.listing_id, count)
        reasons = Counter(str(r["reason"]) for r in found)
        held = outcome.type == "ThreadOpened" and reasons == Counter({"malformed": count})
        detail = f"{count} junk records dead-lettered {dict(reasons)}; the valid open behind them: "
        detail += f"{outcome.type} after {behind:.2f}s"
        return AttackResult(held, "malformed" if reasons else "nothing in the DLQ", detail)


FLOODS: tuple[Attack, ...] = (
    Attack(
        "thread_flood",
        "flood",
        "one buyer agent opens thousands of threads over 100 listings",
        "at most max_open_threads_per_agent open; every open answered; others still trade",
        ("too_many_threads",),
        thread_flood,
    ),
    Attack(
        "oversized_message",
        "flood",
        "a 300 KiB command on negotiation.commands",
        "over 256 KiB is dead-lettered unread, never a crash",
        ("malformed",),
        oversized_message,
    ),
    Attack(
        "oversized_chat",
        "flood",
        "a properly signed chat line of 9 000 characters",
        "chat is at most 2 000 characters: a typed refusal",
        ("invalid_payload",),
        oversized_chat,
    ),
    Attack(
        "garbage_flood",
        "flood",
        "500 records of random bytes, then a valid open on the same partition",
        "garbage is dead-lettered and does not block the valid command behind it",
        ("malformed",),
        garbage_flood,
    ),
)
