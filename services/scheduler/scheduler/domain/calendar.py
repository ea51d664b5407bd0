"""A clinician's, room's or partner's calendar: the sessions it is booked for, never two overlapping (I10)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from scheduler.domain.errors import RulesBrokenError, Violation


class Resource(StrEnum):
    """What a calendar belongs to: one clinician, one room, or one partner of a couple (a person)."""

    CLINICIAN = "clinician"
    ROOM = "room"
    PARTNER = "partner"


@dataclass(frozen=True)
class Slot:
    """The time one session holds a calendar, [starts_at, ends_at)."""

    course_id: str
    session_id: str
    starts_at: datetime
    ends_at: datetime
    # When this calendar took the slot or last moved it (when that was recorded), and how often it moved: what a
    # calendar feed says of its revisions (SEQUENCE, LAST-MODIFIED). Neither is part of the time a slot holds.
    changed_at: datetime | None = field(default=None, compare=False)
    moves: int = field(default=0, compare=False)

    def overlaps(self, starts_at: datetime, ends_at: datetime) -> bool:
        return self.starts_at < ends_at and starts_at < self.ends_at  # adjacent sessions do not overlap


class Calendar(Aggregate):
    """The slots of one resource across every course: booking, moving and cancelling a session change it in the
    same transaction as the course, and a slot is refused while another session holds any of its time."""

    TOPIC = "kact.calendar:Calendar"

    class Event(Aggregate.Event):
        TOPIC = "kact.calendar:Event"

    class Created(Event, Aggregate.Created):
        """The calendar was opened, on its resource's first booking (named Created as the library expects)."""

        TOPIC = "kact.calendar:Opened.v1"
        resource: str

    class Reserved(Event):
        TOPIC = "kact.calendar:Reserved.v1"
        course_id: str
        session_id: str
        starts_at: datetime
        ends_at: datetime

        def apply(self, calendar: Calendar) -> None:
            calendar._put(Slot(self.course_id, self.session_id, self.starts_at, self.ends_at, self.timestamp))

    class Moved(Event):
        TOPIC = "kact.calendar:Moved.v1"
        session_id: str
        starts_at: datetime
        ends_at: datetime

        def apply(self, calendar: Calendar) -> None:
            slot = calendar._drop(self.session_id)
            calendar._put(Slot(slot.course_id, slot.session_id, self.starts_at, self.ends_at, self.timestamp,
                               slot.moves + 1))

    class Released(Event):
        TOPIC = "kact.calendar:Released.v1"
        session_id: str

        def apply(self, calendar: Calendar) -> None:
            calendar._drop(self.session_id)

    class Joined(Event):
        """A partner's calendar: the person became a partner in a course (opened by their home clinic)."""

        TOPIC = "kact.calendar:Joined.v1"
        course_id: str

        def apply(self, calendar: Calendar) -> None:
            calendar.courses = calendar.courses | {self.course_id}

    def __init__(self, resource: str) -> None:
        self.resource = Resource(resource)
        self.slots: dict[str, Slot] = {}
        # The slots by start, and the longest one: a clash is looked for among the few that start within that
        # length before the end of the time asked for, however many slots a busy clinician's calendar holds.
        self._starts: list[tuple[datetime, str]] = []
        self._longest = timedelta(0)
        # A partner's first two courses (once there are two, the calendar holds every course's slots, and more
        # need not be recorded); a calendar opened by an earlier version, at a booking, records none.
        self.courses: frozenset[str] = frozenset()

    def _put(self, slot: Slot) -> None:
        self.slots[slot.session_id] = slot
        bisect.insort(self._starts, (slot.starts_at, slot.session_id))
        self._longest = max(self._longest, slot.ends_at - slot.starts_at)

    def _drop(self, session_id: str) -> Slot:
        slot = self.slots.pop(session_id)
        del self._starts[bisect.bisect_left(self._starts, (slot.starts_at, session_id))]
        return slot

    @classmethod
    def open(cls, calendar_id: UUID, resource: Resource) -> Calendar:
        return cls._create(cls.Created, id=calendar_id, resource=resource.value)

    def __deepcopy__(self, memo: dict[int, Any]) -> Calendar:
        """Slots are immutable and replaced whole: copying the dict is a deep enough copy (see Course)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._pending_events = list(self._pending_events)
        clone.slots = dict(self.slots)
        clone._starts = list(self._starts)
        return clone

    def exclusive_to(self, course_id: str) -> bool:
        """Whether only `course_id` can hold this calendar: a person who is a partner in that one course, with no
        slot of another. Such a calendar need not hold the course's slots (the course keeps its partners apart
        itself); commands that would change them leave it as it is, and are saved only if it still is as they
        read it. Once the person joins another course, the calendar takes the slots of both (`join`)."""
        return self.courses == {course_id} and all(slot.course_id == course_id for slot in self.slots.values())

    def join(self, course_id: str, others: dict[str, list[Slot]]) -> None:
        """The person is a partner in `course_id` too: first the calendar holds exactly what their other courses
        hold for them now (`others`, by course, read from those courses: a course that held the calendar alone
        did not keep its slots here), then it records the course."""
        for other, slots in others.items():
            now = {slot.session_id: slot for slot in slots}
            for slot in [s for s in self.slots.values() if s.course_id == other and s.session_id not in now]:
                self.trigger_event(self.Released, session_id=slot.session_id)
            for slot in slots:
                kept = self.slots.get(slot.session_id)
                if kept is None:
                    self.trigger_event(self.Reserved, course_id=slot.course_id, session_id=slot.session_id,
                                       starts_at=slot.starts_at, ends_at=slot.ends_at)
                elif (kept.starts_at, kept.ends_at) != (slot.starts_at, slot.ends_at):
                    self.trigger_event(self.Moved, session_id=slot.session_id, starts_at=slot.starts_at,
                                       ends_at=slot.ends_at)
        if course_id not in self.courses:
            self.trigger_event(self.Joined, course_id=course_id)

    def clash(self, starts_at: datetime, ends_at: datetime, ignore: str | None = None,
              other_courses_than: str | None = None) -> Slot | None:
        """The earliest slot of another session (of another course than `other_courses_than`, if given) that
        overlaps [starts_at, ends_at), if any."""
        first = bisect.bisect_left(self._starts, (starts_at - self._longest, ""))
        for _, session_id in self._starts[first:bisect.bisect_left(self._starts, (ends_at, ""))]:
            slot = self.slots[session_id]
            if session_id != ignore and slot.course_id != other_courses_than and slot.overlaps(starts_at, ends_at):
                return slot  # the earliest: candidates come in order of start
        return None

    def violation(self, starts_at: datetime, ends_at: datetime, label: str, ignore: str | None = None,
                  other_courses_than: str | None = None) -> Violation | None:
        """I10 for this resource, named as `label` (a clinician's or room's id; for a partner, how the booking
        course names them: their reference stays in the course's encrypted events, never in a calendar)."""
        clash = self.clash(starts_at, ends_at, ignore, other_courses_than)
        if clash is None:
            return None
        return Violation(
            "I10",
            f"{label} is already booked for session {clash.session_id} from {clash.starts_at.isoformat()} to "
            f"{clash.ends_at.isoformat()}",
        )

    def reserve(self, *, course_id: str, session_id: str, starts_at: datetime, ends_at: datetime,
                label: str) -> None:
        """Hold [starts_at, ends_at) for a session; a session already here is moved instead (a reschedule that
        keeps this resource never collides with its own old time)."""
        violation = self.violation(starts_at, ends_at, label, ignore=session_id)
        if violation is not None:
            raise RulesBrokenError([violation])
        held = self.slots.get(session_id)
        if held is None:
            self.trigger_event(self.Reserved, course_id=course_id, session_id=session_id, starts_at=starts_at,
                               ends_at=ends_at)
        elif (held.starts_at, held.ends_at) != (starts_at, ends_at):
            self.trigger_event(self.Moved, session_id=session_id, starts_at=starts_at, ends_at=ends_at)

    def release(self, session_id: str) -> None:
        """Free a session's slot (cancelled, or moved to another resource); nothing to do if it holds none."""
        if session_id in self.slots:
            self.trigger_event(self.Released, session_id=session_id)
