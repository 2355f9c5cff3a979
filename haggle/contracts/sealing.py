"""A shipping address or label sealed per deal under the shipping key (AES-GCM).

Only the web app (which takes a person's address) and settlement (which books the label
through its carrier port) hold the key, `HAGGLE_SHIPPING_KEY` (32 bytes, urlsafe base64); for
local runs, a file in the state folder made on first use (mode 0600). The associated data is
the purpose and the deal id, so a sealed address copied onto another deal, or passed off as a
label, does not open. What travels on a topic or sits in a table is only the sealed text.
"""

from __future__ import annotations

import base64
import os
import secrets
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from haggle.runtime.settings import Settings, current

KEY_ENV = "HAGGLE_SHIPPING_KEY"
KEY_FILE = "shipping.key"
MAX_SEALED_CHARS = 4_096
_NONCE = 12


class Sealed(StrEnum):
    """What a sealed text holds (part of its associated data)."""

    ADDRESS = "ship_to"
    LABEL = "label"


class NoShippingKey(RuntimeError):
    """Neither `HAGGLE_SHIPPING_KEY` nor a local key file: nothing can be sealed or opened."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def aes_key(configured: SecretStr | None, env: str, path: Path, create: bool = True) -> bytes:
    """A 256-bit key: the `configured` setting (urlsafe base64, from the variable `env`), else the
    file `path` (made, mode 0600, when `create`); else NoShippingKey. One loader for every key we
    seal personal data with."""
    if configured is not None:
        key = _unb64(configured.get_secret_value())
        if len(key) != 32:
            raise ValueError(f"{env} must be 32 bytes of urlsafe base64")
        return key
    if path.exists():
        return path.read_bytes()
    if not create:
        raise NoShippingKey(f"no {env} and no {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as out:
        out.write(AESGCM.generate_key(bit_length=256))
    return path.read_bytes()


def shipping_key(settings: Settings | None = None, create: bool = False) -> bytes:
    """The key of `settings` (the process's by default), else the local file (made when `create`);
    else NoShippingKey."""
    settings = settings or current()
    return aes_key(settings.shipping_key, KEY_ENV, settings.state_dir / KEY_FILE, create)


def _aad(what: Sealed, deal_id: str) -> bytes:
    return f"{what.value}:{deal_id}".encode()


def seal(key: bytes, what: Sealed, deal_id: str, text: str) -> str:
    nonce = secrets.token_bytes(_NONCE)
    return _b64(nonce + AESGCM(key).encrypt(nonce, text.encode(), _aad(what, deal_id)))


def open_sealed(key: bytes, what: Sealed, deal_id: str, sealed: str) -> str | None:
    """The text, or None when it was sealed for another deal or purpose, or under another key."""
    try:
        raw = _unb64(sealed)
        return AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], _aad(what, deal_id)).decode()
    except (InvalidTag, ValueError):
        return None
