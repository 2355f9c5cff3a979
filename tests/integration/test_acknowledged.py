"""`no_acknowledged_event_lost` against real Kafka and PostgreSQL: a row the relay sent is found on
its topic by event id; a row marked sent that never reached the broker is reported lost."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from haggle import infra
from haggle.contracts import Envelope, encode
from haggle.runtime.kafka import make_producer
from haggle.runtime.outbox import OutboxRelay, UnitOfWork
from haggle_lab.chaos import acknowledged
from tests.integration.scratch import scratch_schema

TOPIC = "acktest.events"


def envelope() -> Envelope:
    return Envelope(type="Probe", market_id="acktest", producer="test", payload={"type": "Probe"})


async def test_sent_rows_are_found_and_a_row_never_published_is_lost(
    bootstrap: str, database_url: str
) -> None:
    await infra.ensure_topics_async(bootstrap, {TOPIC: 3})
    began = datetime.now(UTC)
    relayed = [envelope() for _ in range(20)]
    phantom = envelope()
    async with scratch_schema(database_url, "acktest") as pool:
        async with pool.acquire() as conn, conn.transaction():
            uow = UnitOfWork(conn)
            for env in relayed:
                uow.emit(TOPIC, str(uuid.uuid4()), env)
            await uow.flush()
        producer = make_producer(bootstrap, "acktest")
        await producer.start()
        try:
            async with pool.acquire() as conn:
                assert await OutboxRelay(pool, producer, "acktest", "test").publish_once(conn) == 20
        finally:
            await producer.stop()
        await pool.execute(  # marked sent, but the broker never saw it: a lost acknowledged write
            "INSERT INTO outbox (event_id, topic, key, payload, sent_at) VALUES ($1, $2, 'k', $3, now())",
            phantom.event_id,
            TOPIC,
            encode(phantom),
        )
        found = await acknowledged.check(database_url, bootstrap, began, topics=[TOPIC])

    assert found.sent[TOPIC] == {env.event_id for env in relayed} | {phantom.event_id}
    assert found.lost == {TOPIC: {phantom.event_id}}
    assert found.acknowledged == 21
    assert found.problems() == [
        f"{TOPIC}: event {phantom.event_id} was acknowledged (outbox sent) but is not on the topic"
    ]
