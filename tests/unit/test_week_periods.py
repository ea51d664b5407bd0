"""The pure parts of the week's reads: local days and ISO weeks in a zone (across daylight-saving changes) and
the course list's cursor."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from scheduler.application.reads import Cursor, decode_cursor, encode_cursor, period_of
from scheduler.domain.errors import InvalidCommandError

LONDON, NEW_YORK, BERLIN = ZoneInfo("Europe/London"), ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(("zone", "day", "hours"), [
    (LONDON, date(2026, 3, 29), 23),  # clocks go forward at 01:00
    (LONDON, date(2026, 10, 25), 25),  # and back at 02:00
    (LONDON, date(2026, 3, 30), 24),
    (NEW_YORK, date(2026, 3, 8), 23),
    (NEW_YORK, date(2026, 11, 1), 25),
])
def test_a_local_day_lasts_as_long_as_its_clocks_say(zone: ZoneInfo, day: date, hours: int) -> None:
    period = period_of("day", day, zone)
    assert period.hours == hours
    assert (period.starts_at.date(), period.starts_at.hour) == (day, 0)
    assert period.ends_at.hour == 0


@pytest.mark.parametrize(("zone", "day", "monday", "hours"), [
    (LONDON, date(2026, 3, 26), date(2026, 3, 23), 167),  # the week of the spring change (Sunday 29th)
    (LONDON, date(2026, 10, 25), date(2026, 10, 19), 169),  # a Sunday: its week began the Monday before
    (NEW_YORK, date(2026, 3, 9), date(2026, 3, 9), 168),  # the Monday after the change: a plain week
    (NEW_YORK, date(2026, 3, 8), date(2026, 3, 2), 167),
    (NEW_YORK, date(2026, 11, 1), date(2026, 10, 26), 169),
])
def test_an_iso_week_starts_on_monday_and_counts_elapsed_hours(zone: ZoneInfo, day: date, monday: date,
                                                                hours: int) -> None:
    period = period_of("week", day, zone)
    assert period.starts_at.date() == monday and period.starts_at.weekday() == 0
    assert period.hours == hours


def test_week_bounds_are_the_local_midnights_as_instants() -> None:
    period = period_of("week", date(2026, 3, 25), LONDON)
    assert period.starts_at.astimezone(UTC) == datetime(2026, 3, 23, 0, tzinfo=UTC)  # GMT
    assert period.ends_at.astimezone(UTC) == datetime(2026, 3, 29, 23, tzinfo=UTC)  # midnight BST
    assert period.ends_at.isoformat() == "2026-03-30T00:00:00+01:00"
    berlin = period_of("day", date(2026, 1, 5), BERLIN)
    assert berlin.starts_at.isoformat() == "2026-01-05T00:00:00+01:00"


def test_a_midnight_the_clocks_skip_starts_the_day_at_its_first_instant() -> None:
    santiago = ZoneInfo("America/Santiago")  # 2026-09-06: 00:00 -04 becomes 01:00 -03
    period = period_of("day", date(2026, 9, 6), santiago)
    assert period.starts_at.astimezone(UTC) == datetime(2026, 9, 6, 4, tzinfo=UTC)
    assert period.hours == 23


def test_a_cursor_comes_back_as_it_went() -> None:
    cursor = Cursor(datetime(2026, 2, 2, 8, 30, 0, 123456, tzinfo=UTC), uuid4())
    text = encode_cursor(cursor)
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(text) == cursor


@pytest.mark.parametrize("text", ["", "not a cursor", "e30", "eyJ2IjoyfQ", "%%%",
                                  encode_cursor(Cursor(datetime(2026, 1, 1, tzinfo=UTC), uuid4()))[:-4]])
def test_anything_but_an_answered_cursor_is_invalid_input(text: str) -> None:
    with pytest.raises(InvalidCommandError):
        decode_cursor(text)


def test_a_batch_works_out_each_courses_next_session_once_after_its_other_changes() -> None:
    from scheduler.readmodels.course_index import ENTER_SESSION, NEXT_SESSION, SET_SESSION_STATUS, once_per_course

    first, second = {"course": "c1", "sid": "s1"}, {"course": "c2", "sid": "s2"}
    changes = [(ENTER_SESSION, first), (NEXT_SESSION, first), (ENTER_SESSION, second), (NEXT_SESSION, second),
               (SET_SESSION_STATUS, first), (NEXT_SESSION, {"course": "c1"})]
    assert once_per_course(changes) == [(ENTER_SESSION, first), (ENTER_SESSION, second), (SET_SESSION_STATUS, first),
                                        (NEXT_SESSION, {"course": "c1"}), (NEXT_SESSION, second)]
