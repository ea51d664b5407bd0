"""Calendar feeds of clinicians and rooms (asyncpg): issued, listed, revoked, and found by their token, which is
stored only as its SHA-256 hash (as API keys are).

A feed's token is its only credential (calendar clients send no key), so every fetch looks it up in the database,
one indexed read: a revoked feed answers 404 from the moment the revocation commits, in every API process, with
no cache to clear."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from scheduler.api_keys import Principal, hash_key, new_key
from scheduler.application.errors import AlreadyCreatedError
from scheduler.application.ids import new_id

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS calendar_feeds (
    id uuid PRIMARY KEY, token_hash text NOT NULL UNIQUE,
    resource text NOT NULL CHECK (resource IN ('clinician', 'room')), resource_id uuid NOT NULL,
    clinic_id uuid NOT NULL REFERENCES clinics(id), label text,
    created_at timestamptz NOT NULL DEFAULT now(), created_by text NOT NULL,
    revoked_at timestamptz, revoked_by text,
    CONSTRAINT calendar_feeds_revoked_by CHECK ((revoked_at IS NULL) = (revoked_by IS NULL)));
CREATE INDEX IF NOT EXISTS calendar_feeds_resource ON calendar_feeds (resource, resource_id, created_at);
"""

COLUMNS = "id, resource, resource_id, clinic_id, label, created_at, created_by, revoked_at, revoked_by"
TOKEN_PATTERN = "^kact_cal_[A-Za-z0-9_-]{43}$"  # the prefix and 32 random bytes (256 bits), base64url
MAX_ACTIVE_FEEDS = 10  # per clinician or room: one per calendar that subscribes, with room to rotate


class TooManyFeedsError(Exception):
    def __init__(self, resource: str, resource_id: UUID) -> None:
        self.resource, self.resource_id = resource, resource_id
        super().__init__(f"{resource} {resource_id} already has {MAX_ACTIVE_FEEDS} calendar feeds that are not "
                         f"revoked; revoke one first")


class CalendarFeedStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self, resource: str, resource_id: UUID, clinic_id: UUID, label: str | None,
                     by: Principal) -> tuple[dict[str, Any], str]:
        """A new feed and its token (returned only here)."""
        feed_id, token = new_id("calendar_feed"), new_key("cal")
        async with self.pool.acquire() as conn, conn.transaction():
            # Concurrent creations for one resource take turns, so the limit holds.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"calendar_feeds:{resource_id}")
            active = await conn.fetchval(
                "SELECT count(*) FROM calendar_feeds WHERE resource = $1 AND resource_id = $2 AND revoked_at IS NULL",
                resource, resource_id,
            )
            if active >= MAX_ACTIVE_FEEDS:
                raise TooManyFeedsError(resource, resource_id)
            row = await conn.fetchrow(
                "INSERT INTO calendar_feeds (id, token_hash, resource, resource_id, clinic_id, label, created_by) "
                f"VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}",
                feed_id, hash_key(token), resource, resource_id, clinic_id, label, by.ref,
            )
        if row is None:  # an earlier run of the same request created it (ids.new_id)
            raise AlreadyCreatedError("calendar feed", feed_id)
        return dict(row), token

    async def of(self, resource: str, resource_id: UUID) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            f"SELECT {COLUMNS} FROM calendar_feeds WHERE resource = $1 AND resource_id = $2 ORDER BY created_at, id",
            resource, resource_id,
        )
        return [dict(r) for r in rows]

    async def revoke(self, resource: str, resource_id: UUID, feed_id: UUID, by: Principal) -> dict[str, Any] | None:
        """Revoke one of the resource's feeds (a revoked one stays as it was); None if it has no such feed."""
        row = await self.pool.fetchrow(
            "UPDATE calendar_feeds SET revoked_at = now(), revoked_by = $4 WHERE id = $3 AND resource = $1 "
            f"AND resource_id = $2 AND revoked_at IS NULL RETURNING {COLUMNS}",
            resource, resource_id, feed_id, by.ref,
        )
        if row is None:
            row = await self.pool.fetchrow(
                f"SELECT {COLUMNS} FROM calendar_feeds WHERE id = $3 AND resource = $1 AND resource_id = $2",
                resource, resource_id, feed_id,
            )
        return dict(row) if row is not None else None

    async def find(self, token: str) -> dict[str, Any] | None:
        """The feed of `token`, revoked or not: one indexed read, on every fetch."""
        row = await self.pool.fetchrow(f"SELECT {COLUMNS} FROM calendar_feeds WHERE token_hash = $1", hash_key(token))
        return dict(row) if row is not None else None
