"""API keys of clinics and prescribers (asyncpg): issued, listed, revoked; stored only as SHA-256 hashes.

Every request authenticates, so each process caches the principal of a key it has seen. A revocation
NOTIFYs every process (each LISTENs on a connection of its own) and they drop the key from their cache at
once; while that connection is down nothing is cached (each request asks the database), and no entry is
trusted longer than `cache_seconds`, in case a lost connection goes unnoticed for a while. When a key was
last used is written in one batch every `usage_seconds` per process, never once per request."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

log = logging.getLogger("kact.keys")

# The table predates listing and revoking (2026-11): the DO block gives the keys of such a database an id
# and their issuer (from the clinic or prescriber they were made with), once; a new database takes the same
# path, so the upgrade runs in every test run.
SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash text PRIMARY KEY, kind text NOT NULL CHECK (kind IN ('clinic', 'prescriber')),
    principal_id uuid NOT NULL, clinic_id uuid NOT NULL REFERENCES clinics(id),
    created_at timestamptz NOT NULL DEFAULT now());
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
                 AND table_name = 'api_keys' AND column_name = 'id') THEN
    ALTER TABLE api_keys ADD COLUMN id uuid, ADD COLUMN label text, ADD COLUMN created_by text,
        ADD COLUMN last_used_at timestamptz, ADD COLUMN revoked_at timestamptz, ADD COLUMN revoked_by text;
    UPDATE api_keys SET id = gen_random_uuid();
    UPDATE api_keys k SET created_by = c.created_by FROM clinics c WHERE k.kind = 'clinic' AND c.id = k.principal_id;
    UPDATE api_keys k SET created_by = c.created_by FROM clinicians c
        WHERE k.kind = 'prescriber' AND c.id = k.principal_id;
    UPDATE api_keys SET created_by = 'unknown' WHERE created_by IS NULL;
    ALTER TABLE api_keys ALTER COLUMN id SET NOT NULL, ALTER COLUMN id SET DEFAULT gen_random_uuid(),
        ALTER COLUMN created_by SET NOT NULL, ADD CONSTRAINT api_keys_id_key UNIQUE (id),
        ADD CONSTRAINT api_keys_revoked_by CHECK ((revoked_at IS NULL) = (revoked_by IS NULL));
  END IF;
END $$;
CREATE INDEX IF NOT EXISTS api_keys_owner ON api_keys (principal_id, created_at);
"""

# NOTIFY channels are database-wide: the schema in the name keeps deployments (and test runs) apart.
CHANNEL_SQL = "'kact_keys.' || current_schema()"
COLUMNS = "id, kind, principal_id, clinic_id, label, created_at, created_by, last_used_at, revoked_at, revoked_by"
MAX_ACTIVE_KEYS = 10  # per clinic or prescriber: enough to rotate, few enough to keep track of
CACHE_SECONDS = 30.0  # the longest a cached key is trusted without asking the database
USAGE_SECONDS = 60.0  # last_used_at is written this often (per process), so it lags by at most this much
HEARTBEAT_SECONDS = 5.0  # the listening connection is checked this often (a silently dead one hears nothing)
RETRY_SECONDS = 1.0
DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


@dataclass(frozen=True)
class Principal:
    kind: str  # operator | clinic | prescriber
    id: str
    clinic_id: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.id}"


OPERATOR = Principal("operator", "root")


class TooManyKeysError(Exception):
    def __init__(self, owner: str) -> None:
        self.owner = owner
        super().__init__(f"{owner} already has {MAX_ACTIVE_KEYS} active keys; revoke one first")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(prefix: str) -> str:
    return f"kact_{prefix}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class KeyHolder:
    key_id: UUID
    principal: Principal


class PrincipalCache:
    """Key hash -> its holder, trusted only while revocations are heard and for at most `ttl` seconds.

    `generation` changes whenever something may have been revoked: a lookup that began before such a change
    must not cache what it read (it may be the state from before the revocation)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.generation = 0
        self.listening = False
        self._entries: dict[str, tuple[KeyHolder, float]] = {}
        self._by_key: dict[UUID, str] = {}

    def get(self, digest: str, now: float) -> KeyHolder | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        holder, expires = entry
        if not self.listening or now >= expires:
            self._entries.pop(digest, None)
            self._by_key.pop(holder.key_id, None)
            return None
        return holder

    def put(self, digest: str, holder: KeyHolder, now: float, generation: int) -> None:
        if self.listening and generation == self.generation:
            self._entries[digest] = (holder, now + self.ttl)
            self._by_key[holder.key_id] = digest

    def revoked(self, key_id: UUID) -> None:
        self.generation += 1
        digest = self._by_key.pop(key_id, None)
        if digest is not None:
            self._entries.pop(digest, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._by_key.clear()

    def heard(self) -> None:
        """Revocations are heard from now on."""
        self.listening = True

    def deaf(self) -> None:
        """Revocations may go unheard from now on: forget everything, and cache nothing until heard again."""
        self.listening = False
        self.clear()

    def __len__(self) -> int:
        return len(self._entries)


class UsageLog:
    """When each key was last used, kept in memory and taken in one batch to be written."""

    def __init__(self) -> None:
        self._last: dict[UUID, datetime] = {}

    def used(self, key_id: UUID, at: datetime) -> None:
        self._last[key_id] = at

    def take(self) -> dict[UUID, datetime]:
        taken, self._last = self._last, {}
        return taken

    def restore(self, taken: dict[UUID, datetime]) -> None:
        """Put back a batch that could not be written (later uses recorded meanwhile win)."""
        for key_id, at in taken.items():
            if key_id not in self._last or self._last[key_id] < at:
                self._last[key_id] = at


Connect = Callable[[], Awaitable[asyncpg.Connection]]


class ApiKeys:
    """Which key belongs to whom; issues, lists and revokes keys, and authenticates requests."""

    def __init__(
        self, pool: asyncpg.Pool, operator_token: str, *, connect: Connect | None, clock: Callable[[], datetime],
        cache_seconds: float = CACHE_SECONDS, usage_seconds: float = USAGE_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.pool = pool
        self._operator_hash = hash_key(operator_token)
        self._connect = connect  # None: nothing listens, so nothing is cached
        self._clock = clock
        self.cache = PrincipalCache(cache_seconds)
        self.usage = UsageLog()
        self._usage_seconds = usage_seconds
        self._heartbeat_seconds = heartbeat_seconds
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()  # the listening connection ended, or `close` was called
        self._tasks: list[asyncio.Task[None]] = []

    # Lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for revocations (once listening, keys are cached) and write usage in the background."""
        if self._connect is not None:
            first_attempt = asyncio.Event()
            self._run(self._listen_forever(first_attempt), "api-keys-listener")
            await first_attempt.wait()
        self._run(self._record_usage_forever(), "api-keys-usage")

    def _run(self, job: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(job, name=name)
        # A job that died would leave keys uncached (the listener) or unrecorded (usage): say so at once.
        task.add_done_callback(lambda t: t.cancelled() or t.exception() is None
                               or log.error("keys: %s stopped", name, exc_info=t.exception()))
        self._tasks.append(task)

    async def close(self) -> None:
        self._stopping.set()
        self._wake.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        try:
            await self.record_usage()
        except DATABASE_ERRORS as exc:
            log.warning("keys: the last uses of keys were not recorded (%s)", exc)

    async def _listen_forever(self, first_attempt: asyncio.Event) -> None:
        assert self._connect is not None
        while not self._stopping.is_set():
            self._wake.clear()
            conn: asyncpg.Connection | None = None
            try:
                conn = await self._connect()
                conn.add_termination_listener(self._ended)
                channel = await conn.fetchval(f"SELECT {CHANNEL_SQL}")
                await conn.add_listener(channel, self._heard)
                self.cache.heard()
                first_attempt.set()
                while not self._stopping.is_set():
                    try:
                        await asyncio.wait_for(self._wake.wait(), self._heartbeat_seconds)
                        break  # the connection ended, or `close` was called
                    except TimeoutError:
                        await conn.fetchval("SELECT 1", timeout=self._heartbeat_seconds)
            except DATABASE_ERRORS as exc:
                log.warning("keys: not listening for revocations (%s); every request asks the database", exc)
            finally:
                self.cache.deaf()
                first_attempt.set()
                if conn is not None:
                    conn.remove_termination_listener(self._ended)
                    try:
                        await asyncio.wait_for(conn.close(), 2)
                    except DATABASE_ERRORS:
                        conn.terminate()
            if not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), RETRY_SECONDS)

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            self.cache.revoked(UUID(payload))
        except ValueError:
            self.cache.clear()

    def _ended(self, _conn: Any) -> None:
        self.cache.deaf()
        self._wake.set()

    async def _record_usage_forever(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._usage_seconds)
            if self._stopping.is_set():
                return  # `close` records the rest
            try:
                await self.record_usage()
            except DATABASE_ERRORS as exc:
                log.warning("keys: uses of keys not recorded yet (%s)", exc)

    # Authentication ----------------------------------------------------------------------------------

    def known(self, key: str) -> Principal | None:
        """`authenticate` from the cache alone (None: not cached, ask `authenticate`)."""
        digest = hash_key(key)
        if hmac.compare_digest(digest, self._operator_hash):
            return OPERATOR
        holder = self.cache.get(digest, time.monotonic())
        if holder is None:
            return None
        self.usage.used(holder.key_id, self._clock())
        return holder.principal

    async def authenticate(self, key: str) -> Principal | None:
        digest = hash_key(key)
        if hmac.compare_digest(digest, self._operator_hash):
            return OPERATOR
        holder = self.cache.get(digest, time.monotonic())
        if holder is None:
            generation = self.cache.generation
            row = await self.pool.fetchrow(
                "SELECT id, kind, principal_id, clinic_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                digest,
            )
            if row is None:
                return None
            holder = KeyHolder(row["id"], Principal(row["kind"], str(row["principal_id"]), str(row["clinic_id"])))
            self.cache.put(digest, holder, time.monotonic(), generation)
        self.usage.used(holder.key_id, self._clock())
        return holder.principal

    async def record_usage(self) -> int:
        """Write when each key used since the last call was last used; returns how many keys."""
        taken = self.usage.take()
        if not taken:
            return 0
        try:
            await self.pool.execute(
                "UPDATE api_keys k SET last_used_at = u.at FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at) "
                "WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)",
                list(taken), list(taken.values()),
            )
        except BaseException:
            self.usage.restore(taken)
            raise
        return len(taken)

    # Issuing, listing, revoking -------------------------------------------------------------------------

    async def issue(
        self, kind: str, principal_id: UUID, clinic_id: UUID, by: Principal, label: str | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> tuple[dict[str, Any], str]:
        """A new key for a clinic (`principal_id` = `clinic_id`) or a prescriber; its secret is returned only here.

        Within `conn`'s transaction if given (a clinic or prescriber created with its first key)."""
        if conn is None:
            async with self.pool.acquire() as own, own.transaction():
                return await self.issue(kind, principal_id, clinic_id, by, label, own)
        owner_table = "clinics" if kind == "clinic" else "clinicians"
        # Concurrent issues for one owner take turns, so the limit holds (NO KEY UPDATE: references still insert).
        await conn.execute(f"SELECT 1 FROM {owner_table} WHERE id = $1 FOR NO KEY UPDATE", principal_id)
        active = await conn.fetchval(
            "SELECT count(*) FROM api_keys WHERE kind = $1 AND principal_id = $2 AND revoked_at IS NULL",
            kind, principal_id,
        )
        if active >= MAX_ACTIVE_KEYS:
            raise TooManyKeysError(f"{kind}:{principal_id}")
        key = new_key("clinic" if kind == "clinic" else "rx")
        row = await conn.fetchrow(
            "INSERT INTO api_keys (key_hash, kind, principal_id, clinic_id, label, created_by) "
            f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}",
            hash_key(key), kind, principal_id, clinic_id, label, by.ref,
        )
        return dict(row), key

    async def owned_by(self, kind: str, principal_id: UUID) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            f"SELECT {COLUMNS} FROM api_keys WHERE kind = $1 AND principal_id = $2 ORDER BY created_at, id",
            kind, principal_id,
        )
        return [dict(r) for r in rows]

    async def get(self, key_id: UUID) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(f"SELECT {COLUMNS} FROM api_keys WHERE id = $1", key_id)
        return dict(row) if row is not None else None

    async def revoke(self, key_id: UUID, by: Principal) -> dict[str, Any] | None:
        """Revoke a key in every process; a key revoked before stays as it was (the first revocation counts)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"UPDATE api_keys SET revoked_at = now(), revoked_by = $2 WHERE id = $1 AND revoked_at IS NULL "
                f"RETURNING {COLUMNS}",
                key_id, by.ref,
            )
            if row is not None:  # sent at commit, to every process listening (this one too)
                await conn.execute(f"SELECT pg_notify({CHANNEL_SQL}, $1)", str(key_id))
        if row is None:
            return await self.get(key_id)
        self.cache.revoked(key_id)
        return dict(row)
