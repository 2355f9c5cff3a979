"""Fuzzed input into every topic a service consumes, against the running services.

Per topic: garbage bytes and sound envelopes with invalid payloads (drawn
deterministically by hypothesis), then one valid sentinel, all under one key so
they share a partition. Then: every service is still ready, every consumer
group committed past the sentinel (it was handled after the garbage), each
undecodable input has exactly one DLQ record per consuming service (found by
partition + offset), each invalid payload a DLQ record or a typed refusal, no
handler crashed, and `haggle_dlq_total` grew by what the DLQ received.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haggle import procs
from haggle.client import Publisher
from haggle.contracts import MalformedMessage, Message, decode
from haggle.contracts.topics import TOPICS
from haggle.runtime.service import ServiceContext, Subscription, group_id
from haggle.runtime.settings import Settings
from haggle_lab.testing import mandates
from haggle_lab.testing.observe import Observer, of_type
from tests.fuzz.strategies import envelope_bytes, garbage, mutations, payloads
from tests.fuzz.tally import budget, count

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("running_services")]
TOPIC_MODELS = {t.name: t.messages for t in TOPICS}
ANSWERS = ("listing.events", "negotiation.events", "settlement.events")


def wiring() -> dict[str, list[tuple[str, Subscription]]]:
    """topic → (service, subscription), from each service's own wiring (build does no I/O)."""
    found: dict[str, list[tuple[str, Subscription]]] = {}
    for name in procs.SERVICES:
        module = importlib.import_module(f"services.{name}.app").MODULE
        ctx = ServiceContext(module.name, module.schema, Settings(), None, None)  # type: ignore[arg-type]
        for sub in module.build(ctx).subscriptions:
            found.setdefault(sub.topic, []).append((name, sub))
    return found


def draw_inputs(topic: str, market_id: str, n: int) -> list[bytes]:
    """n inputs, a third garbage, the rest envelopes whose payload its model refuses; deterministic."""
    models = TOPIC_MODELS[topic]
    drawn: list[bytes] = []

    def bad_envelope(model: type[Message]) -> st.SearchStrategy[bytes]:
        bad = (
            payloads(model).flatmap(lambda good: mutations(model, good)).filter(lambda d: _refused(model, d))
        )
        return bad.map(lambda d: envelope_bytes(model, d, market_id))

    inputs = st.one_of(
        garbage(),
        st.sampled_from(models).flatmap(bad_envelope),
        st.sampled_from(models).flatmap(bad_envelope),
    )

    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs)
    def collect(raw: bytes) -> None:
        drawn.append(raw)

    collect()
    return drawn[:n]


def _refused(model: type[Message], data: dict[str, Any]) -> bool:
    try:
        model.model_validate(data)
    except Exception:
        return True
    return False


def sentinel(topic: str, market_id: str) -> bytes:
    model = TOPIC_MODELS[topic][0]
    found: list[dict[str, Any]] = []

    @settings(
        max_examples=1,
        database=None,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(payloads(model))
    def first(data: dict[str, Any]) -> None:
        found.append(data)

    first()
    return envelope_bytes(model, found[0], market_id)


async def dlq_total(service: str, topic: str) -> float:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{procs.url_for(service)}/metrics")).text
    pattern = rf'^haggle_dlq_total\{{[^}}]*service="{service}"[^}}]*topic="{re.escape(topic)}"[^}}]*\}} (\S+)'
    return sum(float(v) for v in re.findall(pattern, text, re.M))


async def committed_past(groups: list[str], tp: TopicPartition, offset: int, bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for _ in range(600):
            offsets = [await admin.list_consumer_group_offsets(g, partitions=[tp]) for g in groups]
            if all(o.get(tp) and o[tp].offset > offset for o in offsets):
                return
            await asyncio.sleep(0.25)
        raise AssertionError(f"{tp}: groups {groups} never committed past the sentinel at {offset}")
    finally:
        await admin.close()


@pytest.mark.parametrize("topic", sorted(wiring()))
async def test_no_input_crashes_a_consumer(topic: str, bootstrap: str, market_id: str) -> None:
    subs = wiring()[topic]
    inputs = draw_inputs(topic, market_id, budget(200))
    count(f"live {topic}", len(inputs))
    before = {name: await dlq_total(name, topic) for name, _ in subs}
    key_text, owner = await _a_key_the_filters_take(subs, bootstrap, market_id)
    key = key_text.encode()
    async with Observer(bootstrap, *ANSWERS) as obs_raw, _dlq_reader(bootstrap, topic) as dlq:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=2 * 1024 * 1024)
        await producer.start()
        try:
            sent = [await producer.send_and_wait(topic, raw, key=key) for raw in inputs]
            last = await producer.send_and_wait(topic, sentinel(topic, market_id), key=key)
        finally:
            await producer.stop()
        tp = TopicPartition(topic, last.partition)
        groups = [group_id(Settings(), name) for name, _ in subs]
        await committed_past(groups, tp, last.offset, bootstrap)
        await asyncio.sleep(1.0)
        records = await dlq.drain()
        refusals = {e.causation_id for _, e in obs_raw.seen if e.causation_id}

    assert all(procs.ready(name)[0] for name in procs.SERVICES)
    mine = [r for r in records if r["partition"] == tp.partition and r["offset"] <= last.offset]
    assert not [r for r in mine if r["reason"] == "handler_failed"], "a handler crashed on fuzzed input"
    by_input = Counter((r["service"], r["offset"]) for r in mine)
    for raw, meta in zip(inputs, sent, strict=True):
        for name, sub in subs:
            # a key filter of another service (the gateway runs outside agents only) skips it
            expected = _expected(raw, sub) if sub.keys is None or name == owner else ""
            got = by_input[(name, meta.offset)]
            if expected == "dlq":
                assert got == 1, (
                    f"{name} on {topic} offset {meta.offset}: {got} DLQ records for {raw[:120]!r}"
                )
            elif expected == "refusal":
                eid = str(decode(raw).event_id)
                assert got == 1 or eid in refusals, f"{name}: no DLQ record nor refusal for {eid}"
    for name, _ in subs:
        grew = await dlq_total(name, topic) - before[name]
        assert grew == sum(1 for r in mine if r["service"] == name), f"{name} haggle_dlq_total on {topic}"


async def _a_key_the_filters_take(
    subs: list[tuple[str, Subscription]], bootstrap: str, market_id: str
) -> tuple[str, str | None]:
    """A subscription with a key filter (the agents' and the gateway's inbox) skips keys it does not
    run, so the fuzzed inputs go under the id of an agent the agents service runs: one assigned
    here. Returns the key and the service whose filter takes it (None: no filter)."""
    if all(sub.keys is None for _, sub in subs):
        return f"fuzz-{market_id}", None
    principal_id = f"fuzz-{market_id}-p"
    async with Publisher(bootstrap) as pub, Observer(bootstrap, "agent.events", market_id=market_id) as obs:
        await mandates.assign(pub, market_id, mandates.seller(principal_id, []))
        registered = await obs.wait_for(
            of_type("AgentRegistered", principal_id=principal_id), "agent.events", timeout=60
        )
    return str(registered[0].payload["agent_id"]), "agents"


def _expected(raw: bytes, sub: Subscription) -> str:
    """What a consumer must do with this input: 'dlq', 'refusal' (or DLQ), or '' (ignore it)."""
    try:
        env = decode(raw)
    except MalformedMessage:
        return "dlq"
    handled = any(m.model_fields["type"].default == env.type for m in sub.handlers)
    if not handled and not sub.commands:
        return ""
    return "refusal" if sub.on_invalid is not None else "dlq"


class _dlq_reader:
    """Reads `<topic>.dlq` from its current end: the DLQ body is JSON, not an envelope."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from aiokafka import AIOKafkaConsumer

        self.consumer = AIOKafkaConsumer(
            f"{topic}.dlq", bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest"
        )
        self.records: list[dict[str, Any]] = []

    async def __aenter__(self) -> _dlq_reader:
        from haggle.client import _pin_to_end

        await self.consumer.start()
        await _pin_to_end(self.consumer)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def drain(self) -> list[dict[str, Any]]:
        while batches := await self.consumer.getmany(timeout_ms=1000, max_records=5000):
            for batch in batches.values():
                self.records += [orjson.loads(r.value) for r in batch]
        return self.records
