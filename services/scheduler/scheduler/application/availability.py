"""Free slots at a clinic: which times a session could be booked there, with which of its clinicians and rooms.

The clinic itself and the operator ask; so does a partner clinic whose agreed partnership covers the kind (it is
told free times and the resources a booking would take, nothing of any course). The calendars are read from the
event store (exact right after a command, in any process); the search itself is `domain.rules.slots`, judged by
the rules a booking is judged by.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from scheduler.api_keys import Principal
from scheduler.application.calendars import CalendarIds
from scheduler.application.courses import Courses
from scheduler.application.errors import NotFoundError, UnknownReferenceError
from scheduler.domain.calendar import Calendar, Resource
from scheduler.domain.errors import InvalidCommandError
from scheduler.domain.rules.slots import FreeSlot, Option, free_slots

MAX_DAYS = 31
ANY = {"prescriber": ("clinician", "prescriber"), "therapist": ("clinician", "therapist"), "room": ("room", None)}


@dataclass(frozen=True)
class SlotQuery:
    kind: str
    minutes: int
    first_day: date
    last_day: date
    requirements: tuple[str, ...]  # "prescriber" | "therapist" | "room" | "<id>" | "<id>|<id>|..."
    step_minutes: int = 15
    limit: int = 100


class Availability:
    def __init__(self, courses: Courses, directory: Any, calendars: CalendarIds,
                 in_thread: Callable[[Callable[[], Any]], Awaitable[Any]]) -> None:
        self.courses, self.directory, self.calendars, self.in_thread = courses, directory, calendars, in_thread

    async def free_slots(self, principal: Principal, clinic_id: UUID, query: SlotQuery,
                         now: datetime) -> tuple[list[FreeSlot], str]:
        """The free slots, and the clinic's zone they are shown in."""
        clinic = await self.directory.clinic(clinic_id)
        host = str(clinic_id)
        if clinic is None or principal.kind == "prescriber":
            raise NotFoundError("clinic", clinic_id)
        home = principal.clinic_id if principal.kind == "clinic" else None
        if home is not None and home != host and not (await self.directory.host_facts(
                clinic_id, UUID(home), query.kind))[1]:
            raise NotFoundError("clinic", clinic_id)  # no partnership covering the kind: the clinic does not exist
        problems = _problems(query)
        if problems:
            raise InvalidCommandError(problems)
        staff = await self.directory.clinic_clinicians(clinic_id)
        rooms = await self.directory.clinic_rooms(clinic_id)
        picks = [_resolve(r, staff, rooms) for r in query.requirements or _default(query.kind, rooms)]
        clinician_ids = sorted({UUID(i) for pick in picks for kind, i in pick if kind == "clinician"})
        schedule, staff_hours = await self.directory.hours_of(clinic_id, clinician_ids)
        partner_hosted = home is not None and home != host and query.kind == "medicine"

        def search() -> list[FreeSlot]:
            loaded: dict[str, Calendar] = {}

            def calendar(kind: str, resource_id: str) -> Calendar:
                if resource_id not in loaded:
                    cid = self.calendars.clinician(resource_id) if kind == "clinician" else \
                        self.calendars.room(resource_id)
                    loaded[resource_id] = self.courses.get_calendar(cid) or \
                        Calendar.open(cid, Resource(kind))
                return loaded[resource_id]

            requirements = [[Option(Resource(kind), i, calendar(kind, i), staff_hours.get(i)) for kind, i in pick]
                            for pick in picks]
            ledger = None
            if partner_hosted:
                ledger_id = self.calendars.host(host)
                ledger = self.courses.get_calendar(ledger_id) or Calendar.open(ledger_id, Resource.HOST)
            return free_slots(kind=query.kind, length=timedelta(minutes=query.minutes), schedule=schedule,
                              requirements=requirements, first_day=query.first_day, last_day=query.last_day,
                              step_minutes=query.step_minutes, now=now, limit=query.limit, ledger=ledger)

        return await self.in_thread(search), schedule.timezone


def _problems(query: SlotQuery) -> list[str]:
    problems = []
    if query.last_day < query.first_day:
        problems.append("`to` must not be before `from`")
    elif (query.last_day - query.first_day).days >= MAX_DAYS:
        problems.append(f"a search spans at most {MAX_DAYS} days")
    if len(query.requirements) > 10:
        problems.append("at most 10 requirements")
    return problems


def _default(kind: str, rooms: list[dict[str, Any]]) -> tuple[str, ...]:
    """Without requirements: any prescriber (and any room, if the clinic has rooms) for a medicine session, any
    therapist for the others."""
    if kind == "medicine":
        return ("prescriber", "room") if rooms else ("prescriber",)
    return ("therapist",)


def _resolve(requirement: str, staff: list[dict[str, Any]], rooms: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (resource kind, id) options of one requirement, in order: any of a role or of the rooms, or the ids
    named (each a clinician or room of the clinic)."""
    if requirement in ANY:
        kind, role = ANY[requirement]
        found = [("clinician", str(c["id"])) for c in staff if c["role"] == role] if kind == "clinician" else \
            [("room", str(r["id"])) for r in rooms]
        if not found:
            raise UnknownReferenceError(f"the clinic has no {requirement}")
        return found
    clinicians = {str(c["id"]) for c in staff}
    room_ids = {str(r["id"]) for r in rooms}
    options = []
    for part in requirement.split("|"):
        part = part.strip().lower()
        if part in clinicians:
            options.append(("clinician", part))
        elif part in room_ids:
            options.append(("room", part))
        else:
            raise UnknownReferenceError(f"{part or 'an empty id'} is not a clinician or room of the clinic")
    return options
