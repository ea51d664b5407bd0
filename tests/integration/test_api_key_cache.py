"""The per-process key cache against real PostgreSQL: revocations heard through LISTEN/NOTIFY, a lost listener,
the bounded lifetime, batched last use, and the upgrade of a database whose keys had no ids."""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import psycopg
import pytest
from psycopg import sql
from scheduler import directory
from scheduler.api_keys import OPERATOR, ApiKeys, Principal, hash_key

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def key_schema(database_url: str) -> Iterator[str]:
    """A schema of its own with the directory's tables."""
    name = f"keys_{secrets.token_hex(4)}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(name)))
        conn.execute(directory.SCHEMA_SQL)
    yield name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@asynccontextmanager
async def process_keys(database_url: str, schema: str, **options: Any) -> AsyncIterator[ApiKeys]:
    """The keys as one API process has them: a pool and a listening connection of their own."""
    name = options.pop("application_name", "kact-test-keys")
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2,
                                     server_settings={"search_path": schema, "application_name": name})
    listener = {"search_path": schema, "application_name": f"{name}-listener"}
    keys = ApiKeys(pool, "operator-token", connect=functools.partial(asyncpg.connect, database_url,
                                                                      server_settings=listener),
                   clock=lambda: datetime.now(timezone.utc), **options)
    await keys.start()
    try:
        yield keys
    finally:
        await keys.close()
        await pool.close()


async def a_clinic(keys: ApiKeys) -> tuple[UUID, str]:
    clinic_id = uuid4()
    await keys.pool.execute("INSERT INTO clinics (id, name, timezone, created_by) VALUES ($1, 'c', 'UTC', 'test')",
                            clinic_id)
    _, secret = await keys.issue("clinic", clinic_id, clinic_id, OPERATOR)
    return clinic_id, secret


async def until(check: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float = 10.0) -> float:
    started = time.monotonic()
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, "condition not met in time"
        await asyncio.sleep(0.01)


async def revoke_behind_the_back(pool: asyncpg.Pool, key: str) -> None:
    """Revoke without the NOTIFY (as a manual UPDATE would): only the cache's lifetime bounds its use then."""
    await pool.execute("UPDATE api_keys SET revoked_at = now(), revoked_by = 'test' WHERE key_hash = $1", hash_key(key))


async def test_a_revocation_in_one_process_empties_the_other_process_cache_within_a_second(
    database_url: str, key_schema: str
) -> None:
    async with process_keys(database_url, key_schema) as one, process_keys(database_url, key_schema) as other:
        clinic_id, secret = await a_clinic(one)
        principal = Principal("clinic", str(clinic_id), str(clinic_id))
        assert await other.authenticate(secret) == principal and len(other.cache) == 1
        # a cached key costs no database round trip: it authenticates with the pool closed
        await other.pool.close()
        assert await other.authenticate(secret) == principal
        other.pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2,
                                               server_settings={"search_path": key_schema})
        (row,) = await one.owned_by("clinic", clinic_id)
        await one.revoke(row["id"], OPERATOR)
        elapsed = await until(lambda: len(other.cache) == 0, timeout=1.0)
        assert elapsed < 1.0 and await other.authenticate(secret) is None
        assert await one.authenticate(secret) is None  # the revoking process dropped it at once


async def test_no_entry_outlives_the_cache_lifetime(database_url: str, key_schema: str) -> None:
    async with process_keys(database_url, key_schema, cache_seconds=0.5) as keys:
        _, secret = await a_clinic(keys)
        assert await keys.authenticate(secret) is not None
        await revoke_behind_the_back(keys.pool, secret)
        assert await keys.authenticate(secret) is not None  # cached: the database is not asked
        await asyncio.sleep(0.6)
        assert await keys.authenticate(secret) is None


async def test_a_lost_listener_stops_the_cache_until_it_listens_again(database_url: str, key_schema: str) -> None:
    name = f"kact-test-keys-{secrets.token_hex(3)}"
    async with process_keys(database_url, key_schema, application_name=name) as keys:
        _, secret = await a_clinic(keys)
        _, second = await a_clinic(keys)
        assert await keys.authenticate(secret) is not None and keys.cache.listening
        killed = await keys.pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            f"{name}-listener")
        assert killed == 1
        await until(lambda: not keys.cache.listening)
        # deaf: nothing cached, so a revocation nobody announced is honoured at once
        assert len(keys.cache) == 0
        await revoke_behind_the_back(keys.pool, secret)
        assert await keys.authenticate(secret) is None
        # it listens again on a new connection, and caches again
        await until(lambda: keys.cache.listening)
        assert await keys.authenticate(second) is not None and len(keys.cache) == 1


async def test_last_use_is_written_in_one_batch(database_url: str, key_schema: str) -> None:
    async with process_keys(database_url, key_schema, usage_seconds=3600) as keys:
        clinic_id, secret = await a_clinic(keys)
        _, unused = await a_clinic(keys)
        for _ in range(50):
            assert await keys.authenticate(secret) is not None
        (row,) = await keys.owned_by("clinic", clinic_id)
        assert row["last_used_at"] is None  # fifty uses, no write yet
        before = datetime.now(timezone.utc)
        assert await keys.record_usage() == 1
        (row,) = await keys.owned_by("clinic", clinic_id)
        assert row["last_used_at"] is not None and (before - row["last_used_at"]).total_seconds() < 5
        assert await keys.record_usage() == 0  # nothing used since


async def test_a_database_whose_keys_had_no_ids_is_upgraded_once(database_url: str) -> None:
    name = f"keys_old_{secrets.token_hex(4)}"
    clinic_id, prescriber_id = uuid4(), uuid4()
    clinic_key, rx_key = "kact_clinic_old", "kact_rx_old"
    # the tables as they were before keys could be listed and revoked
    old_sql = directory.SCHEMA_SQL.split("CREATE TABLE IF NOT EXISTS api_keys")[0] + """
        CREATE TABLE IF NOT EXISTS api_keys (
            key_hash text PRIMARY KEY, kind text NOT NULL CHECK (kind IN ('clinic', 'prescriber')),
            principal_id uuid NOT NULL, clinic_id uuid NOT NULL REFERENCES clinics(id),
            created_at timestamptz NOT NULL DEFAULT now());"""
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(name)))
            conn.execute(old_sql)
            conn.execute("INSERT INTO clinics (id, name, timezone, created_by) VALUES (%s, 'c', 'UTC', 'operator:root')",
                         (clinic_id,))
            conn.execute("INSERT INTO clinicians (id, clinic_id, name, role, created_by) "
                         "VALUES (%s, %s, 'rx', 'prescriber', %s)", (prescriber_id, clinic_id, f"clinic:{clinic_id}"))
            conn.execute("INSERT INTO api_keys (key_hash, kind, principal_id, clinic_id) VALUES "
                         "(%s, 'clinic', %s, %s), (%s, 'prescriber', %s, %s)",
                         (hash_key(clinic_key), clinic_id, clinic_id, hash_key(rx_key), prescriber_id, clinic_id))
            # upgraded, and upgrading again changes nothing
            conn.execute(directory.SCHEMA_SQL)
            first = conn.execute("SELECT kind, id, created_by FROM api_keys ORDER BY kind").fetchall()
            conn.execute(directory.SCHEMA_SQL)
            assert conn.execute("SELECT kind, id, created_by FROM api_keys ORDER BY kind").fetchall() == first
        assert [(kind, created_by) for kind, _, created_by in first] == [
            ("clinic", "operator:root"), ("prescriber", f"clinic:{clinic_id}")]
        assert all(isinstance(key_id, UUID) for _, key_id, _ in first) and first[0][1] != first[1][1]
        async with process_keys(database_url, name) as keys:
            assert await keys.authenticate(clinic_key) == Principal("clinic", str(clinic_id), str(clinic_id))
            assert await keys.authenticate(rx_key) == Principal("prescriber", str(prescriber_id), str(clinic_id))
            (rx,) = await keys.owned_by("prescriber", prescriber_id)
            await keys.revoke(rx["id"], OPERATOR)
            assert await keys.authenticate(rx_key) is None
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
