"""The deadline watcher's round (DOMAIN.md I4) against fakes of the course index and the event store: which courses
it checks, what it marks, how long it sleeps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from builders import dose, integrate, prepared_course
from scheduler.deadlines import BY, DeadlineWatcher
from scheduler.domain.course import Course
from scheduler.domain.protocol import Protocol

CHECK = 5.0


class FakeIndex:
    """The integration_deadlines rows: (course id, session id) -> [deadline, status, seconds since indexed]."""

    def __init__(self) -> None:
        self.rows: dict[tuple[UUID, str], list[Any]] = {}
        self.asked_min_age: list[float] = []

    def add(self, course: Course, sid: str, age: float = 60.0) -> None:
        self.rows[(course.id, sid)] = [course.window_deadline(course.sessions[sid]), "open", age]

    def due_deadlines(self, now: datetime, limit: int = 500, min_age_seconds: float = 0.0) -> list[dict[str, Any]]:
        self.asked_min_age.append(min_age_seconds)
        due = sorted((deadline, cid, sid) for (cid, sid), (deadline, status, age) in self.rows.items()
                     if status == "open" and deadline < now and age >= min_age_seconds)
        return [{"course_id": cid, "session_id": sid, "deadline": d} for d, cid, sid in due[:limit]]

    def next_deadline(self, now: datetime) -> datetime | None:
        return min((d for d, status, _ in self.rows.values() if status == "open" and d >= now), default=None)

    def due_holds(self, now: datetime, limit: int = 500, min_age_seconds: float = 0.0) -> list[dict[str, Any]]:
        return []  # holds are watched in tests/integration/test_holds.py, on the real index

    def next_hold_expiry(self, now: datetime) -> datetime | None:
        return None

    def settle_deadlines(self, course_id: UUID, statuses: dict[str, str]) -> None:
        for sid, status in statuses.items():
            if self.rows[(course_id, sid)][1] == "open":
                self.rows[(course_id, sid)][1] = status

    def statuses(self) -> dict[tuple[UUID, str], str]:
        return {key: status for key, (_, status, _) in self.rows.items()}


class FakeCourses:
    """`Courses.execute` on courses kept in memory; a course in `broken` fails as a database error would."""

    def __init__(self, *courses: Course) -> None:
        self.courses = {c.id: c for c in courses}
        self.executed: list[UUID] = []
        self.broken: set[UUID] = set()

    def execute(self, course_id: UUID, command: Callable[[Course], Any], now: datetime | None = None) -> Course:
        self.executed.append(course_id)
        if course_id in self.broken:
            raise ConnectionError("the database went away")
        command(self.courses[course_id])
        return self.courses[course_id]


def dosed(kept: bool = False) -> Course:
    """A course whose medicine session m1 was held; `kept`: an integration session was held in its window."""
    course, end = prepared_course()
    dose(course, "m1", end + timedelta(days=2), ["a"])
    if kept:
        integrate(course, "m1", count=1)
    return course


def misses(course: Course) -> list[Any]:
    return [e for e in course.pending_events if type(e).__name__ == "IntegrationWindowMissed"]


def watcher(courses: FakeCourses, index: FakeIndex, now: datetime, batch: int = 500) -> DeadlineWatcher:
    return DeadlineWatcher(courses, index, lambda: now, check_seconds=CHECK, batch=batch)  # type: ignore[arg-type]


def test_nothing_open_sleeps_one_check() -> None:
    index = FakeIndex()
    assert watcher(FakeCourses(), index, datetime.now().astimezone()).check_once() == CHECK


def test_sleeps_until_the_next_deadline_when_it_is_sooner_than_a_check() -> None:
    course, index = dosed(), FakeIndex()
    index.add(course, "m1")
    deadline = course.window_deadline(course.sessions["m1"])
    courses = FakeCourses(course)
    assert watcher(courses, index, deadline - timedelta(seconds=2)).check_once() == 2.0
    assert watcher(courses, index, deadline - timedelta(hours=2)).check_once() == CHECK
    assert watcher(courses, index, deadline).check_once() == 0.0  # due the moment it is past
    assert courses.executed == [] and misses(course) == []


def test_a_passed_deadline_is_recorded_missed_once_and_a_kept_window_checked() -> None:
    missed, kept, index = dosed(), dosed(kept=True), FakeIndex()
    index.add(missed, "m1")
    index.add(kept, "m1")
    courses = FakeCourses(missed, kept)
    now = max(c.window_deadline(c.sessions["m1"]) for c in (missed, kept)) + timedelta(minutes=1)

    assert watcher(courses, index, now).check_once() == CHECK
    assert index.statuses() == {(missed.id, "m1"): "missed", (kept.id, "m1"): "checked"}
    (event,) = misses(missed)
    assert (event.session_id, event.deadline, event.by) == ("m1", missed.window_deadline(missed.sessions["m1"]), BY)
    assert misses(kept) == []
    # a later round finds nothing due; run again on reopened rows (a crash before marking), it records nothing new
    watcher(courses, index, now + timedelta(hours=1)).check_once()
    for row in index.rows.values():
        row[1] = "open"
    watcher(courses, index, now + timedelta(hours=2)).check_once()
    assert len(misses(missed)) == 1 and misses(kept) == []
    assert index.statuses() == {(missed.id, "m1"): "missed", (kept.id, "m1"): "checked"}


def test_a_row_indexed_less_than_a_check_ago_waits_for_the_next_round() -> None:
    course, index = dosed(), FakeIndex()
    index.add(course, "m1", age=CHECK / 2)
    courses = FakeCourses(course)
    now = course.window_deadline(course.sessions["m1"]) + timedelta(days=300)
    assert watcher(courses, index, now).check_once() == CHECK
    assert index.asked_min_age == [CHECK]
    assert courses.executed == [] and index.statuses() == {(course.id, "m1"): "open"}
    index.rows[(course.id, "m1")][2] = CHECK
    watcher(courses, index, now).check_once()
    assert index.statuses() == {(course.id, "m1"): "missed"}


def test_a_course_that_fails_stays_open_and_the_others_are_settled() -> None:
    broken, fine, index = dosed(), dosed(), FakeIndex()
    index.add(broken, "m1")
    index.add(fine, "m1")
    courses = FakeCourses(broken, fine)
    courses.broken.add(broken.id)
    now = max(c.window_deadline(c.sessions["m1"]) for c in (broken, fine)) + timedelta(minutes=1)
    assert watcher(courses, index, now, batch=2).check_once() == CHECK  # a full batch, but retried a check later
    assert index.statuses() == {(broken.id, "m1"): "open", (fine.id, "m1"): "missed"}
    courses.broken.clear()
    watcher(courses, index, now).check_once()
    assert index.statuses() == {(broken.id, "m1"): "missed", (fine.id, "m1"): "missed"}


def test_a_full_batch_looks_again_at_once() -> None:
    courses_ = [dosed() for _ in range(3)]
    index = FakeIndex()
    for course in courses_:
        index.add(course, "m1")
    courses = FakeCourses(*courses_)
    now = max(c.window_deadline(c.sessions["m1"]) for c in courses_) + timedelta(minutes=1)
    assert watcher(courses, index, now, batch=2).check_once() == 0.0
    assert sorted(index.statuses().values()) == ["missed", "missed", "open"]
    assert watcher(courses, index, now, batch=2).check_once() == CHECK
    assert sorted(index.statuses().values()) == ["missed"] * 3


def test_each_course_is_executed_once_a_round_for_all_its_due_windows() -> None:
    course, end = prepared_course(protocol=Protocol(min_integration_sessions=1))
    dose(course, "m1", end + timedelta(days=2), ["a"])
    integrate(course, "m1")  # m1's window is kept, m2's is not
    dose(course, "m2", end + timedelta(days=12), ["b"])
    index = FakeIndex()
    index.add(course, "m1")
    index.add(course, "m2")
    courses = FakeCourses(course)
    watcher(courses, index, course.window_deadline(course.sessions["m2"]) + timedelta(minutes=1)).check_once()
    assert courses.executed == [course.id]
    assert index.statuses() == {(course.id, "m1"): "checked", (course.id, "m2"): "missed"}
    assert [e.session_id for e in misses(course)] == ["m2"]


@pytest.mark.parametrize("seconds", [0, -1])
def test_the_watcher_needs_a_positive_check_interval(seconds: float) -> None:
    with pytest.raises(AssertionError):
        DeadlineWatcher(FakeCourses(), FakeIndex(), datetime.now, check_seconds=seconds)  # type: ignore[arg-type]
