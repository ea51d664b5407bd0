"""The course's phases in order (I1), the milestones that mark them, and when the course may complete (I3)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from scheduler.domain.errors import Violation
from scheduler.domain.model import PARTNERS, Kind, Session, SessionStatus
from scheduler.domain.rules.lifecycle import closed_violations

if TYPE_CHECKING:
    from scheduler.domain.state import CourseState


def screening_violations(course: CourseState) -> list[Violation]:
    if course.assessed:
        return [Violation("I1", "screening belongs to assessment, which is already complete")]
    return []


def held_out_of_order(course: CourseState, session: Session) -> list[Violation]:
    """I1: a session of a later phase is held only after the milestone of the earlier one, and counts only if it
    took place after that milestone was reached (by the time of the sessions that reached it), whatever the order
    in which sessions were recorded."""
    if session.kind is Kind.PREPARATION:
        assessed = assessed_at(course)
        if not course.assessed or assessed is None:
            return [Violation("I1", "a preparation session cannot be held before the course is Assessed")]
        if session.starts_at < assessed:
            return [Violation("I1", f"preparation session {session.id} took place ({session.starts_at.isoformat()}) "
                                    f"before the course was Assessed ({assessed.isoformat()})")]
    if session.kind is Kind.MEDICINE:
        prepared = prepared_at(course)
        if not course.prepared or prepared is None:
            return [Violation("I1", "a medicine session cannot be held before the course is Prepared")]
        if session.starts_at < prepared:
            return [Violation("I1", f"medicine session {session.id} took place ({session.starts_at.isoformat()}) "
                                    f"before the course was Prepared ({prepared.isoformat()})")]
    if session.kind is Kind.INTEGRATION:
        medicine = course.sessions.get(session.follows or "")
        if medicine is None or not course.has_milestone("dosed", medicine.id):
            return [Violation("I1", "an integration session cannot be held before its medicine session is Dosed")]
        if session.starts_at < medicine.finished_at:
            return [Violation("I1", f"integration session {session.id} took place ({session.starts_at.isoformat()}) "
                                    f"before medicine session {medicine.id} ended ({medicine.finished_at.isoformat()})")]
    return []


def assessment_done(course: CourseState) -> bool:
    """Assessed: both partners screened eligible and a joint assessment session held."""
    eligible = all(course.screenings.get(p) == "eligible" for p in PARTNERS)
    return eligible and assessed_at(course) is not None


def assessed_at(course: CourseState) -> datetime | None:
    """When the assessment was complete, by the time of the sessions: the end of the first joint assessment
    session held (screenings carry no time of their own); None before one is held."""
    joint = [s.finished_at for s in course.sessions_of(Kind.ASSESSMENT, SessionStatus.HELD) if s.is_joint]
    return min(joint, default=None)


def preparation_done(course: CourseState) -> bool:
    """Prepared: the protocol's minimum of joint and individual preparation sessions held after Assessed."""
    return prepared_at(course) is not None


def prepared_at(course: CourseState) -> datetime | None:
    """When the protocol's minimum of preparation sessions that took place after the assessment had taken place:
    the end of the session that completed it; None while it is not held."""
    assessed = assessed_at(course)
    if assessed is None:
        return None
    held = [s for s in course.sessions_of(Kind.PREPARATION, SessionStatus.HELD) if s.starts_at >= assessed]
    joint, individual = 0, dict.fromkeys(PARTNERS, 0)
    for session in sorted(held, key=lambda s: s.finished_at):
        if session.is_joint:
            joint += 1
        elif len(session.partners) == 1:
            individual[session.partners[0]] += 1
        if joint >= course.protocol.joint_preparation_sessions and all(
                n >= course.protocol.individual_preparation_sessions for n in individual.values()):
            return session.finished_at
    return None


def newly_integrated(course: CourseState) -> list[Session]:
    """Dosed medicine sessions whose minimum of integration sessions is held but not yet marked Integrated."""
    return [
        medicine for medicine in course.dosed_sessions()
        if not course.has_milestone("integrated", medicine.id)
        and len(course.integration_held_after(medicine.id)) >= course.protocol.min_integration_sessions
    ]


def completion_violations(course: CourseState) -> list[Violation]:
    """A course completes once every dosed medicine session is Integrated (I3) and no session is left booked."""
    violations = closed_violations(course)
    dosed = course.dosed_sessions()
    if not dosed:
        violations.append(Violation("I3", "a course completes only after a medicine session is Integrated"))
    for medicine in dosed:
        if not course.has_milestone("integrated", medicine.id):
            violations.append(
                Violation(
                    "I3",
                    f"medicine session {medicine.id} needs {course.protocol.min_integration_sessions} integration "
                    "sessions held before completion",
                )
            )
    violations += [Violation("I8", f"medicine session {s.id} awaits its discharge")
                   for s in course.sessions.values() if s.awaiting_discharge]
    booked = [s.id for s in course.sessions.values() if s.status is SessionStatus.BOOKED]
    if booked:
        violations.append(
            Violation("booked-sessions", f"record or cancel the booked sessions first: {', '.join(booked)}")
        )
    return violations
