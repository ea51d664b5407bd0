"""The free-slot search: a grid anchored in the clinic's zone (the same local times on both sides of a
daylight-saving change), and a slot offered is one the booking's own checks accept."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from uuid import uuid4
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.domain.calendar import Calendar, Resource
from scheduler.domain.rules import booking
from scheduler.domain.rules.booking import BookingRules, Buffer, Candidate
from scheduler.domain.rules.hours import Schedule, WorkingHours, hours_violations
from scheduler.domain.rules.slots import Option, free_slots, grid

LONDON, NEW_YORK = ZoneInfo("Europe/London"), ZoneInfo("America/New_York")
EVERY_DAY_10_TO_12 = {d: [(600, 720)] for d in range(7)}


def test_the_grid_skips_the_hour_clocks_skip_and_repeats_the_hour_they_repeat() -> None:
    for zone, spring, autumn in ((LONDON, date(2026, 3, 29), date(2026, 10, 25)),
                                 (NEW_YORK, date(2026, 3, 8), date(2026, 11, 1))):
        starts = list(grid(zone, spring, spring, 60))
        local = [t.astimezone(zone).hour for t in starts]
        assert len(starts) == 23 and local.count(2 if zone is NEW_YORK else 1) == 0
        starts = list(grid(zone, autumn, autumn, 60))
        assert len(starts) == 25
        assert all(b - a == timedelta(hours=1) for a, b in zip(starts, starts[1:]))  # instants, an hour apart
        assert [t.astimezone(zone).hour for t in starts].count(1) == 2  # 01:00 local, twice


def test_slots_stay_at_ten_local_across_both_changes() -> None:
    for zone, days in ((LONDON, (date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30))),
                       (NEW_YORK, (date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2)))):
        schedule = Schedule("Clinic", zone.key, opening=EVERY_DAY_10_TO_12)
        therapist = Option(Resource.CLINICIAN, "t1", Calendar.open(uuid4(), Resource.CLINICIAN))
        slots = free_slots(kind="integration", length=timedelta(hours=1), schedule=schedule,
                           requirements=[[therapist]], first_day=days[0], last_day=days[-1], step_minutes=30,
                           now=datetime(2026, 1, 1, tzinfo=timezone.utc), limit=100)
        local = [(s.starts_at.date(), s.starts_at.strftime("%H:%M")) for s in slots]
        assert local == [(d, t) for d in days for t in ("10:00", "10:30", "11:00")]
        utc_hours = {s.starts_at.astimezone(timezone.utc).hour for s in slots if s.starts_at.minute == 0
                     and s.starts_at.hour == 10}
        assert len(utc_hours) == 2  # the instant of 10:00 local moved by an hour
    # a three-hour session that starts before the change lasts three elapsed hours
    schedule = Schedule("Clinic", "Europe/London")
    room = Option(Resource.ROOM, "r", Calendar.open(uuid4(), Resource.ROOM))
    (first,) = free_slots(kind="medicine", length=timedelta(hours=3), schedule=schedule, requirements=[[room]],
                          first_day=date(2026, 3, 29), last_day=date(2026, 3, 29), step_minutes=60,
                          now=datetime(2026, 1, 1, tzinfo=timezone.utc), limit=1)
    assert (first.starts_at.strftime("%H:%M%z"), first.ends_at.strftime("%H:%M%z")) == ("00:00+0000", "04:00+0100")


busy = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 20 * 60), st.sampled_from([30, 50, 60, 90, 180]),
                          st.integers(0, 30), st.integers(0, 30)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(taken=busy, kind=st.sampled_from(["assessment", "integration"]), minutes=st.sampled_from([45, 60, 90]),
       before=st.integers(0, 30), after=st.integers(0, 30), daily=st.one_of(st.none(), st.integers(1, 4)),
       notice=st.sampled_from([0, 120, 24 * 60]), step=st.sampled_from([15, 30, 60]),
       works=st.booleans())
def test_a_slot_offered_passes_every_check_of_a_booking(taken: list[tuple[int, int, int, int, int]], kind: str,
                                                       minutes: int, before: int, after: int, daily: int | None,
                                                       notice: int, step: int, works: bool) -> None:
    zone = "Europe/London"
    day0 = datetime(2026, 3, 27, tzinfo=ZoneInfo(zone))  # the Friday before a change
    calendars = [Calendar.open(uuid4(), Resource.CLINICIAN) for _ in range(3)] + \
        [Calendar.open(uuid4(), Resource.ROOM)]
    for i, (which, start, length, b, a) in enumerate(taken):
        cal = calendars[which % 4]
        at = (day0 + timedelta(minutes=start)).astimezone(timezone.utc)
        if cal.clash(at, at + timedelta(minutes=length)) is None:
            cal.reserve(course_id="c0", session_id=f"s{i}", starts_at=at, ends_at=at + timedelta(minutes=length),
                        label="x", before=timedelta(minutes=b), after=timedelta(minutes=a))
    rules = BookingRules(buffers={kind: Buffer(before, after)}, clinician_daily_limit=daily,
                         min_notice_minutes=notice)
    schedule = Schedule("Clinic", zone, opening={d: [(8 * 60, 18 * 60)] for d in range(7)}, rules=rules)
    hours = WorkingHours("t1", {d: [(9 * 60, 13 * 60)] for d in range(7)}) if works else None
    clinicians = [Option(Resource.CLINICIAN, f"c{i}", calendars[i], hours if i == 0 else None) for i in range(3)]
    room = Option(Resource.ROOM, "r", calendars[3])
    now = day0.astimezone(timezone.utc) + timedelta(hours=9)
    slots = free_slots(kind=kind, length=timedelta(minutes=minutes), schedule=schedule,
                       requirements=[clinicians, [room]], first_day=day0.date(), last_day=day0.date() + timedelta(2),
                       step_minutes=step, now=now, limit=1000)
    for slot in slots:
        start, end = slot.starts_at.astimezone(timezone.utc), slot.ends_at.astimezone(timezone.utc)
        chosen = [o for o in clinicians if o.id in slot.clinician_ids] + [room]
        candidate = Candidate("c1", kind, start, end)
        assert start >= now and not booking.timing_violations(rules, "Clinic", start, now)
        assert not hours_violations(schedule, [o.hours for o in chosen if o.hours], start, end)
        for option in chosen:
            assert not booking.resource_violations(rules, option.calendar, option.label, candidate,
                                                   ZoneInfo(zone), now)
            option.calendar.reserve(course_id="c1", session_id="probe", starts_at=start, ends_at=end, label="x")
            option.calendar.release("probe")
