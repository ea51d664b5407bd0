"""Concurrent commands on many courses from two writers: every accepted command is stored exactly once."""

from __future__ import annotations

import secrets
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from builders import T0
from eventsourcing.cryptography import AESCipher
from eventsourcing.persistence import IntegrityError
from psycopg import sql
from scheduler.application.courses import Courses, event_store_env
from scheduler.application.errors import ConcurrentUpdateError
from scheduler.domain.course import Course
from scheduler.domain.errors import RulesBrokenError
from scheduler.domain.protocol import Protocol
from scheduler.settings import Settings
from scheduler.storage import migrate

pytestmark = pytest.mark.integration
COURSES, COMMANDS = 6, 240


@pytest.fixture
def settings(database_url: str) -> Settings:
    schema = f"gc_{secrets.token_hex(4)}"
    settings = Settings(database_url=database_url, db_schema=schema, cipher_key=AESCipher.create_key(32))
    yield settings
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_two_writers_lose_no_update_and_double_none(settings: Settings) -> None:
    env = event_store_env(settings)
    first, _ = migrate(settings, env)
    second = Courses(env=env)
    writers = [first, second]
    ids = [first.open_course(lambda: Course.open(course_id=uuid4(), home_clinic_id="home", model="together",
                                                 protocol=Protocol(), partners={"a": "x", "b": "y"},
                                                 by="clinic:home")).id for _ in range(COURSES)]

    def book(n: int) -> tuple[int, str]:
        course_id, start = ids[n % COURSES], T0 + timedelta(days=n)  # each booking its own day: all valid
        try:
            writers[n % 2].execute(course_id, lambda c: c.book_session(
                session_id=f"s{n}", kind="assessment", partners=["a", "b"], starts_at=start,
                ends_at=start + timedelta(hours=1), clinic_id="home", by="clinic:home"))
            return n, "ok"
        except ConcurrentUpdateError:
            return n, "conflict"

    try:
        with ThreadPoolExecutor(32) as pool:
            results = dict(pool.map(book, range(COMMANDS)))
        accepted = Counter(ids[n % COURSES] for n, r in results.items() if r == "ok")
        # ~5 writers per course at once: most conflicts are retried away, the rest are 409s a client retries
        assert sum(accepted.values()) >= COMMANDS * 0.75
        for course_id in ids:
            course = first.get_course(course_id)
            booked = {s for s in course.sessions}
            assert len(booked) == accepted[course_id]  # nothing lost
            events = [type(e).__name__ for e in first.history(course_id)]
            assert events.count("SessionBooked") == accepted[course_id]  # nothing doubled
            assert course.version == 1 + accepted[course_id]
    finally:
        second.close()
        first.close()


def test_a_writer_with_a_stale_cached_course_never_writes_or_refuses_on_stale_state(settings: Settings) -> None:
    """Commands run first on the process's cached course without asking the store: a write based on a stale
    copy loses to the version constraint and is decided again, and so is a refusal or a no-op."""
    env = event_store_env(settings)
    stale, _ = migrate(settings, env)
    other = Courses(env=env)  # another process
    course_id = stale.open_course(lambda: Course.open(
        course_id=uuid4(), home_clinic_id="home", model="together", protocol=Protocol(),
        partners={"a": "x", "b": "y"}, by="clinic:home")).id

    def booking(sid: str, day: int) -> Any:
        start = T0 + timedelta(days=day)
        return lambda c: c.book_session(session_id=sid, kind="assessment", partners=["a", "b"], starts_at=start,
                                        ends_at=start + timedelta(hours=1), clinic_id="home", by="clinic:home")

    try:
        stale.execute(course_id, booking("s1", 1))  # `stale` caches the course at this version
        other.execute(course_id, booking("s2", 2))  # ... which the other process moves on
        # 1. valid on the stale copy, refused on the current course: I10, the couple is busy on day 2
        with pytest.raises(RulesBrokenError) as refused:
            stale.execute(course_id, booking("s3", 2))
        assert [v.rule for v in refused.value.violations] == ["I10"]
        # 2. refused on the stale copy (no session s4 there), accepted on the current course
        other.execute(course_id, booking("s4", 3))
        held = stale.execute(course_id, lambda c: c.record_missed(
            session_id="s4", reason="the couple did not come", now=T0 + timedelta(days=4), by="clinic:home"))
        assert held.sessions["s4"].status.value == "missed"
        # 3. a no-op answers with the current course
        other.execute(course_id, booking("s5", 5))
        assert "s5" in stale.execute(course_id, lambda c: None).sessions
        stored = [e.__class__.__name__ for e in other.events.get(course_id)]
        assert stored.count("SessionBooked") == 4 and stored.count("SessionMissed") == 1
    finally:
        other.close()
        stale.close()


def test_a_guard_keeps_a_command_that_relied_on_an_aggregate_from_saving_once_it_changed(settings: Settings) -> None:
    """A command saved with guards (aggregates it read and relied on without changing them) is saved only while
    each is still at the version it read, checked under the insert's table lock: nothing of it otherwise."""
    env = event_store_env(settings)
    app, _ = migrate(settings, env)
    try:
        relied_on = app.open_course(lambda: Course.open(
            course_id=uuid4(), home_clinic_id="home", model="together", protocol=Protocol(),
            partners={"a": "x", "b": "y"}, by="clinic:home"))
        assert relied_on.version == 1

        def opened() -> Course:
            return Course.open(course_id=uuid4(), home_clinic_id="home", model="together", protocol=Protocol(),
                               partners={"a": "x", "b": "y"}, by="clinic:home")

        saved = opened()
        app._submit([saved], [(relied_on.id, 1)]).result()  # as read: saved
        assert app.get_course(saved.id).version == 1
        app.execute(relied_on.id, lambda c: c.book_session(
            session_id="s1", kind="assessment", partners=["a", "b"], starts_at=T0, ends_at=T0 + timedelta(hours=1),
            clinic_id="home", by="clinic:home"))  # now at version 2
        refused = opened()
        with pytest.raises(IntegrityError):
            app._submit([refused], [(relied_on.id, 1)]).result()
        assert list(app.recorder.select_events(refused.id)) == []  # nothing of it
        created_since = app.open_course(opened)  # read as absent (version 0), then opened by another command
        never = opened()
        with pytest.raises(IntegrityError):
            app._submit([never], [(created_since.id, 0)]).result()
        assert list(app.recorder.select_events(never.id)) == []
        assert app.recorder.max_versions([relied_on.id, created_since.id, uuid4()]) == {
            relied_on.id: 2, created_since.id: 1}  # how the group commit finds a contested batch's losers
        later = opened()  # still absent, and current
        app._submit([later], [(uuid4(), 0), (relied_on.id, 2)]).result()
        assert app.get_course(later.id).version == 1
    finally:
        app.close()
