"""The integration-window deadline watcher (rule I4, docs/RULES.md): records a missed window once its deadline passed.
It also records each hold that expired (`HoldExpired`, which frees its slot in the calendars and tells the clinic
that held it); a hold's slot is free from its expiry on, whether or not this has run yet.

The course index keeps one row per Dosed medicine session with the deadline its Dosed event names. One scheduler
process at a time (a `Singleton`) sleeps until the earliest open deadline, looking again at least every
`KACT_DEADLINE_CHECK_SECONDS`, and runs `Course.record_missed_integration_windows` on every course whose deadline
passed. A row is judged no sooner than one check interval after it was indexed: under simulated time (X-Kact-Now)
a course lives through a window that closed long ago in moments, and the integration session held right after the
dose must be recorded before its window is judged (the notifier's timers settle the same way). The command is
idempotent and runs through `Courses.execute` (optimistic, retried on a version conflict), so a second watcher, a
fail-over or a restart between the command and marking its row never records a window twice: exactly one
`IntegrationWindowMissed` per missed window, and none for a window kept in time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from scheduler.application.calendars import CalendarIds
from scheduler.application.courses import Courses
from scheduler.application.handlers import expire_holds
from scheduler.background import BackgroundThread
from scheduler.domain.course import Course
from scheduler.metrics import DEADLINE_RUNS, DEADLINE_SECONDS, HOLDS_EXPIRED, WINDOWS_MISSED
from scheduler.readmodels.course_index import CourseIndexView, course_index_view
from scheduler.singleton import Singleton

log = logging.getLogger("kact.deadlines")
BY = "system:deadline-watcher"


class DeadlineWatcher(BackgroundThread):
    """Checks due integration-window deadlines in a thread of its own until stopped."""

    def __init__(
        self,
        courses: Courses,
        view: CourseIndexView,
        clock: Callable[[], datetime],
        check_seconds: float = 5.0,
        batch: int = 500,
        calendars: CalendarIds | None = None,
    ) -> None:
        assert check_seconds > 0, "the watcher looks again at least every check_seconds"
        self.courses, self.view, self.clock = courses, view, clock
        self.calendars = calendars or CalendarIds(b"")  # holds keep no partner's calendar: no key needed
        self.check_seconds, self.batch = check_seconds, batch
        super().__init__("deadline-watcher")

    def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.perf_counter()
            try:
                wait = self.check_once()
                DEADLINE_RUNS.labels("ok").inc()
            except Exception:  # the database may be away for a moment: look again later, never die of it
                log.exception("deadline watcher: checking the deadlines failed")
                DEADLINE_RUNS.labels("failed").inc()
                wait = self.check_seconds
            DEADLINE_SECONDS.observe(time.perf_counter() - started)
            self._stopping.wait(wait)

    def check_once(self) -> float:
        """Settles every deadline that passed; returns how long to sleep before the next one is due."""
        now = self.clock()
        due = self.view.due_deadlines(now, self.batch, min_age_seconds=self.check_seconds)
        failed = False
        for course_id in dict.fromkeys(row["course_id"] for row in due):  # each course once, earliest first
            sessions = [row["session_id"] for row in due if row["course_id"] == course_id]
            try:
                self.settle(course_id, sessions, now)
            except Exception:
                failed = True  # its rows stay open: the next round tries again
                log.exception("deadline watcher: course %s could not be checked", course_id)
        holds = self.view.due_holds(now, self.batch, min_age_seconds=self.check_seconds)
        for course_id in dict.fromkeys(row["course_id"] for row in holds):
            try:
                expired = expire_holds(self.courses, self.calendars, course_id, now, BY)
                HOLDS_EXPIRED.inc(len(expired))
            except Exception:
                failed = True  # still open: the next round tries again
                log.exception("hold watcher: the holds of course %s could not be expired", course_id)
        if (len(due) == self.batch or len(holds) == self.batch) and not failed:
            return 0.0  # more are due
        upcoming = [t for t in (self.view.next_deadline(now), self.view.next_hold_expiry(now)) if t is not None]
        if not upcoming:
            return self.check_seconds
        return min(self.check_seconds, max(0.0, (min(upcoming) - self.clock()).total_seconds()))

    def settle(self, course_id: UUID, session_ids: list[str], now: datetime) -> list[str]:
        """Records the course's missed windows as of `now` and marks its due rows; returns the sessions
        whose windows this call recorded missed."""
        recorded: list[str] = []

        def command(course: Course) -> None:
            recorded[:] = course.record_missed_integration_windows(now=now, by=BY)

        course = self.courses.execute(course_id, command, now)
        self.view.settle_deadlines(
            course_id, {sid: "missed" if sid in course.missed_windows else "checked" for sid in session_ids}
        )
        if recorded:
            WINDOWS_MISSED.inc(len(recorded))
            log.info("deadline watcher: course %s missed the integration window of %s", course_id, recorded)
        return recorded


def deadline_singleton(
    database_url: str,
    name: str,
    courses: Courses,
    view_env: dict[str, str],
    clock: Callable[[], datetime],
    check_seconds: float,
) -> Singleton:
    """The watcher, run by one scheduler process at a time (another takes over if it dies)."""

    def start() -> tuple[DeadlineWatcher, CourseIndexView]:
        view = course_index_view(view_env)
        return DeadlineWatcher(courses, view, clock, check_seconds).start(), view

    def stop(job: tuple[DeadlineWatcher, Any]) -> None:
        job[0].stop()
        job[1].datastore.close()

    return Singleton(database_url, name, start=start, stop=stop, healthy=lambda job: job[0].alive)
