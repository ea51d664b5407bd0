"""Idempotency-Key handling: the first response to a key is replayed; another body under the same key is refused.

A key lives `ttl` (24 h by default) from its first use. A claim whose request is still running holds a lease:
once the lease ran out (the process died, or could not release the claim because the database was gone), the
next retry runs the request again instead of being told "in progress" forever."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

import asyncpg
import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger("kact.idempotency")
SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    principal text NOT NULL, key text NOT NULL, request_hash text NOT NULL,
    status_code int, body bytea, created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key));
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS lease_until timestamptz;
CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at);
"""
DEFAULT_TTL_SECONDS = 24 * 3600
# Longer than any request can run (statement and pool timeouts bound a request to a few seconds).
LEASE_SECONDS = 30
PURGE_EVERY_SECONDS = 600


class Claim(Enum):
    NEW = "new"  # the caller runs the request and must call finish() or release()
    REPLAY = "replay"
    IN_PROGRESS = "in_progress"
    MISMATCH = "mismatch"


@dataclass(frozen=True)
class Stored:
    status_code: int
    body: bytes


@dataclass(frozen=True)
class Claimed:
    claim: Claim
    stored: Stored | None = None  # REPLAY: the first response
    lease: Any = None  # NEW: this claim's identity, so that a claim taken over after its lease ran out changes nothing


def request_hash(method: str, path: str, body: Any) -> str:
    """The request's identity: method, path and the body as parsed JSON (key order and whitespace do not count;
    `None` for no body)."""
    canonical = b"" if body is None else msgspec.json.encode(body, order="sorted")
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), canonical])).hexdigest()


class ResponseSeal:
    """Stored responses hold what the first response showed once (API keys, webhook signing secrets) and
    course data: they are kept AES-256-GCM encrypted under a key derived from the deployment's cipher key,
    bound to their principal and key."""

    def __init__(self, cipher_key: str) -> None:
        master = base64.b64decode(cipher_key, validate=True)
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kact idempotent responses").derive(
            master)
        self._aead = AESGCM(derived)

    def seal(self, body: bytes, principal: str, key: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, body, f"{principal}\n{key}".encode())

    def open(self, sealed: bytes, principal: str, key: str) -> bytes:
        return self._aead.decrypt(sealed[:12], sealed[12:], f"{principal}\n{key}".encode())


# A new claim, or one taking over a key that expired or whose running claim's lease ran out.
_CLAIM_SQL = """
INSERT INTO idempotency_keys AS k (principal, key, request_hash, lease_until)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
ON CONFLICT (principal, key) DO UPDATE
    SET request_hash = excluded.request_hash, status_code = NULL, body = NULL, created_at = now(),
        lease_until = excluded.lease_until
    WHERE k.created_at < now() - make_interval(secs => $5)
       OR (k.status_code IS NULL AND k.lease_until IS NOT NULL AND k.lease_until < now())
RETURNING lease_until
"""


class IdempotencyKeys:
    def __init__(self, pool: asyncpg.Pool, cipher_key: str, ttl_seconds: float = DEFAULT_TTL_SECONDS,
                 lease_seconds: float = LEASE_SECONDS) -> None:
        self.pool = pool
        self.seal = ResponseSeal(cipher_key)
        self.ttl_seconds, self.lease_seconds = float(ttl_seconds), float(lease_seconds)
        self._next_purge = time.monotonic() + PURGE_EVERY_SECONDS
        self._purging: asyncio.Task[None] | None = None

    async def claim(self, principal: str, key: str, digest: str) -> Claimed:
        self._purge_now_and_then()
        for _ in range(3):
            lease = await self.pool.fetchval(_CLAIM_SQL, principal, key, digest, self.lease_seconds, self.ttl_seconds)
            if lease is not None:
                return Claimed(Claim.NEW, lease=lease)
            row = await self.pool.fetchrow(
                "SELECT request_hash, status_code, body FROM idempotency_keys WHERE principal = $1 AND key = $2",
                principal, key,
            )
            if row is None:  # released between the two statements: the earlier attempt failed, so claim again
                continue
            if row["request_hash"] != digest:
                return Claimed(Claim.MISMATCH)
            if row["status_code"] is None:
                return Claimed(Claim.IN_PROGRESS)
            return Claimed(Claim.REPLAY, Stored(row["status_code"], self.seal.open(bytes(row["body"]), principal, key)))
        return Claimed(Claim.IN_PROGRESS)  # claimed and released by others three times over: let the client retry

    def _purge_now_and_then(self) -> None:
        """Delete expired keys every few minutes, in the background (each API process does; it is idempotent)."""
        if time.monotonic() < self._next_purge or (self._purging is not None and not self._purging.done()):
            return
        self._next_purge = time.monotonic() + PURGE_EVERY_SECONDS
        self._purging = asyncio.get_running_loop().create_task(self.purge())

    async def purge(self) -> int:
        """Delete the keys older than the time to live; returns how many."""
        try:
            status = await self.pool.execute(
                "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)", self.ttl_seconds)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("could not purge expired idempotency keys: %s", error)
            return 0
        return int(status.split()[-1])

    async def finish(self, principal: str, key: str, lease: Any, stored: Stored) -> None:
        """Store the response of the claim `lease` (committed before the client sees it)."""
        await self.pool.execute(
            "UPDATE idempotency_keys SET status_code = $3, body = $4, lease_until = NULL "
            "WHERE principal = $1 AND key = $2 AND lease_until = $5 AND status_code IS NULL",
            principal, key, stored.status_code, self.seal.seal(stored.body, principal, key), lease,
        )

    async def release(self, principal: str, key: str, lease: Any) -> None:
        """Forget the claim `lease`, whose request failed, so that a retry runs it again."""
        await self.pool.execute(
            "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND lease_until = $3 AND status_code IS NULL",
            principal, key, lease)
