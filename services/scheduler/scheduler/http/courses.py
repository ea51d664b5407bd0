"""Courses, screenings, sessions, dose approvals, completion and the audit history."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from litestar import Controller, get, post
from msgspec.structs import asdict
from litestar.params import Parameter

from scheduler.application import CourseNotFoundError
from scheduler.directory import Principal
from scheduler.domain.course import Course
from scheduler.domain.model import HostFacts, Kind
from scheduler.domain.protocol import Protocol, VitalsLimit
from scheduler.http.deps import Services
from scheduler.http.examples import body
from scheduler.http.problems import ProblemError
from scheduler.http.schemas import (
    ApprovalId,
    SessionId,
    Acknowledge,
    ApprovalView,
    CourseCreate,
    CoursePage,
    CourseSummary,
    CourseView,
    Discontinue,
    DoseApprovalCreate,
    DoseApprovalDecision,
    EventView,
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
    hosted_session_view,
    session_view,
)
from scheduler.readmodels.course_index import PAGE_SIZE


def _clinic_of(principal: Principal) -> str:
    if principal.kind != "clinic" or principal.clinic_id is None:
        raise ProblemError(403, "forbidden", "Forbidden", "only the home clinic's key can change a course")
    return principal.clinic_id


def _may_see(home_clinic_id: str, principal: Principal) -> bool:
    """A course is visible to its home clinic and the operator; to anyone else it does not exist."""
    return principal.kind == "operator" or (principal.kind == "clinic" and home_clinic_id == principal.clinic_id)


def _owned(course: Course, principal: Principal) -> Course:
    if _may_see(course.home_clinic_id, principal):
        return course
    raise CourseNotFoundError(course.id)


def _check_staff(found: dict[str, dict[str, Any]], ids: list[UUID], clinics: set[str | None]) -> None:
    for cid in ids:
        row = found.get(str(cid))
        if row is None or str(row["clinic_id"]) not in clinics:
            raise _unknown(f"clinician {cid} is not staff of the home or hosting clinic")


def _unknown(what: str) -> ProblemError:
    """A body naming a clinic, room or clinician that does not exist, or not for this principal: the request is
    invalid (404 is for the resource the path names; the answer is the same whether or not the id exists)."""
    return ProblemError(422, "invalid-input", "The request is not valid", what)


class CourseController(Controller):
    path = "/v1/courses"
    tags = ["courses"]

    @post("/", operation_id="openCourse", status_code=201, summary="Open a couple's course")
    async def open_course(self, data: body(CourseCreate), principal: Principal, services: Services) -> CourseView:
        clinic_id = _clinic_of(principal)
        settings = {k: v for k, v in asdict(data.protocol).items() if v is not None} if data.protocol else {}
        if data.protocol and data.protocol.vitals_limit:
            settings["vitals_limit"] = VitalsLimit(**asdict(data.protocol.vitals_limit))
        protocol = Protocol(**settings)
        course = await services.open_course(
            lambda: Course.open(
                course_id=uuid4(),
                home_clinic_id=clinic_id,
                model=data.model,
                protocol=protocol,
                partners={"a": data.partners.a, "b": data.partners.b},
                first_dosed=data.first_dosed,
                by=principal.ref,
            )
        )
        return course_view(course)

    @get("/", operation_id="listCourses", summary="List the courses this principal may see")
    async def list_courses(
        self,
        principal: Principal,
        services: Services,
        status: str | None = Parameter(default=None, pattern="^(open|completed|discontinued)$"),
        page: int = Parameter(default=1, ge=1, le=100000),
    ) -> CoursePage:
        if principal.kind == "prescriber":
            return CoursePage(items=[], page=page, next_page=None)
        clinic = None if principal.kind == "operator" else principal.clinic_id
        rows = await services.run(lambda: services.index.list_courses(clinic, status, page))
        items = [
            CourseSummary(id=r["course_id"], home_clinic_id=r["clinic_id"], model=r["model"], status=r["status"],
                          opened_at=r["opened_at"], updated_at=r["updated_at"])
            for r in rows[:PAGE_SIZE]
        ]
        await services.directory.log_access(principal, "list_courses", None)
        return CoursePage(items=items, page=page, next_page=page + 1 if len(rows) > PAGE_SIZE else None)

    @get("/{course_id:uuid}", operation_id="getCourse", summary="A course: phase, milestones, sessions, approvals, next actions")
    async def get_course(
        self, course_id: UUID, principal: Principal, services: Services,
        as_of: int | None = Parameter(default=None, ge=1, le=2**31 - 1, description="Version to show the course as of"),
    ) -> CourseView:
        course = _owned(await services.run(lambda: services.courses.get_course(course_id, as_of)), principal)
        await services.directory.log_access(principal, "read_course", course_id)
        return course_view(course)

    @get("/{course_id:uuid}/events", operation_id="listCourseEvents", summary="The course's audit history")
    async def list_events(self, course_id: UUID, principal: Principal, services: Services) -> list[EventView]:
        events = await services.run(lambda: services.courses.history(course_id))
        if not _may_see(events[0].home_clinic_id, principal):  # the opening event names the home clinic
            raise CourseNotFoundError(course_id)
        await services.directory.log_access(principal, "read_history", course_id)
        return [event_view(e) for e in events]

    async def _execute(self, services: Services, principal: Principal, course_id: UUID, command: Any) -> Any:
        _clinic_of(principal)

        def run(course: Course) -> Any:
            return command(_owned(course, principal))

        return await services.execute(course_id, run)

    @post("/{course_id:uuid}/screenings", operation_id="recordScreening", status_code=200,
          summary="Record a partner's screening result")
    async def record_screening(
        self, course_id: UUID, data: body(ScreeningCreate), principal: Principal, services: Services
    ) -> CourseView:
        await self._clinicians(services, principal, [data.clinician_id])
        course = await self._execute(
            services, principal, course_id,
            lambda c: c.record_screening(partner=data.partner, result=data.result,
                                         clinician_id=str(data.clinician_id), notes=data.notes, by=principal.ref),
        )
        return course_view(course)

    async def _clinicians(self, services: Services, principal: Principal, ids: list[UUID],
                          host: str | None = None) -> None:
        _check_staff(await services.directory.clinicians(ids), ids, {principal.clinic_id, host})

    @post("/{course_id:uuid}/sessions", operation_id="bookSession", status_code=201, summary="Book a session")
    async def book_session(
        self, course_id: UUID, data: body(SessionCreate), principal: Principal, services: Services
    ) -> SessionView:
        home = _clinic_of(principal)
        host_id = str(data.clinic_id or home)
        clinic = await services.directory.clinic(UUID(host_id))
        if clinic is None:
            raise _unknown(f"clinic {host_id} is unknown")
        if data.room_id is not None:
            room = await services.directory.room(data.room_id)
            if room is None or str(room["clinic_id"]) != host_id:
                raise _unknown(f"room {data.room_id} is not a room of the hosting clinic")
        await self._clinicians(services, principal, data.clinician_ids, host_id)
        host = None
        if data.kind == Kind.MEDICINE.value:
            has_prescriber, partnered = await services.directory.host_facts(UUID(host_id), UUID(home))
            host = HostFacts(host_id, has_prescriber, partnered)
        session_id = str(uuid4())
        course = await self._execute(
            services, principal, course_id,
            lambda c: c.book_session(
                session_id=session_id, kind=data.kind, partners=data.partners, starts_at=data.starts_at,
                ends_at=data.ends_at, clinic_id=host_id,
                room_id=str(data.room_id) if data.room_id else None,
                clinician_ids=[str(i) for i in data.clinician_ids],
                timezone=data.timezone or clinic["timezone"], host=host, by=principal.ref,
            ),
        )
        return session_view(course.sessions[session_id])

    @post("/{course_id:uuid}/sessions/{session_id:str}/reschedule", operation_id="rescheduleSession",
          status_code=200, summary="Move a booked session")
    async def reschedule_session(
        self, course_id: UUID, session_id: SessionId, data: body(SessionReschedule), principal: Principal, services: Services
    ) -> SessionView:
        staff = await services.directory.clinicians(data.clinician_ids or [])

        def command(c: Course) -> None:
            # Staff of the home clinic or of the clinic hosting this session, which only the course knows.
            _check_staff(staff, data.clinician_ids or [], {principal.clinic_id, c.session(session_id).clinic_id})
            c.reschedule_session(
                session_id=session_id, starts_at=data.starts_at, ends_at=data.ends_at,
                room_id=str(data.room_id) if data.room_id else None,
                clinician_ids=[str(i) for i in data.clinician_ids] if data.clinician_ids is not None else None,
                by=principal.ref,
            )

        course = await self._execute(services, principal, course_id, command)
        return session_view(course.sessions[session_id])

    @post("/{course_id:uuid}/sessions/{session_id:str}/cancel", operation_id="cancelSession", status_code=200,
          summary="Cancel a booked session")
    async def cancel_session(
        self, course_id: UUID, session_id: SessionId, data: body(SessionCancel), principal: Principal, services: Services
    ) -> SessionView:
        course = await self._execute(
            services, principal, course_id,
            lambda c: c.cancel_session(session_id=session_id, reason=data.reason, by=principal.ref),
        )
        return session_view(course.sessions[session_id])

    @post("/{course_id:uuid}/sessions/{session_id:str}/confirm", operation_id="confirmSession", status_code=200,
          summary="The clinic hosting a medicine session (with its own key) confirms or declines it")
    async def confirm_session(
        self, course_id: UUID, session_id: SessionId, data: body(SessionConfirm), principal: Principal, services: Services
    ) -> HostedSessionView:
        clinic = _clinic_of(principal)

        def command(c: Course) -> None:
            if c.home_clinic_id != clinic:
                # A partner clinic sees a course only through the sessions it hosts: none, no course.
                if not any(s.clinic_id == clinic for s in c.sessions.values()):
                    raise CourseNotFoundError(c.id)
            elif c.session(session_id).clinic_id != clinic:
                raise ProblemError(403, "forbidden", "Forbidden",
                                   f"only the clinic hosting session {session_id} confirms or declines it")
            c.confirm_session(session_id=session_id, clinic_id=clinic, decision=data.decision, reason=data.reason,
                              by=principal.ref)

        course = await services.execute(course_id, command)
        return hosted_session_view(course.sessions[session_id])

    @post("/{course_id:uuid}/sessions/{session_id:str}/record", operation_id="recordSession", status_code=200,
          summary="Record what happened: held (with doses, vitals, adverse events, discharge) or missed")
    async def record_session(
        self, course_id: UUID, session_id: SessionId, data: body(SessionRecord), principal: Principal, services: Services,
        now: datetime,
    ) -> SessionView:
        if data.outcome == "missed":
            command = lambda c: c.record_missed(session_id=session_id, reason=data.reason, now=now, by=principal.ref)  # noqa: E731
        else:
            doses = [asdict(d) for d in data.doses]
            vitals = [asdict(v) for v in data.vitals]
            adverse = [asdict(a) for a in data.adverse_events]
            command = lambda c: c.record_held(  # noqa: E731
                session_id=session_id, now=now, notes=data.notes, doses=doses, vitals=vitals,
                adverse_events=adverse, discharged_at=data.discharged_at, by=principal.ref,
            )
        course = await self._execute(services, principal, course_id, command)
        return session_view(course.sessions[session_id])

    @post("/{course_id:uuid}/dose-approvals", operation_id="requestDoseApproval", status_code=201,
          summary="Ask a prescriber to approve one partner's dose for one medicine session")
    async def request_dose_approval(
        self, course_id: UUID, data: body(DoseApprovalCreate), principal: Principal, services: Services, now: datetime
    ) -> ApprovalView:
        prescriber = (await services.directory.clinicians([data.prescriber_id])).get(str(data.prescriber_id))
        if prescriber is None or prescriber["role"] != "prescriber":
            raise _unknown(f"prescriber {data.prescriber_id} is unknown")
        approval_id = approval_id_for(course_id)

        def command(c: Course) -> None:
            session = c.session(str(data.session_id))
            c.request_dose_approval(
                approval_id=approval_id, session_id=str(data.session_id), partner=data.partner,
                prescriber_id=str(data.prescriber_id), requested_mg=data.requested_mg,
                prescriber_authorised=str(prescriber["clinic_id"]) == session.clinic_id, now=now, by=principal.ref,
            )

        course = await self._execute(services, principal, course_id, command)
        return approval_view(course.id, course.approvals[approval_id])

    @post("/{course_id:uuid}/missed-windows/{session_id:str}/acknowledge", operation_id="acknowledgeMissedWindow",
          status_code=200, summary="Acknowledge a missed integration window, with a reason, to unblock dosing")
    async def acknowledge_missed_window(
        self, course_id: UUID, session_id: SessionId, data: body(Acknowledge), principal: Principal, services: Services
    ) -> CourseView:
        course = await self._execute(
            services, principal, course_id,
            lambda c: c.acknowledge_missed_window(session_id=session_id, reason=data.reason, by=principal.ref),
        )
        return course_view(course)

    @post("/{course_id:uuid}/complete", operation_id="completeCourse", status_code=200, summary="Complete the course")
    async def complete(self, course_id: UUID, principal: Principal, services: Services) -> CourseView:
        course = await self._execute(services, principal, course_id, lambda c: c.complete(by=principal.ref))
        return course_view(course)

    @post("/{course_id:uuid}/discontinue", operation_id="discontinueCourse", status_code=200,
          summary="Discontinue the course, with a reason")
    async def discontinue(
        self, course_id: UUID, data: body(Discontinue), principal: Principal, services: Services
    ) -> CourseView:
        course = await self._execute(
            services, principal, course_id, lambda c: c.discontinue(reason=data.reason, by=principal.ref)
        )
        return course_view(course)


class DoseApprovalController(Controller):
    path = "/v1/dose-approvals"
    tags = ["dose approvals"]

    @get("/", operation_id="listDoseApprovals", summary="Dose approvals addressed to this prescriber")
    async def list_approvals(
        self, principal: Principal, services: Services,
        status: str | None = Parameter(default=None, pattern="^(pending|approved|declined)$"),
    ) -> list[ApprovalView]:
        if principal.kind == "clinic":
            raise ProblemError(403, "forbidden", "Forbidden", "the approval queue is for prescribers")
        prescriber = principal.id if principal.kind == "prescriber" else None
        rows = await services.run(lambda: services.index.list_approvals(prescriber, status))
        # The queue holds ids only; the requested dose is read from the (encrypted) course itself.
        course_ids = {r["course_id"] for r in rows}
        courses = await services.run(lambda: {cid: services.courses.get_course(cid) for cid in course_ids})
        return [approval_view(r["course_id"], courses[r["course_id"]].approvals[r["approval_id"]]) for r in rows]

    @post("/{approval_id:str}/decision", operation_id="decideDoseApproval", status_code=200,
          summary="The addressed prescriber approves or declines a dose")
    async def decide(
        self, approval_id: ApprovalId, data: body(DoseApprovalDecision), principal: Principal, services: Services, now: datetime
    ) -> ApprovalView:
        course_id = course_of_approval(approval_id)
        if principal.kind != "prescriber" or course_id is None:
            raise ProblemError(404, "not-found", "Not found", f"no dose approval {approval_id}")
        # An approval addressed to someone else, or in an unknown course, is a 404 from the domain's errors.
        course = await services.execute(
            course_id,
            lambda c: c.decide_dose_approval(
                approval_id=approval_id, prescriber_id=principal.id, approve=data.approve, now=now,
                approved_mg=data.approved_mg, reason=data.reason,
                vitals_override_reason=data.vitals_override_reason, by=principal.ref,
            ),
        )
        return approval_view(course.id, course.approvals[approval_id])


def approval_id_for(course_id: UUID) -> str:
    """Approval ids name their course, so a decision finds it without waiting for the approval queue."""
    return f"apr_{course_id.hex}_{uuid4().hex[:12]}"


def course_of_approval(approval_id: str) -> UUID | None:
    prefix, _, rest = approval_id.partition("_")
    course_hex, _, suffix = rest.partition("_")
    try:
        return UUID(hex=course_hex) if prefix == "apr" and suffix else None
    except ValueError:
        return None


