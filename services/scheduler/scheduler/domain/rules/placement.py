"""When a session may take place in the couple's calendar: I2, I4 (booking), I5 and I10 for the couple."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from scheduler.domain.errors import Violation
from scheduler.domain.model import Kind, Session, SessionStatus

if TYPE_CHECKING:
    from scheduler.domain.state import CourseState


def late_integration(course: CourseState, medicine_id: str, deadline: datetime) -> Violation:
    """I4: the first integration session after a medicine session starts by the end of its window."""
    return Violation(
        "I4",
        f"the first integration session after medicine session {medicine_id} must start by "
        f"{deadline.isoformat()} ({course.protocol.integration_window_hours} h after it ends)",
    )


def placement_violations(
    course: CourseState, kind: Kind, starts_at: datetime, ends_at: datetime, ignore: str | None = None
) -> tuple[list[Violation], str | None]:
    """I1 (integration follows medicine), I2, I4, I5 and I10 (couple) for a session placed at [starts_at, ends_at).

    Also returns the medicine session an integration session placed there follows."""
    violations = []
    others = [s for s in course.sessions.values() if s.active and s.id != ignore]
    clash = [s for s in others if s.overlaps(starts_at, ends_at)]
    if clash:
        violations.append(
            Violation("I10", f"the couple already has session {clash[0].id} overlapping {starts_at.isoformat()}")
        )
    follows = None
    # A medicine session that took place without a dose counts for none of this (I2, I5; nothing to integrate).
    medicine = [s for s in others if s.kind is Kind.MEDICINE and not s.not_dosed]
    if kind is Kind.MEDICINE:
        violations += _medicine_count_and_interval(course, medicine, starts_at)
    if kind is Kind.INTEGRATION:
        before = [s for s in medicine if s.starts_at < starts_at]
        if not before:
            violations.append(Violation("I1", "an integration session must follow a medicine session"))
        else:
            previous = max(before, key=lambda s: s.starts_at)
            follows = previous.id
            if starts_at < previous.finished_at:
                violations.append(
                    Violation("I1", f"an integration session cannot start before medicine session {previous.id} ends")
                )
            # After this change, the earliest integration session of that medicine session opens the window.
            first = min(
                [s.starts_at for s in others if s.kind is Kind.INTEGRATION and s.follows == previous.id] + [starts_at]
            )
            deadline = course.window_deadline(previous)
            # Once a missed window is recorded, late integration sessions are the way back, not a breach.
            if first > deadline and previous.id not in course.missed_windows:
                violations.append(late_integration(course, previous.id, deadline))
    return violations, follows


def _medicine_count_and_interval(course: CourseState, medicine: list[Session], starts_at: datetime) -> list[Violation]:
    """I2 and I5 for a medicine session placed at starts_at, beside the other active medicine sessions."""
    violations = []
    if len(medicine) >= course.protocol.max_medicine_sessions:
        violations.append(
            Violation("I2", f"the protocol allows at most {course.protocol.max_medicine_sessions} medicine sessions")
        )
    interval = timedelta(days=course.protocol.min_medicine_interval_days)
    too_close = [s for s in medicine if abs(s.starts_at - starts_at) < interval]
    if too_close:
        violations.append(
            Violation(
                "I5",
                f"medicine sessions must start at least {course.protocol.min_medicine_interval_days} days "
                f"apart; session {too_close[0].id} starts {too_close[0].starts_at.isoformat()}",
            )
        )
    return violations


def _following(course: CourseState, medicine_id: str) -> list[Session]:
    """The active integration sessions that follow a medicine session."""
    return [
        s for s in course.sessions.values()
        if s.kind is Kind.INTEGRATION and s.active and s.follows == medicine_id
    ]


def moved_medicine_violations(
    course: CourseState, medicine: Session, starts_at: datetime, ends_at: datetime
) -> list[Violation]:
    """Its booked integration sessions must still follow it (I1) and the first still open the window (I4)."""
    following = _following(course, medicine.id)
    violations = []
    if any(s.starts_at < ends_at for s in following):
        violations.append(
            Violation("I1", f"integration sessions are already booked before the new end of {medicine.id}")
        )
    deadline = course.deadline_after(ends_at)
    if following and min(s.starts_at for s in following) > deadline and medicine.id not in course.missed_windows:
        violations.append(late_integration(course, medicine.id, deadline))
    return violations


def left_window_violations(course: CourseState, moved: Session) -> list[Violation]:
    """An integration session moved to another medicine session may not leave the window of the one it
    followed without an integration session in it (I4), unless that window was already recorded missed."""
    medicine = course.sessions.get(moved.follows or "")
    if medicine is None or medicine.id in course.missed_windows or moved.status is not SessionStatus.BOOKED:
        return []  # a session that is not booked is not moved at all (session-state)
    following = _following(course, medicine.id)
    remaining = [s.starts_at for s in following if s.id != moved.id]
    deadline = course.window_deadline(medicine)
    if min(s.starts_at for s in following) <= deadline and remaining and min(remaining) > deadline:
        return [late_integration(course, medicine.id, deadline)]
    return []


def discharge_clash_violations(
    course: CourseState, session: Session, discharged_at: datetime | None, ended_at: datetime | None = None
) -> list[Violation]:
    """The couple stays until the session ended, or until discharge (I10): a medicine session may not run into
    another one."""
    until = ended_at or discharged_at
    if until is None or until <= session.ends_at:
        return []
    clash = [
        s for s in course.sessions.values()
        if s.active and s.id != session.id and s.overlaps(session.starts_at, until)
    ]
    if clash:
        what = "the end" if ended_at else "discharge"
        return [Violation("I10", f"{what} at {until.isoformat()} runs into session {clash[0].id}")]
    return []
