"""Calendars' snapshots: a calendar loaded from its latest snapshot and the events after it is the calendar its whole
history makes (a property over any bookings, moves, releases, holds and joins, cut anywhere); commands take a
snapshot whenever a calendar's version passes a multiple of SNAPSHOT_EVERY, a load that replayed that many events
takes one, and a load reads only the events after the latest."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.application import project_aggregate
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.application.courses import Courses
from scheduler.application.runner import run_steps
from scheduler.application.snapshots import SNAPSHOT_EVERY, due_after_save
from scheduler.domain.calendar import Calendar, Resource, _row
from scheduler.domain.errors import RulesBrokenError
from test_replay import cached  # noqa: F401 (a fixture)

T0 = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
OFFSET = timezone(timedelta(hours=1))  # a time kept with another offset than UTC keeps it through a snapshot
SESSIONS = [f"s{i}" for i in range(8)]

operations = st.lists(st.one_of(
    st.tuples(st.just("reserve"), st.sampled_from(SESSIONS), st.integers(0, 40), st.integers(1, 8),
              st.sampled_from([0, 15, 30]), st.sampled_from([0, 30]), st.booleans(), st.booleans()),
    st.tuples(st.just("release"), st.sampled_from(SESSIONS)),
    st.tuples(st.just("join"), st.sampled_from(["c1", "c2", "c3"])),
), min_size=1, max_size=40)


def apply(calendar: Calendar, operation: tuple[Any, ...]) -> None:
    if operation[0] == "reserve":
        _, session, quarter, quarters, before, after, hold, offset = operation
        start = T0 + timedelta(minutes=15 * quarter)
        try:
            calendar.reserve(course_id=f"c{quarter % 3}", session_id=session,
                             starts_at=start.astimezone(OFFSET) if offset else start,
                             ends_at=start + timedelta(minutes=15 * quarters), label="clinician x",
                             before=timedelta(minutes=before), after=timedelta(minutes=after),
                             expires_at=start - timedelta(minutes=5) if hold else None,
                             holder="clinic" if hold else None, kind="medicine" if before else "preparation",
                             now=T0 - timedelta(days=1))
        except RulesBrokenError:
            pass
    elif operation[0] == "release":
        calendar.release(operation[1])
    else:
        calendar.join(operation[1], {})


def state(calendar: Calendar) -> tuple[Any, ...]:
    """Everything a calendar answers from: every field of every slot (those equality skips too), by start."""
    return (calendar.id, calendar.version, calendar.resource, calendar.courses, calendar.created_on,
            calendar.modified_on, [_row(calendar.slots[s]) for _, s in calendar._starts],
            (calendar._longest, calendar._most_before, calendar._most_after),
            [(s.starts_at.utcoffset(), s.changed_at) for _, s in sorted(calendar.slots.items())])


def answers(calendar: Calendar) -> list[Any]:
    """What the booking rules ask of a calendar, over windows across its whole span."""
    now = T0 - timedelta(days=1)
    found = []
    for quarter in range(-2, 50, 3):
        start = T0 + timedelta(minutes=15 * quarter)
        end = start + timedelta(minutes=45)
        clash = calendar.clash(start, end, now=now)
        close = calendar.buffer_clash(start, end, timedelta(minutes=15), timedelta(minutes=15), now=now)
        found.append((clash and clash.session_id, close and close.session_id,
                      calendar.count(start, end + timedelta(hours=3), now=now), calendar.buffered or None))
    return [*found, calendar.open_holds("clinic", now), calendar.open_holds("clinic", T0 + timedelta(days=2))]


@settings(max_examples=300, deadline=None)
@given(operations, st.data())
def test_a_calendar_from_its_snapshot_and_later_events_is_the_one_its_whole_history_makes(
        ops: list[tuple[Any, ...]], data: st.DataObject) -> None:
    app = Courses(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    calendar = Calendar.open(uuid4(), Resource.PARTNER if data.draw(st.booleans()) else Resource.CLINICIAN)
    cut = data.draw(st.integers(0, len(ops)))
    for operation in ops[:cut]:
        apply(calendar, operation)
    before = calendar.collect_events()
    stored = app.snapshots.mapper.to_stored_event(Calendar.Snapshot.take(calendar))  # as the store keeps it
    snapshot = app.snapshots.mapper.to_domain_event(stored)
    for operation in ops[cut:]:
        apply(calendar, operation)
    after = calendar.collect_events()

    whole = project_aggregate(None, [*before, *after])
    resumed = app.calendar_snapshots.replay(None, [snapshot, *after])
    assert isinstance(whole, Calendar) and isinstance(resumed, Calendar)
    assert state(resumed) == state(whole) == state(calendar)
    assert answers(resumed) == answers(whole)
    # And it goes on as the other would: the same command records the same events.
    apply(whole, ("reserve", "s9", 10, 4, 15, 0, False, False))
    apply(resumed, ("reserve", "s9", 10, 4, 15, 0, False, False))
    assert [type(e) for e in whole.collect_events()] == [type(e) for e in resumed.collect_events()]
    assert [row[:4] + row[5:] for row in state(resumed)[6]] == [row[:4] + row[5:] for row in state(whole)[6]]
    app.close()


@pytest.mark.parametrize(("version", "saved", "due"), [
    (SNAPSHOT_EVERY - 1, 3, False), (SNAPSHOT_EVERY, 1, True), (SNAPSHOT_EVERY + 2, 3, True),
    (SNAPSHOT_EVERY + 3, 3, False), (2 * SNAPSHOT_EVERY + 1, 2, True), (3, 3, False)])
def test_a_snapshot_is_due_when_saving_passes_a_multiple_of_the_interval(version: int, saved: int,
                                                                         due: bool) -> None:
    calendar = Calendar.open(uuid4(), Resource.ROOM)
    calendar._version = version
    assert due_after_save(calendar, saved) is due


@pytest.fixture
def app(cached: Courses) -> Courses:
    return cached  # test_replay's: in memory, cached and fast-forwarded as in the services


def book(app: Courses, calendar_id: Any, sessions: range) -> None:
    """One command per session, as the use cases save them (the step driver and the group commit)."""
    for i in sessions:
        start = T0 + timedelta(hours=2 * i)

        def reserve(work: Any, i: int = i, start: datetime = start) -> None:
            work.calendar(calendar_id, Resource.CLINICIAN).reserve(
                course_id=f"c{i % 7}", session_id=f"s{i}", starts_at=start, ends_at=start + timedelta(hours=1),
                label="clinician x")

        run_steps(app.execution(reserve))


def latest_snapshot(app: Courses, calendar_id: Any) -> int | None:
    assert app.snapshots is not None
    found = list(app.snapshots.get(calendar_id, desc=True, limit=1))
    return found[0].originator_version if found else None


def reads_after(app: Courses, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The `gt` of every read of the events table: where each load started replaying."""
    seen: list[Any] = []
    recorder = app.repository.event_store.recorder
    original = recorder.select_events

    def select_events(originator_id: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("gt"))
        return original(originator_id, **kwargs)

    monkeypatch.setattr(recorder, "select_events", select_events)
    return seen


def test_commands_snapshot_a_calendar_each_time_its_version_passes_the_interval_and_loads_start_there(
        app: Courses, monkeypatch: pytest.MonkeyPatch) -> None:
    calendar_id = uuid4()
    book(app, calendar_id, range(SNAPSHOT_EVERY - 2))  # opened, then reserved: version SNAPSHOT_EVERY - 1
    app.calendar_snapshots.wait()
    assert latest_snapshot(app, calendar_id) is None
    book(app, calendar_id, range(SNAPSHOT_EVERY - 2, 2 * SNAPSHOT_EVERY + 5))
    app.calendar_snapshots.wait()
    assert latest_snapshot(app, calendar_id) == 2 * SNAPSHOT_EVERY
    assert app.calendar_snapshots.stored == 2

    expected = app.get_calendar(calendar_id)
    fresh = Courses(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})  # nothing cached: read from the store
    fresh.repository.event_store.recorder = app.recorder
    assert fresh.snapshots is not None and app.snapshots is not None
    fresh.repository.snapshot_store.recorder = app.snapshots.recorder  # type: ignore[union-attr]
    started = reads_after(fresh, monkeypatch)
    loaded = fresh.get_calendar(calendar_id)
    assert loaded is not None and expected is not None
    assert state(loaded) == state(expected) and loaded.version == 2 * SNAPSHOT_EVERY + 6
    assert started == [2 * SNAPSHOT_EVERY]  # only the six events after the snapshot were read
    fresh.close()


def test_a_calendar_loaded_by_replaying_many_events_is_snapshotted_then(monkeypatch: pytest.MonkeyPatch) -> None:
    """A calendar recorded before snapshots were kept (saved whole here, as an older version did)."""
    app = Courses(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})  # no cache: every get reads the store
    calendar = Calendar.open(uuid4(), Resource.ROOM)
    for i in range(SNAPSHOT_EVERY + 10):
        calendar.reserve(course_id="c", session_id=f"s{i}", starts_at=T0 + timedelta(hours=i),
                         ends_at=T0 + timedelta(hours=i, minutes=50), label="room x")
    app.save(calendar)
    assert latest_snapshot(app, calendar.id) is None
    started = reads_after(app, monkeypatch)
    first = app.get_calendar(calendar.id)
    app.calendar_snapshots.wait()
    assert latest_snapshot(app, calendar.id) == calendar.version
    second = app.get_calendar(calendar.id)
    assert first is not None and second is not None and state(first) == state(second) == state(calendar)
    assert started == [None, calendar.version]  # the whole history once, then nothing after the snapshot
    app.close()


def test_a_snapshot_is_not_taken_for_a_command_that_was_not_saved(app: Courses) -> None:
    calendar_id = uuid4()
    book(app, calendar_id, range(SNAPSHOT_EVERY - 2))

    def clash(work: Any) -> None:  # reserves a free hour (version SNAPSHOT_EVERY), then breaks I10: nothing saved
        calendar = work.calendar(calendar_id, Resource.CLINICIAN)
        calendar.reserve(course_id="c", session_id="new", starts_at=T0 - timedelta(hours=5),
                         ends_at=T0 - timedelta(hours=4), label="clinician x")
        calendar.reserve(course_id="c", session_id="again", starts_at=T0, ends_at=T0 + timedelta(hours=1),
                         label="clinician x")

    with pytest.raises(RulesBrokenError):
        run_steps(app.execution(clash))
    app.calendar_snapshots.wait()
    assert latest_snapshot(app, calendar_id) is None
    assert app.calendar_snapshots.stored == 0
