"""Free slots at a clinic: when a session of a given length could be booked there, and with which clinicians and
room (the clinic, the operator, or a partner clinic whose partnership covers the kind)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from litestar import get
from litestar.params import Parameter, QueryParameter

from scheduler.application.availability import SlotQuery
from scheduler.directory import Principal
from scheduler.http.deps import Services
from scheduler.http.schemas import FreeSlotView, FreeSlots

TAGS = ["booking"]
Kind = Literal["assessment", "preparation", "medicine", "integration"]
From = Annotated[date, QueryParameter(name="from", description="The first local date (YYYY-MM-DD) in the clinic's zone")]
To = Annotated[date | None, QueryParameter(name="to", description="The last local date, included (default: `from`; "
                                                                  "at most 31 days in all)")]
Require = Annotated[list[Annotated[str, Parameter(max_length=400)]] | None, QueryParameter(
    name="require", max_items=10,
    description="One per resource the session needs: a clinician's or room's id, several ids joined by `|` (any "
                "one of them), or `prescriber`, `therapist`, `room` (any of the clinic's). Default: a prescriber "
                "and a room for a medicine session, a therapist for the others.")]


@get("/v1/clinics/{clinic_id:uuid}/free-slots", operation_id="listFreeSlots", tags=TAGS,
     summary="Times a session of a given length could be booked at the clinic, with the resources it would take")
async def list_free_slots(
    clinic_id: UUID, principal: Principal, services: Services, now: datetime, kind: Kind, first: From,
    duration_minutes: Annotated[int, Parameter(ge=15, le=720, description="The session's length")],
    last: To = None, require: Require = None,
    step_minutes: Annotated[int, Parameter(ge=5, le=240, description="The grid: start times at multiples of it "
                                                                       "from each local midnight")] = 15,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
) -> FreeSlots:
    query = SlotQuery(kind=kind, minutes=duration_minutes, first_day=first, last_day=last or first,
                      requirements=tuple(require or ()), step_minutes=step_minutes, limit=limit)
    slots, zone = await services.availability.free_slots(principal, clinic_id, query, now)
    return FreeSlots(clinic_id=clinic_id, timezone=zone, kind=kind, duration_minutes=duration_minutes,
                     slots=[FreeSlotView(starts_at=s.starts_at, ends_at=s.ends_at, clinician_ids=list(s.clinician_ids),
                                         room_id=s.room_id) for s in slots])


ROUTES = [list_free_slots]
