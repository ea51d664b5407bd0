"""Calendar feeds: a clinician's or a room's sessions, across every course and clinic, for a calendar client to
subscribe to (Google Calendar, Outlook) with an unguessable URL instead of a key.

The clinic of the clinician or room (or the operator) issues, lists and revokes its feeds; to anyone else neither
the resource nor its feeds exist. A fetch reads the resource's calendar (the aggregate every booking, move and
cancellation writes in the same transaction as the course, so it is exact right after a command, in any process)
and the courses of the sessions it holds, for what each session is and where; `entries` chooses what a feed shows,
without I/O. Only scheduling facts leave: the kind, the time, the place, the course id; never partners, notes,
doses or reasons."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from scheduler.api_keys import Principal
from scheduler.application.access import manages
from scheduler.application.audit import Read, reading
from scheduler.application.calendars import CalendarIds
from scheduler.application.courses import Courses
from scheduler.application.errors import NotFoundError
from scheduler.application.handlers import Directory
from scheduler.domain.calendar import Calendar, Resource, Slot
from scheduler.domain.course import Course
from scheduler.domain.model import Confirmation, Kind, SessionStatus, Status

Row = dict[str, Any]
PAST = timedelta(days=30)  # a feed shows sessions that ended at most this long ago, and every one to come
RESOURCES = (Resource.CLINICIAN.value, Resource.ROOM.value)


class FeedStore(Protocol):
    async def create(self, resource: str, resource_id: UUID, clinic_id: UUID, label: str | None,
                     by: Principal) -> tuple[Row, str]: ...

    async def of(self, resource: str, resource_id: UUID) -> list[Row]: ...

    async def revoke(self, resource: str, resource_id: UUID, feed_id: UUID, by: Principal) -> Row | None: ...

    async def find(self, token: str) -> Row | None: ...


@dataclass(frozen=True)
class FeedEntry:
    """One session as a feed shows it: what it is, when, where, and how sure (no partner, note, dose or reason)."""

    session_id: str
    course_id: str
    kind: str
    starts_at: datetime
    ends_at: datetime
    clinic_id: str
    room_id: str | None
    status: str  # confirmed | tentative (a partner-hosted medicine session its host has not confirmed) | cancelled
    sequence: int  # how often this calendar moved it
    last_modified: datetime | None  # when this calendar took it or last moved it


@dataclass(frozen=True)
class Feed:
    """A feed's calendar, ready to render: its name, its entries, and where each takes place."""

    name: str
    entries: list[FeedEntry]
    locations: dict[str, str]  # session id -> "clinic, room"


def entries(slots: Iterable[Slot], courses: Mapping[str, Course], resource: Resource, resource_id: str,
            now: datetime) -> list[FeedEntry]:
    """The sessions a clinician's or room's calendar holds that the feed shows, by start: those that ended at most
    `PAST` ago or are still to come, as their courses say now (read after the calendar, so at least as recent):
    a session cancelled, moved to another clinician or room, or of a discontinued course is left out; one its host
    declined is shown cancelled."""
    since = now - PAST
    shown = []
    for slot in slots:
        course = courses.get(slot.course_id)
        session = course.sessions.get(slot.session_id) if course is not None else None
        if course is None or session is None or session.status is SessionStatus.CANCELLED:
            continue
        if session.status is SessionStatus.BOOKED and course.status is Status.DISCONTINUED:
            continue
        holds = resource_id in session.clinician_ids if resource is Resource.CLINICIAN else session.room_id == resource_id
        if not holds or session.ends_at < since:
            continue
        status = {Confirmation.PENDING: "tentative", Confirmation.DECLINED: "cancelled"}.get(
            session.confirmation, "confirmed")
        shown.append(FeedEntry(
            session_id=session.id, course_id=slot.course_id, kind=session.kind.value, starts_at=session.starts_at,
            ends_at=session.ends_at, clinic_id=session.clinic_id, room_id=session.room_id, status=status,
            sequence=slot.moves, last_modified=slot.changed_at,
        ))
    return sorted(shown, key=lambda e: (e.starts_at, e.session_id))


async def managed_resource(directory: Directory, principal: Principal, resource: str, resource_id: UUID,
                           clinic_id: UUID | None) -> UUID:
    """The clinic of the clinician or room (a room: the clinic in its path), if the caller manages it (the
    operator, or that clinic); to anyone else it does not exist (NotFoundError). Feeds and calendars ask it."""
    if resource == Resource.CLINICIAN.value:
        row = (await directory.clinicians([resource_id])).get(str(resource_id))
    else:
        row = await directory.room(resource_id)
        if row is not None and row["clinic_id"] != clinic_id:
            row = None
    if row is None or not manages(principal, "clinic", str(row["clinic_id"]), str(row["clinic_id"])):
        raise NotFoundError(resource, resource_id)
    return row["clinic_id"]  # type: ignore[no-any-return]


def summary(kind: str) -> str:
    return f"{Kind(kind).value.capitalize()} session"


class CalendarFeeds:
    def __init__(self, courses: Courses, directory: Directory, store: FeedStore, calendars: CalendarIds,
                 in_thread: Callable[[Callable[[], Any]], Awaitable[Any]]) -> None:
        self.courses, self.directory, self.store, self.calendars = courses, directory, store, calendars
        self.in_thread = in_thread

    async def issue(self, principal: Principal, resource: str, resource_id: UUID, clinic_id: UUID | None,
                    label: str | None) -> tuple[Row, str]:
        """A new feed of the clinician or room, and its token (shown only now)."""
        owner = await self._managed(principal, resource, resource_id, clinic_id)
        return await self.store.create(resource, resource_id, owner, label, principal)

    async def of(self, principal: Principal, resource: str, resource_id: UUID, clinic_id: UUID | None) -> list[Row]:
        """The resource's feeds, revoked ones included (never their tokens)."""
        await self._managed(principal, resource, resource_id, clinic_id)
        return await self.store.of(resource, resource_id)

    async def revoke(self, principal: Principal, resource: str, resource_id: UUID, clinic_id: UUID | None,
                     feed_id: UUID) -> None:
        """Revoke a feed: its URL answers 404 from now on; revoking it again changes nothing."""
        await self._managed(principal, resource, resource_id, clinic_id)
        if await self.store.revoke(resource, resource_id, feed_id, principal) is None:
            raise NotFoundError("calendar feed", feed_id)

    async def feed(self, token: str, now: datetime) -> Feed:
        """What the feed of `token` shows at `now`; NotFoundError for a token unknown or revoked. Each fetch is
        logged under the feed's name (`calendar-feed:<id>`), a revoked feed's as denied; a token that names no feed
        names nobody to log."""
        row = await self.store.find(token)
        if row is None:
            raise NotFoundError("calendar feed", "with this token")
        async with reading(self.directory, Principal("calendar-feed", str(row["id"])),
                           "read_calendar_feed") as logged:
            if row["revoked_at"] is not None:
                raise NotFoundError("calendar feed", "with this token")
            return await self._feed(row, now, logged)

    async def _feed(self, row: Row, now: datetime, logged: Read) -> Feed:
        resource, resource_id = Resource(row["resource"]), str(row["resource_id"])
        calendar_id = (self.calendars.clinician(resource_id) if resource is Resource.CLINICIAN
                       else self.calendars.room(resource_id))

        def read() -> tuple[list[Slot], dict[str, Course]]:
            # The calendar first, then its courses as stored now (each fast-forwarded from the store).
            calendar: Calendar | None = self.courses.get_calendar(calendar_id)
            slots = [s for s in calendar.slots.values() if s.ends_at >= now - PAST] if calendar is not None else []
            courses = {cid: self.courses.get_course(UUID(cid)) for cid in dict.fromkeys(s.course_id for s in slots)}
            return slots, courses

        slots, courses = await self.in_thread(read)
        shown = entries(slots, courses, resource, resource_id, now)
        logged.show(UUID(e.course_id) for e in shown)
        # Sessions share a few places: each (clinic, room) is looked up once per fetch.
        places = {(e.clinic_id, e.room_id): "" for e in shown}
        for clinic_id, room_id in list(places):
            places[clinic_id, room_id] = await self._location(clinic_id, room_id)
        return Feed(await self._name(resource, row["resource_id"]), shown,
                    {e.session_id: places[e.clinic_id, e.room_id] for e in shown})

    async def _managed(self, principal: Principal, resource: str, resource_id: UUID, clinic_id: UUID | None) -> UUID:
        return await managed_resource(self.directory, principal, resource, resource_id, clinic_id)

    async def _name(self, resource: Resource, resource_id: UUID) -> str:
        if resource is Resource.CLINICIAN:
            clinician = (await self.directory.clinicians([resource_id]))[str(resource_id)]
            clinic = await self.directory.clinic(clinician["clinic_id"])
            return f"{clinician['name']} ({clinic['name'] if clinic else 'kact'})"
        room = await self.directory.room(resource_id)
        assert room is not None
        clinic = await self.directory.clinic(room["clinic_id"])
        return f"{room['name']} ({clinic['name'] if clinic else 'kact'})"

    async def _location(self, clinic_id: str, room_id: str | None) -> str:
        clinic = await self.directory.clinic(UUID(clinic_id))
        room = await self.directory.room(UUID(room_id)) if room_id else None
        return ", ".join(part for part in (clinic["name"] if clinic else None, room["name"] if room else None)
                         if part)
