"""A course's next slots and its plan: when the course's rules and every calendar allow its next session, and a
proposal for all the sessions it still needs, held or booked in one call (all or none). The home clinic asks."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from litestar import get, post
from litestar.params import Parameter, QueryParameter

from scheduler.application.availability import Preferences, weekday_numbers
from scheduler.application.handlers import Slotted
from scheduler.directory import Principal
from scheduler.domain.errors import InvalidCommandError
from scheduler.http.availability import Require
from scheduler.http.deps import Services
from scheduler.http.examples import body
from scheduler.http.schemas import (
    HoldView,
    NextSlots,
    NextSlotView,
    PlanBook,
    PlanHold,
    PlanItemView,
    PlanRequest,
    PlanView,
    SessionCreate,
    SessionView,
)
from scheduler.http.views import hold_view, session_view

TAGS = ["booking"]
PATH = "/v1/courses/{course_id:uuid}"
Kind = Literal["assessment", "preparation", "medicine", "integration"]


@get(PATH + "/next-slots", operation_id="listNextSlots", tags=TAGS,
     summary="The next slots the course's rules and the calendars allow a session of a kind in")
async def list_next_slots(
    course_id: UUID, principal: Principal, services: Services, now: datetime, kind: Kind,
    clinic_id: Annotated[UUID | None, Parameter(description="The hosting clinic (default: the home clinic)")] = None,
    first: Annotated[date | None, QueryParameter(name="from", description="The first local date (default: when "
                                                                         "the rules first allow it)")] = None,
    last: Annotated[date | None, QueryParameter(name="to", description="The last local date, included (default: "
                                                                      "two weeks, or the integration window's end)")] = None,
    duration_minutes: Annotated[int | None, Parameter(ge=15, le=720, description="Default: 180 for a medicine "
                                                                               "session, else 60")] = None,
    require: Require = None,
    step_minutes: Annotated[int, Parameter(ge=5, le=240)] = 15,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 20,
) -> NextSlots:
    slots, zone, checked = await services.availability.next_slots(
        principal, course_id, kind, clinic_id, tuple(require or ()), duration_minutes, first, last, step_minutes,
        limit, now)
    host = str(clinic_id or principal.clinic_id)
    return NextSlots(course_id=course_id, kind=kind, clinic_id=host, timezone=zone, slots=[
        NextSlotView(starts_at=s.starts_at, ends_at=s.ends_at, clinic_id=host, clinician_ids=list(s.clinician_ids),
                     room_id=s.room_id, checked=checked) for s in slots])


@post(PATH + "/plan", operation_id="planCourse", tags=TAGS, status_code=200,
      summary="Propose every session the course still needs, under its rules and every calendar")
async def plan_course(course_id: UUID, data: body(PlanRequest), principal: Principal, services: Services,
                      now: datetime) -> PlanView:
    preferences = Preferences(
        medicine_clinic_id=data.medicine_clinic_id,
        requirements={k: tuple(v) for k, v in data.require.items()},
        weekdays=weekday_numbers(data.weekdays), one_a_day=data.one_a_day, step_minutes=data.step_minutes,
        start_between=(_minutes(data.starts_between[0]), _minutes(data.starts_between[1]))
        if data.starts_between else None)
    items, zone = await services.availability.plan(principal, course_id, data.medicine_sessions, preferences, now)
    return PlanView(course_id=course_id, timezone=zone, items=[PlanItemView(
        kind=i.kind.value, partners=list(i.partners), starts_at=i.starts_at, ends_at=i.ends_at, clinic_id=i.clinic_id,
        room_id=i.room_id, clinician_ids=list(i.clinician_ids),
        follows_item=int(i.follows[5:]) if i.follows and i.follows.startswith("plan-") else None,
        follows=i.follows if i.follows and not i.follows.startswith("plan-") else None) for i in items])


@post(PATH + "/plan/hold", operation_id="holdPlan", tags=TAGS, status_code=201,
      summary="Hold every session of a plan in one call: all or none")
async def hold_plan(course_id: UUID, data: body(PlanHold), principal: Principal, services: Services,
                    now: datetime) -> list[HoldView]:
    holds = await services.scheduling.hold_plan(principal, course_id, [_slotted(i) for i in data.items], now,
                                                data.minutes)
    return [hold_view(h) for h in holds]


@post(PATH + "/plan/book", operation_id="bookPlan", tags=TAGS, status_code=201,
      summary="Book every session of a plan (or every hold of a held plan) in one call: all or none")
async def book_plan(course_id: UUID, data: body(PlanBook), principal: Principal, services: Services,
                    now: datetime) -> list[SessionView]:
    if bool(data.items) == bool(data.hold_ids):
        raise InvalidCommandError(["give either `items` (sessions to book) or `hold_ids` (holds to book)"])
    if data.hold_ids:
        sessions = await services.scheduling.book_holds(principal, course_id, list(data.hold_ids), now)
    else:
        sessions = await services.scheduling.book_plan(principal, course_id, [_slotted(i) for i in data.items], now)
    return [session_view(s) for s in sessions]


def _slotted(item: SessionCreate) -> Slotted:
    return Slotted(item.kind, tuple(item.partners), item.starts_at, item.ends_at, item.clinic_id, item.room_id,
                   tuple(item.clinician_ids), item.timezone, item.hours_override_reason)


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


ROUTES = [list_next_slots, plan_course, hold_plan, book_plan]
