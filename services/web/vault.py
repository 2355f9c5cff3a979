"""Personal data at rest: a principal's shipping address, sealed with AES-GCM.

The key is `HAGGLE_WEB_DATA_KEY` (32 bytes, urlsafe base64) or, for local use, a
file in the state folder made on first use (mode 0600). The principal id is the
associated data, so a ciphertext copied onto another principal's row does not open.
The address is never logged, never published on a topic, never put in a prompt.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ENV = "HAGGLE_WEB_DATA_KEY"
MAX_ADDRESS_CHARS = 500


def _key_file() -> Path:
    from haggle.infra.state import Settings

    return Settings.from_env().state_dir / "web-data.key"


def data_key() -> bytes:
    if raw := os.environ.get(KEY_ENV):
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        if len(key) != 32:
            raise ValueError(f"{KEY_ENV} must be 32 bytes of urlsafe base64")
        return key
    path = _key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as out:
            out.write(AESGCM.generate_key(bit_length=256))
    return path.read_bytes()


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
