"""The course indexer: batches of events, one transaction each, resumed from the recorded position."""

from __future__ import annotations

import time
from collections.abc import Iterator
from uuid import uuid4

import psycopg
import pytest
from api_support import eventually
from eventsourcing.cryptography import AESCipher
from eventsourcing.persistence import ProgrammingError
from psycopg import sql
from scheduler.application.courses import Courses, event_store_env
from scheduler.domain.course import Course
from scheduler.domain.protocol import Protocol
from scheduler.readmodels.course_index import CourseIndexView, course_index_view
from scheduler.readmodels.indexer import Indexer
from scheduler.settings import Settings
from scheduler.storage import migrate, projection_env

pytestmark = pytest.mark.integration


@pytest.fixture
def store(database_url: str, schema: str) -> Iterator[tuple[Courses, CourseIndexView]]:
    settings = Settings(database_url=database_url, db_schema=schema, cipher_key=AESCipher.create_key(32))
    env = event_store_env(settings)
    courses, view = migrate(settings, env)
    view.datastore.close()
    view = course_index_view(projection_env(env))
    yield courses, view
    view.datastore.close()
    courses.close()


def _open(courses: Courses, clinic: str) -> str:
    return str(courses.open_course(lambda: Course.open(
        course_id=uuid4(), home_clinic_id=clinic, model="together", protocol=Protocol(),
        partners={"a": "x", "b": "y"}, by=f"clinic:{clinic}")).id)


def _rows(database_url: str, schema: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        query = sql.SQL("SELECT course_id::text FROM {}.course_index").format(sql.Identifier(schema))
        return [row[0] for row in conn.execute(query)]


def test_the_indexer_resumes_where_it_stopped_and_indexes_every_course_once(
    store: tuple[Courses, CourseIndexView], database_url: str, schema: str
) -> None:
    courses, view = store
    before = {_open(courses, "home") for _ in range(30)}  # waiting before the indexer starts: one batch
    indexer = Indexer(courses, view).start()
    assert eventually(lambda: set(_rows(database_url, schema)), lambda ids: ids == before) == before
    indexer.stop()
    assert not indexer.alive and indexer.error is None
    position = view.max_tracking_id(courses.name)

    after = {_open(courses, "home") for _ in range(20)}  # while no indexer runs
    indexer = Indexer(courses, view).start()
    try:
        more = {_open(courses, "home") for _ in range(20)}  # while it runs
        rows = eventually(lambda: _rows(database_url, schema), lambda ids: set(ids) == before | after | more)
        assert len(rows) == len(set(rows)) == 70
        assert view.max_tracking_id(courses.name) > position
    finally:
        indexer.stop()


def test_an_indexer_that_cannot_write_ends_with_its_error_so_its_singleton_starts_another(
    store: tuple[Courses, CourseIndexView], database_url: str, schema: str,
) -> None:
    courses, view = store
    with psycopg.connect(database_url, autocommit=True) as conn:  # its table is gone: every write fails
        conn.execute(sql.SQL("ALTER TABLE {}.course_index RENAME TO course_index_away").format(sql.Identifier(schema)))
    indexer = Indexer(courses, view).start()
    try:
        _open(courses, "home")
        deadline = time.monotonic() + 10
        while indexer.alive and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not indexer.alive
        # the library's wrapping of PostgreSQL's undefined-table error
        assert isinstance(indexer.error, ProgrammingError) and "does not exist" in str(indexer.error)
        assert view.max_tracking_id(courses.name) is None  # nothing recorded: the next indexer starts over
    finally:
        indexer.stop()
