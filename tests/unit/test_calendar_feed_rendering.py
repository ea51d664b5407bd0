"""A calendar feed without I/O: which sessions a clinician's or room's calendar shows (`entries`), and the
iCalendar it becomes (`render`), parsed back with the icalendar library."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from uuid import uuid4

from builders import BY, HOME, T0, open_course
from icalendar import Calendar
from scheduler.application.calendar_feeds import PAST, FeedEntry, entries
from scheduler.domain.calendar import Calendar as ResourceCalendar
from scheduler.domain.calendar import Resource
from scheduler.domain.course import Course
from scheduler.domain.model import HostFacts
from scheduler.http.ics import render

THERAPIST, PRESCRIBER, ROOM, HOST = "t-1", "rx-1", "room-1", "host"
AT_HOST = HostFacts(HOST, has_prescriber=True, is_partner_of_home=True)


def _book(course: Course, calendars: dict[str, ResourceCalendar], sid: str, kind: str, start: datetime,
          hours: float = 1, clinic_id: str = HOME, clinicians: tuple[str, ...] = (THERAPIST,),
          room: str | None = None, host: HostFacts | None = None) -> None:
    course.book_session(session_id=sid, kind=kind, partners=("a", "b"), starts_at=start,
                        ends_at=start + timedelta(hours=hours), clinic_id=clinic_id, room_id=room,
                        clinician_ids=list(clinicians), host=host or HostFacts(HOME, True, False), by=BY)
    for resource in (*clinicians, *([room] if room else [])):
        calendars[resource].reserve(course_id=str(course.id), session_id=sid, starts_at=start,
                                    ends_at=start + timedelta(hours=hours), label=resource)


def _calendars() -> dict[str, ResourceCalendar]:
    return {THERAPIST: ResourceCalendar.open(uuid4(), Resource.CLINICIAN),
            PRESCRIBER: ResourceCalendar.open(uuid4(), Resource.CLINICIAN),
            ROOM: ResourceCalendar.open(uuid4(), Resource.ROOM)}


def test_a_feed_shows_the_sessions_its_resource_holds_as_their_course_says_now() -> None:
    course, calendars = open_course(), _calendars()
    for partner in ("a", "b"):
        course.record_screening(partner=partner, result="eligible", clinician_id=THERAPIST, by=BY)
    _book(course, calendars, "old", "assessment", T0 - timedelta(days=40))  # ended more than 30 days ago
    _book(course, calendars, "assess", "assessment", T0)
    _book(course, calendars, "moved", "preparation", T0 + timedelta(days=1))
    _book(course, calendars, "gone", "preparation", T0 + timedelta(days=2))
    _book(course, calendars, "med", "medicine", T0 + timedelta(days=9), hours=3, clinic_id=HOST,
          clinicians=(PRESCRIBER,), room=ROOM, host=AT_HOST)
    new_start = T0 + timedelta(days=1, hours=5)
    course.reschedule_session(session_id="moved", starts_at=new_start, ends_at=new_start + timedelta(hours=1), by=BY)
    calendars[THERAPIST].reserve(course_id=str(course.id), session_id="moved", starts_at=new_start,
                                 ends_at=new_start + timedelta(hours=1), label=THERAPIST)
    course.cancel_session(session_id="gone", reason="partner b has the flu", by=BY)  # its slot: not yet released
    for calendar in calendars.values():
        calendar.collect_events()  # as saved: each event's timestamp is when the slot changed
    courses = {str(course.id): course}
    now = T0 - timedelta(hours=1)

    therapist = entries(calendars[THERAPIST].slots.values(), courses, Resource.CLINICIAN, THERAPIST, now)
    assert [(e.session_id, e.kind, e.status, e.sequence) for e in therapist] == [
        ("assess", "assessment", "confirmed", 0), ("moved", "preparation", "confirmed", 1)]
    assert therapist[1].starts_at == new_start and therapist[1].last_modified is not None
    (hosted,) = entries(calendars[ROOM].slots.values(), courses, Resource.ROOM, ROOM, now)
    assert (hosted.session_id, hosted.status, hosted.clinic_id, hosted.room_id) == ("med", "tentative", HOST, ROOM)
    (by_prescriber,) = entries(calendars[PRESCRIBER].slots.values(), courses, Resource.CLINICIAN, PRESCRIBER, now)
    assert replace(by_prescriber, last_modified=None) == replace(hosted, last_modified=None)

    course.confirm_session(session_id="med", clinic_id=HOST, decision="declined", reason="no monitoring nurse",
                           by=f"clinic:{HOST}")
    (declined,) = entries(calendars[ROOM].slots.values(), courses, Resource.ROOM, ROOM, now)
    assert declined.status == "cancelled"
    # Thirty days after the moved session ended, only the medicine session is left; a room not named, nothing.
    later = therapist[1].ends_at + PAST + timedelta(seconds=1)
    assert entries(calendars[THERAPIST].slots.values(), courses, Resource.CLINICIAN, THERAPIST, later) == []
    assert entries(calendars[ROOM].slots.values(), courses, Resource.ROOM, "another-room", now) == []
    course.discontinue(reason="couple chose to stop", by=BY)
    assert entries(calendars[ROOM].slots.values(), courses, Resource.ROOM, ROOM, now) == []


def test_the_rendered_feed_parses_with_utc_times_stable_uids_and_nothing_but_scheduling_facts() -> None:
    berlin = timezone(timedelta(hours=1))
    start = datetime(2026, 3, 2, 10, tzinfo=berlin)  # 09:00 UTC
    moved = FeedEntry(session_id="s-1", course_id="c-1", kind="medicine", starts_at=start,
                      ends_at=start + timedelta(hours=3), clinic_id="k", room_id="r", status="tentative", sequence=2,
                      last_modified=datetime(2026, 2, 20, 8, 30, 15, 123456, tzinfo=timezone.utc))
    other = FeedEntry(session_id="s-2", course_id="c-2", kind="integration", starts_at=start + timedelta(days=1),
                      ends_at=start + timedelta(days=1, hours=1), clinic_id="k", room_id=None, status="cancelled",
                      sequence=0, last_modified=None)
    now = datetime(2026, 3, 1, 12, 0, 5, 999, tzinfo=timezone.utc)
    body = render("Dr. Vogt; Lindenhof, room 2", [moved, other],
                  {"s-1": "Lindenhof Ketamine Clinic, Treatment room 2", "s-2": "Harbour\nCouples"}, now)

    assert body.startswith(b"BEGIN:VCALENDAR\r\n") and body.endswith(b"END:VCALENDAR\r\n")
    calendar = Calendar.from_ical(body)
    assert str(calendar["version"]) == "2.0" and str(calendar["method"]) == "PUBLISH"
    assert b"\r\nX-WR-CALNAME:Dr. Vogt\\; Lindenhof\\, room 2\r\n" in body  # TEXT, escaped
    assert calendar.decoded("refresh-interval") == timedelta(minutes=15)
    assert b"X-PUBLISHED-TTL:PT15M" in body
    first, second = calendar.walk("VEVENT")
    assert str(first["uid"]) == "s-1@kact" and str(second["uid"]) == "s-2@kact"
    assert first.decoded("dtstart") == datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
    assert first.decoded("dtstart").utcoffset() == timedelta(0)
    assert b"DTSTART:20260302T090000Z" in body and b"DTEND:20260302T120000Z" in body
    assert str(first["summary"]) == "Medicine session" and str(second["summary"]) == "Integration session"
    assert str(first["location"]) == "Lindenhof Ketamine Clinic, Treatment room 2"
    assert str(second["location"]) == "Harbour\nCouples"  # escaped on the wire, whole when parsed
    assert str(first["description"]) == "Course c-1"
    assert (str(first["status"]), str(second["status"])) == ("TENTATIVE", "CANCELLED")
    assert (first["sequence"], second["sequence"]) == (2, 0)
    assert first.decoded("last-modified") == datetime(2026, 2, 20, 8, 30, 15, tzinfo=timezone.utc)
    assert "last-modified" not in second
    assert first.decoded("dtstamp") == datetime(2026, 3, 1, 12, 0, 5, tzinfo=timezone.utc)
    assert set(first) <= {"UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "LOCATION", "DESCRIPTION", "STATUS",
                          "SEQUENCE", "LAST-MODIFIED", "TRANSP"}
