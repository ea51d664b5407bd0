"""Planning the rest of a course: the sessions still needed to complete it under its protocol, in the order the
rules let them be held, each placed by a slot finder on a scratch copy of the course, so that every later session
is judged beside the earlier ones (I1 order, I2, I3, I4 window, I5 interval, I10 for the couple).

A plan keeps the phases apart in time as the rules judge them when sessions are *held*: each session starts after
the previous one of the plan ends, a medicine session after the last integration session its predecessor needs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from scheduler.domain.errors import DomainError
from scheduler.domain.model import PARTNERS, Kind, SessionStatus
from scheduler.domain.rules import placement

if TYPE_CHECKING:
    from scheduler.domain.course import Course


@dataclass(frozen=True)
class Need:
    """One session the course still needs, in order."""

    kind: Kind
    partners: tuple[str, ...]


@dataclass(frozen=True)
class Placed:
    kind: Kind
    partners: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    clinic_id: str
    room_id: str | None
    clinician_ids: tuple[str, ...]
    follows: str | None  # an integration session: the plan's item (or booked session) it follows


# The finder: the first slot at or after `earliest` (start, end, clinic, room, clinicians) that the scratch course
# (with the plan so far booked in it) and every calendar accept, or None.
Finder = Callable[[Need, datetime, "Course"], "tuple[datetime, datetime, str, str | None, tuple[str, ...]] | None"]


class UnplannableError(DomainError):
    """No slot was found for a session the course needs (within the finder's horizon)."""

    def __init__(self, need: Need, index: int, earliest: datetime) -> None:
        self.need, self.index, self.earliest = need, index, earliest
        super().__init__(f"no slot found for the {index + 1}. session of the plan, a {need.kind.value} session for "
                         f"{'+'.join(need.partners)}, from {earliest.isoformat()}")


def needs(course: Course, medicine_sessions: int) -> list[Need]:
    """The sessions still to book, in order, for a course of `medicine_sessions` medicine sessions (bounded by the
    protocol's I2): what its booked and held sessions leave of assessment, preparation, medicine and integration."""
    active = [s for s in course.sessions.values() if s.status in (SessionStatus.BOOKED, SessionStatus.HELD)]
    joint = PARTNERS
    out: list[Need] = []
    if not course.assessed and not any(s.kind is Kind.ASSESSMENT and s.is_joint for s in active):
        out.append(Need(Kind.ASSESSMENT, joint))
    if not course.prepared:
        preparation = [s for s in active if s.kind is Kind.PREPARATION]
        for partner in PARTNERS:
            have = sum(1 for s in preparation if s.partners == (partner,))
            out += [Need(Kind.PREPARATION, (partner,))] * max(0, course.protocol.individual_preparation_sessions - have)
        have = sum(1 for s in preparation if s.is_joint)
        out += [Need(Kind.PREPARATION, joint)] * max(0, course.protocol.joint_preparation_sessions - have)
    medicine = sorted((s for s in active if s.kind is Kind.MEDICINE and not s.not_dosed), key=lambda s: s.starts_at)
    minimum = course.protocol.min_integration_sessions
    for session in medicine:
        following = sum(1 for s in active if s.kind is Kind.INTEGRATION and s.follows == session.id)
        out += [Need(Kind.INTEGRATION, joint)] * max(0, minimum - following)
    wanted = min(medicine_sessions, course.protocol.max_medicine_sessions)
    for _ in range(max(0, wanted - len(medicine))):
        out.append(Need(Kind.MEDICINE, joint))
        out += [Need(Kind.INTEGRATION, joint)] * minimum
    return out


def plan(course: Course, medicine_sessions: int, now: datetime, find: Finder) -> list[Placed]:
    """Place every needed session in order, each as early as the finder allows after the one before; raises
    UnplannableError for the first that cannot be placed. The course itself is not changed."""
    scratch = copy.deepcopy(course)
    busy = [s.occupied_until for s in scratch.sessions.values()
            if s.status in (SessionStatus.BOOKED, SessionStatus.HELD)]
    cursor = max([now, *busy])
    placed: list[Placed] = []
    for index, need in enumerate(needs(course, medicine_sessions)):
        earliest = max(cursor, earliest_start(scratch, need.kind))
        found = find(need, earliest, scratch)
        if found is None:
            raise UnplannableError(need, index, earliest)
        starts_at, ends_at, clinic_id, room_id, clinician_ids = found
        session_id = f"plan-{index}"
        follows = _book(scratch, session_id, need, starts_at, ends_at, clinic_id, room_id, clinician_ids)
        placed.append(Placed(need.kind, need.partners, starts_at, ends_at, clinic_id, room_id, clinician_ids,
                             follows))
        cursor = ends_at
    return placed


def earliest_start(course: Course, kind: Kind) -> datetime:
    """When a session of `kind` can first start by the course's own sessions (after the latest medicine session's end
    for an integration session, I1; the interval after its start for a medicine session, I5): where a search may
    begin. The rules themselves judge each slot (`Course.booking_violations`)."""
    medicine = [s for s in course.sessions.values() if s.kind is Kind.MEDICINE and s.active and not s.not_dosed]
    if kind is Kind.INTEGRATION and medicine:
        return max(s.finished_at for s in medicine)
    if kind is Kind.MEDICINE and medicine:
        return max(s.starts_at for s in medicine) + timedelta(days=course.protocol.min_medicine_interval_days)
    return datetime.min.replace(tzinfo=timezone.utc)


def _book(scratch: Course, session_id: str, need: Need, starts_at: datetime, ends_at: datetime, clinic_id: str,
          room_id: str | None, clinician_ids: tuple[str, ...]) -> str | None:
    """Record the placed session in the scratch course (unchecked: the finder judged it), as booked."""
    follows = placement.placement_violations(scratch, need.kind, starts_at, ends_at)[1] if need.kind is Kind.INTEGRATION \
        else None
    scratch.trigger_event(scratch.SessionBooked, session={
        "id": session_id, "kind": need.kind.value, "partners": list(need.partners), "starts_at": starts_at,
        "ends_at": ends_at, "clinic_id": clinic_id, "room_id": room_id, "clinician_ids": list(clinician_ids),
        "timezone": "UTC", "follows": follows}, by="planner")
    return follows
