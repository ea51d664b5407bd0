"""Daylight-saving changes (Europe/London, America/New_York): instants are UTC, windows are elapsed hours, hours
are local wall-clock times, and the course shows each time in its hosting clinic's zone with that day's offset."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from builders import BY, HOME, HOME_HOST, dose, open_course, prepared_course
from hypothesis import given
from hypothesis import strategies as st
from scheduler.domain.course import Kind
from scheduler.domain.errors import InvalidCommandError, RulesBrokenError
from scheduler.domain.rules.hours import Schedule, WorkingHours, hours_violations, wall_pieces
from scheduler.http.views import course_view

UTC = timezone.utc
LONDON, NEW_YORK = ZoneInfo("Europe/London"), ZoneInfo("America/New_York")
# (zone, the instant its clocks change in 2026, hours the clocks move: +1 forward, -1 back)
CHANGES = {
    "london-spring": (LONDON, datetime(2026, 3, 29, 1, tzinfo=UTC), +1),
    "london-autumn": (LONDON, datetime(2026, 10, 25, 1, tzinfo=UTC), -1),
    "new-york-spring": (NEW_YORK, datetime(2026, 3, 8, 7, tzinfo=UTC), +1),
    "new-york-autumn": (NEW_YORK, datetime(2026, 11, 1, 6, tzinfo=UTC), -1),
}
HOUR = timedelta(hours=1)


def wall(at: datetime, zone: ZoneInfo) -> datetime:
    """The wall-clock reading of an instant in a zone, as a naive datetime (what a clock on the wall shows)."""
    return at.astimezone(zone).replace(tzinfo=None)


@pytest.mark.parametrize("change", CHANGES, ids=str)
def test_a_window_across_a_change_is_48_elapsed_hours_not_48_on_the_wall(change: str) -> None:
    zone, at, moved = CHANGES[change]
    course, _ = prepared_course()
    dose(course, "m1", at - 5 * HOUR, ["a"])  # held; discharged 2 h 40 min before the clocks change
    medicine = course.sessions["m1"]
    ended = medicine.finished_at
    assert ended < at
    deadline = course.window_deadline(medicine)
    assert deadline - ended == 48 * HOUR
    assert wall(deadline, zone) - wall(ended, zone) == (48 + moved) * HOUR  # 49 on the wall in spring, 47 in autumn


@pytest.mark.parametrize("change", CHANGES, ids=str)
def test_the_missed_window_watcher_judges_by_elapsed_time(change: str) -> None:
    zone, at, moved = CHANGES[change]
    course, _ = prepared_course()
    dose(course, "m1", at - 5 * HOUR, ["a"])
    medicine = course.sessions["m1"]
    deadline = course.window_deadline(medicine)
    # the clock of the watcher as the clinic reads it (local, with its offset): 48 wall-clock hours after the end
    wall_48 = (wall(medicine.finished_at, zone) + 48 * HOUR).replace(tzinfo=zone)
    assert wall_48.astimezone(UTC) - deadline == -moved * HOUR  # an hour early in spring, an hour late in autumn
    assert course.record_missed_integration_windows(now=(deadline - timedelta(seconds=1)).astimezone(zone),
                                                    by="system") == []
    if moved > 0:  # spring: 48 wall-clock hours on, 47 have elapsed: still open
        assert course.record_missed_integration_windows(now=wall_48, by="system") == []
    assert course.record_missed_integration_windows(now=(deadline + timedelta(seconds=1)).astimezone(zone),
                                                    by="system") == ["m1"]
    assert course.missed_windows["m1"].deadline == deadline


@given(zone=st.sampled_from([LONDON, NEW_YORK]),
       ended=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)))
def test_a_deadline_is_48_elapsed_hours_after_an_end_given_in_any_zone(zone: ZoneInfo, ended: datetime) -> None:
    course = open_course()
    local = ended.astimezone(zone)  # the same instant, as a clinic's local time
    assert course.deadline_after(local) == ended + 48 * HOUR
    assert course.deadline_after(local).utcoffset() == timedelta(0)


def mondays_and_sundays_around(change: str) -> list[date]:
    zone, at, _ = CHANGES[change]
    day = wall(at, zone).date()  # a Sunday
    assert day.weekday() == 6
    return [day - timedelta(days=7), day - timedelta(days=6), day, day + timedelta(days=1), day + timedelta(days=7),
            day + timedelta(days=8)]


@pytest.mark.parametrize("change", CHANGES, ids=str)
def test_hours_of_10_local_hold_a_session_at_10_local_on_both_sides_of_a_change(change: str) -> None:
    zone, at, _ = CHANGES[change]
    opening = {0: [(600, 660)], 6: [(600, 660)]}  # Mondays and Sundays, 10:00-11:00 local
    clinic = Schedule("Clinic", str(zone), opening=opening)
    therapist = WorkingHours("Therapist", hours=opening)
    before_offset = at.astimezone(zone).utcoffset() - (at - HOUR).astimezone(zone).utcoffset()
    assert abs(before_offset) == HOUR
    for day in mondays_and_sundays_around(change):
        start = datetime(day.year, day.month, day.day, 10, tzinfo=zone)
        assert hours_violations(clinic, [therapist], start, start + HOUR) == [], day
        # 10:00 local as it was on the other side of the change, as an instant: not 10:00 local on this side
        other_offset = (at - HOUR if start >= at else at).astimezone(zone).utcoffset()
        same_utc_time = (start.replace(tzinfo=None) - other_offset).replace(tzinfo=UTC)
        assert wall(same_utc_time, zone).hour in (9, 11)
        refused = hours_violations(clinic, [therapist], same_utc_time, same_utc_time + HOUR)
        assert [v.rule for v in refused] == ["opening-hours", "working-hours"], day


@pytest.mark.parametrize("change", CHANGES, ids=str)
def test_the_course_shows_times_in_the_hosting_clinics_zone_with_each_sides_offset(change: str) -> None:
    zone, at, moved = CHANGES[change]
    course = open_course()
    days = mondays_and_sundays_around(change)
    for day in (days[1], days[3]):  # the Monday before and the Monday after
        start = datetime(day.year, day.month, day.day, 10, tzinfo=zone)
        course.book_session(session_id=str(day), kind=Kind.ASSESSMENT, partners=("a", "b"), starts_at=start,
                            ends_at=start + HOUR, clinic_id=HOME, host=HOME_HOST, timezone=str(zone), by=BY)
    before, after = course_view(course).sessions
    for shown in (before, after):
        assert shown.starts_at.utcoffset() == timedelta(0)
        assert (shown.starts_at_local.hour, shown.ends_at_local.hour) == (10, 11)
        assert shown.starts_at_local == shown.starts_at and shown.timezone == str(zone)
    assert after.starts_at_local.utcoffset() - before.starts_at_local.utcoffset() == moved * HOUR
    assert after.starts_at - before.starts_at == timedelta(days=7) - moved * HOUR  # UTC shifts by the hour


# The night the clocks change, a session from 01:00 to 03:00 on the wall (London: the gap is 01:00-02:00, the
# repeated hour 01:00-02:00; New York: 02:00-03:00 and 01:00-02:00). fold=0: the first of a repeated hour.
NIGHT = {
    "london-spring": (datetime(2026, 3, 29, 0, 30), datetime(2026, 3, 29, 2, 30), 1),  # 01:00 does not exist
    "london-autumn": (datetime(2026, 10, 25, 1, 0), datetime(2026, 10, 25, 3, 0), 3),
    "new-york-spring": (datetime(2026, 3, 8, 1, 0), datetime(2026, 3, 8, 3, 0), 1),
    "new-york-autumn": (datetime(2026, 11, 1, 1, 0), datetime(2026, 11, 1, 3, 0), 3),
}


@pytest.mark.parametrize("change", CHANGES, ids=str)
def test_a_session_across_the_change_itself_is_measured_in_elapsed_time(change: str) -> None:
    zone = CHANGES[change][0]
    first, last, elapsed = NIGHT[change]
    starts_at, ends_at = first.replace(tzinfo=zone), last.replace(tzinfo=zone)
    course = open_course()
    course.book_session(session_id="night", kind=Kind.ASSESSMENT, partners=("a", "b"), starts_at=starts_at,
                        ends_at=ends_at, clinic_id=HOME, host=HOME_HOST, timezone=str(zone), by=BY)
    session = course.sessions["night"]
    assert session.ends_at - session.starts_at == elapsed * HOUR
    assert (wall(session.starts_at, zone), wall(session.ends_at, zone)) == (first, last)
    # the wall-clock times it passes through: the skipped hour is not passed, the repeated one is passed twice
    pieces = list(wall_pieces(session.starts_at, session.ends_at, zone))
    assert sum((end - start for _, start, end in pieces), timedelta()) == elapsed * HOUR
    # hours from the first to the last wall-clock minute hold it; opening an hour later does not
    minutes = (first.hour * 60 + first.minute, last.hour * 60 + last.minute)
    week = {first.weekday(): [minutes]}
    assert hours_violations(Schedule("Clinic", str(zone), opening=week), [], session.starts_at, session.ends_at) == []
    short = {first.weekday(): [(minutes[0] + 60, minutes[1])]}
    assert [v.rule for v in hours_violations(Schedule("Clinic", str(zone), opening=short), [], session.starts_at,
                                             session.ends_at)] == ["opening-hours"]


def test_the_repeated_hour_holds_two_sessions_that_do_not_overlap() -> None:
    """01:00-01:50 on the wall, twice on the night clocks go back: two instants an hour apart (I10 by instants)."""
    course = open_course()

    def book(sid: str, wall_start: datetime, minutes: int) -> None:
        start = wall_start.replace(tzinfo=NEW_YORK)
        course.book_session(session_id=sid, kind=Kind.ASSESSMENT, partners=("a", "b"), starts_at=start,
                            ends_at=start.astimezone(UTC) + timedelta(minutes=minutes), clinic_id=HOME,
                            host=HOME_HOST, timezone="America/New_York", by=BY)

    book("fold-0", datetime(2026, 11, 1, 1, 0, fold=0), 50)
    book("fold-1", datetime(2026, 11, 1, 1, 0, fold=1), 50)
    first, second = course.sessions["fold-0"], course.sessions["fold-1"]
    assert second.starts_at - first.starts_at == HOUR
    with pytest.raises(RulesBrokenError, match="I10"):  # the same wall-clock time in the second hour: a clash
        book("clash", datetime(2026, 11, 1, 1, 20, fold=1), 20)


@pytest.mark.parametrize(("change", "wall_end", "accepted"), [
    ("london-spring", datetime(2026, 3, 29, 12, 45), True),  # 12 h 15 on the wall, 11 h 15 elapsed
    ("london-autumn", datetime(2026, 10, 25, 12, 15), False),  # 11 h 45 on the wall, 12 h 45 elapsed
    ("new-york-spring", datetime(2026, 3, 8, 12, 45), True),
    ("new-york-autumn", datetime(2026, 11, 1, 12, 15), False),
])
def test_the_12_hour_limit_is_elapsed_time_for_times_given_in_the_clinics_zone(
        change: str, wall_end: datetime, accepted: bool) -> None:
    zone = CHANGES[change][0]
    course = open_course()
    start, end = wall_end.replace(hour=0, minute=30, tzinfo=zone), wall_end.replace(tzinfo=zone)
    book = lambda: course.book_session(  # noqa: E731
        session_id="long", kind=Kind.ASSESSMENT, partners=("a", "b"), starts_at=start, ends_at=end, clinic_id=HOME,
        host=HOME_HOST, timezone=str(zone), by=BY)
    if accepted:
        book()
        assert course.sessions["long"].ends_at - course.sessions["long"].starts_at < timedelta(hours=12)
    else:
        with pytest.raises(InvalidCommandError, match="at most 12 hours"):
            book()


def test_an_end_before_the_start_on_the_repeated_hour_is_refused() -> None:
    """01:50 (first pass) is on the wall after 01:20 (second pass), but an hour earlier."""
    course = open_course()
    with pytest.raises(InvalidCommandError, match="ends_at must be after starts_at"):
        course.book_session(session_id="back", kind=Kind.ASSESSMENT, partners=("a", "b"),
                            starts_at=datetime(2026, 11, 1, 1, 20, fold=1, tzinfo=NEW_YORK),
                            ends_at=datetime(2026, 11, 1, 1, 50, fold=0, tzinfo=NEW_YORK), clinic_id=HOME,
                            host=HOME_HOST, by=BY)
