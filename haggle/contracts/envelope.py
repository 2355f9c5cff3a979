"""The one envelope every message on every topic travels in.

The payload is a discriminated union on `type`, so a reader finds a message's
model from its name. Agent commands also carry the agent's id, its per-agent
monotonic `seq` and an Ed25519 signature (see `haggle.contracts.signing`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import uuid_utils.compat
from pydantic import BaseModel, ConfigDict, Field, model_validator

from haggle.contracts.types import Id


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_event_id() -> uuid.UUID:
    """A fresh event id: a UUIDv7 (RFC 9562), its first 48 bits the milliseconds since the epoch,
    then 74 random bits. Ids made later sort later, so every service's inbox and outbox index
    takes new ids at its right edge instead of on a random page of an index that grows all week
    (`bench.event_ids`). The time it shows is no secret: the envelope carries `occurred_at`."""
    return uuid_utils.compat.uuid7()


class Message(BaseModel):
    """Base of every payload. Subclasses set `type: Literal[...]`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    SCHEMA_VERSION: ClassVar[int] = 1
    type: str


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID = Field(default_factory=new_event_id)
    type: str
    schema_version: int = 1
    occurred_at: datetime = Field(default_factory=utcnow)
    market_id: Id
    correlation_id: str | None = Field(default=None, max_length=128)
    causation_id: str | None = Field(default=None, max_length=128)
    producer: str = Field(max_length=64)
    agent_id: Id | None = None
    seq: int | None = Field(default=None, ge=0, le=2**63 - 1, description="stored as a PostgreSQL bigint")
    signature: str | None = Field(default=None, max_length=200)
    payload: dict[str, Any]

    @model_validator(mode="after")
    def _type_matches_payload(self) -> Envelope:
        if self.payload.get("type") != self.type:
            raise ValueError(f"envelope type {self.type!r} != payload type")
        return self


def wrap(
    payload: Message,
    *,
    market_id: str,
    producer: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    event_id: uuid.UUID | None = None,
    agent_id: str | None = None,
    seq: int | None = None,
    signature: str | None = None,
) -> Envelope:
    """Put a payload in an envelope. Pass `event_id` to keep it stable across retries."""
    return Envelope(
        event_id=event_id or new_event_id(),
        type=payload.type,
        schema_version=payload.SCHEMA_VERSION,
        market_id=market_id,
        correlation_id=correlation_id,
        causation_id=causation_id,
        producer=producer,
        agent_id=agent_id,
        seq=seq,
        signature=signature,
        payload=payload.model_dump(mode="json"),
    )
