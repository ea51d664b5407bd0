"""What a clinic hosts for other clinics' courses: its week, and the sessions to rebook when a partnership ends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from scheduler.api_keys import Principal
from scheduler.application.audit import reading
from scheduler.application.courses import Courses
from scheduler.application.errors import ForbiddenError, NotFoundError
from scheduler.application.handlers import Directory
from scheduler.domain.course import Course
from scheduler.domain.errors import InvalidCommandError
from scheduler.domain.model import ApprovalStatus, Kind, SessionStatus

Row = dict[str, Any]
LONGEST_RANGE = timedelta(days=62)
DEFAULT_RANGE = timedelta(days=7)  # a range given no end: a week


class HostedIndex(Protocol):
    def hosted_sessions(self, host_clinic_id: str, starts_from: datetime, starts_before: datetime) -> list[Row]: ...

    def booked_between(self, clinic_id: str, partner_clinic_id: str) -> list[Row]: ...


@dataclass(frozen=True)
class Dose:
    """A partner to be dosed at a hosted medicine session, and the dose approved so far (None: not yet)."""

    partner: str
    approved_mg: float | None
    approval_status: str | None  # pending | approved | declined, None: not requested yet


@dataclass(frozen=True)
class HostedSession:
    """The minimum a hosting clinic needs of a session it hosts: no partner references, notes or records."""

    course_id: UUID
    session_id: str
    home_clinic_id: str
    host_clinic_id: str
    kind: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    status: str
    confirmation: str
    room_id: str | None
    clinician_ids: tuple[str, ...]
    doses: tuple[Dose, ...]  # medicine sessions: who is dosed, with the approved dose


class Hosting:
    """Reads for hosting clinics, from the index of hosted sessions and (for what the host needs to prepare) the
    courses themselves."""

    def __init__(self, courses: Courses, index: HostedIndex, directory: Directory,
                 in_thread: Callable[[Callable[[], Any]], Awaitable[Any]]) -> None:
        self.courses, self.index, self.directory, self.in_thread = courses, index, directory, in_thread

    async def week(self, principal: Principal, clinic_id: UUID, starts_from: datetime,
                   starts_before: datetime | None = None) -> list[HostedSession]:
        """The sessions `clinic_id` hosts for other clinics' courses starting in the range (its own key, or the
        operator's); a range given no end is a week long."""
        async with reading(self.directory, principal, "list_hosted_sessions") as read:
            hosted = await self._week(principal, clinic_id, starts_from, starts_before)
            read.show(s.course_id for s in hosted)
            return hosted

    async def _week(self, principal: Principal, clinic_id: UUID, starts_from: datetime,
                    starts_before: datetime | None) -> list[HostedSession]:
        _own_or_operator(principal, clinic_id)
        # Checked before any arithmetic on them: near year 1 or 9999 a week (or an offset) overflows.
        if any(at.tzinfo is None or not 2000 <= at.year <= 2099 for at in (starts_from, starts_before or starts_from)):
            raise InvalidCommandError(["from and to are instants with a UTC offset, in the years 2000 to 2099"])
        if starts_before is None:
            starts_before = starts_from + DEFAULT_RANGE
        if not starts_from < starts_before <= starts_from + LONGEST_RANGE:
            raise InvalidCommandError([f"the range must end after it starts and span at most "
                                       f"{LONGEST_RANGE.days} days"])
        rows: list[Row] = await self.in_thread(
            lambda: self.index.hosted_sessions(str(clinic_id), starts_from, starts_before))
        return await self._from_courses(rows)

    async def to_rebook(self, principal: Principal, partner_clinic_id: UUID) -> list[HostedSession]:
        """The booked sessions one clinic hosts for the other's courses, either way: what to rebook once their
        partnership ends."""
        async with reading(self.directory, principal, "list_shared_sessions") as read:
            if principal.kind != "clinic" or principal.clinic_id is None:
                raise ForbiddenError("a clinic's key lists the sessions it shares with a partner")
            rows: list[Row] = await self.in_thread(
                lambda: self.index.booked_between(principal.clinic_id or "", str(partner_clinic_id)))
            hosted = await self._from_courses(rows)
            shared = [s for s in hosted if s.status == SessionStatus.BOOKED.value]  # as the course says now
            read.show(s.course_id for s in shared)
            return shared

    async def _from_courses(self, rows: list[Row]) -> list[HostedSession]:
        """The index's rows as their courses say now (status, time, staff; the index may trail a moment, and
        it does not follow every state of a session)."""
        course_ids = list(dict.fromkeys(r["course_id"] for r in rows))
        courses: dict[UUID, Course] = await self.in_thread(  # as stored now, not as this process last saw them
            lambda: {cid: self.courses.get_course(cid) for cid in course_ids})
        return [_hosted(row, courses[row["course_id"]]) for row in rows
                if row["session_id"] in courses[row["course_id"]].sessions and not courses[row["course_id"]].closed]


def _own_or_operator(principal: Principal, clinic_id: UUID) -> None:
    """A clinic's week is its own (and the operator's): to anyone else the clinic does not exist."""
    if principal.kind == "operator" or (principal.kind == "clinic" and principal.clinic_id == str(clinic_id)):
        return
    raise NotFoundError("clinic", clinic_id)


def _hosted(row: Row, course: Course) -> HostedSession:
    # The course says where and with whom (its current state, which the index may trail by a moment).
    session = course.sessions[row["session_id"]]
    doses: tuple[Dose, ...] = ()
    if session.kind is Kind.MEDICINE:
        approvals = {a.partner: a for a in course.approvals.values()
                     if a.session_id == session.id and a.status is not ApprovalStatus.DECLINED}
        doses = tuple(
            Dose(p, approvals[p].approved_mg if p in approvals else None,
                 approvals[p].status.value if p in approvals else None)
            for p in sorted(course.to_be_dosed(session))
        )
    return HostedSession(
        course_id=course.id, session_id=session.id, home_clinic_id=course.home_clinic_id,
        host_clinic_id=session.clinic_id, kind=session.kind.value, starts_at=session.starts_at,
        ends_at=session.ends_at, timezone=session.timezone, status=session.status.value,
        confirmation=session.confirmation.value, room_id=session.room_id, clinician_ids=session.clinician_ids,
        doses=doses,
    )
