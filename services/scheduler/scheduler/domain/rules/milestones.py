"""The course's phases in order (I1), the milestones that mark them, and when the course may complete (I3)."""

from __future__ import annotations

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
    """I1: a session of a later phase is held only after the milestone of the earlier one."""
    if session.kind is Kind.PREPARATION and not course.assessed:
        return [Violation("I1", "a preparation session cannot be held before the course is Assessed")]
    if session.kind is Kind.MEDICINE and not course.prepared:
        return [Violation("I1", "a medicine session cannot be held before the course is Prepared")]
    if session.kind is Kind.INTEGRATION:
        medicine = course.sessions.get(session.follows or "")
        if medicine is None or not course.has_milestone("dosed", medicine.id):
            return [Violation("I1", "an integration session cannot be held before its medicine session is Dosed")]
    return []


def assessment_done(course: CourseState) -> bool:
    """Assessed: both partners screened eligible and a joint assessment session held."""
    eligible = all(course.screenings.get(p) == "eligible" for p in PARTNERS)
    joint = any(s.is_joint for s in course.sessions_of(Kind.ASSESSMENT, SessionStatus.HELD))
    return eligible and joint


def preparation_done(course: CourseState) -> bool:
    """Prepared: the protocol's minimum of joint and individual preparation sessions held."""
    held = course.sessions_of(Kind.PREPARATION, SessionStatus.HELD)
    joint = sum(1 for s in held if s.is_joint)
    individual = {p: sum(1 for s in held if s.partners == (p,)) for p in PARTNERS}
    return joint >= course.protocol.joint_preparation_sessions and all(
        n >= course.protocol.individual_preparation_sessions for n in individual.values()
    )


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
    booked = [s.id for s in course.sessions.values() if s.status is SessionStatus.BOOKED]
    if booked:
        violations.append(
            Violation("booked-sessions", f"record or cancel the booked sessions first: {', '.join(booked)}")
        )
    return violations
