"""Calendars' snapshots in PostgreSQL: the table keeps each calendar's latest snapshot only, encrypted as the events
are; another process loads a busy calendar from it and the events after it, to the same calendar."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from builders import T0
from eventsourcing.cryptography import AESCipher
from psycopg import sql
from scheduler.application.courses import Courses, event_store_env
from scheduler.application.runner import run_steps
from scheduler.application.snapshots import SNAPSHOT_EVERY
from scheduler.domain.calendar import Resource, _row
from scheduler.settings import Settings
from scheduler.storage import migrate

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(database_url: str) -> Iterator[Settings]:
    schema = f"snap_{secrets.token_hex(4)}"
    yield Settings(database_url=database_url, db_schema=schema, cipher_key=AESCipher.create_key(32))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def snapshots(settings: Settings) -> list[tuple[Any, int, bytes]]:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(sql.SQL("SELECT originator_id, originator_version, state FROM {}.courses_snapshots "
                                    "ORDER BY originator_id, originator_version")
                            .format(sql.Identifier(settings.db_schema))).fetchall()


def test_the_latest_snapshot_alone_is_kept_encrypted_and_another_process_loads_from_it(settings: Settings) -> None:
    env = event_store_env(settings)
    writer, _ = migrate(settings, env)
    calendar_id = uuid4()

    for i in range(2 * SNAPSHOT_EVERY + 10):  # one command each: opened, then reserved up to version 2N + 10
        start = T0 + timedelta(hours=2 * i)

        def reserve(work: Any, i: int = i, start: Any = start) -> None:
            work.calendar(calendar_id, Resource.CLINICIAN).reserve(
                course_id=f"course-{i % 5}", session_id=f"s{i}", starts_at=start,
                ends_at=start + timedelta(hours=1), label="clinician x", after=timedelta(minutes=15))

        run_steps(writer.execution(reserve))
    writer.calendar_snapshots.wait()
    stored = snapshots(settings)
    assert [(row[0], row[1]) for row in stored] == [(calendar_id, 2 * SNAPSHOT_EVERY)]  # the first was replaced
    assert b"course-1" not in stored[0][2] and b"clinician" not in stored[0][2]  # encrypted at rest

    reader = Courses(env={**env, "CREATE_TABLE": "n"})  # another process: nothing cached
    try:
        loaded, expected = reader.get_calendar(calendar_id), writer.get_calendar(calendar_id)
        assert loaded is not None and expected is not None
        assert loaded.version == expected.version == 2 * SNAPSHOT_EVERY + 11
        assert [_row(s) for s in loaded.slots.values()] == [_row(s) for s in expected.slots.values()]
        assert (loaded._starts, loaded._longest, loaded._most_after) == (
            expected._starts, expected._longest, expected._most_after)
        # It replayed 11 events, fewer than the interval: no snapshot is taken for that load.
        reader.calendar_snapshots.wait()
        assert reader.calendar_snapshots.stored == 0
    finally:
        reader.close()
        writer.close()
