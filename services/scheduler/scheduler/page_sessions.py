"""Browser sessions of the prescriber and operator pages, and the one-time sign-in links that open one (asyncpg).

A session is an opaque random token in a cookie; the database keeps only its SHA-256 hash, who it is, the hash of
the API key it was opened with (or that asked for the link it was opened from) and when it expires. It lasts as
long as that key: a session whose key was revoked (or, for the operator, a root key that changed) is over at the
next request, in every process, as the key is. Its CSRF token is derived from the session token itself (HMAC), so
it is stored nowhere and a copy of the table gives no one a form token.

A sign-in link carries a token of its own: stored hashed, valid for `LINK_SECONDS`, redeemed once (the `UPDATE
... WHERE used_at IS NULL` that redeems it is the only way to use it: two tabs racing for one link, one wins)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from scheduler.api_keys import Principal, hash_key

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS page_sessions (
    token_hash text PRIMARY KEY, kind text NOT NULL CHECK (kind IN ('prescriber', 'operator')),
    principal_id text NOT NULL, clinic_id text, key_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), expires_at timestamptz NOT NULL,
    via text NOT NULL CHECK (via IN ('key', 'link')));
CREATE INDEX IF NOT EXISTS page_sessions_expiry ON page_sessions (expires_at);
CREATE TABLE IF NOT EXISTS sign_in_links (
    token_hash text PRIMARY KEY, kind text NOT NULL CHECK (kind IN ('prescriber', 'operator')),
    principal_id text NOT NULL, clinic_id text, key_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), expires_at timestamptz NOT NULL, used_at timestamptz);
CREATE INDEX IF NOT EXISTS sign_in_links_expiry ON sign_in_links (expires_at);
"""

SESSION_SECONDS = 8 * 3600  # a working day; signing in again after it costs a key or a link
LINK_SECONDS = 15 * 60  # long enough to open a notice and click, short enough that a forwarded one goes stale
PAGE_KINDS = ("prescriber", "operator")  # the principals with a page; a clinic's staff use their own systems
_CSRF_CONTEXT = b"kact pages csrf v1"


@dataclass(frozen=True)
class PageSession:
    principal: Principal
    expires_at: datetime
    csrf: str  # the token every form of this session carries


@dataclass(frozen=True)
class Opened:
    token: str  # the cookie's value: returned only here
    session: PageSession


def csrf_of(token: str) -> str:
    return hmac.new(token.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class PageSessions:
    """Opens, finds and ends page sessions; issues and redeems sign-in links. `operator_key_hash` is the hash of the
    root key (from the environment): an operator's session lasts while that key is the one configured."""

    def __init__(self, pool: asyncpg.Pool, operator_key_hash: str) -> None:
        self.pool = pool
        self._operator_key_hash = operator_key_hash

    async def open(self, principal: Principal, key: str) -> Opened:
        """A session for the principal a key authenticated (the caller authenticated it)."""
        return await self._open(principal, hash_key(key), "key")

    async def _open(self, principal: Principal, key_hash: str, via: str,
                    conn: asyncpg.Connection | None = None) -> Opened:
        token = secrets.token_urlsafe(32)
        row = await (conn or self.pool).fetchrow(
            "INSERT INTO page_sessions (token_hash, kind, principal_id, clinic_id, key_hash, expires_at, via) "
            "VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7) RETURNING expires_at",
            hash_key(token), principal.kind, principal.id, principal.clinic_id, key_hash, SESSION_SECONDS, via)
        # Expired rows go as new ones come: no job of their own, and the table stays the size of a day's sign-ins.
        await (conn or self.pool).execute(
            "DELETE FROM page_sessions WHERE token_hash IN (SELECT token_hash FROM page_sessions "
            "WHERE expires_at < now() LIMIT 100)")
        return Opened(token, PageSession(principal, row["expires_at"], csrf_of(token)))

    async def find(self, token: str) -> PageSession | None:
        """The live session of a cookie's token: not expired, its key not revoked."""
        row = await self.pool.fetchrow(
            "SELECT s.kind, s.principal_id, s.clinic_id, s.expires_at FROM page_sessions s "
            "WHERE s.token_hash = $1 AND s.expires_at > now() AND ("
            "  (s.kind = 'operator' AND s.key_hash = $2) OR (s.kind <> 'operator' AND EXISTS ("
            "    SELECT 1 FROM api_keys k WHERE k.key_hash = s.key_hash AND k.revoked_at IS NULL)))",
            hash_key(token), self._operator_key_hash)
        if row is None:
            return None
        principal = Principal(row["kind"], row["principal_id"], row["clinic_id"])
        return PageSession(principal, row["expires_at"], csrf_of(token))

    async def close(self, token: str) -> None:
        await self.pool.execute("DELETE FROM page_sessions WHERE token_hash = $1", hash_key(token))

    async def issue_link(self, principal: Principal, key: str) -> tuple[str, datetime]:
        """A one-time sign-in link's token for the principal that asked with `key`, and when it expires."""
        token = secrets.token_urlsafe(32)
        expires_at = await self.pool.fetchval(
            "INSERT INTO sign_in_links (token_hash, kind, principal_id, clinic_id, key_hash, expires_at) "
            "VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) RETURNING expires_at",
            hash_key(token), principal.kind, principal.id, principal.clinic_id, hash_key(key), LINK_SECONDS)
        await self.pool.execute(
            "DELETE FROM sign_in_links WHERE token_hash IN (SELECT token_hash FROM sign_in_links "
            "WHERE expires_at < now() - interval '1 day' LIMIT 100)")
        return token, expires_at

    async def redeem_link(self, token: str) -> Opened | None:
        """A session from a link's token, which is used up; None if unknown, used, expired or its key revoked."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE sign_in_links SET used_at = now() WHERE token_hash = $1 AND used_at IS NULL "
                "AND expires_at > now() RETURNING kind, principal_id, clinic_id, key_hash", hash_key(token))
            if row is None:
                return None
            if row["kind"] == "operator":
                live = hmac.compare_digest(row["key_hash"], self._operator_key_hash)
            else:
                live = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM api_keys WHERE key_hash = $1 "
                                           "AND revoked_at IS NULL)", row["key_hash"])
            if not live:
                return None  # used up all the same: a link of a revoked key is never good again
            principal = Principal(row["kind"], row["principal_id"], row["clinic_id"])
            return await self._open(principal, row["key_hash"], "link", conn)
