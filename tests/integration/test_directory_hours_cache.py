"""Hours a booking reads are kept a short while per API process: a change through another process applies
within that time, one through this process at once, and under steady bookings they are read again in the
background before they expire (no booking waits for them; the benchmark saw each expiry in its p99)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import asyncpg
import psycopg
import pytest
from psycopg import sql
from scheduler import directory
from scheduler.api_keys import OPERATOR, ApiKeys
from scheduler.directory import Directory

pytestmark = pytest.mark.integration
MORNINGS = [{"weekday": "monday", "opens": "08:00", "closes": "12:00"}]
EVENINGS = [{"weekday": "monday", "opens": "16:00", "closes": "20:00"}]


async def two_processes(database_url: str, schema: str) -> tuple[asyncpg.Pool, Directory, Directory]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute(directory.SCHEMA_SQL)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4, server_settings={"search_path": schema})
    keys = ApiKeys(pool, "operator-token", connect=None, clock=lambda: datetime.now(timezone.utc))
    return pool, Directory(pool, keys), Directory(pool, keys)


def opening(schedule: Any) -> Any:
    return schedule.opening


def test_hours_changed_elsewhere_apply_within_the_ttl_and_are_refreshed_before_they_expire(
        database_url: str, schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(directory, "HOURS_TTL", 1.0)

    async def scenario() -> None:
        pool, here, there = await two_processes(database_url, schema)
        try:
            clinic, _ = await here.create_clinic("Clinic", "Europe/Berlin", OPERATOR)
            await here.set_hours("clinic", clinic["id"], MORNINGS, OPERATOR)  # at once, in this process
            mornings, _ = await here.hours_of(clinic["id"], [])
            await there.set_hours("clinic", clinic["id"], EVENINGS, OPERATOR)  # another API process
            assert opening((await here.hours_of(clinic["id"], []))[0]) == opening(mornings)  # kept, for now
            await asyncio.sleep(0.6)  # past half the TTL, not past it
            assert opening((await here.hours_of(clinic["id"], []))[0]) == opening(mornings)  # and read again meanwhile
            assert here._refreshes
            await asyncio.gather(*here._refreshes)
            evenings, _ = await here.hours_of(clinic["id"], [])
            assert opening(evenings) != opening(mornings)  # before the first read's TTL ran out
            evenings_there, _ = await there.hours_of(clinic["id"], [])
            assert opening(evenings) == opening(evenings_there)
            await here.set_hours("clinic", clinic["id"], MORNINGS, OPERATOR)
            assert opening((await here.hours_of(clinic["id"], []))[0]) == opening(mornings)  # its own change: at once
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_a_refresh_begun_before_this_process_changed_the_hours_never_brings_back_the_old_ones(
        database_url: str, schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(directory, "HOURS_TTL", 1.0)

    async def scenario() -> None:
        pool, here, _ = await two_processes(database_url, schema)
        try:
            clinic, _ = await here.create_clinic("Clinic", "Europe/Berlin", OPERATOR)
            await here.set_hours("clinic", clinic["id"], MORNINGS, OPERATOR)
            mornings, _ = await here.hours_of(clinic["id"], [])
            await asyncio.sleep(0.6)
            async with pool.acquire() as conn, conn.transaction():  # the refresh reads mornings, then waits
                await conn.execute("LOCK TABLE closure_changes IN ACCESS EXCLUSIVE MODE")
                await here.hours_of(clinic["id"], [])
                assert here._refreshes
                await asyncio.sleep(0.2)
                await here.set_hours("clinic", clinic["id"], EVENINGS, OPERATOR)  # meanwhile
                assert here._refreshes  # still waiting for the lock
            await asyncio.gather(*here._refreshes)  # done now, with what it read before the change
            evenings, _ = await here.hours_of(clinic["id"], [])
            assert opening(evenings) != opening(mornings)
        finally:
            await pool.close()

    asyncio.run(scenario())
