"""A resource's calendar (I10): a slot is held only while no other session holds any of its time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.domain.calendar import Calendar, Resource
from scheduler.domain.errors import RulesBrokenError

T0 = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)


def calendar() -> Calendar:
    return Calendar.open(uuid4(), Resource.CLINICIAN)


def reserve(cal: Calendar, session: str, start_h: float, hours: float = 1.0) -> None:
    cal.reserve(course_id="c1", session_id=session, starts_at=T0 + timedelta(hours=start_h),
                ends_at=T0 + timedelta(hours=start_h + hours), label="clinician x")


def test_an_overlap_is_refused_naming_the_resource_and_the_session() -> None:
    cal = calendar()
    reserve(cal, "s1", 0, 2)
    with pytest.raises(RulesBrokenError) as refused:
        reserve(cal, "s2", 1)
    (violation,) = refused.value.violations
    assert violation.rule == "I10" and "clinician x is already booked for session s1" in violation.message


def test_adjacent_sessions_are_fine_and_a_release_frees_the_time() -> None:
    cal = calendar()
    reserve(cal, "s1", 0)
    reserve(cal, "s2", 1)  # starts when s1 ends
    reserve(cal, "s0", -1)  # ends when s1 starts
    cal.release("s1")
    reserve(cal, "s3", 0)
    assert sorted(cal.slots) == ["s0", "s2", "s3"]


def test_a_session_moves_without_colliding_with_its_own_old_time() -> None:
    cal = calendar()
    reserve(cal, "s1", 0, 2)
    reserve(cal, "s1", 1, 2)  # overlaps only its own old time
    assert [(s.starts_at, s.ends_at) for s in cal.slots.values()] == [(T0 + timedelta(hours=1),
                                                                         T0 + timedelta(hours=3))]
    assert [type(e).__name__ for e in cal.collect_events()] == ["Created", "Reserved", "Moved"]


def test_slots_of_the_asking_course_can_be_left_to_the_course() -> None:
    cal = calendar()
    reserve(cal, "s1", 0)
    assert cal.violation(T0, T0 + timedelta(hours=1), "x", other_courses_than="c1") is None
    assert cal.violation(T0, T0 + timedelta(hours=1), "x") is not None


def test_a_copy_shares_no_slots() -> None:
    import copy

    cal = calendar()
    reserve(cal, "s1", 0)
    clone = copy.deepcopy(cal)
    reserve(clone, "s2", 3)
    assert list(cal.slots) == ["s1"] and sorted(clone.slots) == ["s1", "s2"]


operations = st.lists(st.tuples(st.sampled_from(["reserve", "release"]), st.integers(0, 7),
                                st.integers(0, 40), st.integers(1, 8)), max_size=40)


@given(operations)
def test_no_two_slots_ever_overlap_and_a_free_slot_is_never_refused(ops: list[tuple[str, int, int, int]]) -> None:
    cal = calendar()
    for op, n, start, length in ops:
        session = f"s{n}"
        if op == "release":
            cal.release(session)
            assert session not in cal.slots
            continue
        starts, ends = T0 + timedelta(minutes=15 * start), T0 + timedelta(minutes=15 * (start + length))
        free = all(s.session_id == session or not (s.starts_at < ends and starts < s.ends_at)
                   for s in cal.slots.values())
        try:
            cal.reserve(course_id="c", session_id=session, starts_at=starts, ends_at=ends, label="x")
        except RulesBrokenError:
            assert not free
        else:
            assert free and (cal.slots[session].starts_at, cal.slots[session].ends_at) == (starts, ends)
        held = sorted(cal.slots.values(), key=lambda s: s.starts_at)
        assert all(a.ends_at <= b.starts_at for a, b in zip(held, held[1:]))
