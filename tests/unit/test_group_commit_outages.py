"""The group commit while the database fails: a command is saved within its deadline or never, and a command
whose attempt broke mid-way is saved once (never twice, never reported failed while it was saved).

eventsourcing's in-memory recorder stands in for PostgreSQL, with failures scripted the way a lost or unavailable
database shows them (tests/integration/test_outage.py kills a real one)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID, uuid4

import psycopg
import psycopg_pool
import pytest
from builders import BY, HOME, open_course
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent
from scheduler.application.courses import Courses
from scheduler.application.errors import OutcomeUnknownError, StoreUnavailableError
from scheduler.application.group_commit import GroupCommit
from scheduler.domain.course import Course
from scheduler.domain.protocol import Protocol


def no_connection() -> OperationalError:
    """What the library raises when no pooled connection could be had: the attempt never reached the database."""
    error = OperationalError("couldn't get a connection after 1.00 sec")
    error.__cause__ = psycopg_pool.PoolTimeout("couldn't get a connection after 1.00 sec")
    return error


def connection_lost() -> OperationalError:
    return OperationalError("server closed the connection unexpectedly")


def statement_timed_out() -> OperationalError:
    """PostgreSQL cancelled the insert (its statement timeout, a lock wait included) and rolled it back."""
    error = OperationalError("canceling statement due to statement timeout")
    error.__cause__ = psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
    return error


def lock_wait_timed_out() -> OperationalError:
    error = OperationalError("canceling statement due to lock timeout")
    error.__cause__ = psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")
    return error


class ScriptedRecorder:
    """The in-memory recorder, failing as scripted: each insert or select first runs the next step of its script
    ("ok", a failure raised before saving, or "commit-then-lose": saved, then the connection breaks)."""

    def __init__(self, recorder: Any, inserts: list[Any], selects: list[Any] | None = None) -> None:
        self.recorder, self.inserts, self.selects = recorder, inserts, selects or []
        self.insert_calls = 0

    def insert_events(self, events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        self.insert_calls += 1
        step = self.inserts.pop(0) if self.inserts else "ok"
        if step == "commit-then-lose":
            self.recorder.insert_events(events, **kwargs)
            raise connection_lost()
        if callable(step):
            raise step()
        return self.recorder.insert_events(events, **kwargs)

    def select_events(self, *args: Any, **kwargs: Any) -> Any:
        step = self.selects.pop(0) if self.selects else "ok"
        if callable(step):
            raise step()
        return self.recorder.select_events(*args, **kwargs)


def commit(inserts: list[Any], selects: list[Any] | None = None, deadline: float = 0.5,
           ) -> tuple[Courses, ScriptedRecorder, Callable[[], None]]:
    app = Courses(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    scripted = ScriptedRecorder(app.recorder, inserts, selects)
    app.recorder = scripted  # type: ignore[assignment]
    writer = GroupCommit(app, deadline_seconds=deadline)
    course = open_course()
    future = writer.submit([course])

    def result() -> None:
        try:
            future.result(timeout=10)
        finally:
            writer.close()

    app.saved_id = course.id  # type: ignore[attr-defined]
    return app, scripted, result


def saved(app: Courses) -> list[StoredEvent]:
    return list(app.recorder.recorder.select_events(app.saved_id))  # type: ignore[attr-defined]


def test_a_command_is_saved_once_the_database_answers_again_within_its_deadline() -> None:
    app, recorder, result = commit([no_connection, connection_lost, "ok"])
    result()
    assert len(saved(app)) == 1 and recorder.insert_calls == 3


def test_a_command_the_database_never_took_fails_unsaved_at_its_deadline() -> None:
    app, recorder, result = commit([no_connection] * 1000, deadline=0.3)
    with pytest.raises(StoreUnavailableError) as refused:
        result()
    assert not isinstance(refused.value, OutcomeUnknownError)
    assert saved(app) == [] and recorder.insert_calls > 1
    assert recorder.inserts  # it gave up with attempts left: the deadline, not the script, ended it


@pytest.mark.parametrize("refusal", [statement_timed_out, lock_wait_timed_out])
def test_a_statement_the_database_cancelled_saved_nothing(refusal: Callable[[], OperationalError]) -> None:
    # A stuck lock or database: the command is refused (503 unavailable, its Idempotency-Key free for a retry),
    # not of unknown outcome, since PostgreSQL rolled the statement back.
    app, recorder, result = commit([refusal] * 1000, deadline=0.3)
    with pytest.raises(StoreUnavailableError) as refused:
        result()
    assert not isinstance(refused.value, OutcomeUnknownError)
    assert saved(app) == [] and recorder.insert_calls > 1


def test_an_attempt_that_committed_before_the_connection_broke_is_found_saved_not_saved_again() -> None:
    app, recorder, result = commit(["commit-then-lose"])
    result()  # no IntegrityError from saving its own events a second time
    assert len(saved(app)) == 1 and recorder.insert_calls == 1


def test_an_attempt_that_broke_before_committing_is_saved_by_the_next() -> None:
    app, recorder, result = commit([connection_lost, "ok"])
    result()
    assert len(saved(app)) == 1 and recorder.insert_calls == 2


def test_while_the_database_stays_away_after_a_broken_attempt_the_outcome_is_unknown() -> None:
    app, recorder, result = commit(["commit-then-lose"], selects=[no_connection] * 1000, deadline=0.3)
    with pytest.raises(OutcomeUnknownError):
        result()
    assert len(saved(app)) == 1  # it was saved: the client is told "unknown", never "failed"


def test_a_broken_attempt_whose_version_another_writer_took_lost_a_race() -> None:
    app = Courses(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    course_id = uuid4()
    rival = [app.mapper.to_stored_event(e) for e in opened(course_id).collect_events()]

    def rival_wins_then_lose() -> OperationalError:
        app.recorder.recorder.insert_events(rival)  # type: ignore[attr-defined]
        return connection_lost()

    scripted = ScriptedRecorder(app.recorder, [rival_wins_then_lose])
    app.recorder = scripted  # type: ignore[assignment]
    writer = GroupCommit(app, deadline_seconds=1.0)
    future = writer.submit([opened(course_id)])  # the same course and version, other bytes
    try:
        with pytest.raises(IntegrityError):
            future.result(timeout=10)
    finally:
        writer.close()
    assert [s.state for s in scripted.recorder.select_events(course_id)] == [rival[0].state]


def opened(course_id: UUID) -> Course:
    return Course.open(course_id=course_id, home_clinic_id=HOME, model="together", protocol=Protocol(),
                       partners={"a": "ref-a", "b": "ref-b"}, by=BY)
