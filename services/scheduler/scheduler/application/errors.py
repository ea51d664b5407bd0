"""Errors of the use cases (beside the domain's); the HTTP edge maps each to one problem type."""

from __future__ import annotations

from uuid import UUID

from scheduler.domain.errors import DomainError


class CourseNotFoundError(DomainError):
    def __init__(self, course_id: UUID) -> None:
        self.course_id = course_id
        super().__init__(f"no course {course_id}")


class NotFoundError(DomainError):
    """What the request's path names (a clinic, prescriber, clinician, closure, partnership, key, webhook or
    delivery) does not exist, or not for this principal."""

    def __init__(self, kind: str, id: object) -> None:
        self.kind, self.id = kind, id
        super().__init__(f"no {kind} {id}")


class DeliveryNotFailedError(DomainError):
    """Only a failed webhook delivery is redriven."""

    def __init__(self, delivery_id: UUID, status: str) -> None:
        self.delivery_id, self.status = delivery_id, status
        super().__init__(f"delivery {delivery_id} is {status}")


class WebhookDisabledError(DomainError):
    """A delivery is not redriven to a disabled webhook."""

    def __init__(self, delivery_id: UUID) -> None:
        self.delivery_id = delivery_id
        super().__init__(f"delivery {delivery_id} belongs to a disabled webhook (or was redriven meanwhile)")


class AlreadyRedrivenError(DomainError):
    """A dead letter the notifier already processed again."""

    def __init__(self, dead_letter_id: int) -> None:
        self.dead_letter_id = dead_letter_id
        super().__init__(f"dead letter {dead_letter_id} was processed")


class AlreadyCreatedError(DomainError):
    """An earlier run of the same request (same principal, Idempotency-Key and body) created the resource: its
    answer was lost, and the request is not carried out twice (`ids.new_id`)."""

    def __init__(self, kind: str, id: object) -> None:
        self.kind, self.id = kind, id
        super().__init__(f"{kind} {id} was created by an earlier attempt of this request (same Idempotency-Key); "
                         f"read it instead of creating it again")


class ConcurrentUpdateError(DomainError):
    """Other writers kept winning the race for this course or its calendars; the client may retry."""

    def __init__(self, course_id: UUID | None) -> None:
        self.course_id = course_id
        super().__init__(f"course {course_id} was changed concurrently, retry the command" if course_id else
                         "a calendar was changed concurrently, retry the command")


class ForbiddenError(DomainError):
    """The principal is known but may not do this (a prescriber opening a course, a clinic asking for the
    dose-approval queue). One that may not even see the resource gets a 404 instead (a clinic deciding a dose)."""


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
