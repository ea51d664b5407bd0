"""A clinic's booking rules and holds in the domain: buffers (the gap between two sessions of a resource is the
larger of their buffers), a clinician's local days and weeks, the host's ledger, notice and horizon, and a
course's holds (taken as a booking would be, booked from, released, expired)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from builders import BY, HOME, HOME_HOST, T0, book, event_types, open_course, prepared_course, refused
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.domain.calendar import Calendar, Resource
from scheduler.domain.errors import InvalidCommandError, RulesBrokenError, UnknownHoldError
from scheduler.domain.rules.booking import BookingRules, Buffer, Candidate, day_span, hosted_violations, \
    resource_violations, timing_violations

UTC = ZoneInfo("UTC")
LONDON = ZoneInfo("Europe/London")
MIN = timedelta(minutes=1)


def calendar(resource: Resource = Resource.CLINICIAN) -> Calendar:
    return Calendar.open(uuid4(), resource)


def at(minutes: int) -> datetime:
    return T0 + minutes * MIN


def take(cal: Calendar, sid: str, start: int, length: int, before: int = 0, after: int = 0, **kw: object) -> None:
    cal.reserve(course_id="c1", session_id=sid, starts_at=at(start), ends_at=at(start + length), label="x",
                before=before * MIN, after=after * MIN, **kw)  # type: ignore[arg-type]


def candidate(start: int, length: int, kind: str = "assessment", ignore: tuple[str, ...] = ()) -> Candidate:
    return Candidate("c2", kind, at(start), at(start + length), ignore)


# ------------------------------------------------------------------ buffers

slots = st.lists(st.tuples(st.integers(0, 600), st.integers(10, 180), st.integers(0, 60), st.integers(0, 60)),
                 max_size=6)


@settings(max_examples=300, deadline=None)
@given(existing=slots, start=st.integers(-200, 800), length=st.integers(10, 180), before=st.integers(0, 60),
       after=st.integers(0, 60))
def test_a_slot_is_too_close_exactly_when_a_gap_is_shorter_than_the_larger_buffer(
        existing: list[tuple[int, int, int, int]], start: int, length: int, before: int, after: int) -> None:
    cal = calendar()
    kept = []
    for i, (s, n, b, a) in enumerate(existing):
        if cal.clash(at(s), at(s + n)) is None:  # the calendar holds no overlap: keep those it accepts
            take(cal, f"s{i}", s, n, b, a)
            kept.append((s, n, b, a))
    rules = BookingRules(buffers={"assessment": Buffer(before, after)})
    broken = resource_violations(rules, cal, "x", candidate(start, length), UTC, None)

    def too_close(s: int, n: int, b: int, a: int) -> bool:
        overlap = s < start + length and start < s + n
        gap_after_it = start - (s + n)  # it ends before the candidate starts
        gap_before_it = s - (start + length)  # it starts after the candidate ends
        return overlap or 0 <= gap_after_it < max(a, before) or 0 <= gap_before_it < max(after, b)

    expected = [too_close(*k) for k in kept]
    assert bool(broken) == any(expected)
    if broken:
        assert broken[0].rule == ("I10" if any(s < start + length and start < s + n for s, n, _, _ in kept)
                                  else "buffers")


def test_buffers_name_both_sessions_and_adjacent_sessions_without_buffers_are_fine() -> None:
    cal = calendar(Resource.ROOM)
    take(cal, "medicine", 0, 180, before=15, after=45)
    (violation,) = resource_violations(BookingRules(), cal, "room r", candidate(200, 60), UTC, None)
    assert violation.rule == "buffers" and "session medicine" in violation.message
    assert "45 min after that one" in violation.message
    assert resource_violations(BookingRules(), cal, "room r", candidate(225, 60), UTC, None) == []


# ---------------------------------------------------------- daily and weekly

def test_a_clinicians_day_and_week_are_the_clinics_local_ones_across_a_clock_change() -> None:
    # Sunday 2026-03-29, the day Europe/London moves to summer time: 23 elapsed hours.
    start, end = day_span(datetime(2026, 3, 29).date(), LONDON)
    assert end - start == timedelta(hours=23)
    cal = calendar()
    sunday = datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc)  # 00:30 GMT: Sunday in London
    for i in range(2):
        cal.reserve(course_id="c1", session_id=f"s{i}", starts_at=sunday + timedelta(hours=3 * i),
                    ends_at=sunday + timedelta(hours=3 * i + 1), label="x")
    rules = BookingRules(clinician_daily_limit=2, clinician_weekly_limit=3)
    late_sunday = datetime(2026, 3, 29, 22, 30, tzinfo=timezone.utc)  # 23:30 BST: still Sunday
    one = Candidate("c2", "integration", late_sunday, late_sunday + timedelta(minutes=20))
    assert [v.rule for v in resource_violations(rules, cal, "clinician x", one, LONDON, None)] == [
        "clinician-daily-limit"]
    monday = datetime(2026, 3, 29, 23, 30, tzinfo=timezone.utc)  # 00:30 BST Monday: a new day and a new week
    two = Candidate("c2", "integration", monday, monday + timedelta(hours=1))
    assert resource_violations(rules, cal, "clinician x", two, LONDON, None) == []
    cal.reserve(course_id="c1", session_id="s9", starts_at=sunday - timedelta(days=2),
                ends_at=sunday - timedelta(days=2) + timedelta(hours=1), label="x")  # Friday: the same week
    saturday = sunday - timedelta(days=1)
    three = Candidate("c2", "integration", saturday, saturday + timedelta(hours=1))
    assert [v.rule for v in resource_violations(rules, cal, "clinician x", three, LONDON, None)] == [
        "clinician-weekly-limit"]
    # the session being moved does not count against itself; a room has no such limits
    assert resource_violations(rules, cal, "x", Candidate("c1", "integration", saturday, saturday + MIN,
                                                          ignore=("s9",)), LONDON, None) == []
    room = calendar(Resource.ROOM)
    for i in range(5):
        room.reserve(course_id="c1", session_id=f"r{i}", starts_at=sunday + timedelta(hours=i),
                     ends_at=sunday + timedelta(hours=i, minutes=30), label="r")
    assert resource_violations(rules, room, "room", one, LONDON, None) == []


# ------------------------------------------------------------------- holds

def test_a_hold_takes_its_time_until_it_expires() -> None:
    cal = calendar()
    take(cal, "hold_1", 0, 60, expires_at=at(-50), holder="home")  # taken at -60, for ten minutes
    assert cal.clash(at(0), at(60), now=at(-55)) is not None
    assert cal.clash(at(0), at(60), now=at(-50)) is None  # expired: the time is free
    assert cal.clash(at(0), at(60)) is not None  # without a clock, a hold counts
    assert cal.count(at(0), at(60), now=at(-55)) == 1 and cal.count(at(0), at(60), now=at(-40)) == 0
    # a session booked from the hold takes its place in one step
    cal.reserve(course_id="c1", session_id="s1", starts_at=at(0), ends_at=at(60), label="x", now=at(-55),
                replaces=["hold_1"])
    assert list(cal.slots) == ["s1"] and cal.slots["s1"].expires_at is None


def test_a_hosts_ledger_counts_medicine_sessions_per_day_and_a_partners_open_holds() -> None:
    ledger = calendar(Resource.HOST)
    ledger.reserve(course_id="c1", session_id="m1", starts_at=at(0), ends_at=at(180), label="l", kind="medicine")
    ledger.reserve(course_id="c1", session_id="m2", starts_at=at(0), ends_at=at(180), label="l",
                   kind="medicine")  # a ledger never refuses an overlap: each session has its own room
    ledger.reserve(course_id="c3", session_id="hold_1", starts_at=at(300), ends_at=at(360), label="l",
                   kind="integration", expires_at=at(10), holder="partner-1")
    rules = BookingRules(partner_medicine_daily_cap=2, max_partner_holds=1)
    medicine = Candidate("c2", "medicine", at(240), at(420))
    assert [v.rule for v in hosted_violations(rules, ledger, "Host", medicine, UTC, at(0))] == [
        "partner-medicine-daily-cap"]
    assert [v.rule for v in hosted_violations(rules, ledger, "Host", candidate(400, 30), UTC, at(0),
                                              holder="partner-1")] == ["holds-cap"]
    assert hosted_violations(rules, ledger, "Host", candidate(400, 30), UTC, at(0), holder="partner-2") == []
    assert hosted_violations(rules, ledger, "Host", candidate(400, 30), UTC, at(10), holder="partner-1") == []


def test_notice_and_horizon_are_judged_when_the_clinic_books() -> None:
    rules = BookingRules(min_notice_minutes=60, horizon_days=2)
    assert [v.rule for v in timing_violations(rules, "C", at(59), at(0))] == ["min-notice"]
    assert timing_violations(rules, "C", at(60), at(0)) == []
    assert timing_violations(rules, "C", at(2 * 24 * 60), at(0)) == []
    assert [v.rule for v in timing_violations(rules, "C", at(2 * 24 * 60 + 1), at(0))] == ["booking-horizon"]
    assert timing_violations(BookingRules(), "C", at(-5), at(0)) == []  # no rules: nothing (the past is I-level)


def test_rules_are_bounded_and_round_trip() -> None:
    rules = BookingRules(buffers={"medicine": Buffer(15, 45)}, min_notice_minutes=720, horizon_days=180,
                         clinician_daily_limit=6, clinician_weekly_limit=25, partner_medicine_daily_cap=2,
                         hold_minutes=5, max_partner_holds=3)
    assert rules.problems() == [] and BookingRules.from_dict(rules.to_dict()) == rules
    assert BookingRules.from_dict(None) == BookingRules()
    bad = BookingRules(buffers={"medicine": Buffer(-1, 300)}, hold_minutes=0, horizon_days=1,
                       min_notice_minutes=3000)
    assert bad.problems() == ["buffers of medicine sessions must be 0..240 minutes", "hold_minutes must be 1..60",
                              "min_notice_minutes must not reach past horizon_days"]


# ------------------------------------------------------- a course's holds

def hold_slot(course, hold_id: str, kind: str, start: datetime, now: datetime, minutes: int = 10, **kw):  # type: ignore[no-untyped-def]
    course.hold_slot(hold_id=hold_id, kind=kind, partners=("a", "b"), starts_at=start,
                     ends_at=start + timedelta(hours=1), clinic_id=HOME, host=HOME_HOST,
                     expires_at=now + timedelta(minutes=minutes), by=BY, now=now, **kw)


def test_a_course_holds_a_slot_as_it_would_book_it_and_books_it_from_the_hold() -> None:
    course = open_course()
    now = T0 - timedelta(days=1)
    hold_slot(course, "hold_1", "assessment", T0, now)
    # an integration session cannot be held before any medicine session, as it cannot be booked (I1)
    error = refused(course, RulesBrokenError,
                    lambda: hold_slot(course, "hold_2", "integration", T0 + timedelta(hours=3), now))
    assert [v.rule for v in error.violations] == ["I1"]
    # the couple's own holds do not overlap either
    error = refused(course, RulesBrokenError,
                    lambda: hold_slot(course, "hold_3", "assessment", T0 + timedelta(minutes=30), now))
    assert [v.rule for v in error.violations] == ["I10"]
    held = course.book_hold(hold_id="hold_1", session_id="s1", host=HOME_HOST, by=BY, now=now + 5 * MIN)
    assert course.holds == {} and course.sessions["s1"].starts_at == held.starts_at
    assert event_types(course)[-3:] == ["SlotHeld", "SessionBooked", "HoldReleased"]
    refused(course, UnknownHoldError, lambda: course.book_hold(hold_id="hold_1", session_id="s2", by=BY, now=now))


def test_an_expired_hold_is_booked_no_more_and_is_recorded_expired_once() -> None:
    course = open_course()
    now = T0 - timedelta(days=1)
    hold_slot(course, "hold_1", "assessment", T0, now, minutes=2)
    error = refused(course, RulesBrokenError, lambda: course.book_hold(
        hold_id="hold_1", session_id="s1", host=HOME_HOST, by=BY, now=now + 2 * MIN))
    assert [v.rule for v in error.violations] == ["hold-expired"]
    assert course.expire_holds(now=now + MIN, by=BY) == []
    (expired,) = course.expire_holds(now=now + 3 * MIN, by=BY)
    assert expired.id == "hold_1" and course.holds == {}
    assert course.expire_holds(now=now + 4 * MIN, by=BY) == []
    assert event_types(course)[-1] == "HoldExpired"


def test_the_holds_of_a_plan_are_judged_as_the_bookings_they_become() -> None:
    course, end = prepared_course()
    now = end
    medicine = end + timedelta(days=1)
    hold_slot(course, "hold_m", "medicine", medicine, now, minutes=10)
    # its first integration session may follow the held (not yet booked) medicine session, inside its window
    hold_slot(course, "hold_i", "integration", medicine + timedelta(hours=20), now)
    # but not a second medicine session too soon after it (I5), nor one overlapping it (I10)
    error = refused(course, RulesBrokenError,
                    lambda: hold_slot(course, "hold_x", "medicine", medicine + timedelta(days=2), now))
    assert [v.rule for v in error.violations] == ["I5"]
    # once the medicine hold expired, the integration hold alone would not be accepted again
    later = now + timedelta(minutes=11)
    error = refused(course, RulesBrokenError,
                    lambda: hold_slot(course, "hold_y", "integration", medicine + timedelta(hours=30), later))
    assert "I1" in [v.rule for v in error.violations]
    # booked in order, the plan's holds become its sessions
    course.book_hold(hold_id="hold_m", session_id="m1", host=HOME_HOST, by=BY, now=now + MIN)
    course.book_hold(hold_id="hold_i", session_id="i1", host=HOME_HOST, by=BY, now=now + MIN)
    assert course.sessions["i1"].follows == "m1" and course.holds == {}


def test_holds_end_with_the_course_and_bad_holds_are_refused() -> None:
    course, end = prepared_course()
    now = end
    with pytest.raises(InvalidCommandError):
        hold_slot(course, "hold_x", "assessment", end + timedelta(days=1), now, minutes=0)
    hold_slot(course, "hold_1", "medicine", end + timedelta(days=1), now)
    course.release_hold(hold_id="hold_1", by=BY)
    assert course.holds == {}
    hold_slot(course, "hold_2", "medicine", end + timedelta(days=2), now)
    book(course, "m1", "medicine", end + timedelta(days=20))
    course.discontinue(reason="couple chose to stop", by=BY)
    assert course.holds == {} and "HoldReleased" in event_types(course)[-2:]
