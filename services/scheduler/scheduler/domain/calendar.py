"""A clinician's, room's or partner's calendar: the sessions it is booked for, never two overlapping (I10)."""

from __future__ import annotations

import base64
import bisect
import json
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic, register_topic

from scheduler.domain.errors import RulesBrokenError, Violation


class Resource(StrEnum):
    """What a calendar belongs to: one clinician, one room, or one partner of a couple (a person)."""

    CLINICIAN = "clinician"
    ROOM = "room"
    PARTNER = "partner"
    HOST = "host"  # a clinic's ledger of what it hosts for partner clinics: medicine sessions and holds


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
    # The time the resource needs free around the session (the hosting clinic's buffers for its kind).
    before: timedelta = field(default=timedelta(0), compare=False)
    after: timedelta = field(default=timedelta(0), compare=False)
    # A hold: the slot is kept for `holder` (a clinic) until `expires_at`, then frees itself.
    expires_at: datetime | None = field(default=None, compare=False)
    holder: str | None = field(default=None, compare=False)
    kind: str | None = field(default=None, compare=False)

    def overlaps(self, starts_at: datetime, ends_at: datetime) -> bool:
        return self.starts_at < ends_at and starts_at < self.ends_at  # adjacent sessions do not overlap

    def holds_at(self, now: datetime | None) -> bool:
        """Whether the slot still takes its time at `now` (a hold that expired does not; unknown time: it does)."""
        return self.expires_at is None or now is None or now < self.expires_at


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
        """A session's (or, with `expires_at`, a hold's) time was taken; events stored before buffers and holds
        lack the fields after `ends_at`."""

        TOPIC = "kact.calendar:Reserved.v1"
        course_id: str
        session_id: str
        starts_at: datetime
        ends_at: datetime
        before_minutes: int = field(default=0, kw_only=True)
        after_minutes: int = field(default=0, kw_only=True)
        expires_at: datetime | None = field(default=None, kw_only=True)
        holder: str | None = field(default=None, kw_only=True)
        kind: str | None = field(default=None, kw_only=True)

        def apply(self, calendar: Calendar) -> None:
            calendar._put(Slot(self.course_id, self.session_id, self.starts_at, self.ends_at, self.timestamp,
                               before=timedelta(minutes=self.before_minutes),
                               after=timedelta(minutes=self.after_minutes), expires_at=self.expires_at,
                               holder=self.holder, kind=self.kind))

    class Moved(Event):
        TOPIC = "kact.calendar:Moved.v1"
        session_id: str
        starts_at: datetime
        ends_at: datetime

        def apply(self, calendar: Calendar) -> None:
            slot = calendar._drop(self.session_id)
            calendar._put(replace(slot, starts_at=self.starts_at, ends_at=self.ends_at, changed_at=self.timestamp,
                                  moves=slot.moves + 1))

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

    class Snapshot(Aggregate.Snapshot):
        """A calendar as it stood at one version: its resource, courses and slots, each slot as a row of plain
        values, and the bounds of its searches (which cover every slot it ever held, as replaying finds). A busy
        clinician's calendar holds hundreds of sessions after years of events: loading it from its latest
        snapshot reads that snapshot and the few events after it (`application.snapshots`)."""

        TOPIC = "kact.calendar:Snapshot.v1"

        @classmethod
        def take(cls, aggregate: Any) -> Calendar.Snapshot:
            assert isinstance(aggregate, Calendar)
            state = {
                "resource": aggregate.resource.value,
                "courses": sorted(aggregate.courses),
                "created_on": aggregate.created_on.isoformat(),
                "modified_on": aggregate.modified_on.isoformat(),
                # Compressed (a fifth of the size): a busy calendar's rows would be 90 kB to read and decrypt.
                "slots": _pack([_row(aggregate.slots[session_id]) for _, session_id in aggregate._starts]),
                "bounds_us": [_micros(aggregate._longest), _micros(aggregate._most_before),
                              _micros(aggregate._most_after)],
            }
            return cls(originator_id=aggregate.id, originator_version=aggregate.version,  # type: ignore[call-arg]
                       timestamp=cls.create_timestamp(), topic=get_topic(Calendar), state=state)

        def mutate(self, _: Any) -> Calendar:
            state = self.state
            calendar = object.__new__(Calendar)
            calendar.__dict__.update(_id=self.originator_id, _version=self.originator_version, _pending_events=[],
                                     _created_on=datetime.fromisoformat(state["created_on"]),
                                     _modified_on=datetime.fromisoformat(state["modified_on"]))
            calendar._empty(Resource(state["resource"]))
            calendar.courses = frozenset(state["courses"])
            # The rows come in order of start (`take`): indexed as they come, without a search per slot.
            slots, starts = calendar.slots, calendar._starts
            for row in _unpack(state["slots"]):  # (a list: taken uncompressed, as at first)
                slot = _slot(row)
                slots[slot.session_id] = slot
                starts.append((slot.starts_at, slot.session_id))
            calendar._longest, calendar._most_before, calendar._most_after = (
                timedelta(microseconds=us) for us in state["bounds_us"])
            return calendar

    def __init__(self, resource: str) -> None:
        self._empty(Resource(resource))

    def _empty(self, resource: Resource) -> None:
        self.resource = resource
        self.slots: dict[str, Slot] = {}
        # The slots by start, and the longest one: a clash is looked for among the few that start within that
        # length before the end of the time asked for, however many slots a busy clinician's calendar holds.
        self._starts: list[tuple[datetime, str]] = []
        self._longest = timedelta(0)  # with its buffers
        self._most_before = timedelta(0)
        self._most_after = timedelta(0)
        # A partner's first two courses (once there are two, the calendar holds every course's slots, and more
        # need not be recorded); a calendar opened by an earlier version, at a booking, records none.
        self.courses: frozenset[str] = frozenset()

    def _put(self, slot: Slot) -> None:
        self.slots[slot.session_id] = slot
        bisect.insort(self._starts, (slot.starts_at, slot.session_id))
        self._longest = max(self._longest, slot.ends_at - slot.starts_at + slot.before + slot.after)
        self._most_before = max(self._most_before, slot.before)
        self._most_after = max(self._most_after, slot.after)

    @property
    def buffered(self) -> bool:
        """Whether any slot ever held here kept a buffer (if none did, only an overlap can be too close)."""
        return bool(self._most_before or self._most_after)

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

    def clash(self, starts_at: datetime, ends_at: datetime, ignore: str | Collection[str] | None = None,
              other_courses_than: str | None = None, now: datetime | None = None) -> Slot | None:
        """The earliest slot of another session (of another course than `other_courses_than`, if given) that
        overlaps [starts_at, ends_at) at `now` (a hold that expired by then takes no time), if any."""
        for slot in self._near(starts_at, ends_at, _ignored(ignore), now):
            if slot.course_id != other_courses_than and slot.overlaps(starts_at, ends_at):
                return slot  # the earliest: candidates come in order of start
        return None

    def buffer_clash(self, starts_at: datetime, ends_at: datetime, before: timedelta, after: timedelta,
                     ignore: str | Collection[str] | None = None, now: datetime | None = None) -> Slot | None:
        """The earliest other slot too close to [starts_at, ends_at): inside the buffers asked for, or the session
        inside that slot's own buffers (the gap between two sessions is the larger of the two buffers)."""
        for slot in self._near(starts_at - before, ends_at + after, _ignored(ignore), now):
            if slot.overlaps(starts_at - before, ends_at + after) or (
                    slot.starts_at - slot.before < ends_at and starts_at < slot.ends_at + slot.after):
                return slot
        return None

    def count(self, starts_from: datetime, starts_before: datetime, ignore: str | Collection[str] | None = None,
              now: datetime | None = None, kind: str | None = None) -> int:
        """How many slots (of `kind`, if given) that hold at `now` start in [starts_from, starts_before)."""
        ignored = _ignored(ignore)
        first = bisect.bisect_left(self._starts, (starts_from, ""))
        last = bisect.bisect_left(self._starts, (starts_before, ""))
        return sum(1 for _, session_id in self._starts[first:last]
                   if session_id not in ignored and (slot := self.slots[session_id]).holds_at(now)
                   and (kind is None or slot.kind == kind))

    def open_holds(self, holder: str, now: datetime | None, ignore: str | Collection[str] | None = None) -> int:
        ignored = _ignored(ignore)
        return sum(1 for slot in self.slots.values()
                   if slot.holder == holder and slot.expires_at is not None and slot.holds_at(now)
                   and slot.session_id not in ignored)

    def _near(self, starts_at: datetime, ends_at: datetime, ignored: Collection[str],
              now: datetime | None) -> Iterator[Slot]:
        """The slots that hold at `now` and could come near [starts_at, ends_at) with their buffers, by start."""
        first = bisect.bisect_left(self._starts, (starts_at - self._longest, ""))
        for _, session_id in self._starts[first:bisect.bisect_left(self._starts, (ends_at + self._most_before, ""))]:
            slot = self.slots[session_id]
            if session_id not in ignored and slot.holds_at(now):
                yield slot

    def violation(self, starts_at: datetime, ends_at: datetime, label: str,
                  ignore: str | Collection[str] | None = None, other_courses_than: str | None = None,
                  now: datetime | None = None) -> Violation | None:
        """I10 for this resource, named as `label` (a clinician's or room's id; for a partner, how the booking
        course names them: their reference stays in the course's encrypted events, never in a calendar)."""
        clash = self.clash(starts_at, ends_at, ignore, other_courses_than, now)
        if clash is None:
            return None
        return Violation(
            "I10",
            f"{label} is already {'held' if clash.expires_at else 'booked'} for "
            f"{'a slot' if clash.expires_at else 'session ' + clash.session_id} from {clash.starts_at.isoformat()} "
            f"to {clash.ends_at.isoformat()}",
        )

    def reserve(self, *, course_id: str, session_id: str, starts_at: datetime, ends_at: datetime,
                label: str, before: timedelta = timedelta(0), after: timedelta = timedelta(0),
                expires_at: datetime | None = None, holder: str | None = None, kind: str | None = None,
                now: datetime | None = None, replaces: Collection[str] = ()) -> None:
        """Hold [starts_at, ends_at) for a session (or, with `expires_at`, a hold) unless another slot holds any of
        it (I10; a ledger, `Resource.HOST`, only counts). A session already here is moved instead (a reschedule
        that keeps this resource never collides with its own old time); a session that `replaces` a hold takes
        its place (booked from the hold, it never collides with it)."""
        if self.resource is not Resource.HOST:
            violation = self.violation(starts_at, ends_at, label, ignore={session_id, *replaces}, now=now)
            if violation is not None:
                raise RulesBrokenError([violation])
        for hold in replaces:
            self.release(hold)
        held = self.slots.get(session_id)
        if held is None:
            self.trigger_event(self.Reserved, course_id=course_id, session_id=session_id, starts_at=starts_at,
                               ends_at=ends_at, before_minutes=_whole_minutes(before),
                               after_minutes=_whole_minutes(after), expires_at=expires_at, holder=holder, kind=kind)
        elif (held.starts_at, held.ends_at) != (starts_at, ends_at):
            self.trigger_event(self.Moved, session_id=session_id, starts_at=starts_at, ends_at=ends_at)

    def release(self, session_id: str) -> None:
        """Free a session's slot (cancelled, or moved to another resource); nothing to do if it holds none."""
        if session_id in self.slots:
            self.trigger_event(self.Released, session_id=session_id)


def _row(slot: Slot) -> list[Any]:
    """A slot as a snapshot keeps it: plain values in a fixed order (times as ISO 8601, with their offsets)."""
    return [slot.course_id, slot.session_id, slot.starts_at.isoformat(), slot.ends_at.isoformat(),
            None if slot.changed_at is None else slot.changed_at.isoformat(), slot.moves,
            _whole_minutes(slot.before), _whole_minutes(slot.after),
            None if slot.expires_at is None else slot.expires_at.isoformat(), slot.holder, slot.kind]


def _pack(rows: list[list[Any]]) -> str:
    return base64.b64encode(zlib.compress(json.dumps(rows, separators=(",", ":")).encode(), 1)).decode()


def _unpack(packed: str | list[list[Any]]) -> list[list[Any]]:
    if isinstance(packed, list):
        return packed
    return json.loads(zlib.decompress(base64.b64decode(packed)))  # type: ignore[no-any-return]


def _micros(span: timedelta) -> int:
    return span // timedelta(microseconds=1)


_SLOT_FIELDS = tuple(f.name for f in fields(Slot))
_NO_TIME = timedelta(0)


def _slot(row: list[Any]) -> Slot:
    """The slot of a snapshot's row, made without the frozen dataclass's checked `__init__` (a busy calendar's
    snapshot holds hundreds: loading one is most of the first read of a clinician's calendar in a process)."""
    course_id, session_id, starts_at, ends_at, changed_at, moves, before, after, expires_at, holder, kind = row
    slot = object.__new__(Slot)
    slot.__dict__.update(zip(_SLOT_FIELDS, (
        course_id, session_id, datetime.fromisoformat(starts_at), datetime.fromisoformat(ends_at),
        None if changed_at is None else datetime.fromisoformat(changed_at), moves,
        timedelta(minutes=before) if before else _NO_TIME, timedelta(minutes=after) if after else _NO_TIME,
        None if expires_at is None else datetime.fromisoformat(expires_at), holder, kind)))
    return slot


register_topic(Calendar.Snapshot.TOPIC, Calendar.Snapshot)  # a process may read a snapshot before it takes one


def _ignored(ignore: str | Collection[str] | None) -> Collection[str]:
    if ignore is None:
        return ()
    return (ignore,) if isinstance(ignore, str) else ignore


def _whole_minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)
