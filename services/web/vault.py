"""Personal data at rest: a principal's shipping address, sealed with AES-GCM.

The key is `HAGGLE_WEB_DATA_KEY` (32 bytes, urlsafe base64) or, for local use, a
file in the state folder made on first use (mode 0600). The principal id is the
associated data, so a ciphertext copied onto another principal's row does not open.
The address is never logged, never published on a topic, never put in a prompt.
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from haggle.contracts.sealing import aes_key
from haggle.runtime.settings import Settings, current

KEY_ENV = "HAGGLE_WEB_DATA_KEY"
MAX_ADDRESS_CHARS = 500


def data_key(settings: Settings | None = None) -> bytes:
    settings = settings or current()
    return aes_key(settings.web_data_key, KEY_ENV, settings.state_dir / "web-data.key")


def seal(principal_id: str, address: str) -> tuple[bytes, bytes]:
    nonce = secrets.token_bytes(12)
    return nonce, AESGCM(data_key()).encrypt(nonce, address.encode(), principal_id.encode())


def unseal(principal_id: str, nonce: bytes, ciphertext: bytes) -> str:
    return AESGCM(data_key()).decrypt(nonce, ciphertext, principal_id.encode()).decode()


def masked(address: str) -> str:
    """What a page shows back: the first line's start and the last line (say, the city)."""
    lines = [line.strip() for line in address.splitlines() if line.strip()]
    if not lines:
        return ""
    first = lines[0][:4] + "…" if len(lines[0]) > 4 else lines[0]
    return first if len(lines) == 1 else f"{first} / {lines[-1]}"
