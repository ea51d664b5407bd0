"""The use cases without a server: eventsourcing's in-memory persistence, a directory of plain dicts, the same
step driver and group commit as in production."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest

from scheduler.api_keys import Principal
from scheduler.application.calendars import CalendarIds
from scheduler.application.courses import Courses
from scheduler.application.errors import CourseNotFoundError, ForbiddenError, UnknownReferenceError
from scheduler.application.handlers import Record, Scheduling
from scheduler.domain.calendar import Calendar, Resource
from scheduler.domain.course import Course
from scheduler.domain.errors import NotHostingError, RulesBrokenError
from scheduler.domain.protocol import Protocol
from scheduler.domain.rules.hours import Schedule, WorkingHours

T0 = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class FakeDirectory:
    """Clinics, staff, rooms and partnerships in dicts; the access log in a list."""

    def __init__(self) -> None:
        self.clinics: dict[UUID, dict[str, Any]] = {}
        self.staff: dict[str, dict[str, Any]] = {}
        self.rooms: dict[UUID, dict[str, Any]] = {}
        self.partnerships: set[frozenset[UUID]] = set()
        self.log: list[tuple[str, str, UUID | None]] = []
        self.reads: list[tuple[str, str, list[UUID | None], str]] = []  # (principal, action, courses, outcome)

    def clinic_with_staff(self) -> tuple[UUID, UUID, UUID]:
        """A clinic with a therapist and a prescriber."""
        clinic, therapist, prescriber = uuid4(), uuid4(), uuid4()
        self.clinics[clinic] = {"id": clinic, "timezone": "Europe/Berlin"}
        self.staff[str(therapist)] = {"id": therapist, "clinic_id": clinic, "role": "therapist"}
        self.staff[str(prescriber)] = {"id": prescriber, "clinic_id": clinic, "role": "prescriber"}
        return clinic, therapist, prescriber

    def room_of(self, clinic: UUID) -> UUID:
        room = uuid4()
        self.rooms[room] = {"id": room, "clinic_id": clinic}
        return room

    async def clinic(self, clinic_id: UUID) -> dict[str, Any] | None:
        return self.clinics.get(clinic_id)

    async def room(self, room_id: UUID) -> dict[str, Any] | None:
        return self.rooms.get(room_id)

    async def clinicians(self, ids: list[UUID]) -> dict[str, dict[str, Any]]:
        return {str(i): self.staff[str(i)] for i in ids if str(i) in self.staff}

    async def host_facts(self, host: UUID, home: UUID, kind: str = "medicine") -> tuple[bool, bool]:
        has_prescriber = any(s["clinic_id"] == host and s["role"] == "prescriber" for s in self.staff.values())
        return has_prescriber, frozenset((host, home)) in self.partnerships

    async def hours_of(self, clinic_id: UUID, clinician_ids: list[UUID]) -> tuple[Schedule, dict[str, WorkingHours]]:
        """Always open, always available (the hours rules have tests of their own)."""
        return Schedule("clinic", "Europe/Berlin"), {str(i): WorkingHours("clinician") for i in clinician_ids}

    async def log_access(self, principal: Principal, action: str, course_id: UUID | None) -> None:
        self.log.append((principal.ref, action, course_id))

    async def log_reads(self, principal: Principal, action: str, course_ids: Sequence[UUID | None], *,
                        outcome: str = "ok", request_id: str | None = None) -> None:
        self.reads.append((principal.ref, action, list(course_ids), outcome))


class NoIndex:
    def list_approvals(self, *args: Any) -> list[dict[str, Any]]:
        return []


@pytest.fixture
def courses() -> Iterator[Courses]:
    app = Courses(env={"PERSISTENCE_MODULE": "eventsourcing.popo", "AGGREGATE_CACHE_MAXSIZE": "1000",
                       "AGGREGATE_CACHE_FASTFORWARD": "y"})
    yield app
    app.close()


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory()


@pytest.fixture
def scheduling(courses: Courses, directory: FakeDirectory) -> Scheduling:
    return Scheduling(courses, directory, NoIndex(), CalendarIds(b"partner key"), asyncio.to_thread)


def clinic_key(clinic: UUID) -> Principal:
    return Principal("clinic", str(clinic), str(clinic))


async def open_course(scheduling: Scheduling, clinic: UUID, a: str | None = None, b: str | None = None) -> UUID:
    course = await scheduling.open_course(
        clinic_key(clinic), model="taking_turns", protocol=Protocol(),
        partners={"a": a or f"ref-{uuid4().hex[:6]}", "b": b or f"ref-{uuid4().hex[:6]}"}, first_dosed="a")
    return course.id


async def book(scheduling: Scheduling, clinic: UUID, course_id: UUID, start: datetime, *, hours: float = 1,
               clinicians: list[UUID] = (), room: UUID | None = None, host: UUID | None = None,
               partners: list[str] = ("a", "b"), kind: str = "assessment") -> Any:
    return await scheduling.book_session(
        clinic_key(clinic), course_id, kind=kind, partners=list(partners), starts_at=start,
        ends_at=start + timedelta(hours=hours), clinic_id=host, room_id=room, clinician_ids=list(clinicians),
        timezone=None)


def rules(error: RulesBrokenError) -> list[str]:
    return [v.rule for v in error.violations]


async def test_a_therapist_is_never_in_two_courses_at_once(scheduling: Scheduling, directory: FakeDirectory) -> None:
    clinic, therapist, _ = directory.clinic_with_staff()
    first, second = await open_course(scheduling, clinic), await open_course(scheduling, clinic)
    booked = await book(scheduling, clinic, first, T0, clinicians=[therapist])
    with pytest.raises(RulesBrokenError) as refused:
        await book(scheduling, clinic, second, T0 + 0.5 * HOUR, clinicians=[therapist])
    assert rules(refused.value) == ["I10"]
    assert f"clinician {therapist} is already booked for session {booked.id}" in str(refused.value)
    await book(scheduling, clinic, second, T0 + HOUR, clinicians=[therapist])  # adjacent: fine
    # cancelling frees the slot for another course
    await scheduling.cancel_session(clinic_key(clinic), first, booked.id, "postponed", T0 - DAY)
    await book(scheduling, clinic, second, T0 - 0.5 * HOUR, hours=1.5, clinicians=[therapist], partners=["a"])


async def test_a_room_and_a_person_in_two_couples_are_never_double_booked(
        scheduling: Scheduling, directory: FakeDirectory) -> None:
    clinic, _, _ = directory.clinic_with_staff()
    room = directory.room_of(clinic)
    first = await open_course(scheduling, clinic, a="person-1")
    second = await open_course(scheduling, clinic, b="person-1")  # the same person, partner b here
    third = await open_course(scheduling, clinic)
    await book(scheduling, clinic, first, T0, room=room, partners=["a"])
    with pytest.raises(RulesBrokenError) as both:  # the room and partner b (person-1) at once, named together
        await book(scheduling, clinic, second, T0, room=room)
    assert sorted(str(v.message).split(" is ")[0] for v in both.value.violations) == ["partner b", f"room {room}"]
    assert "person-1" not in str(both.value)
    await book(scheduling, clinic, third, T0 + HOUR, room=room)


class SameStore(Courses):
    """Another process's application: its own aggregate cache, the store of `shared`."""

    def __init__(self, shared: Courses) -> None:
        self._shared = shared
        super().__init__(env={"PERSISTENCE_MODULE": "eventsourcing.popo", "AGGREGATE_CACHE_MAXSIZE": "1000",
                              "AGGREGATE_CACHE_FASTFORWARD": "y"})

    def construct_recorder(self) -> Any:
        return self._shared.recorder


async def test_a_calendar_another_process_opened_is_checked_though_this_one_never_read_it(
        courses: Courses, directory: FakeDirectory) -> None:
    """A calendar this process has not cached is taken to be new, without a read: opening it again loses to the
    stored one (a version conflict), and the command is decided again on what is stored."""
    other = SameStore(courses)
    here = Scheduling(courses, directory, NoIndex(), CalendarIds(b"partner key"), asyncio.to_thread)
    there = Scheduling(other, directory, NoIndex(), CalendarIds(b"partner key"), asyncio.to_thread)
    try:
        clinic, therapist, _ = directory.clinic_with_staff()
        room = directory.room_of(clinic)
        first = await open_course(there, clinic, a="person-1")
        second = await open_course(here, clinic, b="person-1")
        booked = await book(there, clinic, first, T0, clinicians=[therapist], room=room)  # person-1 is its a
        for clash in ({"clinicians": [therapist], "partners": ["a"]}, {"room": room, "partners": ["a"]},
                      {"partners": ["b"]}):
            with pytest.raises(RulesBrokenError) as refused:
                await book(here, clinic, second, T0 + 0.5 * HOUR, **clash)  # type: ignore[arg-type]
            assert rules(refused.value) == ["I10"] and booked.id in str(refused.value)
        moved = await book(here, clinic, second, T0 + HOUR, clinicians=[therapist], room=room)
        calendar = other.get_calendar(CalendarIds(b"").clinician(str(therapist)))
        assert calendar is not None and sorted(calendar.slots) == sorted([booked.id, moved.id])
        assert [e.originator_version for e in courses.events.get(calendar.id)] == [1, 2, 3]  # opened once
    finally:
        other.close()


async def test_a_persons_calendar_holds_their_sessions_once_they_are_in_a_second_couple(
        scheduling: Scheduling, directory: FakeDirectory) -> None:
    """In one course, a partner's calendar holds nothing (the course keeps its own sessions apart); when they
    join another couple, it takes the sessions their first course holds for them (not the cancelled)."""
    clinic, _, _ = directory.clinic_with_staff()
    first = await open_course(scheduling, clinic, a="person-7")
    calendar_id = CalendarIds(b"partner key").partner(str(clinic), "person-7")
    kept = await book(scheduling, clinic, first, T0, partners=["a"])
    dropped = await book(scheduling, clinic, first, T0 + 2 * HOUR, partners=["a", "b"])
    await scheduling.cancel_session(clinic_key(clinic), first, dropped.id, "postponed", T0 - DAY)
    alone = scheduling.courses.get_calendar(calendar_id)
    assert alone is not None and alone.courses == {str(first)} and alone.slots == {}
    second = await open_course(scheduling, clinic, b="person-7")
    shared = scheduling.courses.get_calendar(calendar_id)
    assert shared is not None and shared.courses == {str(first), str(second)} and list(shared.slots) == [kept.id]
    with pytest.raises(RulesBrokenError) as refused:
        await book(scheduling, clinic, second, T0 + 0.5 * HOUR, partners=["b"])
    assert rules(refused.value) == ["I10"] and kept.id in str(refused.value)
    await book(scheduling, clinic, second, T0 + 2 * HOUR, partners=["b"])  # the cancelled session's time is free
    with pytest.raises(RulesBrokenError):  # and now the first course is checked against the second
        await book(scheduling, clinic, first, T0 + 2.5 * HOUR, partners=["a"])


async def test_a_course_opened_before_calendars_recorded_courses_joins_on_its_next_booking(
        scheduling: Scheduling, courses: Courses, directory: FakeDirectory) -> None:
    """A course whose opening recorded nothing in its partners' calendars (as before they recorded courses), and
    whose partner's calendar holds slots written then: its next command records it and keeps the slots true;
    a course joining later finds them where they are now."""
    clinic, _, _ = directory.clinic_with_staff()
    calendar_id = CalendarIds(b"partner key").partner(str(clinic), "person-L")
    legacy = courses.open_course(lambda: Course.open(
        course_id=uuid4(), home_clinic_id=str(clinic), model="taking_turns", protocol=Protocol(),
        partners={"a": "person-L", "b": "person-M"}, first_dosed="a", by=f"clinic:{clinic}"))
    courses.execute(legacy.id, lambda c: c.book_session(
        session_id="s-old", kind="assessment", partners=["a"], starts_at=T0, ends_at=T0 + HOUR,
        clinic_id=str(clinic), by=f"clinic:{clinic}"))
    written_then = Calendar.open(calendar_id, Resource.PARTNER)
    written_then.reserve(course_id=str(legacy.id), session_id="s-old", starts_at=T0, ends_at=T0 + HOUR,
                         label="partner a")
    courses.save(written_then)
    # its next command records the course (and, the person being in no other course, keeps the calendar as is)
    await scheduling.reschedule_session(clinic_key(clinic), legacy.id, "s-old", starts_at=T0 + 3 * HOUR,
                                        ends_at=T0 + 4 * HOUR, room_id=None, clinician_ids=None)
    calendar = courses.get_calendar(calendar_id)
    assert calendar is not None and calendar.courses == {str(legacy.id)}
    # a course joining now takes the session at its present time
    joined = await open_course(scheduling, clinic, b="person-L")
    calendar = courses.get_calendar(calendar_id)
    assert calendar is not None and calendar.courses == {str(legacy.id), str(joined)}
    assert [(s.session_id, s.starts_at) for s in calendar.slots.values()] == [("s-old", T0 + 3 * HOUR)]
    await book(scheduling, clinic, joined, T0, partners=["b"])  # the old time is free
    with pytest.raises(RulesBrokenError) as refused:
        await book(scheduling, clinic, joined, T0 + 3 * HOUR, partners=["b"])
    assert rules(refused.value) == ["I10"]


async def test_many_courses_of_one_person_open_at_once_and_keep_them_apart(
        scheduling: Scheduling, directory: FakeDirectory) -> None:
    """Twenty courses of the same two people opened at once all open (after the second, opening writes nothing
    to their calendars), and a session of the first collides with one of the last."""
    clinic, _, _ = directory.clinic_with_staff()
    opened = await asyncio.gather(*(open_course(scheduling, clinic, a="person-x", b="person-y") for _ in range(20)))
    assert len(set(opened)) == 20
    calendar = scheduling.courses.get_calendar(CalendarIds(b"partner key").partner(str(clinic), "person-x"))
    assert calendar is not None and len(calendar.courses) == 2 and calendar.courses <= {str(c) for c in opened}
    first = await book(scheduling, clinic, opened[0], T0, partners=["a"])
    with pytest.raises(RulesBrokenError) as refused:
        await book(scheduling, clinic, opened[-1], T0, partners=["a"])
    assert rules(refused.value) == ["I10"] and first.id in str(refused.value)


async def test_joining_a_couple_while_the_other_course_books_never_loses_a_session(
        scheduling: Scheduling, directory: FakeDirectory) -> None:
    """Opening a course for someone whose other course books at the same moment: the booking relied on their
    calendar holding nothing, the opening on the other course as read; whichever is saved second is decided
    again, so the calendar ends up holding the booking."""
    clinic, _, _ = directory.clinic_with_staff()
    for n in range(20):
        person = f"person-race-{n}"
        first = await open_course(scheduling, clinic, a=person)
        booked, second = await asyncio.gather(book(scheduling, clinic, first, T0 + n * HOUR, partners=["a"]),
                                              open_course(scheduling, clinic, b=person))
        calendar = scheduling.courses.get_calendar(CalendarIds(b"partner key").partner(str(clinic), person))
        assert calendar is not None and calendar.courses == {str(first), str(second)}
        assert list(calendar.slots) == [booked.id], n


async def test_fifty_concurrent_bookings_of_one_therapists_hour_one_wins(
        scheduling: Scheduling, directory: FakeDirectory) -> None:
    clinic, therapist, _ = directory.clinic_with_staff()
    course_ids = [await open_course(scheduling, clinic) for _ in range(50)]
    results = await asyncio.gather(*(book(scheduling, clinic, cid, T0, clinicians=[therapist]) for cid in course_ids),
                                   return_exceptions=True)
    won = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, RulesBrokenError)]
    assert len(won) == 1 and len(refused) == 49 and all(rules(r) == ["I10"] for r in refused)
    calendar = scheduling.courses.get_calendar(CalendarIds(b"").clinician(str(therapist)))
    assert calendar is not None and list(calendar.slots) == [won[0].id]


async def test_a_reschedule_moves_the_slots_and_frees_what_it_leaves(
        scheduling: Scheduling, directory: FakeDirectory) -> None:
    clinic, therapist, _ = directory.clinic_with_staff()
    other_therapist = uuid4()
    directory.staff[str(other_therapist)] = {"id": other_therapist, "clinic_id": clinic, "role": "therapist"}
    first, second = await open_course(scheduling, clinic), await open_course(scheduling, clinic)
    session = await book(scheduling, clinic, first, T0, clinicians=[therapist])
    await scheduling.reschedule_session(clinic_key(clinic), first, session.id, starts_at=T0 + 0.5 * HOUR,
                                        ends_at=T0 + 1.5 * HOUR, room_id=None, clinician_ids=None)
    await scheduling.reschedule_session(clinic_key(clinic), first, session.id, starts_at=T0, ends_at=T0 + HOUR,
                                        room_id=None, clinician_ids=[other_therapist])
    await book(scheduling, clinic, second, T0, clinicians=[therapist])  # the first therapist is free again
    third = await open_course(scheduling, clinic)
    with pytest.raises(RulesBrokenError) as refused:  # the other therapist now holds that hour
        await book(scheduling, clinic, third, T0, clinicians=[other_therapist])
    assert f"clinician {other_therapist}" in str(refused.value)


async def test_discontinuing_a_course_frees_its_booked_sessions(
        scheduling: Scheduling, directory: FakeDirectory) -> None:
    clinic, therapist, _ = directory.clinic_with_staff()
    first, second = await open_course(scheduling, clinic), await open_course(scheduling, clinic)
    await book(scheduling, clinic, first, T0, clinicians=[therapist])
    await scheduling.discontinue(clinic_key(clinic), first, "couple chose to stop")
    await book(scheduling, clinic, second, T0, clinicians=[therapist])


async def test_references_must_belong_where_the_session_is_hosted(
        scheduling: Scheduling, directory: FakeDirectory) -> None:
    home, therapist, _ = directory.clinic_with_staff()
    host, host_therapist, _ = directory.clinic_with_staff()
    course = await open_course(scheduling, home)
    with pytest.raises(UnknownReferenceError):
        await book(scheduling, home, course, T0, clinicians=[host_therapist])  # another clinic's staff at home
    with pytest.raises(UnknownReferenceError):
        await book(scheduling, home, course, T0, room=directory.room_of(host))
    with pytest.raises(UnknownReferenceError):
        await book(scheduling, home, course, T0, host=uuid4())  # no such clinic
    with pytest.raises(RulesBrokenError) as unpartnered:  # I11: no partnership with the host
        await book(scheduling, home, course, T0, host=host, clinicians=[host_therapist])
    assert rules(unpartnered.value) == ["I11"]
    directory.partnerships.add(frozenset((home, host)))
    hosted = await book(scheduling, home, course, T0, host=host, clinicians=[host_therapist])
    with pytest.raises(UnknownReferenceError):  # moving it, still the host's staff only
        await scheduling.reschedule_session(clinic_key(home), course, hosted.id, starts_at=T0 + HOUR,
                                            ends_at=T0 + 2 * HOUR, room_id=None, clinician_ids=[therapist])


async def test_the_host_records_what_it_hosts_and_nothing_else(
        scheduling: Scheduling, directory: FakeDirectory) -> None:
    home, therapist, _ = directory.clinic_with_staff()
    host, host_therapist, _ = directory.clinic_with_staff()
    stranger, stranger_therapist, _ = directory.clinic_with_staff()
    directory.partnerships.add(frozenset((home, host)))
    course = await open_course(scheduling, home)
    at_home = await book(scheduling, home, course, T0, clinicians=[therapist])
    hosted = await book(scheduling, home, course, T0 + 2 * HOUR, host=host, clinicians=[host_therapist])
    after = T0 + 5 * HOUR

    def missed(clinician: UUID) -> Record:
        return Record(outcome="missed", clinician_id=clinician, reason="did not come")

    with pytest.raises(ForbiddenError):  # the home clinic did not host it
        await scheduling.record_session(clinic_key(home), course, hosted.id, missed(therapist), after)
    with pytest.raises(NotHostingError):  # the host sees only what it hosts
        await scheduling.record_session(clinic_key(host), course, at_home.id, missed(host_therapist), after)
    with pytest.raises(CourseNotFoundError):  # a clinic hosting nothing of the course does not see it
        await scheduling.record_session(clinic_key(stranger), course, hosted.id, missed(stranger_therapist), after)
    with pytest.raises(UnknownReferenceError):  # recorded under the name of one of the host's own clinicians
        await scheduling.record_session(clinic_key(host), course, hosted.id, missed(therapist), after)
    recorded = await scheduling.record_session(clinic_key(host), course, hosted.id, missed(host_therapist), after)
    assert recorded.status.value == "missed"
    events = scheduling.courses.history(course)
    assert events[-1].clinician_id == str(host_therapist) and events[-1].by == f"clinic:{host}"


async def test_only_a_clinic_changes_courses(scheduling: Scheduling, directory: FakeDirectory) -> None:
    clinic, _, prescriber = directory.clinic_with_staff()
    course = await open_course(scheduling, clinic)
    with pytest.raises(ForbiddenError):
        await scheduling.discontinue(Principal("prescriber", str(prescriber), str(clinic)), course, "no")
    other, _, _ = directory.clinic_with_staff()
    with pytest.raises(CourseNotFoundError):  # another clinic's course does not exist for it
        await scheduling.discontinue(clinic_key(other), course, "no")
