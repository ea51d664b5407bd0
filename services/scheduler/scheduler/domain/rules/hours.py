"""When a session may take place: its host's opening hours and closures, its clinicians' working hours.

Hours are local wall-clock times in the hosting clinic's zone, so a clinic that opens at 09:00 opens at 09:00 on
both sides of a daylight-saving change. A session is judged by the wall-clock times it actually passes through: on
the night clocks go back it passes the repeated hour twice, on the night they go forward it skips the missing one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from scheduler.domain.errors import Violation
from scheduler.domain.rules.booking import BookingRules

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# Minutes from local midnight, [start, end), 0 <= start < end <= 1440 (1440: the end of the day).
Interval = tuple[int, int]
# Intervals per weekday (0 = Monday); a weekday left out is closed that day.
Week = Mapping[int, Sequence[Interval]]
# A local date and the wall-clock span of a session on it, from that date's midnight: [start, end).
Piece = tuple[date, timedelta, timedelta]


@dataclass(frozen=True)
class Closure:
    """A clinic closed from `starts_on` to `ends_on` (local dates, both included)."""

    starts_on: date
    ends_on: date
    reason: str


@dataclass(frozen=True)
class Schedule:
    """A clinic's zone, opening hours (None: always open), closures and booking rules."""

    name: str
    timezone: str
    opening: Week | None = None
    closures: tuple[Closure, ...] = ()
    rules: BookingRules = field(default_factory=BookingRules)


@dataclass(frozen=True)
class WorkingHours:
    """A clinician's working hours in their clinic's zone (None: always available)."""

    name: str
    hours: Week | None = None


def hours_violations(clinic: Schedule, clinicians: Sequence[WorkingHours], starts_at: datetime,
                     ends_at: datetime) -> list[Violation]:
    """The opening-hours, closure and working-hours rules a session from `starts_at` to `ends_at` breaks."""
    if starts_at.tzinfo is None or ends_at.tzinfo is None or ends_at <= starts_at:
        return []  # malformed times are the course's to refuse
    if clinic.opening is None and not clinic.closures and all(c.hours is None for c in clinicians):
        return []  # nothing configured: always open, always available
    pieces = list(wall_pieces(starts_at, ends_at, ZoneInfo(clinic.timezone)))
    violations = []
    if clinic.opening is not None and (outside := _uncovered(pieces, clinic.opening)):
        violations.append(Violation("opening-hours", f"{clinic.name} is not open {outside} ({clinic.timezone}); "
                                                     f"it opens {_describe(clinic.opening, pieces)}"))
    days = sorted({day for day, _, _ in pieces})
    for closure in clinic.closures:
        if any(closure.starts_on <= day <= closure.ends_on for day in days):
            violations.append(Violation("closure", f"{clinic.name} is closed from {closure.starts_on} to "
                                                   f"{closure.ends_on}: {closure.reason}"))
    for clinician in clinicians:
        if clinician.hours is not None and (outside := _uncovered(pieces, clinician.hours)):
            violations.append(Violation("working-hours", f"{clinician.name} does not work {outside} "
                                                         f"({clinic.timezone}); works "
                                                         f"{_describe(clinician.hours, pieces)}"))
    return violations


def wall_pieces(starts_at: datetime, ends_at: datetime,
                zone: ZoneInfo) -> Iterator[Piece]:
    """The local dates and wall-clock spans (from that date's midnight, [start, end)) the session passes through."""
    starts_at, ends_at = starts_at.astimezone(timezone.utc), ends_at.astimezone(timezone.utc)  # offsets add to UTC
    for begin, end in _constant_offset_spans(starts_at, ends_at, zone):
        offset = begin.astimezone(zone).utcoffset()
        assert offset is not None
        wall, wall_end = (begin + offset).replace(tzinfo=None), (end + offset).replace(tzinfo=None)
        while wall < wall_end:  # split at each local midnight
            day = datetime.combine(wall.date(), datetime.min.time())
            until = min(wall_end, day + timedelta(days=1))
            yield wall.date(), wall - day, until - day
            wall = until


def _constant_offset_spans(starts_at: datetime, ends_at: datetime,
                           zone: ZoneInfo) -> Iterator[tuple[datetime, datetime]]:
    """[starts_at, ends_at) cut at the zone's offset changes (found by bisection, to the microsecond)."""
    def offset(at: datetime) -> timedelta | None:
        return at.astimezone(zone).utcoffset()

    last = ends_at - timedelta(microseconds=1)
    while offset(starts_at) != offset(last):
        low, high = starts_at, last  # offset(low) is the start's, offset(high) is not
        while high - low > timedelta(microseconds=1):
            middle = low + (high - low) / 2
            low, high = (middle, high) if offset(middle) == offset(starts_at) else (low, middle)
        yield starts_at, high
        starts_at = high
    yield starts_at, ends_at


def _uncovered(pieces: list[Piece], week: Week) -> str:
    """The pieces that no interval of their weekday holds whole, as local dates and times; '' if none."""
    outside = [(day, start, end) for day, start, end in pieces
               if not any(timedelta(minutes=a) <= start and end <= timedelta(minutes=b)
                          for a, b in _merged(week.get(day.weekday(), ())))]
    minute = timedelta(minutes=1)
    return ", ".join(f"on {WEEKDAYS[day.weekday()].capitalize()} {day} {_clock(start // minute)}-"
                     f"{_clock(-(-end // minute))}" for day, start, end in outside)


def _describe(week: Week, pieces: list[Piece]) -> str:
    """The intervals of the weekdays the session falls on."""
    days = sorted({day.weekday() for day, _, _ in pieces})
    return "; ".join(f"{WEEKDAYS[d].capitalize()} " + (", ".join(f"{_clock(a)}-{_clock(b)}"
                                                                 for a, b in _merged(week.get(d, ()))) or "never")
                     for d in days)


def _merged(intervals: Sequence[Interval]) -> list[Interval]:
    """Overlapping or touching intervals joined (09:00-12:00 and 12:00-17:00 hold a session at noon)."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
