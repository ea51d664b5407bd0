"""Request and response bodies of the public HTTP contract (msgspec structs)."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from kact_contracts.events import BY_TYPE
from litestar.params import Parameter
from msgspec import Meta, Struct

from scheduler.domain.protocol import BOUNDS, LOW_DOSE_MAX_MEDICINE_SESSIONS, RULE_OF_SETTING

# Instants outside the years 2000 to 2099 (as written, with their offset) are typing errors, never sessions (and
# near year 1 or 9999 an offset overflows). The description says so in the OpenAPI document (a pattern beside
# format: date-time leaves generators of valid requests, such as schemathesis, too little to work with).
FIRST_YEAR, LAST_YEAR = 2000, 2099
UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
APPROVAL_ID_PATTERN = "^apr_[0-9a-f]{32}_[0-9a-f]{12}$"
TIME_ZONE_PATTERN = "^[A-Za-z0-9_+-]{1,30}(/[A-Za-z0-9_+-]{1,30}){0,2}$"
MAX_ID = 2**53 - 1  # positions and ids: exact as a JSON number, and within PostgreSQL's bigint

Partner = Literal["a", "b"]
Instant = Annotated[datetime, Meta(tz=True, description="An instant with a UTC offset (RFC 3339), in the years 2000 to 2099")]
Text = Annotated[str, Meta(max_length=2000)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Reason = Annotated[str, Meta(min_length=1, max_length=2000)]
Milligrams = Annotated[float, Meta(gt=0, le=1000)]
Pressure = Annotated[int, Meta(ge=20, le=300)]
TimeZone = Annotated[str, Meta(min_length=1, max_length=64, pattern=TIME_ZONE_PATTERN,
                               description="An IANA time zone, e.g. Europe/Berlin")]
ApprovalIdText = Annotated[str, Meta(max_length=49, pattern=APPROVAL_ID_PATTERN, description="A dose approval's id")]


def _setting(name: str) -> Any:
    low, high = BOUNDS[name]
    if name == "max_medicine_sessions":
        high = LOW_DOSE_MAX_MEDICINE_SESSIONS
    return Annotated[int, Meta(ge=low, le=high, description=f"bounds of rule {RULE_OF_SETTING[name]}")]

VitalsBound = Annotated[int, Meta(ge=0, le=1000)]

# Path parameters: session ids are UUIDs (lower case, as the API issues them); approval ids name their course.
SessionId = Annotated[str, Parameter(pattern=UUID_PATTERN, max_length=36, description="The session's id")]
ApprovalId = Annotated[str, Parameter(pattern=APPROVAL_ID_PATTERN, max_length=49, description="The dose approval's id")]
HoldId = Annotated[str, Parameter(pattern=r"^hold_[0-9a-f]{32}$", max_length=37, description="The hold's id")]


@lru_cache(maxsize=1024)
def known_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


class Input(Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of request bodies: unknown fields are refused, so typos never pass silently; instants lie in the
    years 2000 to 2099."""

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if isinstance(value, datetime) and not FIRST_YEAR <= value.year <= LAST_YEAR:
                raise ValueError(f"{name} must lie in the years 2000 to 2099")


def _time_zone(value: str | None, name: str) -> None:
    if value is not None and not known_time_zone(value):
        raise ValueError(f"{name}: {value!r} is not a known IANA time zone")


class ClinicCreate(Input, kw_only=True):
    name: Name
    timezone: TimeZone = "UTC"

    def __post_init__(self) -> None:
        super().__post_init__()
        _time_zone(self.timezone, "timezone")


class Clinic(Struct, kw_only=True):
    id: UUID
    name: str
    timezone: str
    api_key: str | None = msgspec.field(default=None)


class ClinicianCreate(Input, kw_only=True):
    name: Name
    role: Literal["therapist", "prescriber"]


class Clinician(Struct, kw_only=True):
    id: UUID
    clinic_id: UUID
    name: str
    role: str
    api_key: str | None = None


class RoomCreate(Input, kw_only=True):
    name: Name


class Room(Struct, kw_only=True):
    id: UUID
    clinic_id: UUID
    name: str


class ClinicianView(Struct, kw_only=True):
    """A clinician as the clinic's directory lists them (never a key)."""

    id: UUID
    clinic_id: UUID
    name: str
    role: str
    working_hours: list[HoursInterval] | None


SessionKind = Literal["assessment", "preparation", "medicine", "integration"]


class PartnershipCreate(Input, kw_only=True):
    """Consent to partner with a clinic, for these kinds of session (medicine only by default: a partner clinic
    hosts medicine sessions); sent again with other kinds, it changes the consent."""

    partner_clinic_id: UUID
    kinds: Annotated[list[SessionKind], Meta(min_length=1, max_length=4)] = msgspec.field(
        default_factory=lambda: ["medicine"])


class PartnershipEnd(Input, kw_only=True):
    reason: Reason


class PartnershipChange(Struct, kw_only=True):
    clinic_id: UUID  # the clinic that consented or ended it
    change: Literal["consented", "ended"]
    kinds: list[str]
    reason: str | None
    at: datetime
    by: str


class Partnership(Struct, kw_only=True):
    """A partnership as one of its clinics sees it: proposed, agreed (covering `kinds`, what both consented to) or
    ended, and every change to it."""

    clinic_id: UUID
    partner_clinic_id: UUID
    agreed: bool
    state: Literal["proposed", "agreed", "ended"]
    kinds: list[str]
    own_kinds: list[str] | None  # this clinic's consent in force (None: none)
    partner_kinds: list[str] | None
    history: list[PartnershipChange]


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
Clock = Annotated[str, Meta(pattern="^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$",
                            description="A local wall-clock time HH:MM in the clinic's time zone (24:00: midnight "
                                        "at the end of the day)")]


class HoursInterval(Input, kw_only=True):
    """Open (or working) on a weekday from `opens` until `closes`; past midnight is two intervals (until 24:00, and
    from 00:00 on the next weekday)."""

    weekday: Weekday
    opens: Clock
    closes: Clock

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.closes <= self.opens:
            raise ValueError(f"{self.weekday}: closes ({self.closes}) must be after opens ({self.opens})")


class HoursSet(Input, kw_only=True):
    """Weekly hours from now on; null: always (no hours kept); a weekday without an interval: closed that day."""

    intervals: Annotated[list[HoursInterval], Meta(max_length=70)] | None


class HoursChange(Struct, kw_only=True):
    intervals: list[HoursInterval] | None
    at: datetime
    by: str


class Hours(Struct, kw_only=True):
    """Weekly hours in force (null: always) and every setting of them, the current one last."""

    intervals: list[HoursInterval] | None
    history: list[HoursChange]


class ClosureCreate(Input, kw_only=True):
    starts_on: date
    ends_on: date  # included
    reason: Reason

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (FIRST_YEAR <= self.starts_on.year and self.ends_on.year <= LAST_YEAR):
            raise ValueError("closures lie in the years 2000 to 2099")
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on must not be before starts_on")


class Closure(Struct, kw_only=True):
    id: UUID
    starts_on: date
    ends_on: date
    reason: str
    at: datetime
    by: str


class ClosureChange(Closure, kw_only=True):
    change: Literal["added", "lifted"]


class Closures(Struct, kw_only=True):
    """The closures in force and every closure added or lifted, in order."""

    current: list[Closure]
    history: list[ClosureChange]


class ClinicDetail(Struct, kw_only=True):
    """A clinic as the operator and the clinic itself read it (never a key)."""

    id: UUID
    name: str
    timezone: str
    opening_hours: list[HoursInterval] | None
    closures: list[Closure]


class VitalsLimitIn(Input, kw_only=True):
    systolic: VitalsBound
    diastolic: VitalsBound
    heart_rate: VitalsBound | None = None


class ProtocolIn(Input, kw_only=True):
    max_medicine_sessions: _setting("max_medicine_sessions") | None = None
    min_integration_sessions: _setting("min_integration_sessions") | None = None
    integration_window_hours: _setting("integration_window_hours") | None = None
    min_medicine_interval_days: _setting("min_medicine_interval_days") | None = None
    approval_valid_days: _setting("approval_valid_days") | None = None
    min_monitoring_minutes: _setting("min_monitoring_minutes") | None = None
    pre_dose_vitals_minutes: _setting("pre_dose_vitals_minutes") | None = None
    record_tolerance_minutes: _setting("record_tolerance_minutes") | None = None
    individual_preparation_sessions: _setting("individual_preparation_sessions") | None = None
    joint_preparation_sessions: _setting("joint_preparation_sessions") | None = None
    low_dose: bool = False
    vitals_limit: VitalsLimitIn | None = None


class Partners(Input, kw_only=True):
    a: Annotated[str, Meta(min_length=1, max_length=200, description="Pseudonymous reference of partner a")]
    b: Annotated[str, Meta(min_length=1, max_length=200, description="Pseudonymous reference of partner b")]


class CourseCreate(Input, kw_only=True):
    model: Literal["taking_turns", "together"]
    partners: Partners
    protocol: ProtocolIn | None = None
    first_dosed: Partner = "a"


class ScreeningCreate(Input, kw_only=True):
    partner: Partner
    result: Literal["eligible", "ineligible"]
    clinician_id: UUID
    notes: Text = ""


class SessionCreate(Input, kw_only=True):
    kind: Literal["assessment", "preparation", "medicine", "integration"]
    partners: Annotated[list[Partner], Meta(min_length=1, max_length=2)] = msgspec.field(default_factory=lambda: ["a", "b"])
    starts_at: Instant
    ends_at: Instant
    clinic_id: UUID | None = None
    room_id: UUID | None = None
    clinician_ids: Annotated[list[UUID], Meta(max_length=10)] = msgspec.field(default_factory=list)
    timezone: TimeZone | None = None
    # Why the session is booked outside the host's opening hours, on a closure or outside a clinician's working
    # hours: without it such a booking is refused; with it, it is accepted and the reason kept in the course.
    hours_override_reason: Text | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _time_zone(self.timezone, "timezone")


class HoldCreate(SessionCreate, kw_only=True):
    """A slot to hold for the course (as a booking names it), for the hosting clinic's `hold_minutes` or fewer."""

    minutes: Annotated[int, Meta(ge=1, le=60)] | None = None


class HoldView(Struct, kw_only=True):
    id: str
    kind: str
    partners: list[str]
    starts_at: datetime
    ends_at: datetime
    clinic_id: str
    room_id: str | None
    clinician_ids: list[str]
    timezone: str
    expires_at: datetime
    starts_at_local: datetime  # the same instants in the hosting clinic's zone, with its UTC offset
    ends_at_local: datetime


class BufferIn(Input, kw_only=True):
    before_minutes: Annotated[int, Meta(ge=0, le=240)] = 0
    after_minutes: Annotated[int, Meta(ge=0, le=240)] = 0


class BookingRulesSet(Input, kw_only=True):
    """A clinic's booking rules from now on (each left out: its default, which restricts nothing)."""

    buffers: dict[Literal["assessment", "preparation", "medicine", "integration"], BufferIn] = \
        msgspec.field(default_factory=dict)
    min_notice_minutes: Annotated[int, Meta(ge=0, le=43200)] = 0
    horizon_days: Annotated[int, Meta(ge=1, le=730)] | None = None
    clinician_daily_limit: Annotated[int, Meta(ge=1, le=48)] | None = None
    clinician_weekly_limit: Annotated[int, Meta(ge=1, le=200)] | None = None
    partner_medicine_daily_cap: Annotated[int, Meta(ge=0, le=48)] | None = None
    hold_minutes: Annotated[int, Meta(ge=1, le=60)] = 10
    max_partner_holds: Annotated[int, Meta(ge=0, le=500)] = 20


class BookingRulesChange(Struct, kw_only=True):
    rules: dict[str, Any]
    at: datetime
    by: str


class BookingRulesView(Struct, kw_only=True):
    """The booking rules in force and every setting of them, the current one last."""

    rules: dict[str, Any]
    history: list[BookingRulesChange]


class SessionReschedule(Input, kw_only=True):
    starts_at: Instant
    ends_at: Instant
    room_id: UUID | None = None
    clinician_ids: Annotated[list[UUID], Meta(max_length=10)] | None = None
    hours_override_reason: Text | None = None  # as in SessionCreate


CancelledByCode = Literal["couple", "partner_a", "partner_b", "home_clinic", "host_clinic", "clinician", "prescriber"]
CancelReasonCode = Literal["illness", "scheduling_conflict", "clinical", "host_unavailable", "clinician_unavailable",
                           "weather_or_travel", "no_longer_wanted", "rebooked", "other"]


class SessionCancel(Input, kw_only=True):
    """On whose behalf (`cancelled_by`, by default the home clinic) and why (`reason_code`; `other` needs a `note`).
    `reason`, the free text of clients from before the classification, is still accepted: it is the note, and
    `reason_code` becomes optional (default `other`)."""

    cancelled_by: CancelledByCode = "home_clinic"
    reason_code: CancelReasonCode | None = None
    note: Text | None = None
    reason: Reason | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reason is not None and self.note is not None:
            raise ValueError("give note, or the older reason, not both")
        if self.reason_code is None and self.reason is None:
            raise ValueError("reason_code is required (or, from older clients, reason)")


class CancellationView(Struct, kw_only=True):
    cancelled_by: CancelledByCode
    reason_code: CancelReasonCode
    note: str  # "" when none was given


class DoseIn(Input, kw_only=True):
    partner: Partner
    approval_id: ApprovalIdText
    mg: Milligrams
    at: Instant


class VitalsIn(Input, kw_only=True):
    partner: Partner
    stage: Literal["pre", "post", "discharge"]
    at: Instant
    systolic: Pressure
    diastolic: Pressure
    heart_rate: Annotated[int, Meta(ge=20, le=250)]
    acceptable: bool


class AdverseEventIn(Input, kw_only=True):
    partner: Partner
    at: Instant
    kind: Name
    severity: Literal["mild", "moderate", "severe"]
    note: Text = ""


class AdverseEventReport(AdverseEventIn, kw_only=True):
    """An adverse event of a medicine session on its own, during it or after the couple left."""

    follow_up: Text = ""  # what was done or is planned about it
    clinician_id: UUID  # who reports it: a clinician of the reporting clinic (home, or hosting the session)


class AdverseEventView(Struct, kw_only=True):
    session_id: str
    partner: str
    at: datetime
    kind: str
    severity: str
    note: str
    follow_up: str
    clinician_id: str
    reported_at: datetime


class SessionRecord(Input, kw_only=True):
    outcome: Literal["held", "missed"]
    clinician_id: UUID  # who records it: a clinician of the recording clinic (home, or hosting the session)
    notes: Text = ""
    reason: Text = ""
    doses: Annotated[list[DoseIn], Meta(max_length=20)] = msgspec.field(default_factory=list)
    vitals: Annotated[list[VitalsIn], Meta(max_length=60)] = msgspec.field(default_factory=list)
    adverse_events: Annotated[list[AdverseEventIn], Meta(max_length=50)] = msgspec.field(default_factory=list)
    discharged_at: Instant | None = None
    # When the session actually ended, if not as booked (a medicine session's record otherwise ends at discharge):
    # what it records lies within it, and the integration window (I4) counts from it.
    ended_at: Instant | None = None
    # A medicine session recorded while the couple is still watched (discharge vitals not yet acceptable): no
    # discharge now; it is recorded later (POST .../discharge), and the course waits for it.
    monitoring_continues: bool = False
    # A medicine session that took place without a dose (say, the pre-dose vitals were too high): why. Its vitals
    # are kept; it is not Dosed, does not count against the protocol's medicine sessions (I2), and the approved
    # doses stay usable at the next medicine session at the same clinic until they expire.
    not_dosed_reason: Text | None = None


class DischargeRecord(Input, kw_only=True):
    """The discharge of a medicine session recorded while monitoring continued, with the readings since."""

    discharged_at: Instant
    vitals: Annotated[list[VitalsIn], Meta(max_length=60)] = msgspec.field(default_factory=list)
    ended_at: Instant | None = None
    clinician_id: UUID  # who records it: a clinician of the clinic hosting the session


class DoseApprovalCreate(Input, kw_only=True):
    session_id: UUID
    partner: Partner
    prescriber_id: UUID
    requested_mg: Milligrams


class DoseApprovalDecision(Input, kw_only=True):
    approve: bool
    approved_mg: Milligrams | None = None
    reason: Text = ""


class VitalsOverrideIn(Input, kw_only=True):
    """The prescriber lets one pre-dose reading above the clinic's numeric limit stand (I9), on the day of the
    session: the reading's time, the ceiling (no higher values may be dosed after), and why."""

    reading_at: Instant
    systolic: Pressure
    diastolic: Pressure
    heart_rate: Annotated[int, Meta(ge=20, le=250)] | None = None  # none: the clinic's heart-rate limit stands
    reason: Reason


class SessionConfirm(Input, kw_only=True):
    decision: Literal["confirmed", "declined"]
    reason: Text = ""  # required when declining


class Discontinue(Input, kw_only=True):
    reason: Reason


class Withdraw(Input, kw_only=True):
    reason: Reason


class Acknowledge(Input, kw_only=True):
    reason: Reason
    clinician_id: UUID  # who acknowledges it: a clinician of the home clinic


class SessionView(Struct, kw_only=True):
    id: str
    kind: str
    status: str
    partners: list[str]
    starts_at: datetime
    ends_at: datetime
    clinic_id: str
    room_id: str | None
    clinician_ids: list[str]
    timezone: str
    follows: str | None
    record: dict[str, Any] | None
    confirmation: Literal["not_needed", "pending", "confirmed", "declined"]  # by the hosting clinic
    # The same instants in the session's (its hosting clinic's) zone, with that zone's offset on the day: what the
    # couple's and the clinic's clocks show.
    starts_at_local: datetime
    ends_at_local: datetime
    cancellation: CancellationView | None = None  # on whose behalf and why, once cancelled


class HostedSessionView(Struct, kw_only=True):
    """What the clinic hosting a session sees of it: scheduling facts only, nothing of the couple."""

    id: str
    kind: str
    status: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    clinic_id: str
    confirmation: Literal["not_needed", "pending", "confirmed", "declined"]


class VitalsOverrideView(Struct, kw_only=True):
    reading_at: datetime
    systolic: int
    diastolic: int
    heart_rate: int | None
    reason: str
    decided_at: datetime


class ApprovalView(Struct, kw_only=True):
    id: str
    course_id: UUID
    session_id: str
    partner: str
    prescriber_id: str
    requested_mg: float
    status: str
    approved_mg: float | None = None
    requested_at: datetime | None = None
    decided_at: datetime | None = None
    expires_at: datetime | None = None
    reason: str | None = None
    vitals_override_reason: str | None = None  # a blanket override, as decisions before per-reading ones gave
    vitals_overrides: list[VitalsOverrideView] = msgspec.field(default_factory=list)


class MilestoneView(Struct, kw_only=True):
    milestone: str
    session_id: str | None
    at: datetime


class MissedWindowView(Struct, kw_only=True):
    session_id: str
    deadline: datetime
    acknowledged: bool
    reason: str | None
    clinician_id: str | None = None  # who acknowledged it (absent for acknowledgements made before it was asked)


class CourseView(Struct, kw_only=True):
    id: UUID
    version: int
    home_clinic_id: str
    model: str
    partners: dict[str, str]
    first_dosed: str
    protocol: dict[str, Any]
    status: str
    phase: str
    discontinue_reason: str | None
    screenings: dict[str, str]
    milestones: list[MilestoneView]
    sessions: list[SessionView]
    approvals: list[ApprovalView]
    missed_windows: list[MissedWindowView]
    allowed_actions: list[str]
    holds: list[HoldView] = msgspec.field(default_factory=list)  # open holds (booked, released or expired: gone)


class CourseSummary(Struct, kw_only=True):
    id: UUID
    home_clinic_id: str
    model: str
    status: str
    # assessment | preparation | medicine | completed | discontinued (None: indexed before phases were kept and
    # not rebuilt since)
    phase: str | None
    opened_at: datetime
    updated_at: datetime
    next_session_at: datetime | None  # the start of its earliest session still booked


class CoursePage(Struct, kw_only=True):
    items: list[CourseSummary]
    next_cursor: str | None  # pass as `cursor` for the next page; None: this is the last
    page: int | None  # the older page numbers (None once a cursor is followed)
    next_page: int | None


class FreeSlotView(Struct, kw_only=True):
    starts_at: datetime  # in the clinic's time zone, with its UTC offset
    ends_at: datetime
    clinician_ids: list[str]  # the clinicians a booking at this time would take, one per requirement
    room_id: str | None


class FreeSlots(Struct, kw_only=True):
    """Free slots in order of start: book one with these clinicians and room and it is accepted, unless the
    calendars or the course changed since."""

    clinic_id: UUID
    timezone: str
    kind: str
    duration_minutes: int
    slots: list[FreeSlotView]


class NextSlotView(Struct, kw_only=True):
    starts_at: datetime  # in the hosting clinic's time zone, with its UTC offset
    ends_at: datetime
    clinic_id: str
    clinician_ids: list[str]
    room_id: str | None
    checked: list[str]  # the rules the slot was judged by (I1..I11 and the clinic's), as a booking would be


class NextSlots(Struct, kw_only=True):
    course_id: UUID
    kind: str
    clinic_id: str
    timezone: str
    slots: list[NextSlotView]


Clock = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
Requirement = Annotated[str, Meta(max_length=400)]


class PlanRequest(Input, kw_only=True):
    """What to plan: how many medicine sessions in all (default: the protocol's maximum, I2), and preferences."""

    medicine_sessions: Annotated[int, Meta(ge=1, le=8)] | None = None
    medicine_clinic_id: UUID | None = None  # where medicine sessions are hosted (default: the home clinic)
    # By kind, the resources each session needs, as free-slots' `require` (default: a therapist; for a medicine
    # session a prescriber and, if the clinic has rooms, a room).
    require: dict[Literal["assessment", "preparation", "medicine", "integration"],
                  Annotated[list[Requirement], Meta(max_length=10)]] = msgspec.field(default_factory=dict)
    weekdays: Annotated[list[Weekday], Meta(max_length=7)] = msgspec.field(default_factory=list)  # none: any day
    starts_between: Annotated[list[Clock], Meta(min_length=2, max_length=2)] | None = None  # local start times
    one_a_day: bool = True  # at most one session of the couple a day
    step_minutes: Annotated[int, Meta(ge=5, le=240)] = 30


class PlanItemView(Struct, kw_only=True):
    kind: str
    partners: list[str]
    starts_at: datetime
    ends_at: datetime
    clinic_id: str
    room_id: str | None
    clinician_ids: list[str]
    follows_item: int | None  # an integration session: the plan's item (0-based) it follows
    follows: str | None  # ... or the booked medicine session it follows


class PlanView(Struct, kw_only=True):
    """Every session the course still needs, in order; hold them (`plan/hold`) or book them (`plan/book`) as
    they are, in one call."""

    course_id: UUID
    timezone: str
    items: list[PlanItemView]


class PlanItemIn(SessionCreate, kw_only=True):
    """A session to book or hold: as `SessionCreate`, or a plan's item as `plan` answered it (its `follows` and
    `follows_item` are what the rules will work out again, and are not read)."""

    follows_item: int | None = None
    follows: str | None = None


class PlanHold(Input, kw_only=True):
    items: Annotated[list[PlanItemIn], Meta(min_length=1, max_length=64)]
    minutes: Annotated[int, Meta(ge=1, le=60)] | None = None


class PlanBook(Input, kw_only=True):
    """Either the sessions to book (a plan's items) or the holds to book (a held plan), in order."""

    items: Annotated[list[PlanItemIn], Meta(max_length=64)] = msgspec.field(default_factory=list)
    hold_ids: Annotated[list[Annotated[str, Meta(pattern=r"^hold_[0-9a-f]{32}$")]], Meta(max_length=64)] = \
        msgspec.field(default_factory=list)


class CalendarEntryView(Struct, kw_only=True):
    """A session in a clinician's or room's calendar: scheduling facts only, never partners or notes."""

    session_id: str
    course_id: UUID
    kind: str
    starts_at: datetime  # in the clinic's time zone, with its UTC offset
    ends_at: datetime
    clinic_id: str  # the hosting clinic
    room_id: str | None
    clinician_ids: list[str]
    status: Literal["booked", "held", "missed", "cancelled"]
    confirmation: Literal["not_needed", "pending", "confirmed", "declined"]


class CalendarView(Struct, kw_only=True):
    """A clinician's or room's sessions in one local day or ISO week (Monday to Monday) of its clinic's zone."""

    resource: Literal["clinician", "room"]
    resource_id: UUID
    clinic_id: UUID
    timezone: str
    view: Literal["day", "week"]
    starts_at: datetime  # the local midnight the period starts at, with its UTC offset
    ends_at: datetime
    hours: float  # elapsed: 24 (or 23, 25) a day, 168 (or 167, 169) a week across a daylight-saving change
    entries: list[CalendarEntryView]


class ActorView(Struct, kw_only=True):
    """Who recorded an event: the principal (its role and id), its clinic, the clinician it named, the request and
    trace it came from, and the reason it gave, where each is known (events stored before some were kept lack
    them)."""

    role: Literal["clinic", "prescriber", "operator", "system"]
    id: str
    clinic_id: str | None
    clinician_id: str | None
    request_id: str | None
    trace_id: str | None
    reason: str | None


class EventView(Struct, kw_only=True):
    version: int
    type: str
    topic: str
    time: datetime  # when it was recorded
    # When it happened, by the clock of the command that recorded it (under simulated time, X-Kact-Now); absent
    # from events recorded before it was kept.
    occurred_at: datetime | None = None
    principal: str
    data: dict[str, Any]
    actor: ActorView | None = None


class Health(Struct, kw_only=True):
    status: str
    checks: dict[str, str]


EventType = Literal[tuple(sorted(BY_TYPE))]  # type: ignore[valid-type]  # every type the notifier can send


class WebhookCreate(Input, kw_only=True):
    url: Annotated[str, Meta(min_length=8, max_length=2000, pattern="^https?://[^\\s/?#]+[^\\s]*$",
                             description="http or https URL that receives the POSTs")]
    event_types: Annotated[list[EventType], Meta(max_length=100, description="CloudEvents types; empty: every event")]


class Webhook(Struct, kw_only=True):
    id: UUID
    owner: str  # clinic:<id> | prescriber:<id>
    url: str
    event_types: list[str]
    created_at: datetime
    secret: str | None = msgspec.field(default=None)  # the whsec_ signing secret, only when created


class DeliveryAttempt(Struct, kw_only=True):
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class Delivery(Struct, kw_only=True):
    id: UUID  # also the webhook-id header the receiver saw
    webhook_id: UUID
    recipient: str  # clinic:<id> | prescriber:<id>
    event_id: str
    event_type: str
    feed_position: int
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryDetail(Delivery, kw_only=True):
    attempt_log: list[DeliveryAttempt]  # every attempt, oldest first (counting restarts at a redrive)


class DeliveryPage(Struct, kw_only=True):
    items: list[Delivery]
    page: int
    next_page: int | None


KeyLabel = Annotated[str, Meta(min_length=1, max_length=100, description="What the key is for (e.g. 'billing system')")]


class ApiKeyCreate(Input, kw_only=True):
    label: KeyLabel | None = None


class ApiKey(Struct, kw_only=True):
    id: UUID
    owner: str  # clinic:<id> | prescriber:<id>
    label: str | None
    created_at: datetime
    created_by: str  # the principal that issued it
    last_used_at: Annotated[datetime | None, Meta(
        description="When the key last authenticated a request, to within about a minute (written in batches)")]
    revoked_at: datetime | None
    revoked_by: str | None


class IssuedApiKey(ApiKey, kw_only=True):
    api_key: Annotated[str, Meta(description="The key's secret, shown only in this response")]


class SignInLink(Struct, kw_only=True):
    """A one-time link to the principal's page (prescriber: the pending dose approvals; operator: the audit)."""

    url: Annotated[str, Meta(description="The link on this server's address as the request reached it; shown only in "
                                         "this response")]
    path: Annotated[str, Meta(description="The same link without the server's address, for a client that knows the "
                                          "address people reach the scheduler at")]
    expires_at: datetime
    valid_seconds: int


FeedLabel = Annotated[str, Meta(min_length=1, max_length=100,
                                description="Where the feed is subscribed (e.g. 'Mara's Google Calendar')")]


class CalendarFeedCreate(Input, kw_only=True):
    label: FeedLabel | None = None


class CalendarFeed(Struct, kw_only=True):
    """A calendar feed of a clinician or a room (never its token)."""

    id: UUID
    resource: Literal["clinician", "room"]
    resource_id: UUID
    clinic_id: UUID
    label: str | None
    created_at: datetime
    created_by: str  # the principal that created it
    revoked_at: datetime | None
    revoked_by: str | None


class IssuedCalendarFeed(CalendarFeed, kw_only=True):
    url: Annotated[str, Meta(description="The feed's address, to subscribe to in a calendar client; it holds the "
                                         "feed's token (its only credential) and is shown only in this response")]
