"""A calendar feed as iCalendar (RFC 5545), written with the `icalendar` library: pure, no I/O.

One VEVENT per session, its UID stable (`<session id>@kact`), times in UTC, SEQUENCE and LAST-MODIFIED from the
calendar's moves, so a client subscribed to the feed shows a moved session at its new time; a session cancelled
leaves the feed (one its host declined stays, STATUS:CANCELLED). REFRESH-INTERVAL and X-PUBLISHED-TTL ask
clients to fetch again every 15 minutes (Google and Outlook decide for themselves how often they do)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from icalendar import Calendar, Event, vDuration, vText

from scheduler.application.calendar_feeds import FeedEntry, summary

MEDIA_TYPE = "text/calendar"  # Litestar adds "; charset=utf-8", as it does to every text/* type
PRODID = "-//kact//calendar feeds 1.0//EN"
REFRESH = timedelta(minutes=15)
STATUS = {"confirmed": "CONFIRMED", "tentative": "TENTATIVE", "cancelled": "CANCELLED"}


def _utc(at: datetime) -> datetime:
    return at.astimezone(timezone.utc)


def render(name: str, entries: list[FeedEntry], locations: Mapping[str, str], now: datetime) -> bytes:
    """The feed's calendar: `name` for its title, one event per entry (where it takes place from `locations`, by
    session id), stamped `now`."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", vText(name))
    calendar.add("x-wr-caldesc", "Sessions booked in kact: kind, time, place and course")
    calendar.add("refresh-interval", vDuration(REFRESH), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(REFRESH))
    stamp = _utc(now).replace(microsecond=0)
    for entry in entries:
        event = Event()
        event.add("uid", f"{entry.session_id}@kact")
        event.add("dtstamp", stamp)
        event.add("dtstart", _utc(entry.starts_at))
        event.add("dtend", _utc(entry.ends_at))
        event.add("summary", summary(entry.kind))
        location = locations.get(entry.session_id)
        if location:
            event.add("location", location)
        event.add("description", f"Course {entry.course_id}")
        event.add("status", STATUS[entry.status])
        event.add("sequence", entry.sequence)
        if entry.last_modified is not None:
            event.add("last-modified", _utc(entry.last_modified).replace(microsecond=0))
        event.add("transp", "TRANSPARENT" if entry.status == "cancelled" else "OPAQUE")
        calendar.add_component(event)
    return calendar.to_ical()  # type: ignore[no-any-return]
