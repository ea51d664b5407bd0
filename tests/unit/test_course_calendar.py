"""Booking and rescheduling rules: I2, I4 (booking window), I5, I10 (couple), I11."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from builders import (
    BY,
    HOME,
    approve,
    book,
    dose,
    event_types,
    hold,
    hold_medicine,
    integrate,
    medicine_booked,
    medicine_record,
    prepared_course,
    refused,
)

from scheduler.domain.errors import InvalidCommandError, RulesBrokenError
from scheduler.domain.errors import Violation as V
from scheduler.domain.model import HostFacts, Kind, SessionStatus
from scheduler.domain.protocol import Model, Protocol

THREE_H = timedelta(hours=3)
PARTNER_CLINIC = "partner-1"


def book_medicine(course, sid, start, **kw):
    book(course, sid, Kind.MEDICINE, start, length=THREE_H, **kw)


def reschedule(course, sid, start, length=timedelta(hours=1)):
    course.reschedule_session(session_id=sid, starts_at=start, ends_at=start + length, by=BY)


def i5(other: str, other_start: datetime, days: int = 7) -> V:
    return V("I5", f"medicine sessions must start at least {days} days apart; session {other} starts "
                   f"{other_start.isoformat()}")


# --------------------------------------------------------------------------- I2


class TestI2MedicineSessionCount:
    def test_up_to_the_protocol_maximum_is_accepted_and_one_more_refused(self):
        course, end = prepared_course(protocol=Protocol(max_medicine_sessions=2))
        m1 = end + timedelta(days=2)
        book_medicine(course, "m1", m1)
        book_medicine(course, "m2", m1 + timedelta(days=7))
        err = refused(course, RulesBrokenError, lambda: book_medicine(course, "m3", m1 + timedelta(days=14)))
        assert err.violations == (V("I2", "the protocol allows at most 2 medicine sessions"),)

    def test_default_maximum_is_six(self):
        course, end = prepared_course()
        m1 = end + timedelta(days=2)
        for i in range(6):
            book_medicine(course, f"m{i}", m1 + timedelta(days=7 * i))
        err = refused(course, RulesBrokenError, lambda: book_medicine(course, "m6", m1 + timedelta(days=42)))
        assert err.violations == (V("I2", "the protocol allows at most 6 medicine sessions"),)

    def test_a_cancelled_medicine_session_frees_its_place(self):
        course, end = prepared_course(protocol=Protocol(max_medicine_sessions=1))
        m1 = end + timedelta(days=2)
        book_medicine(course, "m1", m1)
        course.cancel_session(session_id="m1", reason="clinic closed", by=BY)
        book_medicine(course, "m1b", m1)
        assert course.sessions["m1b"].status is SessionStatus.BOOKED

    def test_held_medicine_sessions_count(self):
        course, end = prepared_course(protocol=Protocol(max_medicine_sessions=1))
        m1 = end + timedelta(days=2)
        dose(course, "m1", m1, ["a"])
        err = refused(course, RulesBrokenError, lambda: book_medicine(course, "m2", m1 + timedelta(days=30)))
        assert err.violations == (V("I2", "the protocol allows at most 1 medicine sessions"),)

    def test_together_low_dose_protocol_allows_eight(self):
        protocol = Protocol(max_medicine_sessions=8, low_dose=True)
        course, end = prepared_course(Model.TOGETHER, protocol)
        m1 = end + timedelta(days=2)
        for i in range(8):
            book_medicine(course, f"m{i}", m1 + timedelta(days=7 * i))
        assert len([s for s in course.sessions.values() if s.kind is Kind.MEDICINE]) == 8
        err = refused(course, RulesBrokenError, lambda: book_medicine(course, "m8", m1 + timedelta(days=56)))
        assert err.violations == (V("I2", "the protocol allows at most 8 medicine sessions"),)


# ------------------------------------------------------------------ I4 (booking)


class TestI4BookingWindow:
    def dosed(self, protocol=None):
        course, end = prepared_course(protocol=protocol)
        dose(course, "m1", end + timedelta(days=2), ["a"])
        finished = course.sessions["m1"].finished_at
        return course, finished

    def test_first_integration_at_the_deadline_is_accepted(self):
        course, finished = self.dosed()
        book(course, "int-0", Kind.INTEGRATION, finished + timedelta(hours=48))
        assert course.sessions["int-0"].follows == "m1"

    def test_first_integration_after_the_deadline_is_refused(self):
        course, finished = self.dosed()
        deadline = finished + timedelta(hours=48)
        err = refused(
            course, RulesBrokenError,
            lambda: book(course, "int-0", Kind.INTEGRATION, deadline + timedelta(minutes=1)),
        )
        assert err.violations == (
            V("I4", f"the first integration session after medicine session m1 must start by "
                    f"{deadline.isoformat()} (48 h after it ends)"),
        )

    def test_window_is_measured_from_discharge_not_from_the_booked_end(self):
        course, finished = self.dosed()
        booked_end = course.sessions["m1"].ends_at
        assert finished < booked_end  # discharged before the booked end
        deadline = finished + timedelta(hours=48)
        err = refused(
            course, RulesBrokenError,
            lambda: book(course, "int-0", Kind.INTEGRATION, booked_end + timedelta(hours=47, minutes=59)),
        )
        assert err.violations == (
            V("I4", f"the first integration session after medicine session m1 must start by "
                    f"{deadline.isoformat()} (48 h after it ends)"),
        )

    def test_configured_window(self):
        course, finished = self.dosed(Protocol(integration_window_hours=24))
        deadline = finished + timedelta(hours=24)
        err = refused(
            course, RulesBrokenError,
            lambda: book(course, "int-0", Kind.INTEGRATION, deadline + timedelta(hours=1)),
        )
        assert err.violations == (
            V("I4", f"the first integration session after medicine session m1 must start by "
                    f"{deadline.isoformat()} (24 h after it ends)"),
        )
        book(course, "int-0", Kind.INTEGRATION, deadline)

    def test_later_integration_sessions_may_be_after_the_window(self):
        course, finished = self.dosed()
        book(course, "int-0", Kind.INTEGRATION, finished + timedelta(hours=20))
        book(course, "int-1", Kind.INTEGRATION, finished + timedelta(days=10))
        assert course.sessions["int-1"].follows == "m1"

    def test_rescheduling_the_first_integration_out_of_the_window_is_refused(self):
        course, finished = self.dosed()
        deadline = finished + timedelta(hours=48)
        book(course, "int-0", Kind.INTEGRATION, finished + timedelta(hours=20))
        err = refused(course, RulesBrokenError, lambda: reschedule(course, "int-0", deadline + timedelta(hours=1)))
        assert err.violations == (
            V("I4", f"the first integration session after medicine session m1 must start by "
                    f"{deadline.isoformat()} (48 h after it ends)"),
        )
        reschedule(course, "int-0", deadline)
        assert event_types(course)[-1] == "SessionRescheduled"
        assert course.sessions["int-0"].starts_at == deadline


class TestI4BookingWindowDomainBugs:
    """Regression tests for I4 bugs found in the domain at commit e293bb5; they assert the behaviour
    DOMAIN.md asks for ("booking outside [the window] is refused"; an acknowledged miss unblocks)."""

    def test_rescheduling_the_first_integration_behind_a_later_one_cannot_leave_the_window_empty(self):
        # BUG (e293bb5): the I4 booking check only looks at a session with no earlier integration session, so
        # moving the first one behind a later one (booked after the deadline) leaves the first
        # integration session of m1 outside the window, and the move is accepted.
        course, end = prepared_course()
        dose(course, "m1", end + timedelta(days=2), ["a"])
        finished = course.sessions["m1"].finished_at
        deadline = finished + timedelta(hours=48)
        book(course, "int-0", Kind.INTEGRATION, finished + timedelta(hours=20))
        book(course, "int-1", Kind.INTEGRATION, finished + timedelta(hours=70))
        err = refused(course, RulesBrokenError, lambda: reschedule(course, "int-0", finished + timedelta(hours=94)))
        assert err.violations == (
            V("I4", f"the first integration session after medicine session m1 must start by "
                    f"{deadline.isoformat()} (48 h after it ends)"),
        )

    def test_moving_a_medicine_session_earlier_cannot_push_its_integration_out_of_the_window(self):
        # BUG (e293bb5): rescheduling a medicine session does not re-check the window of the integration
        # sessions already booked after it.
        course, end = prepared_course()
        m1 = end + timedelta(days=5)
        book_medicine(course, "m1", m1)
        book(course, "int-0", Kind.INTEGRATION, m1 + THREE_H + timedelta(hours=40))
        new_start = m1 - timedelta(days=2)
        new_deadline = new_start + THREE_H + timedelta(hours=48)
        err = refused(course, RulesBrokenError, lambda: reschedule(course, "m1", new_start, THREE_H))
        assert err.violations == (
            V("I4", f"the first integration session after medicine session m1 must start by "
                    f"{new_deadline.isoformat()} (48 h after it ends)"),
        )

    def test_moving_the_first_integration_to_an_earlier_medicine_session_cannot_leave_the_window_empty(self):
        # BUG (found by the stateful test): moving the first integration session of m2 before m2 makes it follow
        # m1; only m1's window was checked, so m2's first integration session ended up outside its window.
        course, end = prepared_course()
        dose(course, "m1", end + timedelta(days=2), ["a"])
        m1_end = course.sessions["m1"].finished_at
        book(course, "int-m1", Kind.INTEGRATION, m1_end + timedelta(hours=20))
        m2 = m1_end + timedelta(days=10)
        book_medicine(course, "m2", m2)
        m2_deadline = m2 + THREE_H + timedelta(hours=48)
        book(course, "int-0", Kind.INTEGRATION, m2 + THREE_H + timedelta(hours=20))
        book(course, "int-1", Kind.INTEGRATION, m2 + THREE_H + timedelta(hours=70))
        assert course.sessions["int-1"].follows == "m2"
        err = refused(course, RulesBrokenError, lambda: reschedule(course, "int-0", m1_end + timedelta(hours=30)))
        assert err.violations == (
            V("I4", f"the first integration session after medicine session m2 must start by "
                    f"{m2_deadline.isoformat()} (48 h after it ends)"),
        )
        # with another integration session of m2 left in its window, the move is fine
        book(course, "int-2", Kind.INTEGRATION, m2 + THREE_H + timedelta(hours=30))
        reschedule(course, "int-0", m1_end + timedelta(hours=30))
        assert course.sessions["int-0"].follows == "m1"

    def test_moving_a_missed_integration_session_to_another_medicine_session_is_refused_as_not_booked(self):
        # BUG (found by the stateful test): the check above crashed (min() of nothing) on a session that was
        # no longer booked, instead of refusing the move with session-state.
        course, end = prepared_course()
        dose(course, "m1", end + timedelta(days=2), ["a"])
        m1_end = course.sessions["m1"].finished_at
        book(course, "int-m1", Kind.INTEGRATION, m1_end + timedelta(hours=20))
        course.record_missed(session_id="int-m1", reason="no show", now=m1_end + timedelta(hours=22), by=BY)
        m2 = m1_end + timedelta(days=10)
        book_medicine(course, "m2", m2)
        err = refused(course, RulesBrokenError, lambda: reschedule(course, "int-m1", m2 + THREE_H + timedelta(hours=5)))
        assert err.violations == (V("session-state", "session int-m1 is missed, not booked"),)

    def test_after_an_acknowledged_missed_window_integration_can_still_be_booked(self):
        # BUG (e293bb5): once the window closed with no integration session booked, every integration booking
        # for that medicine session is refused with I4 forever, so the course can neither hold the
        # I3 minimum, nor dose again, nor complete, even after the clinician acknowledged the miss.
        course, end = prepared_course()
        dose(course, "m1", end + timedelta(days=2), ["a"])
        finished = course.sessions["m1"].finished_at
        late = finished + timedelta(hours=60)
        assert course.record_missed_integration_windows(now=late, by=BY) == ["m1"]
        course.acknowledge_missed_window(session_id="m1", reason="couple had covid", by=BY)
        book(course, "int-late", Kind.INTEGRATION, late + timedelta(hours=1))
        assert course.sessions["int-late"].follows == "m1"


class TestElapsedHoursAcrossDaylightSaving:
    """DOMAIN.md: windows are measured in elapsed hours, so daylight-saving changes never stretch or
    shrink them. The domain accepts any offset-aware time; with an IANA zone, Python adds
    timedeltas in wall-clock time. Regression tests for a domain bug found at commit e293bb5."""

    BERLIN = ZoneInfo("Europe/Berlin")

    def test_integration_window_is_48_elapsed_hours_across_spring_forward(self):
        course, _ = prepared_course()
        m1 = datetime(2026, 3, 28, 8, 0, tzinfo=self.BERLIN)  # DST starts 2026-03-29 02:00 in Berlin
        book_medicine(course, "m1", m1)
        approve(course, "m1", "a")
        course.record_held(session_id="m1", now=m1 + timedelta(hours=4), by=BY,
                           **medicine_record(course, "m1", ["a"]))
        finished_utc = course.sessions["m1"].finished_at.astimezone(timezone.utc)
        start = finished_utc + timedelta(hours=47, minutes=30)  # inside 48 elapsed hours
        book(course, "int-0", Kind.INTEGRATION, start)
        assert course.sessions["int-0"].follows == "m1"

    def test_medicine_interval_is_7_elapsed_days_across_fall_back(self):
        course, _ = prepared_course()
        m1 = datetime(2026, 10, 21, 10, 0, tzinfo=self.BERLIN)  # DST ends 2026-10-25 03:00 in Berlin
        book_medicine(course, "m1", m1)
        m2 = datetime(2026, 10, 28, 9, 30, tzinfo=self.BERLIN)  # 7 days and 30 minutes elapsed
        assert m2.astimezone(timezone.utc) - m1.astimezone(timezone.utc) == timedelta(days=7, minutes=30)
        book_medicine(course, "m2", m2)
        assert course.sessions["m2"].status is SessionStatus.BOOKED


# --------------------------------------------------------------------------- I5


class TestI5MedicineInterval:
    def test_exactly_the_minimum_interval_is_accepted(self):
        course, end = prepared_course()
        m1 = end + timedelta(days=2)
        book_medicine(course, "m1", m1)
        book_medicine(course, "m2", m1 + timedelta(days=7))
        assert course.sessions["m2"].status is SessionStatus.BOOKED

    def test_closer_than_the_minimum_is_refused_before_and_after(self):
        course, end = prepared_course()
        m1 = end + timedelta(days=10)
        book_medicine(course, "m1", m1)
        err = refused(
            course, RulesBrokenError,
            lambda: book_medicine(course, "m2", m1 + timedelta(days=7) - timedelta(minutes=1)),
        )
        assert err.violations == (i5("m1", m1),)
        err = refused(course, RulesBrokenError, lambda: book_medicine(course, "m0", m1 - timedelta(days=6)))
        assert err.violations == (i5("m1", m1),)

    def test_configured_interval(self):
        course, end = prepared_course(protocol=Protocol(min_medicine_interval_days=14))
        m1 = end + timedelta(days=2)
        dose(course, "m1", m1, ["a"])
        err = refused(course, RulesBrokenError, lambda: book_medicine(course, "m2", m1 + timedelta(days=13)))
        assert err.violations == (i5("m1", m1, days=14),)
        book_medicine(course, "m2", m1 + timedelta(days=14))

    def test_rescheduling_too_close_is_refused(self):
        course, end = prepared_course()
        m1 = end + timedelta(days=2)
        book_medicine(course, "m1", m1)
        book_medicine(course, "m2", m1 + timedelta(days=10))
        err = refused(course, RulesBrokenError, lambda: reschedule(course, "m2", m1 + timedelta(days=5), THREE_H))
        assert err.violations == (i5("m1", m1),)
        reschedule(course, "m2", m1 + timedelta(days=8), THREE_H)
        assert course.sessions["m2"].starts_at == m1 + timedelta(days=8)

    def test_a_cancelled_medicine_session_does_not_count(self):
        course, end = prepared_course()
        m1 = end + timedelta(days=2)
        book_medicine(course, "m1", m1)
        course.cancel_session(session_id="m1", reason="ill", by=BY)
        book_medicine(course, "m1b", m1 + timedelta(days=1))


# -------------------------------------------------------------------------- I10


class TestI10CoupleOverlap:
    def test_overlapping_booking_is_refused(self):
        course, end = prepared_course()
        start = end + timedelta(days=1)
        book(course, "prep-x", Kind.PREPARATION, start, length=timedelta(minutes=90))
        other = start + timedelta(hours=1)
        err = refused(course, RulesBrokenError, lambda: book(course, "prep-y", Kind.PREPARATION, other))
        assert err.violations == (V("I10", f"the couple already has session prep-x overlapping {other.isoformat()}"),)

    def test_individual_sessions_of_the_couple_overlap_too(self):
        course, end = prepared_course()
        start = end + timedelta(days=1)
        book(course, "prep-a2", Kind.PREPARATION, start, partners=("a",))
        err = refused(
            course, RulesBrokenError,
            lambda: book(course, "prep-b2", Kind.PREPARATION, start, partners=("b",)),
        )
        assert err.violations == (V("I10", f"the couple already has session prep-a2 overlapping {start.isoformat()}"),)

    def test_back_to_back_sessions_are_accepted(self):
        course, end = prepared_course()
        start = end + timedelta(days=1)
        book(course, "prep-x", Kind.PREPARATION, start)
        book(course, "prep-y", Kind.PREPARATION, start + timedelta(hours=1))
        assert course.sessions["prep-y"].status is SessionStatus.BOOKED

    def test_held_sessions_block_and_cancelled_ones_do_not(self):
        course, end = prepared_course()
        held_start = course.sessions["prep-0"].starts_at
        err = refused(course, RulesBrokenError, lambda: book(course, "again", Kind.PREPARATION, held_start))
        assert err.violations == (
            V("I10", f"the couple already has session prep-0 overlapping {held_start.isoformat()}"),
        )
        start = end + timedelta(days=1)
        book(course, "prep-x", Kind.PREPARATION, start)
        course.cancel_session(session_id="prep-x", reason="therapist ill", by=BY)
        book(course, "prep-y", Kind.PREPARATION, start)

    def test_rescheduling_into_an_overlap_is_refused(self):
        course, end = prepared_course()
        start = end + timedelta(days=1)
        book(course, "prep-x", Kind.PREPARATION, start)
        book(course, "prep-y", Kind.PREPARATION, start + timedelta(days=1))
        new = start + timedelta(minutes=30)
        err = refused(course, RulesBrokenError, lambda: reschedule(course, "prep-y", new))
        assert err.violations == (V("I10", f"the couple already has session prep-x overlapping {new.isoformat()}"),)
        assert course.sessions["prep-y"].starts_at == start + timedelta(days=1)

    def test_a_discharge_after_the_booked_end_keeps_the_couple_until_then(self):
        # Found by the stateful test: a session booked from a medicine session's booked end was accepted while
        # the couple was still being monitored (discharged 20 min after that end).
        course, start = medicine_booked()
        booked_end = start + timedelta(hours=3)
        record = medicine_record(course, "m1", ["a"], monitoring=timedelta(minutes=190))
        assert record["discharged_at"] == booked_end + timedelta(minutes=20)
        hold_medicine(course, "m1", record)
        err = refused(course, RulesBrokenError, lambda: book(course, "prep-x", Kind.PREPARATION, booked_end))
        assert err.violations == (V("I10", f"the couple already has session m1 overlapping {booked_end.isoformat()}"),)
        book(course, "prep-x", Kind.PREPARATION, booked_end + timedelta(minutes=20))
        assert course.sessions["prep-x"].status is SessionStatus.BOOKED

    def test_rescheduling_over_its_own_old_time_is_accepted(self):
        course, end = prepared_course()
        start = end + timedelta(days=1)
        book(course, "prep-x", Kind.PREPARATION, start)
        reschedule(course, "prep-x", start + timedelta(minutes=30))
        assert event_types(course)[-1] == "SessionRescheduled"
        assert course.sessions["prep-x"].starts_at == start + timedelta(minutes=30)


# -------------------------------------------------------------------------- I11


class TestI11Hosting:
    def start(self):
        course, end = prepared_course()
        return course, end + timedelta(days=2)

    def test_home_clinic_with_a_prescriber_hosts(self):
        course, m1 = self.start()
        book_medicine(course, "m1", m1)
        assert course.sessions["m1"].clinic_id == HOME

    def test_home_clinic_without_a_prescriber_is_refused(self):
        course, m1 = self.start()
        host = HostFacts(HOME, has_prescriber=False, is_partner_of_home=False)
        err = refused(course, RulesBrokenError, lambda: book_medicine(course, "m1", m1, host=host))
        assert err.violations == (V("I11", "clinic home has no prescriber to host a medicine session"),)

    def test_foreign_clinic_without_a_partnership_is_refused(self):
        course, m1 = self.start()
        host = HostFacts(PARTNER_CLINIC, has_prescriber=True, is_partner_of_home=False)
        err = refused(
            course, RulesBrokenError,
            lambda: book_medicine(course, "m1", m1, host=host, clinic_id=PARTNER_CLINIC),
        )
        assert err.violations == (V("I11", "clinic partner-1 has no agreed partnership with the home clinic covering medicine sessions"),)

    def test_foreign_clinic_with_neither_lists_both(self):
        course, m1 = self.start()
        host = HostFacts(PARTNER_CLINIC, has_prescriber=False, is_partner_of_home=False)
        err = refused(
            course, RulesBrokenError,
            lambda: book_medicine(course, "m1", m1, host=host, clinic_id=PARTNER_CLINIC),
        )
        assert err.violations == (
            V("I11", "clinic partner-1 has no prescriber to host a medicine session"),
            V("I11", "clinic partner-1 has no agreed partnership with the home clinic covering medicine sessions"),
        )

    def test_foreign_clinic_with_a_partnership_and_prescriber_hosts(self):
        course, m1 = self.start()
        host = HostFacts(PARTNER_CLINIC, has_prescriber=True, is_partner_of_home=True)
        book_medicine(course, "m1", m1, host=host, clinic_id=PARTNER_CLINIC)
        assert course.sessions["m1"].clinic_id == PARTNER_CLINIC

    @pytest.mark.parametrize("host", [None, HostFacts("elsewhere", has_prescriber=True, is_partner_of_home=True)])
    def test_unknown_host_is_refused(self, host):
        course, m1 = self.start()
        err = refused(
            course, RulesBrokenError,
            lambda: book_medicine(course, "m1", m1, host=host, clinic_id=PARTNER_CLINIC),
        )
        assert err.violations == (V("I11", "clinic partner-1 is unknown as a host"),)

    def test_other_sessions_need_no_host_facts(self):
        course, m1 = self.start()
        book(course, "prep-x", Kind.PREPARATION, m1, host=None, clinic_id=HOME)
        assert course.sessions["prep-x"].status is SessionStatus.BOOKED


# --------------------------------------------------------------- several rules


def test_a_booking_breaking_i10_i2_i5_and_i11_lists_every_rule():
    course, end = prepared_course(protocol=Protocol(max_medicine_sessions=1))
    m1 = end + timedelta(days=2)
    book_medicine(course, "m1", m1)
    host = HostFacts(PARTNER_CLINIC, has_prescriber=False, is_partner_of_home=False)
    other = m1 + timedelta(hours=1)
    err = refused(
        course, RulesBrokenError,
        lambda: book_medicine(course, "m2", other, host=host, clinic_id=PARTNER_CLINIC),
    )
    assert err.violations == (
        V("I10", f"the couple already has session m1 overlapping {other.isoformat()}"),
        V("I2", "the protocol allows at most 1 medicine sessions"),
        i5("m1", m1),
        V("I11", "clinic partner-1 has no prescriber to host a medicine session"),
        V("I11", "clinic partner-1 has no agreed partnership with the home clinic covering medicine sessions"),
    )


def test_a_reschedule_breaking_i10_and_i5_lists_both():
    course, end = prepared_course()
    m1 = end + timedelta(days=2)
    dose(course, "m1", m1, ["a"])
    last = integrate(course, "m1")
    book_medicine(course, "m2", m1 + timedelta(days=8))
    new = course.sessions["int-m1-3"].starts_at
    err = refused(course, RulesBrokenError, lambda: reschedule(course, "m2", new, THREE_H))
    assert last > new
    assert err.violations == (
        V("I10", f"the couple already has session int-m1-3 overlapping {new.isoformat()}"),
        i5("m1", m1),
    )


# ------------------------------------------------------------- malformed input


class TestMalformedBookings:
    def test_several_problems_are_listed(self):
        course, end = prepared_course()
        start = end + timedelta(days=2)
        err = refused(
            course, InvalidCommandError,
            lambda: book(course, "prep-0", Kind.MEDICINE, start, length=timedelta(hours=-1), partners=("a",)),
        )
        assert err.problems == (
            "ends_at must be after starts_at",
            "a medicine session is joint: partners must be ['a', 'b']",
            "session id prep-0 is already used in this course",
        )

    def test_naive_times_and_unknown_kind(self):
        course, end = prepared_course()
        naive = datetime(2026, 2, 1, 9)
        err = refused(course, InvalidCommandError, lambda: book(course, "x", Kind.PREPARATION, naive))
        assert err.problems == ("times must carry a UTC offset",)
        err = refused(course, InvalidCommandError, lambda: book(course, "x", "dinner", end + timedelta(days=1)))
        assert err.problems == ("kind must be one of ['assessment', 'preparation', 'medicine', 'integration']",)

    def test_sessions_last_at_most_12_hours(self):
        course, end = prepared_course()
        err = refused(
            course, InvalidCommandError,
            lambda: book(course, "x", Kind.PREPARATION, end + timedelta(days=1), length=timedelta(hours=13)),
        )
        assert err.problems == ("a session lasts at most 12 hours",)

    def test_held_session_cannot_be_rescheduled_or_cancelled(self):
        course, _ = prepared_course()
        start = course.sessions["prep-0"].starts_at
        err = refused(course, RulesBrokenError, lambda: reschedule(course, "prep-0", start + timedelta(days=30)))
        assert err.violations == (V("session-state", "session prep-0 is held, not booked"),)
        err = refused(course, RulesBrokenError, lambda: course.cancel_session(session_id="prep-0", reason="x", by=BY))
        assert err.violations == (V("session-state", "session prep-0 is held, not booked"),)

    def test_session_cannot_be_recorded_before_it_starts(self):
        course, end = prepared_course()
        start = end + timedelta(days=1)
        book(course, "prep-x", Kind.PREPARATION, start)
        err = refused(
            course, RulesBrokenError,
            lambda: course.record_held(session_id="prep-x", now=start - timedelta(minutes=1), by=BY),
        )
        assert err.violations == (V("session-not-started", "session prep-x has not started yet"),)
        hold(course, "prep-x")
