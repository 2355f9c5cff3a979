"""Who may act as the operator: fund wallets, resolve disputes, answer approvals.

Agents write settlement.commands too, so a topic ACL cannot tell an agent
from the operator there: operator messages must be signed with an operator
key. The public keys come from `HAGGLE_OPERATOR_PUBLIC_KEYS` (comma-separated,
urlsafe base64) or, for local use, from the private key file in the state
folder that the `haggle` CLI creates on first use. Operator messages need no
seq: each is idempotent on its own (a funding id, one resolution per dispute,
one answer per approval).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from haggle.contracts import AgentKey, Envelope, Message, envelope_signature_valid, signed

OPERATOR_ID = "operator"


def key_file() -> Path:
    from haggle.infra.state import Settings

    return Settings.from_env().state_dir / "operator.key"


def private_key() -> AgentKey:
    """The operator's signing key: `HAGGLE_OPERATOR_KEY`, else the state folder's file (made if missing)."""
    if raw := os.environ.get("HAGGLE_OPERATOR_KEY"):
        return AgentKey.from_bytes(_unb64(raw))
    path = key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(AgentKey.generate().private_bytes())
    return AgentKey.from_bytes(path.read_bytes())


def _unb64(text: str) -> bytes:
    from haggle.contracts.signing import unb64

    return unb64(text)


def _configured() -> tuple[str, ...]:
    return tuple(k.strip() for k in os.environ.get("HAGGLE_OPERATOR_PUBLIC_KEYS", "").split(",") if k.strip())


def public_keys() -> tuple[str, ...]:
    if configured := _configured():
        return configured
    if os.environ.get("HAGGLE_OPERATOR_KEY") or key_file().exists():
        return (private_key().public,)
    return ()


def is_operator(envelope: Envelope) -> bool:
    if envelope.agent_id != OPERATOR_ID:
        return False
    return any(envelope_signature_valid(envelope, key) for key in public_keys())


def operator_envelope(
    message: Message, market_id: str, producer: str = "operator", correlation_id: str | None = None
) -> Envelope:
    """An operator message, signed; the seq is only a timestamp since none is checked."""
    envelope = signed(
        message,
        key=private_key(),
        agent_id=OPERATOR_ID,
        seq=time.time_ns() // 1_000,
        market_id=market_id,
        producer=producer,
    )
    # The correlation id is not signed: it only groups messages for people and logs.
    return envelope.model_copy(update={"correlation_id": correlation_id}) if correlation_id else envelope
