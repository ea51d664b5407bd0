"""Which stored course events become public events, and what of them: the explicit map to the contracts.

Every domain event class has an entry; `None` keeps it internal. Partner references, notes, free-text
reasons, doses and vitals never leave the event store (tests/unit/test_publishing.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from kact_contracts import events as public
from kact_contracts import tracing
from kact_contracts.envelope import CloudEvent, decode, encode, envelope

from scheduler.domain.course import Course
from scheduler.domain.model import needs_confirmation

Mapper = Callable[[Any, str], public.PublicEvent]


def _booked(event: Course.SessionBooked, home_clinic_id: str) -> public.SessionBooked:
    session = event.session
    return public.SessionBooked(
        session_id=session["id"],
        kind=session["kind"],
        partners=list(session["partners"]),
        starts_at=session["starts_at"],
        ends_at=session["ends_at"],
        timezone=session["timezone"],
        clinic_id=session["clinic_id"],
        room_id=session.get("room_id"),
        clinician_ids=list(session.get("clinician_ids", ())),
        follows=session.get("follows"),
        needs_confirmation=needs_confirmation(session["kind"], session["clinic_id"], home_clinic_id),
    )


def _held(event: Course.SessionHeld, home_clinic_id: str) -> public.SessionHeld:
    record = event.record
    return public.SessionHeld(
        session_id=event.session_id,
        discharged_at=record.get("discharged_at"),
        adverse_events=[
            public.AdverseEvent(partner=a["partner"], at=a["at"], severity=a["severity"])
            for a in record.get("adverse_events", ())
        ],
    )


MAPPING: dict[type[Course.Event], Mapper | None] = {
    Course.Created: lambda e, home: public.CourseOpened(
        home_clinic_id=e.home_clinic_id, model=e.model, first_dosed=e.first_dosed
    ),
    Course.ScreeningRecorded: None,  # screening results and notes stay with the home clinic
    Course.SessionBooked: _booked,
    Course.SessionRescheduled: lambda e, home: public.SessionRescheduled(
        session_id=e.session_id, starts_at=e.starts_at, ends_at=e.ends_at, room_id=e.room_id,
        clinician_ids=list(e.clinician_ids),
    ),
    # The classification (closed sets), not the note: that stays in the event store. Version 1 is no longer made.
    Course.SessionCancelled: lambda e, home: public.SessionCancelledV2(
        session_id=e.session_id, cancelled_by=e.cancelled_by, reason_code=e.reason_code
    ),
    Course.SessionConfirmed: lambda e, home: public.SessionConfirmed(session_id=e.session_id, clinic_id=e.clinic_id),
    Course.SessionDeclined: lambda e, home: public.SessionDeclined(  # the reason stays in the event store
        session_id=e.session_id, clinic_id=e.clinic_id
    ),
    Course.SessionHeld: _held,
    Course.SessionMissed: lambda e, home: public.SessionMissed(session_id=e.session_id),
    Course.DoseApprovalRequested: lambda e, home: public.DoseApprovalRequested(
        approval_id=e.approval_id, session_id=e.session_id, partner=e.partner, prescriber_id=e.prescriber_id,
        requested_at=e.requested_at,
    ),
    Course.DoseApprovalDecided: lambda e, home: public.DoseApprovalDecided(
        approval_id=e.approval_id, decision=e.decision, decided_at=e.decided_at, expires_at=e.expires_at,
    ),
    Course.Assessed: lambda e, home: public.Assessed(),
    Course.Prepared: lambda e, home: public.Prepared(),
    Course.Dosed: lambda e, home: public.Dosed(session_id=e.session_id, integration_deadline=e.integration_deadline),
    Course.Integrated: lambda e, home: public.Integrated(session_id=e.session_id),
    Course.IntegrationWindowMissed: lambda e, home: public.IntegrationWindowMissed(
        session_id=e.session_id, deadline=e.deadline
    ),
    Course.MissedWindowAcknowledged: lambda e, home: public.MissedWindowAcknowledged(session_id=e.session_id),
    Course.Completed: lambda e, home: public.CourseCompleted(),
    Course.Discontinued: lambda e, home: public.CourseDiscontinued(),
    Course.DoseApprovalWithdrawn: lambda e, home: public.DoseApprovalWithdrawn(approval_id=e.approval_id),
    # That the limit was lifted for a reading; the reading, the ceiling and the reason stay in the event store.
    Course.VitalsLimitOverridden: lambda e, home: public.VitalsLimitOverridden(approval_id=e.approval_id),
    Course.DischargeRecorded: lambda e, home: public.SessionDischarged(  # the readings stay in the event store
        session_id=e.session_id, discharged_at=e.discharged_at
    ),
    # Severity only: the kind, note and follow-up are health data and stay in the event store.
    Course.AdverseEventReported: lambda e, home: public.AdverseEventReported(
        session_id=e.session_id, partner=e.partner, at=e.at, severity=e.severity
    ),
    Course.SlotHeld: lambda e, home: public.SlotHeld(
        hold_id=e.hold["id"], kind=e.hold["kind"], starts_at=e.hold["starts_at"], ends_at=e.hold["ends_at"],
        clinic_id=e.hold["clinic_id"], room_id=e.hold["room_id"], clinician_ids=list(e.hold["clinician_ids"]),
        expires_at=e.hold["expires_at"],
    ),
    Course.HoldReleased: lambda e, home: public.HoldReleased(hold_id=e.hold_id, outcome=e.outcome,
                                                             session_id=e.session_id),
    Course.HoldExpired: lambda e, home: public.HoldExpired(hold_id=e.hold_id, expired_at=e.expired_at),
}


def to_public(event: Course.Event, home_clinic_id: str) -> public.PublicEvent | None:
    """The public event for a stored course event, or None for an internal one (KeyError: unmapped)."""
    mapper = MAPPING[type(event)]
    return None if mapper is None else mapper(event, home_clinic_id)


class UnpublishableError(Exception):
    """A stored event that cannot become a valid public message; the relay dead-letters it and goes on."""


# What mapping a stored event can raise when its data does not fit the mapping or the contract. The mapping
# reads nothing (no database, no network), so none of these is an outage that a retry would cure.
MAPPING_ERRORS = (KeyError, TypeError, ValueError, AttributeError, msgspec.MsgspecError)


def public_message(
    event: Course.Event, home_clinic_id: str, position: int
) -> tuple[CloudEvent, bytes] | None:
    """The message for a stored course event and its encoding, checked as a consumer will check it (None for an
    internal event). Raises UnpublishableError when it cannot be mapped or breaks its contract (a bound)."""
    try:
        mapped = to_public(event, home_clinic_id)
        if mapped is None:
            return None
        # The trace context it was recorded with, if it is one the contract accepts (never a reason not to publish).
        traceparent = event.traceparent if tracing.context_of(event.traceparent) is not None else None
        if traceparent is not None and not traceparent.startswith("00-"):
            traceparent = None
        message = envelope(
            mapped, course_id=event.originator_id, version=event.originator_version, time=event.timestamp,
            clinic_id=home_clinic_id, position=position, traceparent=traceparent,
        )
        payload = encode(message)
        decode(payload).decode_data()  # the envelope's and the event's bounds: what the consumer will accept
    except MAPPING_ERRORS as exc:
        raise UnpublishableError(f"{type(exc).__name__}: {str(exc)[:500]}") from exc
    return message, payload
