"""Kafka clients: the FastStream broker for subscribers, an idempotent producer for the relay."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker


def make_broker(bootstrap: str, client_id: str) -> KafkaBroker:
    """Subscribers only today; its producer gets the relay's guarantees should anything publish.

    No dependency injection (`apply_types=False`): a subscriber's handler takes what its decoder
    returns, nothing else. With injection, FastStream resolved the handler's `KafkaMessage`
    argument through a synchronous context lookup that fast-depends runs in a worker thread: a
    thread hand-off for every batch of every subscriber."""
    servers = [server.strip() for server in bootstrap.split(",") if server.strip()]  # a list: FastStream
    return KafkaBroker(
        servers,
        client_id=client_id,
        logger=None,
        acks="all",
        enable_idempotence=True,
        apply_types=False,
    )


def make_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    """acks=all and idempotence: a retried send is written once, in order per partition."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
    )
