"""Ed25519 signatures over one canonical JSON form, used by signer and verifier alike.

What is signed is not the payload alone but (market, agent, seq, type, payload):
signing only the payload would let anyone replay a signed move under a fresh
seq or in another market.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from haggle.contracts.envelope import Envelope, Message, wrap


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same bytes on every machine."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def signing_bytes(market_id: str, agent_id: str, seq: int, payload: dict[str, Any]) -> bytes:
    return canonical_json({"market_id": market_id, "agent_id": agent_id, "seq": seq, "payload": payload})


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AgentKey:
    """An agent's private key; `public` is what it registers."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private

    @classmethod
    def generate(cls) -> AgentKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, raw: bytes) -> AgentKey:
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        return self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @property
    def public(self) -> str:
        raw = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return b64(raw)

    def sign(self, data: bytes) -> str:
        return b64(self._private.sign(data))


@functools.lru_cache(maxsize=65_536)
def _public_key(public_key: str) -> Ed25519PublicKey:
    """Registered keys are checked on every command: parse each once (bad ones raise, uncached)."""
    return Ed25519PublicKey.from_public_bytes(unb64(public_key))


def verify(public_key: str, data: bytes, signature: str) -> bool:
    try:
        _public_key(public_key).verify(unb64(signature), data)
    except (InvalidSignature, ValueError):
        return False
    return True


def signed(
    payload: Message, *, key: AgentKey, agent_id: str, seq: int, market_id: str, producer: str
) -> Envelope:
    """An agent command, signed over its canonical form."""
    body = payload.model_dump(mode="json")
    signature = key.sign(signing_bytes(market_id, agent_id, seq, body))
    return wrap(
        payload,
        market_id=market_id,
        producer=producer,
        agent_id=agent_id,
        seq=seq,
        signature=signature,
    )


def envelope_signature_valid(envelope: Envelope, public_key: str) -> bool:
    if envelope.agent_id is None or envelope.seq is None or envelope.signature is None:
        return False
    data = signing_bytes(envelope.market_id, envelope.agent_id, envelope.seq, envelope.payload)
    return verify(public_key, data, envelope.signature)
