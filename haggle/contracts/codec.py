"""Bytes on the wire ⇄ envelopes ⇄ typed payloads, with typed failures.

A consumer decodes in two steps so that a message whose envelope is sound but
whose payload is not still gets a refusal addressed to its sender, while bytes
that are not an envelope at all go to the dead-letter topic.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from haggle.contracts.envelope import Envelope, Message
from haggle.contracts.topics import TOPICS

MAX_MESSAGE_BYTES = 256 * 1024


class MalformedMessage(Exception):
    """The bytes are not a valid envelope: JSON, shape or size."""


class InvalidPayload(Exception):
    """The envelope is sound but its payload does not match its type's contract."""

    def __init__(self, envelope: Envelope, error: ValidationError | str) -> None:
        self.envelope = envelope
        self.error = error
        self.fields = _error_fields(error)
        super().__init__(_describe(error))


class UnsupportedSchemaVersion(InvalidPayload):
    """The envelope's `schema_version` is a major version of its type this code does not know.

    Within a major version contracts only grow by optional fields (contracts/COMPATIBILITY.md),
    so any message of a known major decodes; another major may mean anything and is refused."""

    def __init__(self, envelope: Envelope, supported: int) -> None:
        self.supported = supported
        super().__init__(
            envelope,
            f"{envelope.type} schema_version {envelope.schema_version} not supported (reads {supported})",
        )


def _error_fields(error: ValidationError | str) -> tuple[str, ...]:
    if isinstance(error, str):
        return ()
    return tuple(str(e["loc"][0]) for e in error.errors() if e["loc"])


def _describe(error: ValidationError | str) -> str:
    if isinstance(error, str):
        return error
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5]]
    return "; ".join(parts)[:900]


def _registry() -> dict[str, type[Message]]:
    types: dict[str, type[Message]] = {}
    for topic in TOPICS:
        for model in topic.messages:
            name = model.model_fields["type"].default
            types[name] = model
    return types


MESSAGE_TYPES: dict[str, type[Message]] = _registry()


def register(*models: type[Message]) -> None:
    """Add message models that travel on topics whose registry entry is open-ended."""
    for model in models:
        MESSAGE_TYPES[model.model_fields["type"].default] = model


def encode(envelope: Envelope) -> bytes:
    return orjson.dumps(envelope.model_dump(mode="json"))


def decode(raw: bytes | None) -> Envelope:
    if raw is None:
        raise MalformedMessage("empty message (tombstone)")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"message of {len(raw)} bytes over the {MAX_MESSAGE_BYTES} limit")
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"not JSON: {exc}") from exc
    try:
        return Envelope.model_validate(data)
    except ValidationError as exc:
        raise MalformedMessage(f"not an envelope: {_describe(exc)}") from exc


def payload_of(envelope: Envelope, allowed: tuple[type[Message], ...] = ()) -> Message:
    """The typed payload; `allowed` restricts which types this consumer accepts."""
    model = MESSAGE_TYPES.get(envelope.type)
    if model is None or (allowed and model not in allowed):
        raise InvalidPayload(envelope, f"message type {envelope.type!r} not accepted here")
    if envelope.schema_version != model.SCHEMA_VERSION:
        raise UnsupportedSchemaVersion(envelope, model.SCHEMA_VERSION)
    try:
        return model.model_validate(envelope.payload)
    except ValidationError as exc:
        raise InvalidPayload(envelope, exc) from exc
