"""Free slots: the start times, on a grid anchored in the hosting clinic's zone, at which a session of a given
length could be booked with one resource from each requirement ("this clinician", "any one of these rooms").

Every candidate is judged by the functions a booking is judged by (`booking`, `hours`), so a slot offered is a slot
a booking accepts. The grid counts minutes from each local midnight: a slot offered at 10:00 is at 10:00 on both
sides of a daylight-saving change; a wall-clock time the change skips is not offered, one it repeats is offered
twice (two instants).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from scheduler.domain.calendar import Calendar, Resource
from scheduler.domain.errors import Violation
from scheduler.domain.rules import booking
from scheduler.domain.rules.hours import Schedule, WorkingHours, hours_violations


@dataclass(frozen=True)
class Option:
    """One clinician or room that could fill a requirement, with its calendar (and a clinician's working hours)."""

    resource: Resource
    id: str
    calendar: Calendar
    hours: WorkingHours | None = None

    @property
    def label(self) -> str:
        return f"{self.resource.value} {self.id}"


Requirement = Sequence[Option]  # any one of these, the first free in this order


@dataclass(frozen=True)
class FreeSlot:
    starts_at: datetime  # in the clinic's zone, with its offset
    ends_at: datetime
    clinician_ids: tuple[str, ...]
    room_id: str | None


def grid(zone: ZoneInfo, first_day: date, last_day: date, step_minutes: int) -> Iterator[datetime]:
    """Every local wall-clock time from `first_day` to `last_day` (both included) at a multiple of the step from
    local midnight, as instants (UTC) in order; skipped times left out, repeated ones twice."""
    day = first_day
    while day <= last_day:
        seen: list[datetime] = []
        for minute in range(0, 24 * 60, step_minutes):
            wall = datetime.combine(day, time(minute // 60, minute % 60))
            for fold in (0, 1):
                at = wall.replace(tzinfo=zone, fold=fold)
                instant = at.astimezone(timezone.utc)
                if instant.astimezone(zone).replace(tzinfo=None) == wall and instant not in seen:
                    seen.append(instant)
        yield from sorted(seen)
        day += timedelta(days=1)


def free_slots(*, kind: str, length: timedelta, schedule: Schedule, requirements: Sequence[Requirement],
               first_day: date, last_day: date, step_minutes: int, now: datetime, limit: int,
               ledger: Calendar | None = None, course_id: str = "",
               also: Callable[[datetime, datetime], bool] | None = None,
               not_before: datetime | None = None) -> list[FreeSlot]:
    """The first `limit` free slots, judged at `now` (when a booking would be made), none starting before `now` or
    `not_before`. `ledger`: the host's ledger, when it hosts for a partner clinic (its daily medicine cap); `also`:
    a further test of a candidate (a course's own rules), after the clinic's."""
    first = max(now, not_before) if not_before is not None else now
    zone = ZoneInfo(schedule.timezone)
    bare = Schedule(schedule.name, schedule.timezone)  # a clinician's working hours alone
    found: list[FreeSlot] = []
    for starts_at in grid(zone, first_day, last_day, step_minutes):
        if len(found) >= limit:
            break
        ends_at = starts_at + length  # elapsed time: both in UTC
        if starts_at < first:
            continue
        chosen = _accepted(kind, starts_at, ends_at, schedule, bare, requirements, now, ledger, course_id)
        if chosen is None or (also is not None and not also(starts_at, ends_at)):
            continue
        found.append(FreeSlot(starts_at.astimezone(zone), ends_at.astimezone(zone),
                              tuple(o.id for o in chosen if o.resource is Resource.CLINICIAN),
                              next((o.id for o in chosen if o.resource is Resource.ROOM), None)))
    return found


def _accepted(kind: str, starts_at: datetime, ends_at: datetime, schedule: Schedule, bare: Schedule,
              requirements: Sequence[Requirement], now: datetime, ledger: Calendar | None,
              course_id: str) -> list[Option] | None:
    """The resources a booking at this time would take (one per requirement), if it would be accepted."""
    rules, zone = schedule.rules, ZoneInfo(schedule.timezone)
    if booking.timing_violations(rules, schedule.name, starts_at, now):
        return None
    if hours_violations(schedule, [], starts_at, ends_at):  # opening hours and closures
        return None
    slot = booking.Candidate(course_id, kind, starts_at, ends_at)
    if ledger is not None and booking.hosted_violations(rules, ledger, schedule.name, slot, zone, now):
        return None
    chosen: list[Option] = []
    for requirement in requirements:
        taken = {o.id for o in chosen}
        option = next((o for o in requirement if o.id not in taken and _free(o, slot, rules, bare, zone, now)),
                      None)
        if option is None:
            return None
        chosen.append(option)
    return chosen


def _free(option: Option, slot: booking.Candidate, rules: booking.BookingRules, bare: Schedule, zone: ZoneInfo,
          now: datetime) -> bool:
    broken: list[Violation] = booking.resource_violations(rules, option.calendar, option.label, slot, zone, now)
    if not broken and option.hours is not None:
        broken = hours_violations(bare, [option.hours], slot.starts_at, slot.ends_at)
    return not broken
