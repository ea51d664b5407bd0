"""I10 across courses as a property: whatever clinics book, move, cancel and discontinue, in any order, no
clinician, room or person is ever in two overlapping booked sessions, and every calendar holds exactly the booked
sessions of the courses (the use cases with in-memory persistence, the production step driver and group commit)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from test_scheduling_use_cases import T0, FakeDirectory, NoIndex, clinic_key

from scheduler.application.calendars import CalendarIds
from scheduler.application.courses import Courses
from scheduler.application.errors import UnknownReferenceError
from scheduler.application.handlers import Scheduling
from scheduler.domain.calendar import Resource
from scheduler.domain.errors import InvalidCommandError, RulesBrokenError
from scheduler.domain.model import SessionStatus
from scheduler.domain.protocol import Protocol

PEOPLE = ["ann", "ben", "cai", "dee"]  # one clinic's patients, in several couples
QUARTER = timedelta(minutes=15)


class CalendarsMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.courses = Courses(env={"PERSISTENCE_MODULE": "eventsourcing.popo", "AGGREGATE_CACHE_MAXSIZE": "1000",
                                    "AGGREGATE_CACHE_FASTFORWARD": "y"})
        self.directory = FakeDirectory()
        self.clinic, first, _ = self.directory.clinic_with_staff()
        second = UUID(int=first.int + 1)
        self.directory.staff[str(second)] = {"id": second, "clinic_id": self.clinic, "role": "therapist"}
        self.therapists = [first, second]
        self.rooms = [self.directory.room_of(self.clinic), self.directory.room_of(self.clinic)]
        self.ids = CalendarIds(b"key")
        self.scheduling = Scheduling(self.courses, self.directory, NoIndex(), self.ids, asyncio.to_thread)
        self.course_ids: list[UUID] = []
        for a, b in (("ann", "ben"), ("ben", "cai"), ("dee", "ann")):  # ann and ben are in two couples each
            course = self.run(self.scheduling.open_course(clinic_key(self.clinic), model="together",
                                                          protocol=Protocol(), partners={"a": a, "b": b},
                                                          first_dosed="a"))
            self.course_ids.append(course.id)

    def teardown(self) -> None:
        self.courses.close()
        self.loop.close()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def attempt(self, coro: Any) -> Any:
        try:
            return self.run(coro)
        except (RulesBrokenError, InvalidCommandError, UnknownReferenceError):
            return None  # refused: nothing changed (checked by the invariants)

    @rule(course=st.integers(0, 100), start=st.integers(0, 24), quarters=st.integers(1, 8),
          partners=st.sampled_from([["a"], ["b"], ["a", "b"]]), therapist=st.integers(-1, 1),
          room=st.integers(-1, 1))
    def book(self, course: int, start: int, quarters: int, partners: list[str], therapist: int, room: int) -> None:
        self.attempt(self.scheduling.book_session(
            clinic_key(self.clinic), self.course_ids[course % len(self.course_ids)], kind="preparation", partners=partners,
            starts_at=T0 + start * QUARTER, ends_at=T0 + (start + quarters) * QUARTER, clinic_id=None,
            room_id=self.rooms[room] if room >= 0 else None,
            clinician_ids=[self.therapists[therapist]] if therapist >= 0 else [], timezone=None))

    @rule(pick=st.integers(0, 100), start=st.integers(0, 24), quarters=st.integers(1, 8),
          therapist=st.integers(-1, 1))
    def move(self, pick: int, start: int, quarters: int, therapist: int) -> None:
        booked = self.booked()
        if booked:
            course_id, session = booked[pick % len(booked)]
            self.attempt(self.scheduling.reschedule_session(
                clinic_key(self.clinic), course_id, session.id, starts_at=T0 + start * QUARTER,
                ends_at=T0 + (start + quarters) * QUARTER, room_id=None,
                clinician_ids=[self.therapists[therapist]] if therapist >= 0 else None))

    @rule(pick=st.integers(0, 100))
    def cancel(self, pick: int) -> None:
        booked = self.booked()
        if booked:
            course_id, session = booked[pick % len(booked)]
            self.attempt(self.scheduling.cancel_session(clinic_key(self.clinic), course_id, session.id, "moved",
                                                        T0 - timedelta(days=1)))

    @rule(couple=st.sampled_from([(a, b) for a in PEOPLE for b in PEOPLE if a != b]))
    def open_couple(self, couple: tuple[str, str]) -> None:
        """Someone joins another couple while their courses have sessions booked, held or cancelled."""
        course = self.run(self.scheduling.open_course(clinic_key(self.clinic), model="together",
                                                      protocol=Protocol(), partners={"a": couple[0], "b": couple[1]},
                                                      first_dosed="a"))
        self.course_ids.append(course.id)

    @rule(course=st.integers(0, 100))
    def discontinue(self, course: int) -> None:
        self.attempt(self.scheduling.discontinue(clinic_key(self.clinic), self.course_ids[course % len(self.course_ids)], "stopped"))

    def booked(self) -> list[tuple[UUID, Any]]:
        found = []
        for course_id in self.course_ids:
            course = self.courses.get_course(course_id)
            if not course.closed:
                found += [(course_id, s) for s in course.sessions.values() if s.status is SessionStatus.BOOKED]
        return found

    def holders(self) -> dict[UUID, list[tuple[str, Any, Any]]]:
        """Every booked session by the calendar each resource of it has: (session, start, end)."""
        held: dict[UUID, list[tuple[str, Any, Any]]] = {}
        for course_id, session in self.booked():
            course = self.courses.get_course(course_id)
            for h in self.ids.held_by(course, session):
                held.setdefault(h.calendar_id, []).append((session.id, session.starts_at, session.ends_at))
        return held

    @invariant()
    def no_resource_is_in_two_overlapping_sessions(self) -> None:
        if not hasattr(self, "courses"):
            return
        for sessions in self.holders().values():
            ordered = sorted(sessions, key=lambda s: s[1])
            assert all(a[2] <= b[1] for a, b in zip(ordered, ordered[1:])), ordered

    @invariant()
    def calendars_hold_exactly_the_booked_sessions(self) -> None:
        """A clinician's or room's calendar holds its booked sessions; a person's, once they are a partner in
        more than one course, and nothing while they are in one (that course keeps them apart itself)."""
        if not hasattr(self, "courses"):
            return
        for calendar_id, sessions in self.holders().items():
            calendar = self.courses.get_calendar(calendar_id)
            assert calendar is not None
            held = {(s.session_id, s.starts_at, s.ends_at) for s in calendar.slots.values()}
            if calendar.resource is Resource.PARTNER and len(calendar.courses) == 1:
                assert held == set()
            else:
                assert held == set(sessions)
        for person in PEOPLE:
            calendar = self.courses.get_calendar(self.ids.partner(str(self.clinic), person))
            in_courses = {str(c) for c in self.course_ids if person in self.courses.get_course(c).partners.values()}
            assert calendar is not None and calendar.courses <= in_courses
            assert len(calendar.courses) == min(len(in_courses), 2)  # once shared, more need not be recorded
        # and a calendar holds nothing that is not booked (released on cancel, move away, discontinue)
        booked = {s.id for _, s in self.booked()}
        people = [self.ids.partner(str(self.clinic), p) for p in PEOPLE]
        for calendar_id in [*people, *(self.ids.clinician(str(t)) for t in self.therapists),
                            *(self.ids.room(str(r)) for r in self.rooms)]:
            calendar = self.courses.get_calendar(calendar_id)
            assert calendar is None or set(calendar.slots) <= booked


TestCalendars = CalendarsMachine.TestCase
TestCalendars.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
