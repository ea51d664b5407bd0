"""State rules every command shares: a closed course accepts nothing, and only a booked session changes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from scheduler.domain.errors import Violation
from scheduler.domain.model import Session, SessionStatus

if TYPE_CHECKING:
    from scheduler.domain.state import CourseState


def closed_violations(course: CourseState) -> list[Violation]:
    if course.closed:
        return [Violation("course-closed", f"the course is {course.status.value} and accepts no more commands")]
    return []


def booked_violations(session: Session) -> list[Violation]:
    if session.status is not SessionStatus.BOOKED:
        return [Violation("session-state", f"session {session.id} is {session.status.value}, not booked")]
    return []


def started_violations(session: Session, now: datetime) -> list[Violation]:
    """A session that has started is no longer cancelled: it took place (held) or did not (missed)."""
    if session.starts_at <= now:
        return [Violation("session-started", f"session {session.id} started at {session.starts_at.isoformat()}; "
                                             "record it held or missed")]
    return []


def past_violations(starts_at: datetime, now: datetime) -> list[Violation]:
    """A session is booked (or moved) to start in the future, by the clinic's clock when it books."""
    if starts_at < now:
        return [Violation("booking-in-the-past", f"the session would start {starts_at.isoformat()}, before now "
                                                 f"({now.isoformat()})")]
    return []


def not_started_violations(session: Session, now: datetime) -> list[Violation]:
    if session.starts_at > now:
        return [Violation("session-not-started", f"session {session.id} has not started yet")]
    return []
