"""Calendars of clinicians and rooms by local day or ISO week, read from the course index (the operator or the
clinic of the clinician or room; to anyone else they do not exist)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from litestar import get
from litestar.params import Parameter, QueryParameter

from scheduler.application.reads import CalendarDay
from scheduler.directory import Principal
from scheduler.http.deps import Services
from scheduler.http.schemas import CalendarEntryView, CalendarView

TAGS = ["calendars"]
CLINICIAN = "/v1/clinicians/{clinician_id:uuid}/calendar"
ROOM = "/v1/clinics/{clinic_id:uuid}/rooms/{room_id:uuid}/calendar"
View = Literal["day", "week"]
VIEW = Parameter(default="week", description="`day`: the local day of `date`; `week`: its ISO week (Monday start)")
Day = Annotated[date | None, QueryParameter(
    name="date", description="A date (YYYY-MM-DD) in the clinic's zone; default: today there")]
CANCELLED = Parameter(default=False, description="Show cancelled sessions too")


def _view(found: CalendarDay) -> CalendarView:
    return CalendarView(
        resource=found.resource, resource_id=found.resource_id, clinic_id=found.clinic_id,  # type: ignore[arg-type]
        timezone=found.timezone, view=found.view, starts_at=found.period.starts_at, ends_at=found.period.ends_at,
        hours=found.period.hours,
        entries=[CalendarEntryView(
            session_id=e.session_id, course_id=e.course_id, kind=e.kind, starts_at=e.starts_at, ends_at=e.ends_at,
            clinic_id=e.clinic_id, room_id=e.room_id, clinician_ids=list(e.clinician_ids),
            status=e.status, confirmation=e.confirmation)  # type: ignore[arg-type]
            for e in found.entries])


@get(CLINICIAN, operation_id="getClinicianCalendar", tags=TAGS,
     summary="A clinician's sessions in a local day or ISO week of its clinic's time zone")
async def clinician_calendar(clinician_id: UUID, principal: Principal, services: Services, now: datetime,
                             view: View = VIEW, day: Day = None,
                             include_cancelled: bool = CANCELLED) -> CalendarView:
    return _view(await services.reads.calendar(principal, "clinician", clinician_id, None, view,
                                               day, now, include_cancelled))


@get(ROOM, operation_id="getRoomCalendar", tags=TAGS,
     summary="A room's sessions in a local day or ISO week of its clinic's time zone")
async def room_calendar(clinic_id: UUID, room_id: UUID, principal: Principal, services: Services, now: datetime,
                        view: View = VIEW, day: Day = None, include_cancelled: bool = CANCELLED) -> CalendarView:
    return _view(await services.reads.calendar(principal, "room", room_id, clinic_id, view, day, now,
                                               include_cancelled))


ROUTES = [clinician_calendar, room_calendar]
