"""Loading aggregates from the store: a calendar with a long history is replayed to the same state, cold and
fast-forwarded from the cache, without a runtime Protocol check per event (on Python 3.11 that check took a third
of the time of loading a busy clinician's calendar: bench/booking_scale.py)."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.domain import CanMutateProtocol

from scheduler.application.courses import Courses
from scheduler.domain.calendar import Calendar, Resource

T0 = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)


def busy_calendar(sessions: int) -> Calendar:
    """A clinician's calendar with `sessions` hours booked, every tenth moved and every seventh released."""
    calendar = Calendar.open(uuid4(), Resource.CLINICIAN)
    for i in range(sessions):
        start = T0 + timedelta(hours=2 * i)
        calendar.reserve(course_id=f"c{i % 13}", session_id=f"s{i}", starts_at=start,
                         ends_at=start + timedelta(hours=1), label="clinician x",
                         after=timedelta(minutes=30) if i % 5 == 0 else timedelta(0), kind="preparation")
        if i % 10 == 0:
            calendar.reserve(course_id=f"c{i % 13}", session_id=f"s{i}", starts_at=start + timedelta(minutes=30),
                             ends_at=start + timedelta(minutes=90), label="clinician x")
        if i % 7 == 0:
            calendar.release(f"s{i}")
    return calendar


@pytest.fixture
def protocol_checks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every isinstance check against a runtime-checkable Protocol, as it happens."""
    seen: list[Any] = []
    meta = type(CanMutateProtocol)
    assert meta is typing._ProtocolMeta  # type: ignore[attr-defined]
    original = meta.__instancecheck__

    def counting(cls: Any, instance: Any) -> bool:
        seen.append(cls)
        return original(cls, instance)  # type: ignore[no-any-return]

    monkeypatch.setattr(meta, "__instancecheck__", counting)
    return seen


def courses(cache: bool) -> Courses:
    return Courses(env={"PERSISTENCE_MODULE": "eventsourcing.popo",
                        **({"AGGREGATE_CACHE_MAXSIZE": "100", "AGGREGATE_CACHE_FASTFORWARD": "y"} if cache else {})})


@pytest.fixture
def uncached() -> Iterator[Courses]:
    app = courses(cache=False)
    yield app
    app.close()


@pytest.fixture
def cached() -> Iterator[Courses]:
    app = courses(cache=True)
    yield app
    app.close()


def state(calendar: Calendar) -> tuple[Any, ...]:
    return (calendar.version, calendar.slots, calendar._starts, calendar._longest, calendar._most_after)


def test_a_long_history_is_replayed_to_the_same_calendar_without_a_protocol_check_per_event(
        uncached: Courses, protocol_checks: list[Any]) -> None:
    calendar = busy_calendar(300)
    uncached.save(calendar)
    protocol_checks.clear()
    loaded = uncached.get_calendar(calendar.id)
    assert loaded is not None and state(loaded) == state(calendar)
    assert loaded.version > 300  # replayed from the store: every event
    assert [c for c in protocol_checks if c is CanMutateProtocol] == []


def test_a_cached_calendar_is_fast_forwarded_by_the_same_replay(cached: Courses,
                                                                 protocol_checks: list[Any]) -> None:
    calendar = busy_calendar(40)
    cached.save(calendar)
    later = cached.get_calendar(calendar.id)  # now cached at this version; what we got is a copy
    assert later is not None
    for i in range(40, 60):
        later.reserve(course_id="c", session_id=f"late{i}", starts_at=T0 + timedelta(hours=2 * i),
                      ends_at=T0 + timedelta(hours=2 * i + 1), label="clinician x")
    cached.save(later)  # the cached copy is left behind (the library fast-forwards it when read)
    protocol_checks.clear()
    forwarded = cached.get_calendar(calendar.id)
    assert forwarded is not None and state(forwarded) == state(later)
    assert [c for c in protocol_checks if c is CanMutateProtocol] == []
