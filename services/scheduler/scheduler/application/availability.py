"""When sessions can be booked: free slots at a clinic, the next slots a course's rules allow, and a plan of the
whole remaining course.

Free slots: the clinic itself and the operator ask; so does a partner clinic whose agreed partnership covers the
kind (it is told free times and the resources a booking would take, nothing of any course). Next slots and plans:
the course's home clinic asks. Calendars are read from the event store (exact right after a command, in any
process); the search is `domain.rules.slots` and the planner `domain.rules.planning`, both judged by the
functions a booking is judged by, so what they offer a booking accepts (unless something changed in between).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from scheduler.api_keys import Principal
from scheduler.application import access
from scheduler.application.audit import reading
from scheduler.application.calendars import CalendarIds
from scheduler.application.courses import Courses
from scheduler.application.errors import NotFoundError, UnknownReferenceError
from scheduler.domain.calendar import Calendar, Resource
from scheduler.domain.course import Course
from scheduler.domain.errors import InvalidCommandError
from scheduler.domain.model import HostFacts, Kind, SessionStatus
from scheduler.domain.rules import planning
from scheduler.domain.rules.hours import Schedule, WEEKDAYS, WorkingHours
from scheduler.domain.rules.slots import FreeSlot, Option, free_slots

MAX_DAYS = 31
ANY = {"prescriber": ("clinician", "prescriber"), "therapist": ("clinician", "therapist"), "room": ("room", None)}
LENGTH = {"assessment": 60, "preparation": 60, "integration": 60, "medicine": 180}  # minutes, unless asked
PLAN_HORIZON = timedelta(days=120)  # how far the planner looks for each session past the one before
PLAN_CHUNK = 14  # days searched at once


@dataclass(frozen=True)
class SlotQuery:
    kind: str
    minutes: int
    first_day: date
    last_day: date
    requirements: tuple[str, ...]  # "prescriber" | "therapist" | "room" | "<id>" | "<id>|<id>|..."
    step_minutes: int = 15
    limit: int = 100


@dataclass(frozen=True)
class Preferences:
    """What a plan prefers: where medicine sessions are hosted, whom each kind needs, on which weekdays and at
    which local times sessions start, and at most one session of the couple a day (the default)."""

    medicine_clinic_id: UUID | None = None
    requirements: dict[str, tuple[str, ...]] = field(default_factory=dict)  # by kind, as SlotQuery's
    weekdays: tuple[int, ...] = ()  # 0 = Monday; none: every day
    start_between: tuple[int, int] | None = None  # local minutes [from, to) a session starts in
    one_a_day: bool = True
    step_minutes: int = 30


@dataclass
class Site:
    """One clinic as the search sees it for one kind: its hours and rules, the options of each requirement."""

    clinic_id: str
    schedule: Schedule
    picks: list[list[tuple[str, str]]]
    staff_hours: dict[str, WorkingHours]
    partner_hosted: bool  # hosting a medicine session for a partner: its daily cap applies

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.schedule.timezone)


class Availability:
    def __init__(self, courses: Courses, directory: Any, calendars: CalendarIds,
                 in_thread: Callable[[Callable[[], Any]], Awaitable[Any]]) -> None:
        self.courses, self.directory, self.calendars, self.in_thread = courses, directory, calendars, in_thread

    # Each search reads calendars (and, but for free slots, the course): each is a read in the access log.

    async def free_slots(self, principal: Principal, clinic_id: UUID, query: SlotQuery,
                         now: datetime) -> tuple[list[FreeSlot], str]:
        """The free slots, and the clinic's zone they are shown in (they show nothing of any course)."""
        async with reading(self.directory, principal, "list_free_slots"):
            return await self._free_slots(principal, clinic_id, query, now)

    async def next_slots(self, principal: Principal, course_id: UUID, kind: str, clinic_id: UUID | None,
                         requirements: tuple[str, ...], minutes: int | None, first_day: date | None,
                         last_day: date | None, step_minutes: int, limit: int,
                         now: datetime) -> tuple[list[FreeSlot], str, list[str]]:
        """The next slots the course's rules allow a session of `kind` in (at its home clinic, or `clinic_id`):
        the slots, the zone they are shown in, and the rules each was checked against."""
        async with reading(self.directory, principal, "list_next_slots", course_id):
            return await self._next_slots(principal, course_id, kind, clinic_id, requirements, minutes, first_day,
                                          last_day, step_minutes, limit, now)

    async def plan(self, principal: Principal, course_id: UUID, medicine_sessions: int | None,
                   preferences: Preferences, now: datetime) -> tuple[list[planning.Placed], str]:
        """A proposal for every session the course still needs, earliest first within the preferences: each
        judged by the course's rules beside the ones before it and by every calendar (the plan's own sessions
        included). Nothing is booked or held."""
        async with reading(self.directory, principal, "plan_course", course_id):
            return await self._plan(principal, course_id, medicine_sessions, preferences, now)

    # ------------------------------------------------------------ free slots

    async def _free_slots(self, principal: Principal, clinic_id: UUID, query: SlotQuery,
                          now: datetime) -> tuple[list[FreeSlot], str]:
        clinic = await self.directory.clinic(clinic_id)
        host = str(clinic_id)
        if clinic is None or principal.kind == "prescriber":
            raise NotFoundError("clinic", clinic_id)
        home = principal.clinic_id if principal.kind == "clinic" else None
        if home is not None and home != host and not (await self.directory.host_facts(
                clinic_id, UUID(home), query.kind))[1]:
            raise NotFoundError("clinic", clinic_id)  # no partnership covering the kind: the clinic does not exist
        _check(query)
        site = await self._site(clinic_id, query.kind, query.requirements, home)

        def search() -> list[FreeSlot]:
            return free_slots(kind=query.kind, length=timedelta(minutes=query.minutes), schedule=site.schedule,
                              requirements=self._options(site, {}), first_day=query.first_day,
                              last_day=query.last_day, step_minutes=query.step_minutes, now=now, limit=query.limit,
                              ledger=self._ledger(site, {}))

        return await self.in_thread(search), site.schedule.timezone

    # ------------------------------------------------------------ next slots

    async def _next_slots(self, principal: Principal, course_id: UUID, kind: str, clinic_id: UUID | None,
                          requirements: tuple[str, ...], minutes: int | None, first_day: date | None,
                          last_day: date | None, step_minutes: int, limit: int,
                          now: datetime) -> tuple[list[FreeSlot], str, list[str]]:
        home = access.clinic_of(principal)
        course = access.owned(await self.in_thread(lambda: self.courses.get_course(course_id)), principal)
        host_id = str(clinic_id or home)
        if await self.directory.clinic(UUID(host_id)) is None:
            raise UnknownReferenceError(f"clinic {host_id} is unknown")
        host = await self._host_facts(host_id, home, kind)
        site = await self._site(UUID(host_id), kind, requirements, home)
        zone = site.zone
        earliest = max(now, planning.earliest_start(course, Kind(kind)))
        first = first_day or earliest.astimezone(zone).date()
        deadline = _deadline(course, Kind(kind))
        last = last_day or min(first + timedelta(days=13),
                               deadline.astimezone(zone).date() if deadline else first + timedelta(days=13))
        query = SlotQuery(kind, minutes or LENGTH[kind], first, max(first, last), requirements, step_minutes, limit)
        _check(query)

        def search() -> list[FreeSlot]:
            partners = self._partner_calendars(course)

            def allowed(starts_at: datetime, ends_at: datetime) -> bool:
                return not course.booking_violations(Kind(kind), starts_at, ends_at, host_id, host, now)[0] and all(
                    c.clash(starts_at, ends_at, other_courses_than=str(course.id), now=now) is None for c in partners)

            return free_slots(kind=kind, length=timedelta(minutes=query.minutes), schedule=site.schedule,
                              requirements=self._options(site, {}), first_day=query.first_day,
                              last_day=query.last_day, step_minutes=step_minutes, now=now, limit=limit,
                              ledger=self._ledger(site, {}), course_id=str(course.id), also=allowed,
                              not_before=earliest)

        return await self.in_thread(search), site.schedule.timezone, checked_rules(kind, site.partner_hosted)

    # ------------------------------------------------------------------ plan

    async def _plan(self, principal: Principal, course_id: UUID, medicine_sessions: int | None,
                    preferences: Preferences, now: datetime) -> tuple[list[planning.Placed], str]:
        home = access.clinic_of(principal)
        course = access.owned(await self.in_thread(lambda: self.courses.get_course(course_id)), principal)
        wanted = medicine_sessions or course.protocol.max_medicine_sessions
        kinds = {n.kind.value for n in planning.needs(course, wanted)}
        sites: dict[str, Site] = {}
        hosts: dict[str, HostFacts | None] = {}
        for kind in kinds:
            host_id = str(preferences.medicine_clinic_id or home) if kind == "medicine" else home
            if await self.directory.clinic(UUID(host_id)) is None:
                raise UnknownReferenceError(f"clinic {host_id} is unknown")
            hosts[kind] = await self._host_facts(host_id, home, kind)
            sites[kind] = await self._site(UUID(host_id), kind, preferences.requirements.get(kind, ()), home)
        home_zone = ZoneInfo((await self.directory.clinic(UUID(home)))["timezone"])

        def planned() -> list[planning.Placed]:
            calendars: dict[str, Calendar] = {}  # scratch copies: the plan's own sessions are reserved in them
            partners = self._partner_calendars(course)

            def find(need: planning.Need, earliest: datetime, scratch: Course) -> Any:
                site = sites[need.kind.value]
                zone = site.zone
                if preferences.one_a_day and scratch.sessions:
                    last = max((s for s in scratch.sessions.values() if s.status is not SessionStatus.CANCELLED),
                               key=lambda s: s.starts_at, default=None)
                    if last is not None and last.id.startswith("plan-"):
                        earliest = max(earliest, _next_midnight(last.starts_at, home_zone))

                def allowed(starts_at: datetime, ends_at: datetime) -> bool:
                    local = starts_at.astimezone(zone)
                    if preferences.weekdays and local.weekday() not in preferences.weekdays:
                        return False
                    if preferences.start_between is not None:
                        minute = local.hour * 60 + local.minute
                        if not preferences.start_between[0] <= minute < preferences.start_between[1]:
                            return False
                    return not scratch.booking_violations(need.kind, starts_at, ends_at, site.clinic_id,
                                                          hosts[need.kind.value], now)[0] and all(
                        c.clash(starts_at, ends_at, other_courses_than=str(course.id), now=now) is None
                        for c in partners)

                day = earliest.astimezone(zone).date()
                until = (earliest + PLAN_HORIZON).astimezone(zone).date()
                while day <= until:
                    found = free_slots(
                        kind=need.kind.value, length=timedelta(minutes=LENGTH[need.kind.value]),
                        schedule=site.schedule, requirements=self._options(site, calendars), first_day=day,
                        last_day=min(until, day + timedelta(days=PLAN_CHUNK - 1)),
                        step_minutes=preferences.step_minutes, now=now, limit=1,
                        ledger=self._ledger(site, calendars), course_id=str(course.id), also=allowed,
                        not_before=earliest)
                    if found:
                        slot = found[0]
                        start, end = slot.starts_at.astimezone(timezone.utc), slot.ends_at.astimezone(timezone.utc)
                        before, after = site.schedule.rules.buffer(need.kind.value)
                        taken = [calendars[i] for i in (*slot.clinician_ids, *([slot.room_id] if slot.room_id else []))]
                        ledger = self._ledger(site, calendars)
                        for calendar in [*taken, *([ledger] if ledger is not None else [])]:
                            buffered = calendar is not ledger
                            calendar.reserve(
                                course_id=str(course.id), session_id=f"plan-{start.isoformat()}", starts_at=start,
                                ends_at=end, label="plan", before=before if buffered else timedelta(0),
                                after=after if buffered else timedelta(0), kind=need.kind.value)
                        return start, end, site.clinic_id, slot.room_id, slot.clinician_ids
                    day += timedelta(days=PLAN_CHUNK)
                return None

            return [replace(item, starts_at=item.starts_at.astimezone(sites[item.kind.value].zone),
                            ends_at=item.ends_at.astimezone(sites[item.kind.value].zone))
                    for item in planning.plan(course, wanted, now, find)]  # shown in each host's zone

        return await self.in_thread(planned), home_zone.key

    # --------------------------------------------------------------- helpers

    async def _site(self, clinic_id: UUID, kind: str, requirements: Sequence[str], home: str | None) -> Site:
        staff = await self.directory.clinic_clinicians(clinic_id)
        rooms = await self.directory.clinic_rooms(clinic_id)
        picks = [_resolve(r, staff, rooms) for r in requirements or _default(kind, rooms)]
        clinician_ids = sorted({UUID(i) for pick in picks for k, i in pick if k == "clinician"})
        schedule, staff_hours = await self.directory.hours_of(clinic_id, clinician_ids)
        partner_hosted = home is not None and home != str(clinic_id) and kind == "medicine"
        return Site(str(clinic_id), schedule, picks, staff_hours, partner_hosted)

    async def _host_facts(self, host_id: str, home_id: str, kind: str) -> HostFacts | None:
        if kind != Kind.MEDICINE.value and host_id == home_id:
            return None
        has_prescriber, partnered = await self.directory.host_facts(UUID(host_id), UUID(home_id), kind)
        return HostFacts(host_id, has_prescriber, partnered)

    def _calendar(self, kind: str, resource_id: str, loaded: dict[str, Calendar]) -> Calendar:
        if resource_id not in loaded:
            cid = self.calendars.clinician(resource_id) if kind == "clinician" else self.calendars.room(resource_id)
            found = self.courses.get_calendar(cid)
            loaded[resource_id] = copy.deepcopy(found) if found is not None else Calendar.open(cid, Resource(kind))
        return loaded[resource_id]

    def _options(self, site: Site, loaded: dict[str, Calendar]) -> list[list[Option]]:
        return [[Option(Resource(kind), i, self._calendar(kind, i, loaded), site.staff_hours.get(i))
                 for kind, i in pick] for pick in site.picks]

    def _ledger(self, site: Site, loaded: dict[str, Calendar]) -> Calendar | None:
        if not site.partner_hosted:
            return None
        key = f"host:{site.clinic_id}"
        if key not in loaded:
            ledger_id = self.calendars.host(site.clinic_id)
            found = self.courses.get_calendar(ledger_id)
            loaded[key] = copy.deepcopy(found) if found is not None else Calendar.open(ledger_id, Resource.HOST)
        return loaded[key]

    def _partner_calendars(self, course: Course) -> list[Calendar]:
        """The couple's calendars where they hold other courses' sessions (one held by this course alone holds
        nothing: the course keeps its own sessions apart)."""
        found = []
        for reference in course.partners.values():
            calendar = self.courses.get_calendar(self.calendars.partner(course.home_clinic_id, reference))
            if calendar is not None and not calendar.exclusive_to(str(course.id)):
                found.append(calendar)
        return found


def checked_rules(kind: str, partner_hosted: bool) -> list[str]:
    """The rules a slot offered for a course was judged by (docs/RULES.md and the problem types)."""
    course = {"assessment": ["I10", "I11"], "preparation": ["I10", "I11"],
              "medicine": ["I2", "I5", "I10", "I11"], "integration": ["I1", "I4", "I10", "I11"]}[kind]
    clinic = ["opening-hours", "closure", "working-hours", "min-notice", "booking-horizon", "buffers",
              "clinician-daily-limit", "clinician-weekly-limit"]
    return course + clinic + (["partner-medicine-daily-cap"] if partner_hosted else [])


def _deadline(course: Course, kind: Kind) -> datetime | None:
    """The end of the integration window (I4) while the latest medicine session has no integration session."""
    if kind is not Kind.INTEGRATION:
        return None
    medicine = [s for s in course.sessions.values() if s.kind is Kind.MEDICINE and s.active and not s.not_dosed]
    if not medicine:
        return None
    latest = max(medicine, key=lambda s: s.starts_at)
    if any(s.follows == latest.id and s.active for s in course.sessions.values()):
        return None
    return course.window_deadline(latest)


def _next_midnight(at: datetime, zone: ZoneInfo) -> datetime:
    day = at.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(day, time(0), zone).astimezone(timezone.utc)


def _check(query: SlotQuery) -> None:
    problems = []
    if query.last_day < query.first_day:
        problems.append("`to` must not be before `from`")
    elif (query.last_day - query.first_day).days >= MAX_DAYS:
        problems.append(f"a search spans at most {MAX_DAYS} days")
    if len(query.requirements) > 10:
        problems.append("at most 10 requirements")
    if problems:
        raise InvalidCommandError(problems)


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


def weekday_numbers(names: Sequence[str]) -> tuple[int, ...]:
    return tuple(WEEKDAYS.index(n) for n in names)
