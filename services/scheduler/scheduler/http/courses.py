"""Courses, screenings, sessions, dose approvals, completion and the audit history: parse, one use case, present."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from litestar import Controller, get, post
from msgspec.structs import asdict
from litestar.params import Parameter

from scheduler.application.handlers import Record
from scheduler.application.reads import MAX_LIMIT, CourseFilter
from scheduler.directory import Principal
from scheduler.domain.errors import InvalidCommandError
from scheduler.domain.protocol import Protocol, VitalsLimit
from scheduler.http.deps import Services
from scheduler.http.examples import body
from scheduler.http.schemas import (
    ApprovalId,
    HoldCreate,
    HoldId,
    HoldView,
    SessionId,
    Acknowledge,
    AdverseEventReport,
    AdverseEventView,
    ApprovalView,
    VitalsOverrideIn,
    CourseCreate,
    CoursePage,
    CourseSummary,
    CourseView,
    DischargeRecord,
    Discontinue,
    DoseApprovalCreate,
    DoseApprovalDecision,
    EventView,
    Withdraw,
    HostedSessionView,
    ScreeningCreate,
    SessionCancel,
    SessionConfirm,
    SessionCreate,
    SessionRecord,
    SessionReschedule,
    SessionView,
)
from scheduler.http.views import (
    approval_view,
    course_view,
    event_view,
    hold_view,
    hosted_session_view,
    session_view,
)
from scheduler.readmodels.course_index import PAGE_SIZE


AS_OF_PATTERN = r"^([1-9][0-9]{0,9}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2}))$"


def _as_of(value: str | None) -> int | datetime | None:
    """A version, or an instant with its offset (the pattern has checked the form)."""
    if value is None:
        return None
    if value.isdigit():
        if int(value) > 2**31 - 1:
            raise InvalidCommandError(["as_of: a version is at most 2147483647"])
        return int(value)
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidCommandError([f"as_of: {value} is not a date and time"]) from None
    if not 2000 <= at.year <= 2099:
        raise InvalidCommandError(["as_of: instants lie in the years 2000 to 2099"])
    return at


class CourseController(Controller):
    path = "/v1/courses"
    tags = ["courses"]

    @post("/", operation_id="openCourse", status_code=201, summary="Open a couple's course")
    async def open_course(self, data: body(CourseCreate), principal: Principal, services: Services,
                          now: datetime) -> CourseView:
        settings = {k: v for k, v in asdict(data.protocol).items() if v is not None} if data.protocol else {}
        if data.protocol and data.protocol.vitals_limit:
            settings["vitals_limit"] = VitalsLimit(**asdict(data.protocol.vitals_limit))
        course = await services.scheduling.open_course(
            principal, model=data.model, protocol=Protocol(**settings),
            partners={"a": data.partners.a, "b": data.partners.b}, first_dosed=data.first_dosed, now=now,
        )
        return course_view(course)

    @get("/", operation_id="listCourses", summary="List the courses this principal may see")
    async def list_courses(
        self,
        principal: Principal,
        services: Services,
        status: str | None = Parameter(default=None, pattern="^(open|completed|discontinued)$"),
        phase: str | None = Parameter(
            default=None, pattern="^(assessment|preparation|medicine|completed|discontinued)$"),
        clinician_id: UUID | None = Parameter(
            default=None, description="Only courses with a booked session with this clinician"),
        next_session_from: datetime | None = Parameter(
            default=None, description="Only courses whose next booked session starts at or after this instant"),
        next_session_before: datetime | None = Parameter(
            default=None, description="Only courses whose next booked session starts before this instant"),
        cursor: str | None = Parameter(default=None, max_length=200, pattern="^[A-Za-z0-9_-]+$",
                                       description="`next_cursor` of the previous page"),
        page: int | None = Parameter(default=None, ge=1, le=100000,
                                     description="The older page numbers (prefer `cursor`: pages shift as courses open)"),
        limit: int = Parameter(default=PAGE_SIZE, ge=1, le=MAX_LIMIT, description="Courses per page"),
    ) -> CoursePage:
        filters = CourseFilter(status=status, phase=phase, clinician_id=clinician_id,
                               next_session_from=next_session_from, next_session_before=next_session_before)
        found = await services.reads.courses(principal, filters, cursor=cursor, page=page, limit=limit)
        items = [
            CourseSummary(id=r["course_id"], home_clinic_id=r["clinic_id"], model=r["model"], status=r["status"],
                          phase=r["phase"], opened_at=r["opened_at"], updated_at=r["updated_at"],
                          next_session_at=r["next_session_at"])
            for r in found.rows
        ]
        return CoursePage(items=items, next_cursor=found.next_cursor, page=found.page, next_page=found.next_page)

    @get("/{course_id:uuid}", operation_id="getCourse", summary="A course: phase, milestones, sessions, approvals, next actions")
    async def get_course(
        self, course_id: UUID, principal: Principal, services: Services,
        as_of: str | None = Parameter(
            default=None, max_length=40, pattern=AS_OF_PATTERN,
            description="Show the course as it stood then, replayed from its events: a version (an integer), or an "
                        "instant (RFC 3339, with its offset: the events recorded by then)"),
    ) -> CourseView:
        return course_view(await services.scheduling.get_course(principal, course_id, _as_of(as_of)))

    @get("/{course_id:uuid}/events", operation_id="listCourseEvents", summary="The course's audit history")
    async def list_events(self, course_id: UUID, principal: Principal, services: Services) -> list[EventView]:
        return [event_view(e) for e in await services.scheduling.history(principal, course_id)]

    @post("/{course_id:uuid}/screenings", operation_id="recordScreening", status_code=200,
          summary="Record a partner's screening result")
    async def record_screening(
        self, course_id: UUID, data: body(ScreeningCreate), principal: Principal, services: Services, now: datetime,
    ) -> CourseView:
        course = await services.scheduling.record_screening(
            principal, course_id, partner=data.partner, result=data.result, clinician_id=data.clinician_id,
            notes=data.notes, now=now,
        )
        return course_view(course)

    @post("/{course_id:uuid}/sessions", operation_id="bookSession", status_code=201, summary="Book a session")
    async def book_session(
        self, course_id: UUID, data: body(SessionCreate), principal: Principal, services: Services, now: datetime,
    ) -> SessionView:
        session = await services.scheduling.book_session(
            principal, course_id, kind=data.kind, partners=data.partners, starts_at=data.starts_at,
            ends_at=data.ends_at, clinic_id=data.clinic_id, room_id=data.room_id, clinician_ids=data.clinician_ids,
            timezone=data.timezone, hours_override_reason=data.hours_override_reason, now=now,
        )
        return session_view(session)

    @post("/{course_id:uuid}/sessions/{session_id:str}/reschedule", operation_id="rescheduleSession",
          status_code=200, summary="Move a booked session")
    async def reschedule_session(
        self, course_id: UUID, session_id: SessionId, data: body(SessionReschedule), principal: Principal,
        services: Services, now: datetime,
    ) -> SessionView:
        session = await services.scheduling.reschedule_session(
            principal, course_id, session_id, starts_at=data.starts_at, ends_at=data.ends_at, room_id=data.room_id,
            clinician_ids=data.clinician_ids, hours_override_reason=data.hours_override_reason, now=now,
        )
        return session_view(session)

    @post("/{course_id:uuid}/sessions/{session_id:str}/cancel", operation_id="cancelSession", status_code=200,
          summary="Cancel a booked session")
    async def cancel_session(
        self, course_id: UUID, session_id: SessionId, data: body(SessionCancel), principal: Principal, services: Services,
        now: datetime,
    ) -> SessionView:
        return session_view(await services.scheduling.cancel_session(
            principal, course_id, session_id, data.reason, now, cancelled_by=data.cancelled_by,
            reason_code=data.reason_code or "other", note=data.note))

    @post("/{course_id:uuid}/holds", operation_id="holdSlot", status_code=201,
          summary="Hold a slot for a few minutes while the couple decides (judged as a booking would be)")
    async def hold_slot(
        self, course_id: UUID, data: body(HoldCreate), principal: Principal, services: Services, now: datetime,
    ) -> HoldView:
        hold = await services.scheduling.hold_slot(
            principal, course_id, kind=data.kind, partners=data.partners, starts_at=data.starts_at,
            ends_at=data.ends_at, clinic_id=data.clinic_id, room_id=data.room_id, clinician_ids=data.clinician_ids,
            timezone=data.timezone, minutes=data.minutes, hours_override_reason=data.hours_override_reason, now=now,
        )
        return hold_view(hold)

    @post("/{course_id:uuid}/holds/{hold_id:str}/book", operation_id="bookHold", status_code=201,
          summary="Book a held slot: the session takes the hold's place, all at once")
    async def book_hold(
        self, course_id: UUID, hold_id: HoldId, principal: Principal, services: Services, now: datetime,
    ) -> SessionView:
        return session_view(await services.scheduling.book_hold(principal, course_id, hold_id, now))

    @post("/{course_id:uuid}/holds/{hold_id:str}/release", operation_id="releaseHold", status_code=200,
          summary="Release a held slot before it expires")
    async def release_hold(
        self, course_id: UUID, hold_id: HoldId, principal: Principal, services: Services, now: datetime,
    ) -> HoldView:
        return hold_view(await services.scheduling.release_hold(principal, course_id, hold_id, now))

    @post("/{course_id:uuid}/sessions/{session_id:str}/adverse-events", operation_id="reportAdverseEvent",
          status_code=201, summary="Report an adverse event of a medicine session, during it or after it")
    async def report_adverse_event(
        self, course_id: UUID, session_id: SessionId, data: body(AdverseEventReport), principal: Principal,
        services: Services, now: datetime,
    ) -> AdverseEventView:
        reported = await services.scheduling.report_adverse_event(
            principal, course_id, session_id, partner=data.partner, at=data.at, kind=data.kind,
            severity=data.severity, note=data.note, follow_up=data.follow_up, clinician_id=data.clinician_id,
            now=now)
        return AdverseEventView(**reported)

    @post("/{course_id:uuid}/sessions/{session_id:str}/confirm", operation_id="confirmSession", status_code=200,
          summary="The clinic hosting a medicine session (with its own key) confirms or declines it")
    async def confirm_session(
        self, course_id: UUID, session_id: SessionId, data: body(SessionConfirm), principal: Principal, services: Services,
        now: datetime,
    ) -> HostedSessionView:
        session = await services.scheduling.confirm_session(
            principal, course_id, session_id, decision=data.decision, reason=data.reason, now=now)
        return hosted_session_view(session)

    @post("/{course_id:uuid}/sessions/{session_id:str}/record", operation_id="recordSession", status_code=200,
          summary="Record what happened: held (with doses, vitals, adverse events, discharge) or missed")
    async def record_session(
        self, course_id: UUID, session_id: SessionId, data: body(SessionRecord), principal: Principal, services: Services,
        now: datetime,
    ) -> SessionView:
        record = Record(
            outcome=data.outcome, clinician_id=data.clinician_id, notes=data.notes, reason=data.reason,
            doses=tuple(asdict(d) for d in data.doses), vitals=tuple(asdict(v) for v in data.vitals),
            adverse_events=tuple(asdict(a) for a in data.adverse_events), discharged_at=data.discharged_at,
            ended_at=data.ended_at, monitoring_continues=data.monitoring_continues,
            not_dosed_reason=data.not_dosed_reason,
        )
        return session_view(await services.scheduling.record_session(principal, course_id, session_id, record, now))

    @post("/{course_id:uuid}/sessions/{session_id:str}/discharge", operation_id="recordDischarge", status_code=200,
          summary="Record the discharge of a medicine session recorded while monitoring continued")
    async def record_discharge(
        self, course_id: UUID, session_id: SessionId, data: body(DischargeRecord), principal: Principal,
        services: Services, now: datetime,
    ) -> SessionView:
        return session_view(await services.scheduling.record_discharge(
            principal, course_id, session_id, discharged_at=data.discharged_at,
            vitals=[asdict(v) for v in data.vitals], ended_at=data.ended_at, clinician_id=data.clinician_id, now=now))

    @post("/{course_id:uuid}/dose-approvals", operation_id="requestDoseApproval", status_code=201,
          summary="Ask a prescriber to approve one partner's dose for one medicine session")
    async def request_dose_approval(
        self, course_id: UUID, data: body(DoseApprovalCreate), principal: Principal, services: Services, now: datetime
    ) -> ApprovalView:
        approval = await services.scheduling.request_dose_approval(
            principal, course_id, session_id=str(data.session_id), partner=data.partner,
            prescriber_id=data.prescriber_id, requested_mg=data.requested_mg, now=now,
        )
        return approval_view(course_id, approval)

    @post("/{course_id:uuid}/dose-approvals/{approval_id:str}/withdraw", operation_id="withdrawDoseApproval",
          status_code=200, summary="Take back a dose approval request its prescriber has not decided")
    async def withdraw_dose_approval(
        self, course_id: UUID, approval_id: ApprovalId, data: body(Withdraw), principal: Principal,
        services: Services, now: datetime,
    ) -> ApprovalView:
        approval = await services.scheduling.withdraw_dose_approval(principal, course_id, approval_id, data.reason, now)
        return approval_view(course_id, approval)

    @post("/{course_id:uuid}/missed-windows/{session_id:str}/acknowledge", operation_id="acknowledgeMissedWindow",
          status_code=200, summary="Acknowledge a missed integration window, with a reason, to unblock dosing")
    async def acknowledge_missed_window(
        self, course_id: UUID, session_id: SessionId, data: body(Acknowledge), principal: Principal, services: Services,
        now: datetime,
    ) -> CourseView:
        return course_view(await services.scheduling.acknowledge_missed_window(
            principal, course_id, session_id, data.reason, data.clinician_id, now))

    @post("/{course_id:uuid}/complete", operation_id="completeCourse", status_code=200, summary="Complete the course")
    async def complete(self, course_id: UUID, principal: Principal, services: Services, now: datetime) -> CourseView:
        return course_view(await services.scheduling.complete(principal, course_id, now))

    @post("/{course_id:uuid}/discontinue", operation_id="discontinueCourse", status_code=200,
          summary="Discontinue the course, with a reason")
    async def discontinue(
        self, course_id: UUID, data: body(Discontinue), principal: Principal, services: Services, now: datetime,
    ) -> CourseView:
        return course_view(await services.scheduling.discontinue(principal, course_id, data.reason, now))


class DoseApprovalController(Controller):
    path = "/v1/dose-approvals"
    tags = ["dose approvals"]

    @get("/", operation_id="listDoseApprovals", summary="Dose approvals addressed to this prescriber")
    async def list_approvals(
        self, principal: Principal, services: Services,
        status: str | None = Parameter(default=None, pattern="^(pending|approved|declined|withdrawn)$"),
    ) -> list[ApprovalView]:
        return [approval_view(course_id, approval)
                for course_id, approval in await services.scheduling.approval_queue(principal, status)]

    @post("/{approval_id:str}/decision", operation_id="decideDoseApproval", status_code=200,
          summary="The addressed prescriber approves or declines a dose")
    async def decide(
        self, approval_id: ApprovalId, data: body(DoseApprovalDecision), principal: Principal, services: Services, now: datetime
    ) -> ApprovalView:
        course_id, approval = await services.scheduling.decide_dose_approval(
            principal, approval_id, approve=data.approve, now=now, approved_mg=data.approved_mg, reason=data.reason,
        )
        return approval_view(course_id, approval)

    @post("/{approval_id:str}/vitals-override", operation_id="overrideVitalsLimit", status_code=200,
          summary="The prescriber of an approved dose lets one pre-dose reading above the clinic's limit stand")
    async def override_vitals_limit(
        self, approval_id: ApprovalId, data: body(VitalsOverrideIn), principal: Principal, services: Services,
        now: datetime,
    ) -> ApprovalView:
        course_id, approval = await services.scheduling.override_vitals_limit(
            principal, approval_id, reading_at=data.reading_at, systolic=data.systolic, diastolic=data.diastolic,
            heart_rate=data.heart_rate, reason=data.reason, now=now)
        return approval_view(course_id, approval)
