"""The read audit without a server: each read use case logs one row set with its outcome (ok, denied, failed), and
the operator alone queries the log."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from kact_contracts import logs

from scheduler.api_keys import OPERATOR, Principal
from scheduler.application import audit
from scheduler.application.audit import AccessLogReads, AccessQuery, reading
from scheduler.application.errors import CourseNotFoundError, ForbiddenError, NotFoundError
from scheduler.application.handlers import Scheduling
from scheduler.application.reads import CourseFilter, Reads
from scheduler.domain.errors import InvalidCommandError
from test_scheduling_use_cases import FakeDirectory, NoIndex, clinic_key, open_course
from test_scheduling_use_cases import courses, directory, scheduling  # noqa: F401 - the fixtures

T0 = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)


async def test_a_course_read_is_logged_ok_for_its_clinic_and_denied_to_any_other(
        scheduling: Scheduling, directory: FakeDirectory) -> None:
    home, _, _ = directory.clinic_with_staff()
    other, _, prescriber = directory.clinic_with_staff()
    course_id = await open_course(scheduling, home)
    stranger = clinic_key(other)
    nobody = uuid4()

    await scheduling.get_course(clinic_key(home), course_id)
    await scheduling.get_course(OPERATOR, course_id, as_of=1)
    await scheduling.history(clinic_key(home), course_id)
    for attempt in (lambda: scheduling.get_course(stranger, course_id),
                    lambda: scheduling.history(stranger, course_id),
                    lambda: scheduling.get_course(Principal("prescriber", str(prescriber), str(other)), course_id),
                    lambda: scheduling.get_course(clinic_key(home), nobody)):
        with pytest.raises(CourseNotFoundError):
            await attempt()

    assert directory.reads == [
        (f"clinic:{home}", "read_course", [course_id], "ok"),
        ("operator:root", "replay_course", [course_id], "ok"),
        (f"clinic:{home}", "read_history", [course_id], "ok"),
        # Probing another clinic's course is exactly what an auditor looks for: denied, with the course asked for.
        (f"clinic:{other}", "read_course", [course_id], "denied"),
        (f"clinic:{other}", "read_history", [course_id], "denied"),
        (f"prescriber:{prescriber}", "read_course", [course_id], "denied"),
        (f"clinic:{home}", "read_course", [nobody], "denied"),
    ]


async def test_lists_log_a_row_per_course_shown_or_one_without_a_course(
        scheduling: Scheduling, directory: FakeDirectory) -> None:
    home, _, prescriber = directory.clinic_with_staff()
    await scheduling.approval_queue(Principal("prescriber", str(prescriber), str(home)), None)
    with pytest.raises(ForbiddenError):
        await scheduling.approval_queue(clinic_key(home), None)
    reads = Reads(NoIndex(), directory, _nothing_to_wait_for, asyncio.to_thread)  # type: ignore[arg-type]
    found = await reads.courses(Principal("prescriber", str(prescriber), str(home)), CourseFilter(), cursor=None,
                                page=1, limit=50)
    assert found.rows == []
    assert directory.reads == [
        (f"prescriber:{prescriber}", "list_dose_approvals", [None], "ok"),
        (f"clinic:{home}", "list_dose_approvals", [None], "denied"),
        (f"prescriber:{prescriber}", "list_courses", [None], "ok"),
    ]


async def _nothing_to_wait_for() -> None:
    return None


class Recorded:
    """A read log that keeps what it is given, or fails to write (a database gone)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.rows: list[tuple[str, str, list[UUID | None], str, str | None]] = []

    async def log_reads(self, principal: Principal, action: str, course_ids: Sequence[UUID | None], *,
                        outcome: str = "ok", request_id: str | None = None) -> None:
        if self.fail:
            raise ConnectionError("the database is gone")
        self.rows.append((principal.ref, action, list(course_ids), outcome, request_id))


class InRequest:
    request_id = "req-42"


async def test_reading_logs_the_outcome_and_the_request_id_and_never_answers_an_unlogged_read() -> None:
    log = Recorded()
    course = uuid4()
    token = logs.CONTEXT.set(InRequest())
    try:
        async with reading(log, OPERATOR, "read_course", course):
            pass
        async with reading(log, OPERATOR, "list_courses") as read:
            read.show([course, course])  # each course once
        with pytest.raises(InvalidCommandError):
            async with reading(log, OPERATOR, "list_courses"):
                raise InvalidCommandError(["limit must be from 1 to 200"])
        with pytest.raises(NotFoundError):
            async with reading(log, OPERATOR, "read_feed"):
                raise NotFoundError("feed", "clinic:x")
    finally:
        logs.CONTEXT.reset(token)
    assert log.rows == [("operator:root", "read_course", [course], "ok", "req-42"),
                        ("operator:root", "list_courses", [course], "ok", "req-42"),
                        ("operator:root", "list_courses", [None], "failed", "req-42"),
                        ("operator:root", "read_feed", [None], "denied", "req-42")]

    # The log cannot be written: a read that succeeded is not answered; a refused one keeps its own error.
    broken = Recorded(fail=True)
    with pytest.raises(ConnectionError):
        async with reading(broken, OPERATOR, "read_course", course):
            pass
    with pytest.raises(CourseNotFoundError):
        async with reading(broken, OPERATOR, "read_course", course):
            raise CourseNotFoundError(course)


class Store:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows, self.asked = rows, []

    async def entries(self, where: AccessQuery, after: tuple[datetime, int] | None, limit: int) -> list[dict[str, Any]]:
        self.asked.append((where, after, limit))
        older = [r for r in self.rows if after is None or (r["at"], r["id"]) < after]
        return older[:limit]


async def test_only_the_operator_queries_the_log_page_by_page() -> None:
    rows = [{"id": 10 - i, "at": T0.replace(minute=10 - i), "principal": "clinic:x", "action": "read_course",
             "course_id": None, "outcome": "ok", "request_id": None} for i in range(5)]
    store = Store(rows)
    use = AccessLogReads(store)
    with pytest.raises(NotFoundError):  # to anyone else it does not exist
        await use.entries(Principal("clinic", "x", "x"), AccessQuery(), cursor=None, limit=10)
    first = await use.entries(OPERATOR, AccessQuery(principal="clinic:x"), cursor=None, limit=2)
    assert [r["id"] for r in first.rows] == [10, 9] and first.next_cursor is not None
    seen = [r["id"] for r in first.rows]
    cursor = first.next_cursor
    while cursor is not None:
        page = await use.entries(OPERATOR, AccessQuery(principal="clinic:x"), cursor=cursor, limit=2)
        seen += [r["id"] for r in page.rows]
        cursor = page.next_cursor
    assert seen == [10, 9, 8, 7, 6]
    assert store.asked[1][1] == (T0.replace(minute=9), 9)  # the next page starts after the last row shown

    for query, limit, cursor in ((AccessQuery(), 0, None), (AccessQuery(), audit.MAX_LIMIT + 1, None),
                                 (AccessQuery(since=datetime(2026, 1, 1)), 10, None),  # no offset
                                 (AccessQuery(until=datetime(1999, 1, 1, tzinfo=timezone.utc)), 10, None),
                                 (AccessQuery(outcome="maybe"), 10, None), (AccessQuery(), 10, "bm90LWEtY3Vyc29y")):
        with pytest.raises(InvalidCommandError):
            await use.entries(OPERATOR, query, cursor=cursor, limit=limit)
