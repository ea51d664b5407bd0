"""Reads of a clinic's week from the course index: the course list (filtered, a cursor to the next page) and the
calendars of clinicians and rooms by local day and ISO week. Each waits for the index to hold every write committed
before it (`freshness`), so a read right after a command shows it; each is written to the access log
(`audit.reading`)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, Protocol
from uuid import UUID
from zoneinfo import ZoneInfo

from scheduler.api_keys import Principal
from scheduler.application.audit import reading
from scheduler.application.calendar_feeds import managed_resource
from scheduler.application.handlers import Directory
from scheduler.domain.errors import InvalidCommandError
from scheduler.readmodels.course_index import CourseQuery

Row = dict[str, Any]
View = Literal["day", "week"]
MAX_LIMIT = 200
FIRST_YEAR, LAST_YEAR = 2000, 2099  # as every instant the API takes (near year 1 or 9999 an offset overflows)
CURSOR_VERSION = 1


class WeekIndex(Protocol):
    def find_courses(self, query: CourseQuery) -> list[Row]: ...

    def calendar(self, resource: str, resource_id: str, starts_before: datetime, ends_after: datetime,
                 include_cancelled: bool = False) -> list[Row]: ...


@dataclass(frozen=True)
class Period:
    """A local day or ISO week (Monday to Monday) in a time zone, as the instants it starts and ends at."""

    starts_at: datetime  # local, with the zone: its UTC offset is that of the start
    ends_at: datetime

    @property
    def hours(self) -> float:
        """Elapsed hours: 23 or 25 for a day, 167 or 169 for a week across a daylight-saving change."""
        # In UTC: between two datetimes of one zone, Python subtracts wall-clock times.
        return (self.ends_at.astimezone(UTC) - self.starts_at.astimezone(UTC)).total_seconds() / 3600


def period_of(view: View, day: date, zone: ZoneInfo) -> Period:
    """The local day of `day`, or the ISO week holding it, in `zone`. Each bound is the local midnight (aware
    arithmetic on the date, then the zone: elapsed time comes out as the changes make it); a midnight that does
    not exist (a change at 00:00) is the first instant after it, as zoneinfo resolves fold 0."""
    first = day - timedelta(days=day.weekday()) if view == "week" else day
    last = first + timedelta(days=7 if view == "week" else 1)
    return Period(_midnight(first, zone), _midnight(last, zone))


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    local = datetime.combine(day, time(0), tzinfo=zone)
    # A gap at midnight (e.g. America/Santiago): the wall clock skips it; take the instant the day starts at.
    return local.astimezone(UTC).astimezone(zone)


@dataclass(frozen=True)
class Cursor:
    """Where the next page of the course list starts: after this course in (opened_at desc, id) order."""

    opened_at: datetime
    course_id: UUID


def encode_cursor(cursor: Cursor) -> str:
    """Opaque to clients: base64url of a small versioned JSON document, without padding."""
    raw = json.dumps({"v": CURSOR_VERSION, "o": cursor.opened_at.isoformat(), "c": str(cursor.course_id)},
                     separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(text: str) -> Cursor:
    """The cursor a page answered with; anything else is invalid input (InvalidCommandError)."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION:
            raise ValueError("unknown cursor version")
        opened_at = datetime.fromisoformat(data["o"])
        if opened_at.tzinfo is None:
            raise ValueError("a cursor's instant has an offset")
        return Cursor(opened_at, UUID(data["c"]))
    except (binascii.Error, ValueError, UnicodeDecodeError, KeyError, TypeError):
        raise InvalidCommandError(["cursor is not one this API answered with (use next_cursor as given)"]) from None


@dataclass(frozen=True)
class CoursePage:
    rows: list[Row]
    next_cursor: str | None
    page: int | None  # the older page numbers: None once a cursor is followed
    next_page: int | None


@dataclass(frozen=True)
class CourseFilter:
    status: str | None = None
    phase: str | None = None
    clinician_id: UUID | None = None
    next_session_from: datetime | None = None
    next_session_before: datetime | None = None


@dataclass(frozen=True)
class CalendarEntry:
    """A session as a calendar shows it: scheduling facts only (never partners, notes or records), its times in
    the clinic's zone."""

    session_id: str
    course_id: UUID
    kind: str
    starts_at: datetime
    ends_at: datetime
    clinic_id: str
    room_id: str | None
    clinician_ids: tuple[str, ...]
    status: str
    confirmation: str


@dataclass(frozen=True)
class CalendarDay:
    resource: str
    resource_id: UUID
    clinic_id: UUID
    timezone: str
    view: View
    period: Period
    entries: list[CalendarEntry]


class Reads:
    """The index's reads for people: each waits for the index to hold what was written before it (`fresh`)."""

    def __init__(self, index: WeekIndex, directory: Directory, fresh: Callable[[], Awaitable[None]],
                 in_thread: Callable[[Callable[[], Any]], Awaitable[Any]]) -> None:
        self.index, self.directory, self.fresh, self.in_thread = index, directory, fresh, in_thread

    async def courses(self, principal: Principal, filters: CourseFilter, *, cursor: str | None, page: int | None,
                      limit: int) -> CoursePage:
        """A page of the courses the principal sees (a clinic: its own; the operator: all; a prescriber: none)."""
        async with reading(self.directory, principal, "list_courses") as read:
            found = await self._courses(principal, filters, cursor=cursor, page=page, limit=limit)
            read.show(r["course_id"] for r in found.rows)
            return found

    async def _courses(self, principal: Principal, filters: CourseFilter, *, cursor: str | None, page: int | None,
                       limit: int) -> CoursePage:
        if cursor is not None and page is not None:
            raise InvalidCommandError(["give either cursor or page, not both (page is kept for older clients)"])
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidCommandError([f"limit must be from 1 to {MAX_LIMIT}"])
        for at in (filters.next_session_from, filters.next_session_before):
            if at is not None and (at.tzinfo is None or not FIRST_YEAR <= at.year <= LAST_YEAR):
                raise InvalidCommandError([f"next_session_from and next_session_before are instants with a UTC "
                                           f"offset, in the years {FIRST_YEAR} to {LAST_YEAR}"])
        after = decode_cursor(cursor) if cursor is not None else None
        if after is None and page is None:  # the first page: numbered too, for clients that follow next_page
            page = 1
        if principal.kind == "prescriber":
            return CoursePage([], None, page, None)
        query = CourseQuery(
            clinic_id=None if principal.kind == "operator" else principal.clinic_id, status=filters.status,
            phase=filters.phase, clinician_id=str(filters.clinician_id) if filters.clinician_id else None,
            next_session_from=filters.next_session_from, next_session_before=filters.next_session_before,
            after=(after.opened_at, after.course_id) if after else None,
            offset=(page - 1) * limit if page is not None else 0, limit=limit)
        await self.fresh()
        rows: list[Row] = await self.in_thread(lambda: self.index.find_courses(query))
        shown, more = rows[:limit], len(rows) > limit
        next_cursor = encode_cursor(Cursor(shown[-1]["opened_at"], shown[-1]["course_id"])) if more else None
        return CoursePage(shown, next_cursor, page, page + 1 if more and page is not None else None)

    async def calendar(self, principal: Principal, resource: str, resource_id: UUID, clinic_id: UUID | None,
                       view: View, day: date | None, now: datetime, include_cancelled: bool = False) -> CalendarDay:
        """The sessions of a clinician or a room in a local day or ISO week of its clinic's zone (the one holding
        `day`, else `now`), those that overlap it included, by start. The clinic of the clinician or room (or the
        operator) reads it; to anyone else it does not exist."""
        async with reading(self.directory, principal, f"read_{resource}_calendar") as read:
            found = await self._calendar(principal, resource, resource_id, clinic_id, view, day, now,
                                         include_cancelled)
            read.show(e.course_id for e in found.entries)
            return found

    async def _calendar(self, principal: Principal, resource: str, resource_id: UUID, clinic_id: UUID | None,
                        view: View, day: date | None, now: datetime, include_cancelled: bool) -> CalendarDay:
        if day is not None and not FIRST_YEAR <= day.year <= LAST_YEAR:
            raise InvalidCommandError([f"date must lie in the years {FIRST_YEAR} to {LAST_YEAR}"])
        owner = await managed_resource(self.directory, principal, resource, resource_id, clinic_id)
        clinic = await self.directory.clinic(owner)
        zone = ZoneInfo(clinic["timezone"] if clinic else "UTC")
        day = day if day is not None else now.astimezone(zone).date()
        period = period_of(view, day, zone)
        await self.fresh()
        rows: list[Row] = await self.in_thread(lambda: self.index.calendar(
            resource, str(resource_id), period.ends_at, period.starts_at, include_cancelled))
        entries = [CalendarEntry(
            session_id=r["session_id"], course_id=r["course_id"], kind=r["kind"],
            starts_at=r["starts_at"].astimezone(zone), ends_at=r["ends_at"].astimezone(zone),
            clinic_id=r["clinic_id"], room_id=r["room_id"], clinician_ids=tuple(r["clinician_ids"]),
            status=r["status"], confirmation=r["confirmation"]) for r in rows]
        return CalendarDay(resource, resource_id, owner, zone.key, view, period, entries)
