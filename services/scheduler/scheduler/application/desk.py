"""The prescriber's desk: each pending dose approval with what deciding it takes (the partner, the dose asked, the
session's time and place, the screening, the latest vitals, the doses given before)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from scheduler.api_keys import Principal
from scheduler.application.courses import Courses
from scheduler.application.errors import CourseNotFoundError, ForbiddenError
from scheduler.application.handlers import Directory, Scheduling, course_of_approval
from scheduler.domain.course import Course, DoseApproval, Kind, SessionStatus

READ_ACTION = "read_approvals"  # the access log's action for a prescriber reading the courses behind their queue


@dataclass(frozen=True)
class Reading:
    at: datetime
    stage: str  # pre | post | discharge
    systolic: int | None
    diastolic: int | None
    heart_rate: int | None
    acceptable: bool | None


@dataclass(frozen=True)
class GivenDose:
    at: datetime
    mg: float
    session_id: str


@dataclass(frozen=True)
class ApprovalCard:
    course_id: UUID
    approval: DoseApproval
    partner: str  # a | b
    partner_ref: str  # the home clinic's pseudonymous reference
    model: str
    session_id: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    clinic_id: str
    clinic_name: str
    room_name: str | None
    screening: str | None  # eligible | ineligible | None: not recorded
    latest_vitals: Reading | None
    previous_doses: tuple[GivenDose, ...]


def _instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _readings(course: Course, partner: str) -> list[Reading]:
    readings = []
    for session in course.sessions.values():
        for v in (session.held or {}).get("vitals", []):
            if v.get("partner") == partner:
                readings.append(Reading(_instant(v["at"]), str(v.get("stage", "")), v.get("systolic"),
                                        v.get("diastolic"), v.get("heart_rate"), v.get("acceptable")))
    return sorted(readings, key=lambda r: r.at)


def _doses(course: Course, partner: str) -> list[GivenDose]:
    doses = []
    for session in course.sessions.values():
        if session.kind is Kind.MEDICINE and session.status is SessionStatus.HELD:
            doses += [GivenDose(_instant(d["at"]), float(d["mg"]), session.id)
                      for d in (session.held or {}).get("doses", []) if d.get("partner") == partner]
    return sorted(doses, key=lambda d: d.at)


def approval_card(course: Course, approval: DoseApproval, clinic_names: dict[str, str],
                  room_names: dict[str, str]) -> ApprovalCard:
    """What the prescriber sees of one approval (pure: the names are looked up before)."""
    session = course.session(approval.session_id)
    readings = _readings(course, approval.partner)
    return ApprovalCard(
        course_id=course.id, approval=approval, partner=approval.partner,
        partner_ref=course.partners.get(approval.partner, ""), model=course.model.value, session_id=session.id,
        starts_at=session.starts_at, ends_at=session.ends_at, timezone=session.timezone, clinic_id=session.clinic_id,
        clinic_name=clinic_names.get(session.clinic_id, session.clinic_id),
        room_name=room_names.get(session.room_id) if session.room_id else None,
        screening=course.screenings.get(approval.partner),
        latest_vitals=readings[-1] if readings else None,
        previous_doses=tuple(_doses(course, approval.partner)),
    )


class PrescriberDesk:
    """The prescriber page's reads. Deciding is `Scheduling.decide_dose_approval`, the API's own use case."""

    def __init__(self, scheduling: Scheduling, courses: Courses, directory: Directory,
                 in_thread: Callable[[Callable[[], Any]], Awaitable[Any]],
                 fresh: Callable[[], Awaitable[None]]) -> None:
        self.scheduling, self.courses, self.directory, self.in_thread = scheduling, courses, directory, in_thread
        self.fresh = fresh  # waits (bounded) until the approval queue holds every event stored before the read

    async def approvals(self, principal: Principal, status: str | None = "pending") -> list[ApprovalCard]:
        """The approvals addressed to this prescriber with their courses' facts, the soonest session first (then
        by course and partner); each course read is logged, as the API logs its reads."""
        if principal.kind != "prescriber":
            raise ForbiddenError("the dose approvals page is for prescribers")
        await self.fresh()  # a request made a moment ago is on the page (the queue is an index that follows)
        queue = await self.scheduling.approval_queue(principal, status)
        course_ids = sorted({course_id for course_id, _ in queue}, key=str)
        courses: dict[UUID, Course] = await self.in_thread(
            lambda: {cid: self.courses.get_course(cid) for cid in course_ids})
        await self.directory.log_accesses(principal, READ_ACTION, course_ids)
        sessions = [courses[cid].session(a.session_id) for cid, a in queue]
        clinic_names: dict[str, str] = {}
        for clinic_id in {s.clinic_id for s in sessions}:
            row = await self.directory.clinic(UUID(clinic_id))
            clinic_names[clinic_id] = row["name"] if row else clinic_id
        room_names: dict[str, str] = {}
        for room_id in {s.room_id for s in sessions if s.room_id}:
            row = await self.directory.room(UUID(room_id))
            if row:
                room_names[room_id] = row["name"]
        cards = [approval_card(courses[cid], approval, clinic_names, room_names) for cid, approval in queue]
        return sorted(cards, key=lambda c: (c.starts_at, str(c.course_id), c.partner, c.approval.id))

    async def decided(self, principal: Principal, approval_id: str) -> DoseApproval | None:
        """An approval this prescriber decided (for the page's confirmation); None if it is not theirs or undecided."""
        course_id = course_of_approval(approval_id)
        if principal.kind != "prescriber" or course_id is None:
            return None
        try:
            course: Course = await self.in_thread(lambda: self.courses.get_course(course_id))
        except CourseNotFoundError:
            return None
        approval = course.approvals.get(approval_id)
        if approval is None or approval.prescriber_id != principal.id or approval.decided_at is None:
            return None
        await self.directory.log_access(principal, READ_ACTION, course_id)
        return approval
