"""Phases and milestones: I1, screening, Assessed/Prepared/Dosed/Integrated, completion,
closed courses and allowed_actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from builders import (
    BY,
    T0,
    approve,
    assess,
    book,
    dose,
    event_types,
    hold,
    integrate,
    medicine_record,
    open_course,
    prepare,
    prepared_course,
    refused,
)

from scheduler.domain.errors import InvalidCommandError, RulesBrokenError
from scheduler.domain.errors import Violation as V
from scheduler.domain.model import Kind, Phase, SessionStatus, Status
from scheduler.domain.protocol import Model, Protocol

CLOSED = V("course-closed", "the course is discontinued and accepts no more commands")


def screen(course, partner: str, result: str = "eligible") -> None:
    course.record_screening(partner=partner, result=result, clinician_id="t-1", by=BY)


def one_more_integration(course, sid: str, after) -> None:
    """Books and holds one more integration session a day after `after`."""
    book(course, sid, Kind.INTEGRATION, after + timedelta(days=1))
    hold(course, sid)


# --------------------------------------------------------------------------- I1


class TestI1PhaseOrder:
    def test_preparation_held_after_assessed_is_accepted(self):
        course = open_course()
        end = assess(course)
        book(course, "prep-a", Kind.PREPARATION, end + timedelta(days=1), partners=("a",))
        before = len(course.pending_events)
        hold(course, "prep-a")
        assert event_types(course)[before:] == ["SessionHeld"]
        assert course.sessions["prep-a"].status is SessionStatus.HELD

    def test_preparation_cannot_be_held_before_assessed(self):
        course = open_course()
        screen(course, "a")
        screen(course, "b")
        book(course, "prep-a", Kind.PREPARATION, T0, partners=("a",))  # booking ahead is allowed
        err = refused(course, RulesBrokenError, lambda: hold(course, "prep-a"))
        assert err.violations == (V("I1", "a preparation session cannot be held before the course is Assessed"),)
        assert course.sessions["prep-a"].status is SessionStatus.BOOKED

    def test_medicine_cannot_be_held_before_prepared(self):
        course = open_course()
        end = assess(course)
        start = end + timedelta(days=2)
        book(course, "m1", Kind.MEDICINE, start, length=timedelta(hours=3))
        approve(course, "m1", "a")
        record = medicine_record(course, "m1", ["a"])
        err = refused(
            course,
            RulesBrokenError,
            lambda: course.record_held(session_id="m1", now=start + timedelta(hours=4), by=BY, **record),
        )
        assert err.violations == (V("I1", "a medicine session cannot be held before the course is Prepared"),)

    def test_medicine_held_once_prepared_is_accepted(self):
        course, end = prepared_course()
        dose(course, "m1", end + timedelta(days=2), ["a"])
        assert course.sessions["m1"].status is SessionStatus.HELD
        assert course.has_milestone("dosed", "m1")

    def test_integration_cannot_be_held_before_its_medicine_session_is_dosed(self):
        course, end = prepared_course()
        start = end + timedelta(days=2)
        book(course, "m1", Kind.MEDICINE, start, length=timedelta(hours=3))
        book(course, "int-0", Kind.INTEGRATION, start + timedelta(hours=20))
        err = refused(course, RulesBrokenError, lambda: hold(course, "int-0"))
        assert err.violations == (
            V("I1", "an integration session cannot be held before its medicine session is Dosed"),
        )

    def test_integration_held_after_dosed_is_accepted(self):
        course, end = prepared_course()
        dose(course, "m1", end + timedelta(days=2), ["a"])
        integrate(course, "m1", count=1)
        assert course.sessions["int-m1-0"].status is SessionStatus.HELD
        assert course.sessions["int-m1-0"].follows == "m1"

    def test_integration_cannot_be_booked_without_a_medicine_session_before_it(self):
        course, end = prepared_course()
        err = refused(
            course, RulesBrokenError, lambda: book(course, "int-0", Kind.INTEGRATION, end + timedelta(days=1))
        )
        assert err.violations == (V("I1", "an integration session must follow a medicine session"),)

    def test_integration_starting_inside_the_medicine_session_breaks_i10_and_i1(self):
        course, end = prepared_course()
        start = end + timedelta(days=2)
        book(course, "m1", Kind.MEDICINE, start, length=timedelta(hours=3))
        int_start = start + timedelta(hours=1)
        err = refused(course, RulesBrokenError, lambda: book(course, "int-0", Kind.INTEGRATION, int_start))
        assert err.violations == (
            V("I10", f"the couple already has session m1 overlapping {int_start.isoformat()}"),
            V("I1", "an integration session cannot start before medicine session m1 ends"),
        )

    def test_medicine_session_cannot_be_moved_after_its_booked_integration(self):
        course, end = prepared_course()
        start = end + timedelta(days=2)
        book(course, "m1", Kind.MEDICINE, start, length=timedelta(hours=3))
        book(course, "int-0", Kind.INTEGRATION, start + timedelta(hours=20))
        new_start = start + timedelta(days=2)
        err = refused(
            course,
            RulesBrokenError,
            lambda: course.reschedule_session(
                session_id="m1", starts_at=new_start, ends_at=new_start + timedelta(hours=3), by=BY
            ),
        )
        assert err.violations == (V("I1", "integration sessions are already booked before the new end of m1"),)


# --------------------------------------------------------------------- screening


class TestScreening:
    def test_ineligible_partner_discontinues_the_course(self):
        course = open_course()
        screen(course, "a")
        before = len(course.pending_events)
        screen(course, "b", "ineligible")
        assert event_types(course)[before:] == ["ScreeningRecorded", "Discontinued"]
        assert course.pending_events[-1].reason == "ineligible"
        assert course.status is Status.DISCONTINUED
        assert course.discontinue_reason == "ineligible"
        assert course.phase is Phase.DISCONTINUED
        assert course.allowed_actions() == []

    def test_screening_after_assessed_is_refused(self):
        course = open_course()
        assess(course)
        err = refused(course, RulesBrokenError, lambda: screen(course, "a", "ineligible"))
        assert err.violations == (V("I1", "screening belongs to assessment, which is already complete"),)
        assert course.status is Status.OPEN

    def test_malformed_screening_is_invalid(self):
        course = open_course()
        err = refused(course, InvalidCommandError, lambda: screen(course, "c"))
        assert err.problems == ("partner must be 'a' or 'b' and result 'eligible' or 'ineligible'",)
        err = refused(course, InvalidCommandError, lambda: screen(course, "a", "maybe"))
        assert err.problems == ("partner must be 'a' or 'b' and result 'eligible' or 'ineligible'",)


# -------------------------------------------------------------------- milestones


def count(course, name: str) -> int:
    return event_types(course).count(name)


class TestMilestones:
    def test_assessed_needs_both_eligible_and_a_joint_assessment_and_is_recorded_once(self):
        course = open_course()
        book(course, "assess-a", Kind.ASSESSMENT, T0, partners=("a",))
        book(course, "assess-1", Kind.ASSESSMENT, T0 + timedelta(hours=2))
        screen(course, "a")
        hold(course, "assess-a")  # individual: does not count
        hold(course, "assess-1")  # joint, but b is not screened yet
        assert count(course, "Assessed") == 0
        assert course.phase is Phase.ASSESSMENT
        screen(course, "b")  # the last condition met: Assessed now
        assert event_types(course)[-2:] == ["ScreeningRecorded", "Assessed"]
        assert course.phase is Phase.PREPARATION
        book(course, "assess-2", Kind.ASSESSMENT, T0 + timedelta(hours=4))
        hold(course, "assess-2")
        assert count(course, "Assessed") == 1

    def test_prepared_after_protocol_minimum_and_recorded_once(self):
        course = open_course()
        end = assess(course)
        plan = [("p-a", ("a",)), ("p-b", ("b",)), ("p-j1", ("a", "b")), ("p-j2", ("a", "b")), ("p-j3", ("a", "b"))]
        for i, (sid, partners) in enumerate(plan):
            book(course, sid, Kind.PREPARATION, end + timedelta(days=i + 1), partners=partners)
        for sid in ("p-a", "p-b", "p-j1"):
            hold(course, sid)
        assert count(course, "Prepared") == 0
        assert course.phase is Phase.PREPARATION
        hold(course, "p-j2")
        assert event_types(course)[-2:] == ["SessionHeld", "Prepared"]
        assert course.phase is Phase.MEDICINE
        hold(course, "p-j3")
        assert count(course, "Prepared") == 1

    def test_prepared_follows_a_configured_protocol(self):
        course = open_course(protocol=Protocol(individual_preparation_sessions=2, joint_preparation_sessions=3))
        end = assess(course)
        prepare(course, end)
        assert count(course, "Prepared") == 1
        held = [s for s in course.sessions.values() if s.kind is Kind.PREPARATION]
        assert len(held) == 2 + 2 + 3

    def test_dosed_and_integrated_recorded_once_each_when_first_met(self):
        course, end = prepared_course()
        before = len(course.pending_events)
        dose(course, "m1", end + timedelta(days=2), ["a"])
        assert event_types(course)[before:].count("Dosed") == 1
        dosed = course.pending_events[-1]
        assert dosed.session_id == "m1"
        # the window closes integration_window_hours after discharge (I4), and the event says when
        discharged = course.sessions["m1"].held["discharged_at"]
        assert dosed.integration_deadline == discharged + timedelta(hours=course.protocol.integration_window_hours)
        last = integrate(course, "m1", count=3)
        assert count(course, "Integrated") == 0
        one_more_integration(course, "int-4th", last)
        assert event_types(course)[-2:] == ["SessionHeld", "Integrated"]
        assert course.pending_events[-1].session_id == "m1"
        one_more_integration(course, "int-5th", last + timedelta(days=1))
        assert count(course, "Integrated") == 1
        assert count(course, "Dosed") == 1

    def test_a_two_cycle_course_records_each_milestone_exactly_once_per_subject(self):
        course, end = prepared_course()
        m1 = end + timedelta(days=2)
        dose(course, "m1", m1, ["a"])
        integrate(course, "m1")
        dose(course, "m2", m1 + timedelta(days=7), ["b"])
        integrate(course, "m2")
        course.complete(by=BY)
        types = [type(e).__name__ for e in course.collect_events()]
        assert {m: types.count(m) for m in ("Assessed", "Prepared", "Dosed", "Integrated", "Completed")} == {
            "Assessed": 1,
            "Prepared": 1,
            "Dosed": 2,
            "Integrated": 2,
            "Completed": 1,
        }
        assert [(m["milestone"], m["session_id"]) for m in course.milestones] == [
            ("assessed", None),
            ("prepared", None),
            ("dosed", "m1"),
            ("integrated", "m1"),
            ("dosed", "m2"),
            ("integrated", "m2"),
        ]
        assert course.pending_events == []


# -------------------------------------------------------------------- completion


class TestComplete:
    def test_refused_without_any_medicine_session(self):
        course, _ = prepared_course()
        err = refused(course, RulesBrokenError, lambda: course.complete(by=BY))
        assert err.violations == (V("I3", "a course completes only after a medicine session is Integrated"),)

    def test_refused_until_integrated_then_accepted(self):
        course, end = prepared_course()
        dose(course, "m1", end + timedelta(days=2), ["a"])
        last = integrate(course, "m1", count=3)
        err = refused(course, RulesBrokenError, lambda: course.complete(by=BY))
        assert err.violations == (
            V("I3", "medicine session m1 needs 4 integration sessions held before completion"),
        )
        one_more_integration(course, "int-last", last)
        course.complete(by=BY)
        assert event_types(course)[-1] == "Completed"
        assert course.status is Status.COMPLETED
        assert course.phase is Phase.COMPLETED

    def test_refused_until_the_last_medicine_session_is_integrated(self):
        course, end = prepared_course()
        m1 = end + timedelta(days=2)
        dose(course, "m1", m1, ["a"])
        integrate(course, "m1")
        dose(course, "m2", m1 + timedelta(days=7), ["b"])
        err = refused(course, RulesBrokenError, lambda: course.complete(by=BY))
        assert err.violations == (
            V("I3", "medicine session m2 needs 4 integration sessions held before completion"),
        )

    def test_refused_while_sessions_remain_booked(self):
        course, end = prepared_course()
        dose(course, "m1", end + timedelta(days=2), ["a"])
        last = integrate(course, "m1")
        book(course, "extra", Kind.INTEGRATION, last + timedelta(days=1))
        err = refused(course, RulesBrokenError, lambda: course.complete(by=BY))
        assert err.violations == (V("booked-sessions", "record or cancel the booked sessions first: extra"),)
        course.cancel_session(session_id="extra", reason="not needed", by=BY)
        course.complete(by=BY)
        assert course.status is Status.COMPLETED

    def test_lists_missing_integration_and_booked_sessions_together(self):
        course, end = prepared_course()
        dose(course, "m1", end + timedelta(days=2), ["a"])
        last = integrate(course, "m1", count=3)
        book(course, "int-next", Kind.INTEGRATION, last + timedelta(days=1))
        err = refused(course, RulesBrokenError, lambda: course.complete(by=BY))
        assert err.violations == (
            V("I3", "medicine session m1 needs 4 integration sessions held before completion"),
            V("booked-sessions", "record or cancel the booked sessions first: int-next"),
        )


# ------------------------------------------------------------------ closed course


def discontinued_course_with_everything_pending():
    """A course with a missed window, a booked medicine session with a pending approval, a booked
    assessment and a medicine session with no approval yet, then discontinued."""
    course, end = prepared_course()
    m1 = end + timedelta(days=2)
    dose(course, "m1", m1, ["a"])
    finished = course.sessions["m1"].finished_at
    assert course.record_missed_integration_windows(now=finished + timedelta(hours=49), by=BY) == ["m1"]
    book(course, "m2", Kind.MEDICINE, m1 + timedelta(days=14), length=timedelta(hours=3))
    book(course, "m3", Kind.MEDICINE, m1 + timedelta(days=28), length=timedelta(hours=3))
    course.request_dose_approval(
        approval_id="ap-m2-b", session_id="m2", partner="b", prescriber_id="rx-1", requested_mg=100,
        prescriber_authorised=True, now=m1 + timedelta(days=13), by=BY,
    )
    book(course, "late-assess", Kind.ASSESSMENT, m1 + timedelta(days=3))
    course.discontinue(reason="the couple withdrew", by=BY)
    assert event_types(course)[-1] == "Discontinued"
    return course, m1


CLOSED_COMMANDS = {
    "record_screening": lambda c, m1: c.record_screening(partner="a", result="eligible", clinician_id="t", by=BY),
    "book_session": lambda c, m1: book(c, "new", Kind.ASSESSMENT, m1 + timedelta(days=40)),
    "reschedule_session": lambda c, m1: c.reschedule_session(
        session_id="m2", starts_at=m1 + timedelta(days=14, hours=1), ends_at=m1 + timedelta(days=14, hours=4), by=BY
    ),
    "cancel_session": lambda c, m1: c.cancel_session(session_id="m2", reason="x", by=BY),
    "record_missed": lambda c, m1: c.record_missed(
        session_id="late-assess", reason="x", now=m1 + timedelta(days=4), by=BY
    ),
    "record_held": lambda c, m1: c.record_held(session_id="late-assess", now=m1 + timedelta(days=4), by=BY),
    "request_dose_approval": lambda c, m1: c.request_dose_approval(
        approval_id="ap-m3-a", session_id="m3", partner="a", prescriber_id="rx-1", requested_mg=100,
        prescriber_authorised=True, now=m1 + timedelta(days=27), by=BY,
    ),
    "decide_dose_approval": lambda c, m1: c.decide_dose_approval(
        approval_id="ap-m2-b", prescriber_id="rx-1", approve=True, now=m1 + timedelta(days=13), by=BY
    ),
    "acknowledge_missed_window": lambda c, m1: c.acknowledge_missed_window(session_id="m1", reason="ok", by=BY),
    "discontinue": lambda c, m1: c.discontinue(reason="again", by=BY),
}


class TestClosedCourse:
    @pytest.mark.parametrize("command", sorted(CLOSED_COMMANDS))
    def test_discontinued_course_refuses_every_command(self, command):
        course, m1 = discontinued_course_with_everything_pending()
        err = refused(course, RulesBrokenError, lambda: CLOSED_COMMANDS[command](course, m1))
        # (a screening is also past assessment: on a closed course, that is beside the point)
        assert err.violations == (CLOSED,)

    def test_screening_refused_on_a_course_discontinued_during_assessment(self):
        course = open_course()
        screen(course, "a", "ineligible")
        err = refused(course, RulesBrokenError, lambda: screen(course, "b"))
        assert err.violations == (CLOSED,)

    def test_discontinued_course_refuses_completion_for_that_alone(self):
        course, m1 = discontinued_course_with_everything_pending()
        err = refused(course, RulesBrokenError, lambda: course.complete(by=BY))
        assert err.violations == (CLOSED,)  # not the integration it lacks, nor its booked sessions

    def test_discontinued_course_records_no_missed_windows(self):
        course, end = prepared_course()
        dose(course, "m1", end + timedelta(days=2), ["a"])
        course.discontinue(reason="moved away", by=BY)
        before = len(course.pending_events)
        assert course.record_missed_integration_windows(now=end + timedelta(days=30), by=BY) == []
        assert len(course.pending_events) == before
        assert course.missed_windows == {}

    def test_completed_course_refuses_commands(self):
        course, end = prepared_course()
        dose(course, "m1", end + timedelta(days=2), ["a"])
        last = integrate(course, "m1")
        course.complete(by=BY)
        closed = V("course-closed", "the course is completed and accepts no more commands")
        err = refused(course, RulesBrokenError, lambda: book(course, "x", Kind.INTEGRATION, last + timedelta(days=1)))
        assert err.violations == (closed,)
        err = refused(course, RulesBrokenError, lambda: course.discontinue(reason="late", by=BY))
        assert err.violations == (closed,)
        err = refused(course, RulesBrokenError, lambda: course.complete(by=BY))
        assert err.violations == (closed,)
        assert course.allowed_actions() == []

    def test_discontinue_needs_a_reason(self):
        course = open_course()
        err = refused(course, InvalidCommandError, lambda: course.discontinue(reason="  ", by=BY))
        assert err.problems == ("discontinuing gives a reason",)


# --------------------------------------------------------------- allowed_actions


class TestAllowedActions:
    def test_at_key_points_of_a_course(self):
        course = open_course()
        assert course.allowed_actions() == ["book_session", "discontinue", "record_screening"]

        book(course, "assess-1", Kind.ASSESSMENT, T0)
        assert course.allowed_actions() == [
            "book_session", "cancel_session", "discontinue", "record_screening", "record_session",
            "reschedule_session",
        ]
        screen(course, "a")
        screen(course, "b")
        hold(course, "assess-1")
        assert course.allowed_actions() == ["book_session", "discontinue"]

        end = prepare(course, T0 + timedelta(hours=1))
        assert course.allowed_actions() == ["book_session", "discontinue"]

        m1 = end + timedelta(days=2)
        book(course, "m1", Kind.MEDICINE, m1, length=timedelta(hours=3))
        assert course.allowed_actions() == [
            "book_session", "cancel_session", "discontinue", "record_session", "request_dose_approval",
            "reschedule_session",
        ]
        course.request_dose_approval(
            approval_id="ap-m1-a", session_id="m1", partner="a", prescriber_id="rx-1", requested_mg=100,
            prescriber_authorised=True, now=m1 - timedelta(days=1), by=BY,
        )
        assert "decide_dose_approval" in course.allowed_actions()
        course.decide_dose_approval(
            approval_id="ap-m1-a", prescriber_id="rx-1", approve=True, now=m1 - timedelta(days=1), by=BY
        )
        assert "decide_dose_approval" not in course.allowed_actions()
        course.record_held(session_id="m1", now=m1 + timedelta(hours=4), by=BY,
                           **medicine_record(course, "m1", ["a"]))
        assert course.allowed_actions() == ["book_session", "discontinue"]

        finished = course.sessions["m1"].finished_at
        course.record_missed_integration_windows(now=finished + timedelta(hours=49), by=BY)
        assert course.allowed_actions() == ["acknowledge_missed_window", "book_session", "discontinue"]
        course.acknowledge_missed_window(session_id="m1", reason="couple was ill", by=BY)
        assert course.allowed_actions() == ["book_session", "discontinue"]

    def test_complete_is_offered_once_the_course_may_complete(self):
        course, end = prepared_course()
        dose(course, "m1", end + timedelta(days=2), ["a"])
        last = integrate(course, "m1", count=3)
        assert "complete" not in course.allowed_actions()
        one_more_integration(course, "int-last", last)
        assert course.allowed_actions() == ["book_session", "complete", "discontinue"]
        course.complete(by=BY)
        assert course.allowed_actions() == []

    def test_request_dose_approval_not_offered_before_prepared(self):
        course = open_course()
        end = assess(course)
        book(course, "m1", Kind.MEDICINE, end + timedelta(days=2), length=timedelta(hours=3))
        assert "request_dose_approval" not in course.allowed_actions()


def test_together_model_course_runs_to_completion():
    course, end = prepared_course(Model.TOGETHER)
    dose(course, "m1", end + timedelta(days=2), ["a", "b"])
    integrate(course, "m1")
    course.complete(by=BY)
    assert course.status is Status.COMPLETED


class TestPhasesByTimeOfOccurrence:
    """I1 by when sessions took place, not by when they were recorded."""

    def test_a_preparation_session_that_took_place_before_the_assessment_does_not_count(self):
        course = open_course()
        screen(course, "a")
        screen(course, "b")
        book(course, "early-prep", Kind.PREPARATION, T0 - timedelta(days=2), partners=("a",))
        book(course, "assess-1", Kind.ASSESSMENT, T0)
        hold(course, "assess-1")  # Assessed, by the session that ended at T0 + 1 h
        err = refused(course, RulesBrokenError, lambda: hold(course, "early-prep"))
        assert err.violations == (V(
            "I1", f"preparation session early-prep took place ({(T0 - timedelta(days=2)).isoformat()}) before the "
                  f"course was Assessed ({(T0 + timedelta(hours=1)).isoformat()})"),)
        book(course, "prep-a", Kind.PREPARATION, T0 + timedelta(hours=1), partners=("a",))  # adjacent: after
        hold(course, "prep-a")
        assert course.sessions["prep-a"].status is SessionStatus.HELD

    def test_the_medicine_session_counts_from_when_the_preparation_minimum_had_taken_place(self):
        course = open_course()
        end = assess(course)
        # The last required preparation session takes place after the medicine session, and is recorded first.
        plan = [("a",), ("b",), ("a", "b")]
        for i, partners in enumerate(plan):
            book(course, f"prep-{i}", Kind.PREPARATION, end + timedelta(days=i + 1), partners=partners)
            hold(course, f"prep-{i}")
        medicine = end + timedelta(days=10)
        late_prep = end + timedelta(days=12)
        book(course, "prep-late", Kind.PREPARATION, late_prep, partners=("a", "b"))
        book(course, "m1", Kind.MEDICINE, medicine, length=timedelta(hours=3))
        approve(course, "m1", "a")
        course.record_held(session_id="prep-late", now=late_prep + timedelta(hours=2), by=BY)
        assert course.prepared  # recorded, but by the time of the sessions only after m1
        err = refused(course, RulesBrokenError, lambda: course.record_held(
            session_id="m1", now=late_prep + timedelta(hours=3), by=BY, **medicine_record(course, "m1", ["a"])))
        assert V("I1", f"medicine session m1 took place ({medicine.isoformat()}) before the course was Prepared "
                       f"({(late_prep + timedelta(hours=1)).isoformat()})") in err.violations


class TestCancellingBeforeTheStart:
    """A session is cancelled only before it starts; once it has started it is held or missed."""

    def test_a_started_session_is_not_cancelled(self):
        course = open_course()
        book(course, "assess-1", Kind.ASSESSMENT, T0)
        for now in (T0, T0 + timedelta(minutes=30), T0 + timedelta(days=3)):
            err = refused(course, RulesBrokenError, lambda now=now: course.cancel_session(
                session_id="assess-1", reason="couple did not come", by=BY, now=now))
            assert err.violations == (V("session-started", f"session assess-1 started at {T0.isoformat()}; "
                                                           "record it held or missed"),)
        course.record_missed(session_id="assess-1", reason="couple did not come", now=T0 + timedelta(hours=2), by=BY)
        assert course.sessions["assess-1"].status is SessionStatus.MISSED

    def test_a_session_is_cancelled_up_to_its_start(self):
        course = open_course()
        book(course, "assess-1", Kind.ASSESSMENT, T0)
        course.cancel_session(session_id="assess-1", reason="couple asked", by=BY, now=T0 - timedelta(seconds=1))
        assert course.sessions["assess-1"].status is SessionStatus.CANCELLED


class TestBookingAhead:
    """A session is booked, and moved, to start after the moment the clinic books it; once it has started it is
    neither moved nor cancelled (it took place or it did not)."""

    def booking(self, course, start, now, sid="assess-1"):
        course.book_session(session_id=sid, kind=Kind.ASSESSMENT, partners=("a", "b"), starts_at=start,
                            ends_at=start + timedelta(hours=1), clinic_id="home", by=BY, now=now)

    def test_a_booking_in_the_past_is_refused_one_up_to_now_is_not(self):
        course = open_course()
        err = refused(course, RulesBrokenError, lambda: self.booking(course, T0, T0 + timedelta(minutes=1)))
        assert err.violations == (V("booking-in-the-past", f"the session would start {T0.isoformat()}, before now "
                                                           f"({(T0 + timedelta(minutes=1)).isoformat()})"),)
        self.booking(course, T0, T0)
        assert course.sessions["assess-1"].status is SessionStatus.BOOKED

    def test_a_refusal_in_the_past_lists_the_other_rules_too(self):
        course = open_course()
        self.booking(course, T0 + timedelta(days=1), T0)
        err = refused(course, RulesBrokenError, lambda: self.booking(
            course, T0 + timedelta(days=1, minutes=30), T0 + timedelta(days=2), sid="assess-2"))
        assert [v.rule for v in err.violations] == ["booking-in-the-past", "I10"]

    def test_a_session_is_moved_only_ahead_and_only_before_it_starts(self):
        course = open_course()
        self.booking(course, T0 + timedelta(days=2), T0)
        err = refused(course, RulesBrokenError, lambda: course.reschedule_session(
            session_id="assess-1", starts_at=T0, ends_at=T0 + timedelta(hours=1), by=BY, now=T0 + timedelta(days=1)))
        assert [v.rule for v in err.violations] == ["booking-in-the-past"]
        started = T0 + timedelta(days=2, minutes=5)
        err = refused(course, RulesBrokenError, lambda: course.reschedule_session(
            session_id="assess-1", starts_at=T0 + timedelta(days=5), ends_at=T0 + timedelta(days=5, hours=1), by=BY,
            now=started))
        assert err.violations == (V("session-started", f"session assess-1 started at "
                                                       f"{(T0 + timedelta(days=2)).isoformat()}; record it held or "
                                                       "missed"),)
        course.reschedule_session(session_id="assess-1", starts_at=T0 + timedelta(days=5),
                                  ends_at=T0 + timedelta(days=5, hours=1), by=BY, now=T0 + timedelta(days=1))
        assert course.sessions["assess-1"].starts_at == T0 + timedelta(days=5)


class TestWhenThingsHappened:
    """Every event keeps when it happened by the clock of the command that recorded it (occurred_at), beside the
    time it was recorded (timestamp)."""

    def test_each_event_of_a_command_keeps_its_clock(self):
        course = open_course()
        clinic_clock = T0 - timedelta(days=3)
        course.occurring(clinic_clock)
        book(course, "assess-1", Kind.ASSESSMENT, T0)
        course.record_screening(partner="a", result="eligible", clinician_id="t-1", by=BY)
        course.done()
        *_, booked, screened = course.pending_events
        assert (booked.occurred_at, screened.occurred_at) == (clinic_clock, clinic_clock)
        assert booked.timestamp != clinic_clock  # recorded now, by the server
        assert "_clock" not in course.__dict__  # the clock is no part of the course
        course.cancel_session(session_id="assess-1", reason="ill", by=BY)
        assert course.pending_events[-1].occurred_at is None  # no clock given: none kept

    def test_the_opening_keeps_its_clock_too(self):
        assert open_course(now=T0).pending_events[0].occurred_at == T0
