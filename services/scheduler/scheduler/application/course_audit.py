"""The operator's audit of one course: its timeline (every event, who recorded it, when), the course as it stood
after any event, whether its hash chain verifies, and who read or changed it (the access log)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from scheduler.api_keys import Principal
from scheduler.application.errors import ForbiddenError
from scheduler.application.handlers import Scheduling
from scheduler.domain.course import Course
from scheduler.readmodels.access_log import AccessRow, course_access_log


@dataclass(frozen=True)
class ChainStatus:
    """What verifying a course's hash chain found: `verified` (every event links to the one before), or where and
    why it broke (`detail`)."""

    verified: bool
    detail: str
    checked_at: datetime | None = None
    events_checked: int | None = None


ChainCheck = Callable[[UUID], tuple[bool, str, int]]  # (verified, what it found, events checked)


def chain_status(course_id: UUID, check: ChainCheck | None = None,
                 now: Callable[[], datetime] | None = None) -> ChainStatus | None:
    """The course's hash-chain verification (`ChainAudit.status_of`, blocking: run it in a worker thread), or None
    where this process has no audit key to check the signed heads with (the page says "not verified")."""
    if check is None:
        return None
    verified, detail, events = check(course_id)
    return ChainStatus(verified, detail, (now or (lambda: datetime.now().astimezone()))(), events)


@dataclass(frozen=True)
class Timeline:
    course_id: UUID
    events: list[Any]  # the stored events, oldest first (`http.views.event_view` shows each)
    chain: ChainStatus | None
    access: list[AccessRow]


class Audit:
    """The operator page's reads, through the API's own use cases (each logs its read of the course)."""

    def __init__(self, scheduling: Scheduling, pool: asyncpg.Pool,
                 in_thread: Callable[[Callable[[], Any]], Awaitable[Any]], check: ChainCheck | None = None) -> None:
        self.scheduling, self.pool, self.in_thread, self.check = scheduling, pool, in_thread, check

    @staticmethod
    def _operator(principal: Principal) -> None:
        if principal.kind != "operator":
            raise ForbiddenError("the audit page is for the operator")

    async def timeline(self, principal: Principal, course_id: UUID) -> Timeline:
        self._operator(principal)
        events = await self.scheduling.history(principal, course_id)  # logs read_history
        chain = await self.in_thread(lambda: chain_status(course_id, self.check))
        # Read after the history: the log shows this very read.
        return Timeline(course_id, events, chain, await course_access_log(self.pool, course_id))

    async def course_at(self, principal: Principal, course_id: UUID, version: int) -> tuple[Course, int]:
        """The course replayed up to and including event `version` (logs replay_course, as `?as_of=` does), and the
        version it has now."""
        self._operator(principal)
        course = await self.scheduling.get_course(principal, course_id, version)
        latest: int = await self.in_thread(lambda: self.scheduling.courses.get_course(course_id).version)
        return course, latest
