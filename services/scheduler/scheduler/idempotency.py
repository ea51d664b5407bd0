"""Idempotency-Key handling: the first response to a key is replayed; another body under the same key is refused."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from enum import Enum

import asyncpg
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    principal text NOT NULL, key text NOT NULL, request_hash text NOT NULL,
    status_code int, body bytea, created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key));
"""


class Claim(Enum):
    NEW = "new"  # the caller runs the request and must call finish() or release()
    REPLAY = "replay"
    IN_PROGRESS = "in_progress"
    MISMATCH = "mismatch"


@dataclass(frozen=True)
class Stored:
    status_code: int
    body: bytes


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), body])).hexdigest()


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


class IdempotencyKeys:
    def __init__(self, pool: asyncpg.Pool, cipher_key: str) -> None:
        self.pool = pool
        self.seal = ResponseSeal(cipher_key)

    async def claim(self, principal: str, key: str, digest: str) -> tuple[Claim, Stored | None]:
        inserted = await self.pool.fetchval(
            "INSERT INTO idempotency_keys (principal, key, request_hash) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING RETURNING true",
            principal, key, digest,
        )
        if inserted:
            return Claim.NEW, None
        row = await self.pool.fetchrow(
            "SELECT request_hash, status_code, body FROM idempotency_keys WHERE principal = $1 AND key = $2",
            principal, key,
        )
        if row is None:  # released between our insert and select: the earlier attempt failed, so try again
            return await self.claim(principal, key, digest)
        if row["request_hash"] != digest:
            return Claim.MISMATCH, None
        if row["status_code"] is None:
            return Claim.IN_PROGRESS, None
        return Claim.REPLAY, Stored(row["status_code"], self.seal.open(bytes(row["body"]), principal, key))

    async def finish(self, principal: str, key: str, stored: Stored) -> None:
        await self.pool.execute(
            "UPDATE idempotency_keys SET status_code = $3, body = $4 WHERE principal = $1 AND key = $2",
            principal, key, stored.status_code, self.seal.seal(stored.body, principal, key),
        )

    async def release(self, principal: str, key: str) -> None:
        """Forget a claim whose request failed, so that a retry runs it again."""
        await self.pool.execute("DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2", principal, key)
