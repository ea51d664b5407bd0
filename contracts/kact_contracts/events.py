"""The public events: what the scheduler tells the world about a course, one typed model per event.

Identifiers and scheduling facts only (minimum necessary): never a partner's name or reference, a note, a
free-text reason, a dose or a vitals reading. A consumer that needs more asks the API, which checks who asks.
Each model has a name and a schema version; a breaking change makes a new version, never an edit of this one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

import msgspec

Instant = Annotated[datetime, msgspec.Meta(tz=True, extra_json_schema={"format": "date-time"})]
Partner = Literal["a", "b"]
SessionKind = Literal["assessment", "preparation", "medicine", "integration"]

# Every string and list is bounded, so that an encoded message has a proven upper bound (envelope.MAX_MESSAGE_BYTES,
# tests/contract) far below a NATS server's max_payload: no stored event can become a message the bus refuses.
# The API's input bounds must stay within these, or an accepted command's event is dead-lettered by the relay.
MAX_ID_LENGTH = 64  # ids are UUIDs (36 characters) today
MAX_TIMEZONE_LENGTH = 64  # IANA names are at most 32 characters
MAX_PARTNERS = 2
MAX_CLINICIANS = 16  # the API accepts 10 per session
MAX_ADVERSE_EVENTS = 100
Id = Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)]
TimeZone = Annotated[str, msgspec.Meta(max_length=MAX_TIMEZONE_LENGTH)]
Partners = Annotated[list[Partner], msgspec.Meta(max_length=MAX_PARTNERS)]
ClinicianIds = Annotated[list[Id], msgspec.Meta(max_length=MAX_CLINICIANS)]


class PublicEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every public event's data. `NAME` is dotted (`session.booked`), `VERSION` its schema version."""

    NAME: ClassVar[str]
    VERSION: ClassVar[int] = 1
    SUMMARY: ClassVar[str]
    FAMILY: ClassVar[str] = "kact.course"
    SOURCE: ClassVar[str] = "/kact/scheduler"

    @classmethod
    def type_name(cls) -> str:
        """The CloudEvents `type`: `kact.course.session.booked.v1`."""
        return f"{cls.FAMILY}.{cls.NAME}.v{cls.VERSION}"


class CourseOpened(PublicEvent, frozen=True, kw_only=True):
    NAME = "opened"
    SUMMARY = "A home clinic opened a couple's course."
    home_clinic_id: Id
    model: Literal["taking_turns", "together"]
    first_dosed: Partner


class SessionBooked(PublicEvent, frozen=True, kw_only=True):
    NAME = "session.booked"
    SUMMARY = "A session was booked; a medicine session hosted by a partner clinic awaits its confirmation."
    session_id: Id
    kind: SessionKind
    partners: Partners
    starts_at: Instant
    ends_at: Instant
    timezone: TimeZone
    clinic_id: Id
    room_id: Id | None
    clinician_ids: ClinicianIds
    follows: Id | None
    needs_confirmation: bool


class SessionRescheduled(PublicEvent, frozen=True, kw_only=True):
    NAME = "session.rescheduled"
    SUMMARY = "A booked session moved; a partner-hosted session needs confirming again."
    session_id: Id
    starts_at: Instant
    ends_at: Instant
    room_id: Id | None
    clinician_ids: ClinicianIds


# A cancellation's classification (the scheduler's CancelledBy and CancelReason, which a test keeps equal): closed
# sets of scheduling facts, safe on the bus. The free-text note never leaves the event store.
CancelledBy = Literal["couple", "partner_a", "partner_b", "home_clinic", "host_clinic", "clinician", "prescriber"]
CancelReason = Literal["illness", "scheduling_conflict", "clinical", "host_unavailable", "clinician_unavailable",
                       "weather_or_travel", "no_longer_wanted", "rebooked", "other"]


# Version 1, published until cancellations were classified; kept so that messages already on the stream (and in
# feeds and dead letters) still decode. Version 2 replaces it.
class SessionCancelled(PublicEvent, frozen=True, kw_only=True):
    NAME = "session.cancelled"
    SUMMARY = "A booked session was cancelled."
    session_id: Id


# Version 2 adds the classification. A new version, not two optional fields on version 1: version 1 refuses unknown
# fields (its schema says `additionalProperties: false`), so a consumer built against it would refuse the message.
class SessionCancelledV2(PublicEvent, frozen=True, kw_only=True):
    NAME = "session.cancelled"
    VERSION = 2
    SUMMARY = ("A booked session was cancelled: on whose behalf (`cancelled_by`) and why (`reason_code`); the note, "
               "if any, is read through the API.")
    session_id: Id
    cancelled_by: CancelledBy
    reason_code: CancelReason


class SessionConfirmed(PublicEvent, frozen=True, kw_only=True):
    NAME = "session.confirmed"
    SUMMARY = "The partner clinic hosting a medicine session confirmed it."
    session_id: Id
    clinic_id: Id


class SessionDeclined(PublicEvent, frozen=True, kw_only=True):
    NAME = "session.declined"
    SUMMARY = "The partner clinic hosting a medicine session declined it; the home clinic rebooks."
    session_id: Id
    clinic_id: Id


class AdverseEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    partner: Partner
    at: Instant
    severity: Literal["mild", "moderate", "severe"]


class SessionHeld(PublicEvent, frozen=True, kw_only=True):
    NAME = "session.held"
    SUMMARY = "A session was held; for a medicine session, when the couple left and any adverse events (severity only)."
    session_id: Id
    discharged_at: Instant | None
    adverse_events: Annotated[list[AdverseEvent], msgspec.Meta(max_length=MAX_ADVERSE_EVENTS)]


class AdverseEventReported(PublicEvent, frozen=True, kw_only=True):
    NAME = "adverse_event.reported"
    SUMMARY = ("An adverse event of a medicine session, reported on its own (during it or after the couple left): "
               "severity only; the prescriber and the home clinic are alerted at once.")
    session_id: Id
    partner: Partner
    at: Instant
    severity: Literal["mild", "moderate", "severe"]


class DoseApprovalWithdrawn(PublicEvent, frozen=True, kw_only=True):
    NAME = "dose_approval.withdrawn"
    SUMMARY = "The requesting clinic took back a dose approval request its prescriber had not decided."
    approval_id: Id


class VitalsLimitOverridden(PublicEvent, frozen=True, kw_only=True):
    NAME = "dose_approval.vitals_overridden"
    SUMMARY = ("The prescriber of an approved dose let one pre-dose reading above the clinic's vitals limit stand, "
               "on the day, up to a ceiling (the reading, ceiling and reason stay with the course).")
    approval_id: Id


class SessionDischarged(PublicEvent, frozen=True, kw_only=True):
    NAME = "session.discharged"
    SUMMARY = ("A medicine session recorded while monitoring continued: the couple was discharged (its Dosed "
               "milestone follows).")
    session_id: Id
    discharged_at: Instant


class SessionMissed(PublicEvent, frozen=True, kw_only=True):
    NAME = "session.missed"
    SUMMARY = "A booked session did not take place."
    session_id: Id


class DoseApprovalRequested(PublicEvent, frozen=True, kw_only=True):
    NAME = "dose_approval.requested"
    SUMMARY = "A prescriber is asked to approve a partner's dose (the amount is read through the API)."
    approval_id: Id
    session_id: Id
    partner: Partner
    prescriber_id: Id
    requested_at: Instant


class DoseApprovalDecided(PublicEvent, frozen=True, kw_only=True):
    NAME = "dose_approval.decided"
    SUMMARY = "The prescriber approved or declined a dose."
    approval_id: Id
    decision: Literal["approved", "declined"]
    decided_at: Instant
    expires_at: Instant | None


class Assessed(PublicEvent, frozen=True, kw_only=True):
    NAME = "milestone.assessed"
    SUMMARY = "Milestone: both partners screened eligible and a joint assessment was held."


class Prepared(PublicEvent, frozen=True, kw_only=True):
    NAME = "milestone.prepared"
    SUMMARY = "Milestone: the protocol's preparation sessions were held."


class Dosed(PublicEvent, frozen=True, kw_only=True):
    NAME = "milestone.dosed"
    SUMMARY = "Milestone: a medicine session was held; its integration window closes at `integration_deadline`."
    session_id: Id
    integration_deadline: Instant


class Integrated(PublicEvent, frozen=True, kw_only=True):
    NAME = "milestone.integrated"
    SUMMARY = "Milestone: a medicine session's integration sessions were held."
    session_id: Id


class IntegrationWindowMissed(PublicEvent, frozen=True, kw_only=True):
    NAME = "integration_window.missed"
    SUMMARY = "A medicine session's integration window closed with no integration session held in it."
    session_id: Id
    deadline: Instant


class MissedWindowAcknowledged(PublicEvent, frozen=True, kw_only=True):
    NAME = "integration_window.acknowledged"
    SUMMARY = "The home clinic acknowledged a missed integration window."
    session_id: Id


class CourseCompleted(PublicEvent, frozen=True, kw_only=True):
    NAME = "completed"
    SUMMARY = "The course was completed."


class CourseDiscontinued(PublicEvent, frozen=True, kw_only=True):
    NAME = "discontinued"
    SUMMARY = "The course was discontinued."


class Notice(PublicEvent, frozen=True, kw_only=True):
    """What the notifier itself says (reminders, escalations, warnings), in the same envelope as the events."""

    FAMILY = "kact.notice"
    SOURCE = "/kact/notifier"


class DoseApprovalReminder(Notice, frozen=True, kw_only=True):
    NAME = "dose_approval.reminder"
    SUMMARY = "To the prescriber: a dose approval is still undecided."
    approval_id: Id
    session_id: Id
    prescriber_id: Id
    requested_at: Instant


class DoseApprovalEscalation(Notice, frozen=True, kw_only=True):
    NAME = "dose_approval.escalation"
    SUMMARY = "To the home clinic: a dose approval is still undecided after the reminder."
    approval_id: Id
    session_id: Id
    prescriber_id: Id
    requested_at: Instant


class IntegrationWindowClosing(Notice, frozen=True, kw_only=True):
    NAME = "integration_window.closing"
    SUMMARY = "To the home clinic: a medicine session's integration window closes soon with no integration held."
    session_id: Id
    deadline: Instant


class SlotHeld(PublicEvent, frozen=True, kw_only=True):
    NAME = "hold.placed"
    SUMMARY = "A slot was held for the course until `expires_at` (booked from, released, or it expires)."
    hold_id: Id
    kind: SessionKind
    starts_at: Instant
    ends_at: Instant
    clinic_id: Id
    room_id: Id | None
    clinician_ids: ClinicianIds
    expires_at: Instant


class HoldReleased(PublicEvent, frozen=True, kw_only=True):
    NAME = "hold.released"
    SUMMARY = "A hold ended before it expired: booked as `session_id`, or released."
    hold_id: Id
    outcome: Literal["booked", "released"]
    session_id: Id | None


class HoldExpired(PublicEvent, frozen=True, kw_only=True):
    NAME = "hold.expired"
    SUMMARY = "A hold ran out unbooked: its slot is free again. To the clinic that held it."
    hold_id: Id
    expired_at: Instant


PUBLIC_EVENTS: tuple[type[PublicEvent], ...] = (
    CourseOpened, SessionBooked, SessionRescheduled, SessionCancelled, SessionCancelledV2, SessionConfirmed,
    SessionDeclined, SessionHeld, SessionMissed, DoseApprovalRequested, DoseApprovalDecided, Assessed, Prepared, Dosed,
    Integrated, IntegrationWindowMissed, MissedWindowAcknowledged, CourseCompleted, CourseDiscontinued,
    AdverseEventReported, DoseApprovalWithdrawn, SessionDischarged, VitalsLimitOverridden,
    SlotHeld, HoldReleased, HoldExpired,
)
NOTICES: tuple[type[Notice], ...] = (DoseApprovalReminder, DoseApprovalEscalation, IntegrationWindowClosing)
BY_TYPE: dict[str, type[PublicEvent]] = {cls.type_name(): cls for cls in (*PUBLIC_EVENTS, *NOTICES)}
