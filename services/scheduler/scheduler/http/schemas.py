"""Request and response bodies of the public HTTP contract (msgspec structs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import Meta, Struct

Partner = Literal["a", "b"]
Instant = Annotated[datetime, Meta(tz=True, description="An instant with a UTC offset (RFC 3339)")]
Text = Annotated[str, Meta(max_length=2000)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Reason = Annotated[str, Meta(min_length=1, max_length=2000)]
Milligrams = Annotated[float, Meta(gt=0, le=1000)]
Pressure = Annotated[int, Meta(ge=20, le=300)]


class Input(Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of request bodies: unknown fields are refused, so typos never pass silently."""


class ClinicCreate(Input, kw_only=True):
    name: Name
    timezone: Name = "UTC"


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


class PartnershipCreate(Input, kw_only=True):
    partner_clinic_id: UUID


class Partnership(Struct, kw_only=True):
    clinic_id: UUID
    partner_clinic_id: UUID
    agreed: bool


class VitalsLimitIn(Input, kw_only=True):
    systolic: int
    diastolic: int
    heart_rate: int | None = None


class ProtocolIn(Input, kw_only=True):
    max_medicine_sessions: int | None = None
    min_integration_sessions: int | None = None
    integration_window_hours: int | None = None
    min_medicine_interval_days: int | None = None
    approval_valid_days: int | None = None
    min_monitoring_minutes: int | None = None
    individual_preparation_sessions: int | None = None
    joint_preparation_sessions: int | None = None
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
    timezone: str | None = None


class SessionReschedule(Input, kw_only=True):
    starts_at: Instant
    ends_at: Instant
    room_id: UUID | None = None
    clinician_ids: Annotated[list[UUID], Meta(max_length=10)] | None = None


class SessionCancel(Input, kw_only=True):
    reason: Reason


class DoseIn(Input, kw_only=True):
    partner: Partner
    approval_id: str
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


class SessionRecord(Input, kw_only=True):
    outcome: Literal["held", "missed"]
    notes: Text = ""
    reason: Text = ""
    doses: list[DoseIn] = msgspec.field(default_factory=list)
    vitals: list[VitalsIn] = msgspec.field(default_factory=list)
    adverse_events: list[AdverseEventIn] = msgspec.field(default_factory=list)
    discharged_at: Instant | None = None


class DoseApprovalCreate(Input, kw_only=True):
    session_id: str
    partner: Partner
    prescriber_id: UUID
    requested_mg: Milligrams


class DoseApprovalDecision(Input, kw_only=True):
    approve: bool
    approved_mg: Milligrams | None = None
    reason: Text = ""
    vitals_override_reason: Text | None = None


class SessionConfirm(Input, kw_only=True):
    decision: Literal["confirmed", "declined"]
    reason: Text = ""  # required when declining


class Discontinue(Input, kw_only=True):
    reason: Reason


class Acknowledge(Input, kw_only=True):
    reason: Reason


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
    vitals_override_reason: str | None = None


class MilestoneView(Struct, kw_only=True):
    milestone: str
    session_id: str | None
    at: datetime


class MissedWindowView(Struct, kw_only=True):
    session_id: str
    deadline: datetime
    acknowledged: bool
    reason: str | None


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


class CourseSummary(Struct, kw_only=True):
    id: UUID
    home_clinic_id: str
    model: str
    status: str
    opened_at: datetime
    updated_at: datetime


class CoursePage(Struct, kw_only=True):
    items: list[CourseSummary]
    page: int
    next_page: int | None


class EventView(Struct, kw_only=True):
    version: int
    type: str
    topic: str
    time: datetime
    principal: str
    data: dict[str, Any]


class Health(Struct, kw_only=True):
    status: str
    checks: dict[str, str]


EventType = Annotated[str, Meta(min_length=1, max_length=200)]


class WebhookCreate(Input, kw_only=True):
    url: Annotated[str, Meta(min_length=1, max_length=2000, description="http or https URL that receives the POSTs")]
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
