"""The hosting clinic's week, and the sessions two partner clinics share (to rebook when their partnership ends)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from litestar import Controller, get
from litestar.params import QueryParameter
from msgspec import Struct

from scheduler.directory import Principal
from scheduler.http.deps import Services

Confirmation = Literal["not_needed", "pending", "confirmed", "declined"]


class HostedDose(Struct, kw_only=True):
    partner: Literal["a", "b"]
    approval_status: Literal["pending", "approved", "declined"] | None  # None: not requested yet
    approved_mg: float | None


class HostedSession(Struct, kw_only=True):
    """A session a clinic hosts for another clinic's course: what the host needs to run it, nothing more (no
    partner references, notes or records)."""

    course_id: UUID
    session_id: str
    home_clinic_id: str
    kind: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    status: str
    confirmation: Confirmation
    room_id: str | None
    clinician_ids: list[str]
    doses: list[HostedDose]  # medicine sessions: who is dosed, and the dose approved so far


class SharedSession(Struct, kw_only=True):
    """A booked session one of two partner clinics hosts for the other's course."""

    course_id: UUID
    session_id: str
    home_clinic_id: str
    host_clinic_id: str
    kind: str
    starts_at: datetime
    ends_at: datetime
    confirmation: Confirmation


class HostedSessionController(Controller):
    path = "/v1/clinics/{clinic_id:uuid}/hosted-sessions"
    tags = ["hosting"]

    @get("/", operation_id="listHostedSessions",
         summary="The sessions this clinic hosts for other clinics' courses, in a range of start times")
    async def list_hosted(
        self, clinic_id: UUID, principal: Principal, services: Services, now: datetime,
        starts_from: Annotated[datetime | None, QueryParameter(
            name="from", description="Earliest start (RFC 3339 instant); default: now")] = None,
        starts_before: Annotated[datetime | None, QueryParameter(
            name="to", description="Start before this instant; default: seven days after `from`")] = None,
    ) -> list[HostedSession]:
        sessions = await services.hosting.week(principal, clinic_id, starts_from or now, starts_before)
        return [
            HostedSession(
                course_id=s.course_id, session_id=s.session_id, home_clinic_id=s.home_clinic_id, kind=s.kind,
                starts_at=s.starts_at, ends_at=s.ends_at, timezone=s.timezone, status=s.status,
                confirmation=s.confirmation, room_id=s.room_id, clinician_ids=list(s.clinician_ids),  # type: ignore[arg-type]
                doses=[HostedDose(partner=d.partner, approval_status=d.approval_status,  # type: ignore[arg-type]
                                  approved_mg=d.approved_mg) for d in s.doses],
            )
            for s in sessions
        ]


class SharedSessionController(Controller):
    path = "/v1/partnerships/{partner_clinic_id:uuid}/sessions"
    tags = ["hosting"]

    @get("/", operation_id="listSharedSessions",
         summary="The booked sessions this clinic and a partner host for each other's courses (to rebook them)")
    async def list_shared(self, partner_clinic_id: UUID, principal: Principal,
                          services: Services) -> list[SharedSession]:
        return [SharedSession(course_id=s.course_id, session_id=s.session_id, home_clinic_id=s.home_clinic_id,
                              host_clinic_id=s.host_clinic_id, kind=s.kind, starts_at=s.starts_at, ends_at=s.ends_at,
                              confirmation=s.confirmation)  # type: ignore[arg-type]
                for s in await services.hosting.to_rebook(principal, partner_clinic_id)]
