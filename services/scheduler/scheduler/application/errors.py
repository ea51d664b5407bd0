"""Errors of the use cases (beside the domain's); the HTTP edge maps each to one problem type."""

from __future__ import annotations

from uuid import UUID

from scheduler.domain.errors import DomainError


class CourseNotFoundError(DomainError):
    def __init__(self, course_id: UUID) -> None:
        self.course_id = course_id
        super().__init__(f"no course {course_id}")


class ConcurrentUpdateError(DomainError):
    """Other writers kept winning the race for this course or its calendars; the client may retry."""

    def __init__(self, course_id: UUID | None) -> None:
        self.course_id = course_id
        super().__init__(f"course {course_id} was changed concurrently, retry the command" if course_id else
                         "a calendar was changed concurrently, retry the command")


class ForbiddenError(DomainError):
    """The principal is known but may not do this (a prescriber opening a course, a clinic deciding a dose)."""


class UnknownReferenceError(DomainError):
    """A command names a clinic, room or clinician that does not exist, or not where it must (the home or hosting
    clinic): the request is invalid, whether or not the id exists elsewhere."""


class StoreUnavailableError(Exception):
    """The event store could not be reached in time; nothing of the command was saved."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the event store is unavailable ({reason}); nothing was saved")


class OutcomeUnknownError(StoreUnavailableError):
    """The connection broke while the command was being saved, and the database stayed unreachable: it may or may
    not have been saved (read the course, or retry with the same Idempotency-Key)."""

    def __init__(self, reason: str) -> None:
        Exception.__init__(self, f"the event store became unreachable while saving ({reason}); the command may or "
                                 "may not have been saved")
