"""Opening hours, closures and working hours, judged in the clinic's local wall-clock time (DST, midnight)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.domain.errors import Violation
from scheduler.domain.rules.hours import Closure, Schedule, WorkingHours, hours_violations, wall_pieces

BERLIN = "Europe/Berlin"
UTC = timezone.utc
NINE_TO_FIVE = {d: [(9 * 60, 17 * 60)] for d in range(5)}  # Monday to Friday
HARBOUR = Schedule("Harbour", BERLIN, NINE_TO_FIVE)


def local(*args: int, zone: str = BERLIN) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))


def rules(violations: list[Violation]) -> list[str]:
    return [v.rule for v in violations]


def test_without_hours_a_clinic_is_always_open_and_a_clinician_always_available() -> None:
    always = Schedule("Always", BERLIN)
    start = local(2026, 3, 29, 1, 30)  # a Sunday night, across the change to summer time
    assert hours_violations(always, [WorkingHours("Mara")], start, start + timedelta(hours=12)) == []


def test_a_session_within_opening_hours_is_accepted() -> None:
    assert hours_violations(HARBOUR, [], local(2026, 1, 5, 9), local(2026, 1, 5, 17)) == []


@pytest.mark.parametrize(("start", "end"), [
    ((2026, 1, 5, 8, 59), (2026, 1, 5, 10)),   # a minute early
    ((2026, 1, 5, 16), (2026, 1, 5, 17, 1)),   # a minute late
    ((2026, 1, 10, 10), (2026, 1, 10, 11)),    # Saturday: no interval that day
])
def test_a_session_outside_opening_hours_is_refused(start: tuple[int, ...], end: tuple[int, ...]) -> None:
    refused = hours_violations(HARBOUR, [], local(*start), local(*end))
    assert rules(refused) == ["opening-hours"]
    assert refused[0].message.startswith("Harbour is not open on ")


def test_the_message_names_the_clinic_the_local_times_and_the_hours() -> None:
    refused = hours_violations(HARBOUR, [], local(2026, 1, 5, 8, 30), local(2026, 1, 5, 10))
    assert refused == [Violation("opening-hours", "Harbour is not open on Monday 2026-01-05 08:30-10:00 "
                                                  "(Europe/Berlin); it opens Monday 09:00-17:00")]


def test_touching_intervals_hold_a_session_across_their_seam_but_a_gap_does_not() -> None:
    split = Schedule("Split", BERLIN, {0: [(13 * 60, 17 * 60), (9 * 60, 13 * 60)]})
    assert hours_violations(split, [], local(2026, 1, 5, 12), local(2026, 1, 5, 14)) == []
    lunch = Schedule("Lunch", BERLIN, {0: [(9 * 60, 12 * 60), (13 * 60, 17 * 60)]})
    assert rules(hours_violations(lunch, [], local(2026, 1, 5, 11), local(2026, 1, 5, 14))) == ["opening-hours"]
    assert hours_violations(lunch, [], local(2026, 1, 5, 13), local(2026, 1, 5, 17)) == []


def test_a_session_past_midnight_lies_within_the_hours_of_both_days() -> None:
    nights = Schedule("Nights", BERLIN, {0: [(20 * 60, 24 * 60)], 1: [(0, 2 * 60)]})
    assert hours_violations(nights, [], local(2026, 1, 5, 23), local(2026, 1, 6, 1)) == []
    refused = hours_violations(nights, [], local(2026, 1, 5, 23), local(2026, 1, 6, 3))
    assert refused == [Violation("opening-hours", "Nights is not open on Tuesday 2026-01-06 00:00-03:00 "
                                                  "(Europe/Berlin); it opens Monday 20:00-24:00; Tuesday 00:00-02:00")]
    only_monday = Schedule("Monday", BERLIN, {0: [(20 * 60, 24 * 60)]})
    assert rules(hours_violations(only_monday, [], local(2026, 1, 5, 23), local(2026, 1, 6, 1))) == ["opening-hours"]


def test_hours_are_local_wall_time_on_both_sides_of_a_dst_change() -> None:
    # Berlin is UTC+1 in winter and UTC+2 in summer: 09:00 local is 08:00 UTC, then 07:00 UTC.
    winter = datetime(2026, 3, 27, 8, tzinfo=UTC)  # Friday 09:00 CET
    summer = datetime(2026, 3, 30, 7, tzinfo=UTC)  # Monday 09:00 CEST
    assert hours_violations(HARBOUR, [], winter, winter + timedelta(hours=1)) == []
    assert hours_violations(HARBOUR, [], summer, summer + timedelta(hours=1)) == []
    # the same UTC hour as in winter is 08:00 local after the change: before opening
    early = datetime(2026, 3, 30, 6, tzinfo=UTC)
    assert rules(hours_violations(HARBOUR, [], early, early + timedelta(hours=1))) == ["opening-hours"]


def test_the_night_clocks_go_forward_skips_the_missing_hour() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST. From 01:30 to 03:30 local takes one hour.
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert [(d, s / timedelta(minutes=1), e / timedelta(minutes=1))
            for d, s, e in wall_pieces(start, start + timedelta(hours=1), ZoneInfo(BERLIN))] == [
        (date(2026, 3, 29), 90, 120), (date(2026, 3, 29), 180, 210)]
    # open 01:00-02:00 and 03:00-04:00: the session never sees a closed wall-clock minute
    around = Schedule("Around", BERLIN, {6: [(60, 120), (180, 240)]})
    assert hours_violations(around, [], start, start + timedelta(hours=1)) == []
    from_three = Schedule("Three", BERLIN, {6: [(180, 240)]})
    assert rules(hours_violations(from_three, [], start, start + timedelta(hours=1))) == ["opening-hours"]


def test_the_night_clocks_go_back_passes_the_repeated_hour_twice() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET. 02:30 CEST to 02:30 CET is one hour through 02:30-03:00, 02:00-02:30.
    start = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    end = start + timedelta(hours=1)
    assert start.astimezone(ZoneInfo(BERLIN)).hour == end.astimezone(ZoneInfo(BERLIN)).hour == 2
    assert hours_violations(Schedule("Two", BERLIN, {6: [(120, 180)]}), [], start, end) == []
    late = Schedule("Late", BERLIN, {6: [(150, 240)]})  # opens 02:30: the second pass through 02:00-02:30 is closed
    assert rules(hours_violations(late, [], start, end)) == ["opening-hours"]


def test_a_session_on_a_closure_is_refused_with_its_reason() -> None:
    closed = Schedule("Harbour", BERLIN, None, (Closure(date(2026, 12, 24), date(2026, 12, 26), "Christmas"),))
    refused = hours_violations(closed, [], local(2026, 12, 26, 10), local(2026, 12, 26, 11))
    assert refused == [Violation("closure", "Harbour is closed from 2026-12-24 to 2026-12-26: Christmas")]
    assert hours_violations(closed, [], local(2026, 12, 27, 10), local(2026, 12, 27, 11)) == []
    # the local date counts: 23:30 UTC on the 23rd is already the 24th in Berlin
    late = datetime(2026, 12, 23, 23, 30, tzinfo=UTC)
    assert rules(hours_violations(closed, [], late, late + timedelta(minutes=20))) == ["closure"]
    # ending at midnight does not touch the next day
    assert hours_violations(closed, [], local(2026, 12, 23, 23), local(2026, 12, 24)) == []


def test_each_clinician_outside_their_working_hours_is_named() -> None:
    mara = WorkingHours("Mara Lind", {0: [(10 * 60, 12 * 60)]})
    ines = WorkingHours("Dr. Ines Vogt", {0: [(8 * 60, 18 * 60)]})
    always = WorkingHours("Sam")
    refused = hours_violations(HARBOUR, [mara, ines, always], local(2026, 1, 5, 11), local(2026, 1, 5, 13))
    assert refused == [Violation("working-hours", "Mara Lind does not work on Monday 2026-01-05 11:00-13:00 "
                                                  "(Europe/Berlin); works Monday 10:00-12:00")]


def test_every_broken_hours_rule_is_named_together() -> None:
    closed = Schedule("Harbour", BERLIN, NINE_TO_FIVE, (Closure(date(2026, 1, 5), date(2026, 1, 5), "audit"),))
    refused = hours_violations(closed, [WorkingHours("Mara", {})], local(2026, 1, 5, 18), local(2026, 1, 5, 19))
    assert rules(refused) == ["opening-hours", "closure", "working-hours"]
    assert "works Monday never" in refused[2].message


# --- property: the rule agrees with a minute-by-minute reading of the wall clock ---------------------------------

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC", "America/Santiago"]
minutes_of_day = st.integers(0, 24 * 4).map(lambda q: q * 15)


@st.composite
def weeks(draw: st.DrawFn) -> dict[int, list[tuple[int, int]]] | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    week: dict[int, list[tuple[int, int]]] = {}
    for day in draw(st.sets(st.integers(0, 6))):
        for _ in range(draw(st.integers(1, 3))):
            a, b = sorted(draw(st.lists(minutes_of_day, min_size=2, max_size=2, unique=True)))
            week.setdefault(day, []).append((a, b))
    return week


def _open_at(week: dict[int, list[tuple[int, int]]] | None, wall: datetime) -> bool:
    minute = wall.hour * 60 + wall.minute
    return week is None or any(a <= minute < b for a, b in week.get(wall.weekday(), ()))


@settings(max_examples=300, deadline=None)
@given(zone=st.sampled_from(ZONES), opening=weeks(), working=weeks(),
       # around the DST changes of 2026 in the zones above, and anywhere else in the year
       start=st.one_of(st.datetimes(datetime(2026, 3, 6), datetime(2026, 4, 8)),
                       st.datetimes(datetime(2026, 9, 1), datetime(2026, 11, 5)),
                       st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31))).map(
           lambda d: d.replace(second=0, microsecond=0, tzinfo=UTC)),
       minutes=st.integers(1, 12 * 60),
       closed_on=st.none() | st.dates(date(2026, 1, 1), date(2026, 12, 31)),
       given_in=st.sampled_from([None, *ZONES]))
def test_the_rules_agree_with_every_wall_clock_minute_the_session_passes(
        zone: str, opening: dict | None, working: dict | None, start: datetime, minutes: int,
        closed_on: date | None, given_in: str | None) -> None:
    closures = (Closure(closed_on, closed_on + timedelta(days=1), "closed"),) if closed_on else ()
    clinic = Schedule("Clinic", zone, opening, closures)
    walls = [(start + timedelta(minutes=m)).astimezone(ZoneInfo(zone)) for m in range(minutes)]
    expected = []
    if not all(_open_at(opening, w) for w in walls):
        expected.append("opening-hours")
    if closed_on and any(closed_on <= w.date() <= closed_on + timedelta(days=1) for w in walls):
        expected.append("closure")
    if not all(_open_at(working, w) for w in walls):
        expected.append("working-hours")
    # the instants may come with any offset: only the instant counts
    shown = (lambda at: at.astimezone(ZoneInfo(given_in))) if given_in else (lambda at: at)
    got = hours_violations(clinic, [WorkingHours("Mara", working)], shown(start),
                           shown(start + timedelta(minutes=minutes)))
    assert rules(got) == expected
