"""Shapes domain state and stored events into response bodies."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from scheduler.application.attribution import actor_of, event_data, event_type
from scheduler.domain.course import Course
from scheduler.domain.model import DoseApproval, Hold, Session
from scheduler.http.schemas import (
    ActorView,
    ApprovalView,
    CancellationView,
    CourseView,
    EventView,
    HoldView,
    HostedSessionView,
    MilestoneView,
    MissedWindowView,
    SessionView,
    VitalsOverrideView,
)


def plain(value: Any) -> Any:
    """Event and record data as JSON-ready values."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def session_view(session: Session) -> SessionView:
    return SessionView(
        id=session.id,
        kind=session.kind.value,
        status=session.status.value,
        partners=list(session.partners),
        starts_at=session.starts_at,
        ends_at=session.ends_at,
        clinic_id=session.clinic_id,
        room_id=session.room_id,
        clinician_ids=list(session.clinician_ids),
        timezone=session.timezone,
        follows=session.follows,
        record=plain(session.held) if session.held is not None else None,
        confirmation=session.confirmation.value,
        starts_at_local=session.starts_at.astimezone(ZoneInfo(session.timezone)),
        ends_at_local=session.ends_at.astimezone(ZoneInfo(session.timezone)),
        cancellation=None if session.cancellation is None else CancellationView(
            cancelled_by=session.cancellation.cancelled_by.value, reason_code=session.cancellation.reason_code.value,
            note=session.cancellation.note),
    )


def hold_view(hold: Hold) -> HoldView:
    return HoldView(id=hold.id, kind=hold.kind.value, partners=list(hold.partners), starts_at=hold.starts_at,
                    ends_at=hold.ends_at, clinic_id=hold.clinic_id, room_id=hold.room_id,
                    clinician_ids=list(hold.clinician_ids), timezone=hold.timezone, expires_at=hold.expires_at,
                    starts_at_local=hold.starts_at.astimezone(ZoneInfo(hold.timezone)),
                    ends_at_local=hold.ends_at.astimezone(ZoneInfo(hold.timezone)))


def hosted_session_view(session: Session) -> HostedSessionView:
    return HostedSessionView(
        id=session.id,
        kind=session.kind.value,
        status=session.status.value,
        starts_at=session.starts_at,
        ends_at=session.ends_at,
        timezone=session.timezone,
        clinic_id=session.clinic_id,
        confirmation=session.confirmation.value,
    )


def approval_view(course_id: UUID, approval: DoseApproval) -> ApprovalView:
    return ApprovalView(
        id=approval.id,
        course_id=course_id,
        session_id=approval.session_id,
        partner=approval.partner,
        prescriber_id=approval.prescriber_id,
        requested_mg=approval.requested_mg,
        status=approval.status.value,
        approved_mg=approval.approved_mg,
        requested_at=approval.requested_at,
        decided_at=approval.decided_at,
        expires_at=approval.expires_at,
        reason=approval.reason,
        vitals_override_reason=approval.vitals_override_reason,
        vitals_overrides=[VitalsOverrideView(reading_at=o.reading_at, systolic=o.systolic, diastolic=o.diastolic,
                                             heart_rate=o.heart_rate, reason=o.reason, decided_at=o.decided_at)
                          for o in approval.vitals_overrides],
    )


def course_view(course: Course) -> CourseView:
    return CourseView(
        id=course.id,
        version=course.version,
        home_clinic_id=course.home_clinic_id,
        model=course.model.value,
        partners=dict(course.partners),
        first_dosed=course.first_dosed,
        protocol=plain(course.protocol.to_dict()),
        status=course.status.value,
        phase=course.phase.value,
        discontinue_reason=course.discontinue_reason,
        screenings=dict(course.screenings),
        milestones=[MilestoneView(**m) for m in course.milestones],
        sessions=[session_view(s) for s in sorted(course.sessions.values(), key=lambda s: s.starts_at)],
        approvals=[approval_view(course.id, a) for a in course.approvals.values()],
        missed_windows=[
            MissedWindowView(session_id=w.session_id, deadline=w.deadline, acknowledged=w.acknowledged, reason=w.reason,
                             clinician_id=w.clinician_id)
            for w in course.missed_windows.values()
        ],
        allowed_actions=course.allowed_actions(),
        holds=[hold_view(h) for h in sorted(course.holds.values(), key=lambda h: h.starts_at)],
    )


def event_view(event: Any) -> EventView:
    data = event_data(event)
    return EventView(
        version=event.originator_version,
        type=event_type(event),
        topic=type(event).TOPIC,
        time=event.timestamp,
        occurred_at=event.occurred_at,
        principal=event.by,
        data=plain(data),
        actor=actor_view(event, data),
    )


def actor_view(event: Any, data: dict[str, Any]) -> ActorView:
    """Who recorded `event` (`attribution.actor_of`: the export shows the same)."""
    return ActorView(**asdict(actor_of(event, data)))  # type: ignore[arg-type]
