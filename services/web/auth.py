"""Who is signed in: one-time invite links, sessions, CSRF tokens, sign-in rate limits.

Only hashes of the secrets are stored (an invite token, a session token), so a copy
of the table signs nobody in. An invite is redeemed once, before it expires, in one
UPDATE that cannot succeed twice.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import asyncpg

SESSION_COOKIE = "haggle_session"
PRESESSION_COOKIE = "haggle_presession"
SESSION_TTL = timedelta(hours=12)
INVITE_TTL = timedelta(hours=24)
SIGNIN_LIMIT = 10
"""Failed sign-ins one client may make per window; then even a good link gets 429 until it passes."""
SIGNIN_WINDOW = timedelta(minutes=5)


class Role(StrEnum):
    PRINCIPAL = "principal"
    OPERATOR = "operator"


class SignInRefusal(StrEnum):
    UNKNOWN = "unknown_link"
    USED = "link_used"
    EXPIRED = "link_expired"
    RATE_LIMITED = "rate_limited"
    BAD_CSRF = "bad_csrf"


@dataclass(frozen=True)
class Session:
    role: Role
    principal_id: str | None
    market_id: str
    csrf: str

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


async def create_invite(
    conn: asyncpg.Connection,
    role: Role,
    principal_id: str | None,
    market_id: str,
    ttl: timedelta = INVITE_TTL,
) -> str:
    """A one-time sign-in token; the caller turns it into a link. Principals are remembered here."""
    token = new_token()
    async with conn.transaction():
        if principal_id is not None:
            await conn.execute(
                "INSERT INTO principals (principal_id, market_id, name) VALUES ($1, $2, $1)"
                " ON CONFLICT (principal_id) DO NOTHING",
                principal_id,
                market_id,
            )
        await conn.execute(
            "INSERT INTO invites (token_hash, role, principal_id, market_id, expires_at)"
            " VALUES ($1, $2, $3, $4, now() + $5::interval)",
            digest(token),
            role.value,
            principal_id,
            market_id,
            ttl,
        )
    return token


async def attempt_allowed(conn: asyncpg.Connection, client: str) -> bool:
    """False once the client failed SIGNIN_LIMIT times in the window (guessing links)."""
    recent = await conn.fetchval(
        "SELECT count(*) FROM signin_attempts WHERE client = $1 AND at > now() - $2::interval",
        client,
        SIGNIN_WINDOW,
    )
    return int(recent) < SIGNIN_LIMIT


async def record_failure(conn: asyncpg.Connection, client: str) -> None:
    await conn.execute("INSERT INTO signin_attempts (client) VALUES ($1)", client)


async def redeem(conn: asyncpg.Connection, token: str) -> tuple[str, Session] | SignInRefusal:
    """Use an invite once: a new session token and its session, or why not."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "UPDATE invites SET used_at = now()"
            " WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()"
            " RETURNING role, principal_id, market_id",
            digest(token),
        )
        if row is None:
            return await _why_not(conn, token)
        session_token, csrf = new_token(), new_token()
        await conn.execute(
            "INSERT INTO sessions (token_hash, role, principal_id, market_id, csrf, expires_at)"
            " VALUES ($1, $2, $3, $4, $5, now() + $6::interval)",
            digest(session_token),
            row["role"],
            row["principal_id"],
            row["market_id"],
            csrf,
            SESSION_TTL,
        )
    return session_token, Session(Role(row["role"]), row["principal_id"], row["market_id"], csrf)


async def _why_not(conn: asyncpg.Connection, token: str) -> SignInRefusal:
    row = await conn.fetchrow(
        "SELECT used_at IS NOT NULL AS used FROM invites WHERE token_hash = $1", digest(token)
    )
    if row is None:
        return SignInRefusal.UNKNOWN
    return SignInRefusal.USED if row["used"] else SignInRefusal.EXPIRED


async def session_of(pool: asyncpg.Pool | asyncpg.Connection, token: str | None) -> Session | None:
    if not token or len(token) > 200:
        return None
    row = await pool.fetchrow(
        "SELECT role, principal_id, market_id, csrf FROM sessions"
        " WHERE token_hash = $1 AND expires_at > now()",
        digest(token),
    )
    if row is None:
        return None
    return Session(Role(row["role"]), row["principal_id"], row["market_id"], row["csrf"])


async def end_session(pool: asyncpg.Pool | asyncpg.Connection, token: str | None) -> None:
    if token:
        await pool.execute("DELETE FROM sessions WHERE token_hash = $1", digest(token))
