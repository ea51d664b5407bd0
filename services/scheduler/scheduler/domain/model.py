"""The entities and value types of a course: sessions, dose approvals, missed windows and their states."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from scheduler.domain.errors import InvalidCommandError

PARTNERS = ("a", "b")


class Kind(StrEnum):
    ASSESSMENT = "assessment"
    PREPARATION = "preparation"
    MEDICINE = "medicine"
    INTEGRATION = "integration"


class SessionStatus(StrEnum):
    BOOKED = "booked"
    HELD = "held"
    MISSED = "missed"
    CANCELLED = "cancelled"


class Status(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    DISCONTINUED = "discontinued"


class Phase(StrEnum):
    ASSESSMENT = "assessment"
    PREPARATION = "preparation"
    MEDICINE = "medicine"
    COMPLETED = "completed"
    DISCONTINUED = "discontinued"


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"  # the requesting clinic took back a request still pending


class Confirmation(StrEnum):
    """Whether the clinic hosting a session agreed to it (a medicine session at a partner clinic)."""

    NOT_NEEDED = "not_needed"  # hosted at the home clinic
    PENDING = "pending"
    CONFIRMED = "confirmed"
    DECLINED = "declined"


class CancelledBy(StrEnum):
    """On whose behalf a session was cancelled (the home clinic sends every cancellation)."""

    COUPLE = "couple"  # both partners, or the couple as one
    PARTNER_A = "partner_a"
    PARTNER_B = "partner_b"
    HOME_CLINIC = "home_clinic"  # the therapy practice that owns the course, on its own account
    HOST_CLINIC = "host_clinic"  # the partner clinic hosting the session
    CLINICIAN = "clinician"  # a therapist or clinician of the session
    PRESCRIBER = "prescriber"  # the prescriber of a medicine session's doses


class CancelReason(StrEnum):
    """Why a session was cancelled, in classes a clinic can count; `other` says why in the note."""

    ILLNESS = "illness"  # a partner or a clinician is ill
    SCHEDULING_CONFLICT = "scheduling_conflict"  # the time no longer suits whoever cancels
    CLINICAL = "clinical"  # a contraindication, or not fit for the session on clinical judgement
    HOST_UNAVAILABLE = "host_unavailable"  # the hosting clinic (its room, its monitoring) cannot take it
    CLINICIAN_UNAVAILABLE = "clinician_unavailable"
    WEATHER_OR_TRAVEL = "weather_or_travel"
    NO_LONGER_WANTED = "no_longer_wanted"  # the couple does not want the session any more
    REBOOKED = "rebooked"  # replaced by another booking (moving it keeps it: reschedule)
    OTHER = "other"


@dataclass(frozen=True)
class Cancellation:
    """Who a session was cancelled for and why; the note is free text (health data: it stays in the course)."""

    cancelled_by: CancelledBy
    reason_code: CancelReason
    note: str = ""


class Stage(StrEnum):
    PRE = "pre"
    POST = "post"
    DISCHARGE = "discharge"


@dataclass(frozen=True)
class HostFacts:
    """What the directory knows about the clinic that hosts a session (I11)."""

    clinic_id: str
    has_prescriber: bool
    is_partner_of_home: bool  # under an agreed partnership, in force, that covers the session's kind


@dataclass(frozen=True)
class Hold:
    """A slot kept for a course for a few minutes while the couple decides: booked from, released, or expired."""

    id: str
    kind: Kind
    partners: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    clinic_id: str
    room_id: str | None
    clinician_ids: tuple[str, ...]
    timezone: str
    expires_at: datetime
    hours_override: str | None = None

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Hold:
        return cls(id=data["id"], kind=Kind(data["kind"]), partners=tuple(data["partners"]),
                   starts_at=data["starts_at"], ends_at=data["ends_at"], clinic_id=data["clinic_id"],
                   room_id=data.get("room_id"), clinician_ids=tuple(data.get("clinician_ids", ())),
                   timezone=data.get("timezone", "UTC"), expires_at=data["expires_at"],
                   hours_override=data.get("hours_override"))

    def open_at(self, now: datetime) -> bool:
        return now < self.expires_at


@dataclass(frozen=True)
class Session:
    id: str
    kind: Kind
    partners: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    clinic_id: str
    room_id: str | None
    clinician_ids: tuple[str, ...]
    timezone: str
    status: SessionStatus = SessionStatus.BOOKED
    follows: str | None = None  # integration: the medicine session it integrates
    held: dict[str, Any] | None = None
    confirmation: Confirmation = Confirmation.NOT_NEEDED
    cancellation: Cancellation | None = None  # once cancelled

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Session:
        """The session as a SessionBooked event records it."""
        return cls(
            id=data["id"],
            kind=Kind(data["kind"]),
            partners=tuple(data["partners"]),
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            clinic_id=data["clinic_id"],
            room_id=data.get("room_id"),
            clinician_ids=tuple(data.get("clinician_ids", ())),
            timezone=data.get("timezone", "UTC"),
            follows=data.get("follows"),
        )

    @property
    def active(self) -> bool:
        return self.status in (SessionStatus.BOOKED, SessionStatus.HELD)

    @property
    def awaiting_discharge(self) -> bool:
        """A medicine session recorded while monitoring continued: its discharge is recorded later."""
        return self.status is SessionStatus.HELD and bool(self.held) and self.held.get("monitoring") == "continues"

    @property
    def not_dosed(self) -> bool:
        """A medicine session that took place without a dose (its record gives the reason): it counts neither as
        dosed nor against the protocol's medicine sessions (I2, I5), and its approved doses stay usable."""
        return self.status is SessionStatus.HELD and bool(self.held) and bool(self.held.get("not_dosed"))

    @property
    def is_joint(self) -> bool:
        return set(self.partners) == set(PARTNERS)

    def overlaps(self, starts_at: datetime, ends_at: datetime) -> bool:
        return self.starts_at < ends_at and starts_at < self.occupied_until

    @property
    def occupied_until(self) -> datetime:
        """The couple is in the session until its booked end, or until it ended (or was discharged) if that came
        later (I10)."""
        ended = self.held and (self.held.get("ended_at") or self.held.get("discharged_at"))
        return max(self.ends_at, ended) if ended else self.ends_at

    @property
    def finished_at(self) -> datetime:
        """When the session actually ended: as recorded, else (a medicine session) at discharge, else the booked
        end."""
        if self.held:
            ended = self.held.get("ended_at") or self.held.get("discharged_at")
            if ended:
                return ended  # type: ignore[no-any-return]
        return self.ends_at


@dataclass(frozen=True)
class VitalsOverride:
    """The prescriber lifted the clinic's numeric vitals limit (I9) for one pre-dose reading, on the day of the
    session, up to a ceiling and with a reason."""

    reading_at: datetime
    systolic: int
    diastolic: int
    heart_rate: int | None  # None: no ceiling on the heart rate beyond the clinic's
    reason: str
    decided_at: datetime

    def allows(self, reading: dict[str, Any]) -> bool:
        return reading["systolic"] <= self.systolic and reading["diastolic"] <= self.diastolic and (
            self.heart_rate is None or reading["heart_rate"] <= self.heart_rate)


@dataclass(frozen=True)
class DoseApproval:
    id: str
    session_id: str
    partner: str
    prescriber_id: str
    requested_mg: float
    requested_at: datetime
    status: ApprovalStatus = ApprovalStatus.PENDING
    approved_mg: float | None = None
    decided_at: datetime | None = None
    expires_at: datetime | None = None
    reason: str | None = None
    # A blanket override given with the decision, as approvals decided before per-reading overrides could.
    vitals_override_reason: str | None = None
    vitals_overrides: tuple[VitalsOverride, ...] = ()  # per reading, on the day, in the order given

    def override_of(self, reading_at: datetime) -> VitalsOverride | None:
        """The prescriber's latest override of the limit for the reading taken then, if any."""
        return next((o for o in reversed(self.vitals_overrides) if o.reading_at == reading_at), None)


@dataclass(frozen=True)
class MissedWindow:
    session_id: str
    deadline: datetime
    acknowledged: bool = False
    reason: str | None = None
    clinician_id: str | None = None  # who acknowledged it


def needs_confirmation(kind: Kind | str, clinic_id: str, home_clinic_id: str) -> bool:
    """A medicine session hosted by a clinic other than the home clinic waits for the host to confirm it."""
    return Kind(kind) is Kind.MEDICINE and clinic_id != home_clinic_id


def parse_kind(kind: Kind | str) -> Kind:
    try:
        return Kind(kind)
    except ValueError:
        raise InvalidCommandError([f"kind must be one of {[k.value for k in Kind]}"]) from None


def parse_cancellation(cancelled_by: CancelledBy | str, reason_code: CancelReason | str, note: str) -> Cancellation:
    """A cancellation's classification, checked: known codes, and a note that says why when the code is `other`."""
    problems = []
    try:
        by = CancelledBy(cancelled_by)
    except ValueError:
        problems.append(f"cancelled_by must be one of {[c.value for c in CancelledBy]}")
    try:
        reason = CancelReason(reason_code)
    except ValueError:
        problems.append(f"reason_code must be one of {[c.value for c in CancelReason]}")
    if not problems and reason is CancelReason.OTHER and not note.strip():
        problems.append("a cancellation for reason_code 'other' says why in its note")
    if problems:
        raise InvalidCommandError(problems)
    return Cancellation(by, reason, note)


def utc(at: datetime) -> datetime:
    """Instants in UTC: Python compares and adds aware datetimes of one zone by wall clock, not elapsed time."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidCommandError(["times must carry a UTC offset"])
    return at.astimezone(timezone.utc)


def time_problems(starts_at: datetime, ends_at: datetime) -> list[str]:
    if starts_at.tzinfo is None or ends_at.tzinfo is None or starts_at.utcoffset() is None \
            or ends_at.utcoffset() is None:
        return ["times must carry a UTC offset"]
    # Compared and subtracted in UTC: two times of one zone compare by wall clock, so across a daylight-saving
    # change the length would be off by the hour, and on the repeated hour the end could come before the start.
    starts_at, ends_at = starts_at.astimezone(timezone.utc), ends_at.astimezone(timezone.utc)
    if ends_at <= starts_at:
        return ["ends_at must be after starts_at"]
    if ends_at - starts_at > timedelta(hours=12):
        return ["a session lasts at most 12 hours"]
    return []
