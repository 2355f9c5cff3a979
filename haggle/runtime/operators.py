"""Who may act as the operator: fund wallets, resolve disputes, answer approvals.

Agents write settlement.commands too, so a topic ACL cannot tell an agent
from the operator there: operator messages must be signed with an operator
key. The public keys come from `HAGGLE_OPERATOR_PUBLIC_KEYS` (comma-separated,
urlsafe base64) or, for local use, from the private key file in the state
folder that the `haggle` CLI creates on first use. Operator messages need no
seq: each is idempotent on its own (a funding id, one resolution per dispute,
one answer per approval).

`Operators(settings)` holds the keys of one set of settings; the module's functions use the
process's (`settings.current()`). The key file is looked for until found, since the CLI may make
it after a service started; once read, it is kept.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

from haggle.contracts import AgentKey, Envelope, Message, envelope_signature_valid, signed
from haggle.runtime.settings import Settings, current

OPERATOR_ID = "operator"


class Operators:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._key: AgentKey | None = None

    @property
    def key_file(self) -> Path:
        return self.settings.state_dir / "operator.key"

    def private_key(self) -> AgentKey:
        """The signing key: `HAGGLE_OPERATOR_KEY`, else the state folder's file (made if missing)."""
        if self._key is None:
            self._key = self._configured_key() or self._file_key(create=True)
        assert self._key is not None  # made when missing
        return self._key

    def _configured_key(self) -> AgentKey | None:
        raw = self.settings.operator_key
        return AgentKey.from_bytes(_unb64(raw.get_secret_value())) if raw is not None else None

    def _file_key(self, create: bool) -> AgentKey | None:
        path = self.key_file
        if not path.exists():
            if not create:
                return None
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(AgentKey.generate().private_bytes())
        return AgentKey.from_bytes(path.read_bytes())

    def public_keys(self) -> tuple[str, ...]:
        if configured := self.settings.operator_public_keys:
            return configured
        if self._key is None:
            self._key = self._configured_key() or self._file_key(create=False)
        return (self._key.public,) if self._key is not None else ()

    def is_operator(self, envelope: Envelope) -> bool:
        if envelope.agent_id != OPERATOR_ID:
            return False
        return any(envelope_signature_valid(envelope, key) for key in self.public_keys())

    def envelope(
        self, message: Message, market_id: str, producer: str = "operator", correlation_id: str | None = None
    ) -> Envelope:
        """An operator message, signed; the seq is only a timestamp since none is checked."""
        envelope = signed(
            message,
            key=self.private_key(),
            agent_id=OPERATOR_ID,
            seq=time.time_ns() // 1_000,
            market_id=market_id,
            producer=producer,
        )
        # The correlation id is not signed: it only groups messages for people and logs.
        return envelope.model_copy(update={"correlation_id": correlation_id}) if correlation_id else envelope


def _unb64(text: str) -> bytes:
    from haggle.contracts.signing import unb64

    return unb64(text)


@functools.cache
def of(settings: Settings) -> Operators:
    """The operators of `settings`, made once per settings."""
    return Operators(settings)


def key_file() -> Path:
    return of(current()).key_file


def private_key() -> AgentKey:
    return of(current()).private_key()


def public_keys() -> tuple[str, ...]:
    return of(current()).public_keys()


def is_operator(envelope: Envelope) -> bool:
    return of(current()).is_operator(envelope)


def operator_envelope(
    message: Message, market_id: str, producer: str = "operator", correlation_id: str | None = None
) -> Envelope:
    return of(current()).envelope(message, market_id, producer, correlation_id)
