"""The course planner: the sessions a course still needs, in order, and a plan that, booked and then recorded as
held in order, completes the course without breaking a rule (property test over protocols and starting points)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from builders import BY, HOME, HOME_HOST, T0, approve, assess, book, hold, medicine_record, open_course, prepare
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.domain.course import Course
from scheduler.domain.model import Kind
from scheduler.domain.protocol import Model, Protocol
from scheduler.domain.rules.planning import Need, UnplannableError, needs, plan

LENGTH = {Kind.MEDICINE: timedelta(hours=3)}


def hourly_finder(now: datetime, horizon: timedelta = timedelta(days=60), forbidden: set[int] = frozenset()):  # type: ignore[no-untyped-def]
    """The first whole hour at or after `earliest` (not an hour of day in `forbidden`) the scratch course accepts,
    at the home clinic: a stand-in for the calendars' free-slot search."""
    def find(need: Need, earliest: datetime, scratch: Course):  # type: ignore[no-untyped-def]
        start = earliest.replace(minute=0, second=0, microsecond=0)
        if start < earliest:
            start += timedelta(hours=1)
        while start < earliest + horizon:
            end = start + LENGTH.get(need.kind, timedelta(hours=1))
            if start.hour not in forbidden and not scratch.booking_violations(need.kind, start, end, HOME, HOME_HOST,
                                                                             now)[0]:
                return start, end, HOME, None, ()
            start += timedelta(hours=1)
        return None
    return find


def test_a_fresh_course_needs_every_phase_in_order() -> None:
    course = open_course(protocol=Protocol(max_medicine_sessions=2, min_integration_sessions=2))
    kinds = [(n.kind.value, n.partners) for n in needs(course, 2)]
    assert kinds == [("assessment", ("a", "b")), ("preparation", ("a",)), ("preparation", ("b",)),
                     ("preparation", ("a", "b")), ("preparation", ("a", "b")),
                     ("medicine", ("a", "b")), ("integration", ("a", "b")), ("integration", ("a", "b")),
                     ("medicine", ("a", "b")), ("integration", ("a", "b")), ("integration", ("a", "b"))]
    # at most the protocol's medicine sessions (I2)
    assert sum(1 for n in needs(course, 9) if n.kind is Kind.MEDICINE) == 2


def record_in_order(course: Course, ids: list[str]) -> None:
    """Record every planned session held, in order, as a clinic would: medicine sessions with approved doses."""
    dosed = course.first_dosed
    for sid in ids:
        session = course.sessions[sid]
        if session.kind is Kind.MEDICINE:
            partners = ["a", "b"] if course.model is Model.TOGETHER else [dosed]
            for p in partners:
                approve(course, sid, p)
            course.record_held(session_id=sid, now=session.starts_at + timedelta(hours=4), by=BY,
                               **medicine_record(course, sid, partners))
            dosed = "b" if dosed == "a" else "a"
        else:
            hold(course, sid)


@settings(max_examples=25, deadline=None)
@given(model=st.sampled_from([Model.TAKING_TURNS, Model.TOGETHER]), medicine=st.integers(1, 3),
       integrations=st.integers(1, 4), window=st.sampled_from([24, 48, 120]), interval=st.integers(1, 21),
       start=st.sampled_from(["fresh", "assessed", "prepared"]), joint=st.integers(2, 3),
       forbidden=st.sets(st.integers(0, 23), max_size=12))
def test_a_plan_booked_and_held_in_order_completes_the_course(model: Model, medicine: int, integrations: int,
                                                                window: int, interval: int, start: str, joint: int,
                                                                forbidden: set[int]) -> None:
    protocol = Protocol(max_medicine_sessions=medicine, min_integration_sessions=integrations,
                        integration_window_hours=window, min_medicine_interval_days=interval,
                        joint_preparation_sessions=joint)
    course = open_course(model, protocol)
    course.record_screening(partner="a", result="eligible", clinician_id="t-1", by=BY)
    course.record_screening(partner="b", result="eligible", clinician_id="t-1", by=BY)
    now = T0
    if start != "fresh":
        book(course, "assess-1", Kind.ASSESSMENT, T0)
        hold(course, "assess-1")
        now = T0 + timedelta(hours=2)
    if start == "prepared":
        now = prepare(course, T0 + timedelta(hours=1))
    proposed = plan(course, medicine, now, hourly_finder(now, forbidden=forbidden))
    ids = []
    for i, item in enumerate(proposed):
        sid = f"p{i}"
        course.book_session(session_id=sid, kind=item.kind, partners=item.partners, starts_at=item.starts_at,
                            ends_at=item.ends_at, clinic_id=item.clinic_id, host=HOME_HOST, by=BY, now=now)
        assert course.sessions[sid].follows == (f"p{int(item.follows[5:])}" if item.follows else None)
        ids.append(sid)
    record_in_order(course, ids)
    course.complete(by=BY)
    assert course.status.value == "completed"
    assert sum(1 for s in course.sessions.values() if s.kind is Kind.MEDICINE) == medicine


def test_a_session_that_fits_nowhere_is_named() -> None:
    course = open_course(protocol=Protocol(max_medicine_sessions=1, min_integration_sessions=1))
    with pytest.raises(UnplannableError) as refused:
        plan(course, 1, T0, hourly_finder(T0, forbidden=set(range(24))))
    assert refused.value.index == 0 and refused.value.need.kind is Kind.ASSESSMENT
    assert "1. session of the plan, a assessment session" in str(refused.value)
    assert course.sessions == {}  # the course itself was not changed
