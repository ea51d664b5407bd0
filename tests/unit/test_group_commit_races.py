"""The group commit when commands in one batch race: only the losers fail, the others are saved together in one
more insert (not one insert each, which under load let queued commands miss their deadline), and a command
queued behind a batch that changed what it read fails without an insert at all.

The in-memory recorder stands in for PostgreSQL (tests/integration/test_group_commit.py races real writers); its
first insert is held until every command of the test is queued, so the next batch is known."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from copy import deepcopy
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from builders import BY, HOME, T0
from eventsourcing.persistence import IntegrityError, StoredEvent
from scheduler.application.courses import Courses
from scheduler.application.group_commit import GroupCommit
from scheduler.domain.course import Course
from scheduler.domain.protocol import Protocol


class HeldRecorder:
    """The in-memory recorder whose first insert waits for `release`; it counts inserts and look-ups."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.release, self.holding = threading.Event(), threading.Event()
        self.inserts: list[int] = []  # events per insert attempt
        self.lookups = 0

    def insert_events(self, events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        if not self.inserts:
            self.holding.set()
            assert self.release.wait(10)
        self.inserts.append(len(events))
        return self.recorder.insert_events(events, **kwargs)

    def max_versions(self, ids: Any) -> dict[Any, int]:
        self.lookups += 1
        return self.recorder.max_versions(ids)

    def select_events(self, *args: Any, **kwargs: Any) -> Any:
        return self.recorder.select_events(*args, **kwargs)


def opened(course_id: UUID | None = None) -> Course:
    return Course.open(course_id=course_id or uuid4(), home_clinic_id=HOME, model="together", protocol=Protocol(),
                       partners={"a": "ref-a", "b": "ref-b"}, by=BY)


def booked(course: Course, session_id: str) -> Course:
    course.book_session(session_id=session_id, kind="assessment", partners=["a", "b"], starts_at=T0,
                        ends_at=T0 + timedelta(hours=1), clinic_id=HOME, by=BY)
    return course


@pytest.fixture
def held() -> tuple[Courses, HeldRecorder, GroupCommit]:
    app = Courses(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    recorder = HeldRecorder(app.recorder)
    app.recorder = recorder  # type: ignore[assignment]
    writer = GroupCommit(app, deadline_seconds=5.0)
    yield app, recorder, writer
    recorder.release.set()
    writer.close()


def first_batch_holding(recorder: HeldRecorder, writer: GroupCommit, course: Course) -> Future[None]:
    future = writer.submit([course])
    assert recorder.holding.wait(10)
    return future


def test_a_batch_with_losers_saves_its_winners_in_one_more_insert(held: Any) -> None:
    app, recorder, writer = held
    taken = uuid4()
    first = first_batch_holding(recorder, writer, opened(taken))
    rival = opened(taken)  # the same course and version: it loses to the first
    relied_on = opened()
    app.recorder.recorder.insert_events([app.mapper.to_stored_event(e) for e in relied_on.collect_events()])
    others = [opened() for _ in range(5)]
    futures = [writer.submit([rival])]
    futures += [writer.submit([course]) for course in others[:3]]
    futures.append(writer.submit([others[3]], guards=[(relied_on.id, 0)]))  # read before it existed: loses
    futures.append(writer.submit([others[4]], guards=[(relied_on.id, 1)]))  # read as it is: saved
    recorder.release.set()
    first.result(timeout=10)
    outcomes = []
    for future in futures:
        try:
            future.result(timeout=10)
            outcomes.append("saved")
        except IntegrityError:
            outcomes.append("lost")
    assert outcomes == ["lost", "saved", "saved", "saved", "lost", "saved"]
    assert recorder.inserts == [1, 6, 4]  # the first batch, the contested one, its winners together
    assert recorder.lookups == 1
    for course, outcome in zip([rival, *others], outcomes):
        stored = app.recorder.select_events(course.id)
        assert (len(stored) == 1) == (outcome == "saved") or course is rival
    assert len(app.recorder.select_events(taken)) == 1


def test_a_command_queued_behind_a_change_to_what_it_read_fails_without_an_insert(held: Any) -> None:
    app, recorder, writer = held
    course = opened()
    first = first_batch_holding(recorder, writer, course)
    first_copy, second_copy = booked(deepcopy(course), "s1"), booked(deepcopy(course), "s2")  # both version 2
    winner = writer.submit([first_copy])
    loser = writer.submit([second_copy])  # the same course and version: carried behind the winner
    recorder.release.set()
    first.result(timeout=10)
    winner.result(timeout=10)
    with pytest.raises(IntegrityError):
        loser.result(timeout=10)
    assert recorder.inserts == [1, 1]  # the loser never reached the store
    assert [s.originator_version for s in app.recorder.select_events(course.id)] == [1, 2]


def test_commands_that_only_rely_on_one_aggregate_are_saved_in_one_batch(held: Any) -> None:
    app, recorder, writer = held
    relied_on = opened()
    app.recorder.recorder.insert_events([app.mapper.to_stored_event(e) for e in relied_on.collect_events()])
    first = first_batch_holding(recorder, writer, opened())
    futures = [writer.submit([opened()], guards=[(relied_on.id, 1)]) for _ in range(8)]
    recorder.release.set()
    first.result(timeout=10)
    for future in futures:
        future.result(timeout=10)
    assert recorder.inserts == [1, 8]


def test_a_command_queued_behind_slow_batches_past_its_deadline_is_saved_while_the_store_answers() -> None:
    app = Courses(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    recorder = HeldRecorder(app.recorder)
    app.recorder = recorder  # type: ignore[assignment]
    writer = GroupCommit(app, deadline_seconds=0.1)
    try:
        first = first_batch_holding(recorder, writer, opened())
        waiting = opened()
        future = writer.submit([waiting])
        time.sleep(0.3)  # its deadline passes while the first batch is still being saved
        recorder.release.set()
        first.result(timeout=10)
        future.result(timeout=10)  # a slow store is no outage: not refused as unavailable
        assert len(app.recorder.select_events(waiting.id)) == 1
    finally:
        recorder.release.set()
        writer.close()
