"""A partner clinic hosting a medicine session confirms or declines it (DOMAIN.md, "Coordination": a medicine
session booked at a partner clinic -> the partner clinic is asked to confirm); and Dosed says when the
integration window closes (I4)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from builders import (
    BY,
    HOME,
    book,
    dose,
    event_types,
    integrate,
    prepared_course,
    refused,
)
from invariants import check_events
from scheduler.domain.course import Course
from scheduler.domain.errors import (
    InvalidCommandError,
    NotHostingError,
    RulesBrokenError,
    UnknownSessionError,
)
from scheduler.domain.errors import Violation as V
from scheduler.domain.model import Confirmation, HostFacts, Kind, SessionStatus
from scheduler.domain.protocol import Protocol

PARTNER = "partner-1"
PARTNER_HOST = HostFacts(PARTNER, has_prescriber=True, is_partner_of_home=True)
HOST_BY = f"clinic:{PARTNER}"
THREE_H = timedelta(hours=3)


def hosted_course() -> tuple[Course, object]:
    """A prepared course with medicine session m1 at the partner clinic and m-home at the home clinic."""
    course, end = prepared_course()
    m1 = end + timedelta(days=2)
    book(course, "m1", Kind.MEDICINE, m1, length=THREE_H, host=PARTNER_HOST, clinic_id=PARTNER)
    book(course, "m-home", Kind.MEDICINE, m1 + timedelta(days=10), length=THREE_H)
    return course, m1


def confirm(course: Course, sid: str = "m1", decision: str = "confirmed", reason: str = "",
            clinic: str = PARTNER) -> None:
    course.confirm_session(session_id=sid, clinic_id=clinic, decision=decision, reason=reason,
                           by=f"clinic:{clinic}")


class TestConfirmationState:
    def test_partner_hosted_medicine_is_pending_and_home_hosted_needs_nothing(self):
        course, _ = hosted_course()
        assert course.sessions["m1"].confirmation is Confirmation.PENDING
        assert course.sessions["m-home"].confirmation is Confirmation.NOT_NEEDED
        assert course.sessions["prep-0"].confirmation is Confirmation.NOT_NEEDED

    def test_confirmed(self):
        course, _ = hosted_course()
        before = len(course.pending_events)
        confirm(course)
        assert event_types(course)[before:] == ["SessionConfirmed"]
        event = course.pending_events[-1]
        assert (event.session_id, event.clinic_id, event.by) == ("m1", PARTNER, HOST_BY)
        assert course.sessions["m1"].confirmation is Confirmation.CONFIRMED
        assert course.sessions["m1"].status is SessionStatus.BOOKED

    def test_declined_with_a_reason(self):
        course, _ = hosted_course()
        before = len(course.pending_events)
        confirm(course, decision="declined", reason="no monitoring nurse that day")
        assert event_types(course)[before:] == ["SessionDeclined"]
        event = course.pending_events[-1]
        assert (event.session_id, event.clinic_id, event.reason, event.by) == (
            "m1", PARTNER, "no monitoring nurse that day", HOST_BY,
        )
        assert course.sessions["m1"].confirmation is Confirmation.DECLINED

    def test_a_host_may_change_its_mind(self):
        course, _ = hosted_course()
        confirm(course, decision="declined", reason="room closed")
        confirm(course)
        assert course.sessions["m1"].confirmation is Confirmation.CONFIRMED
        confirm(course, decision="declined", reason="room closed after all")
        assert course.sessions["m1"].confirmation is Confirmation.DECLINED

    @pytest.mark.parametrize("first", ["confirmed", "declined"])
    def test_a_reschedule_asks_the_host_again(self, first):
        course, m1 = hosted_course()
        confirm(course, decision=first, reason="room closed")
        course.reschedule_session(session_id="m1", starts_at=m1 + timedelta(days=1),
                                  ends_at=m1 + timedelta(days=1) + THREE_H, by=BY)
        assert course.sessions["m1"].confirmation is Confirmation.PENDING
        confirm(course)
        assert course.sessions["m1"].confirmation is Confirmation.CONFIRMED

    def test_a_reschedule_of_a_home_hosted_session_needs_nothing(self):
        course, m1 = hosted_course()
        start = m1 + timedelta(days=11)
        course.reschedule_session(session_id="m-home", starts_at=start, ends_at=start + THREE_H, by=BY)
        assert course.sessions["m-home"].confirmation is Confirmation.NOT_NEEDED

    def test_replays_to_the_same_state_and_the_checker_finds_nothing(self):
        course, m1 = hosted_course()
        confirm(course, decision="declined", reason="room closed")
        course.reschedule_session(session_id="m1", starts_at=m1 + timedelta(days=1),
                                  ends_at=m1 + timedelta(days=1) + THREE_H, by=BY)
        confirm(course)
        events = course.collect_events()
        replayed = None
        for event in events:
            replayed = event.mutate(replayed)
        assert replayed.__dict__ == course.__dict__
        assert check_events(events) == []


class TestConfirmationRefused:
    def test_by_a_clinic_that_does_not_host_the_session(self):
        course, _ = hosted_course()
        err = refused(course, NotHostingError, lambda: confirm(course, clinic="partner-2"))
        assert (err.session_id, err.clinic_id) == ("m1", "partner-2")
        assert str(err) == "session m1 is not hosted by clinic partner-2"
        err = refused(course, NotHostingError, lambda: confirm(course, clinic=HOME))
        assert (err.session_id, err.clinic_id) == ("m1", HOME)
        assert course.sessions["m1"].confirmation is Confirmation.PENDING

    def test_unknown_session(self):
        course, _ = hosted_course()
        err = refused(course, UnknownSessionError, lambda: confirm(course, sid="nope"))
        assert err.session_id == "nope"

    def test_a_session_hosted_by_the_home_clinic(self):
        course, _ = hosted_course()
        err = refused(course, RulesBrokenError, lambda: confirm(course, sid="m-home", clinic=HOME))
        assert err.violations == (
            V("session-confirmation",
              "session m-home needs no confirmation: only a medicine session hosted by a partner clinic does"),
        )

    @pytest.mark.parametrize("decision,reason", [("confirmed", ""), ("declined", "room closed")])
    def test_deciding_twice_the_same_way(self, decision, reason):
        course, _ = hosted_course()
        confirm(course, decision=decision, reason=reason)
        err = refused(course, RulesBrokenError, lambda: confirm(course, decision=decision, reason="again"))
        assert err.violations == (V("session-confirmation", f"session m1 is already {decision}"),)

    @pytest.mark.parametrize("reason", ["", "   "])
    def test_declining_without_a_reason(self, reason):
        course, _ = hosted_course()
        err = refused(course, InvalidCommandError, lambda: confirm(course, decision="declined", reason=reason))
        assert err.problems == ("declining a session gives a reason",)

    def test_an_unknown_decision(self):
        course, _ = hosted_course()
        err = refused(course, InvalidCommandError, lambda: confirm(course, decision="maybe"))
        assert err.problems == ("decision must be 'confirmed' or 'declined'",)

    def test_a_cancelled_session(self):
        course, _ = hosted_course()
        course.cancel_session(session_id="m1", reason="couple travels", by=BY)
        err = refused(course, RulesBrokenError, lambda: confirm(course))
        assert err.violations == (V("session-state", "session m1 is cancelled, not booked"),)

    def test_a_missed_session(self):
        course, m1 = hosted_course()
        course.record_missed(session_id="m1", reason="no show", now=m1 + timedelta(hours=1), by=BY)
        err = refused(course, RulesBrokenError, lambda: confirm(course))
        assert err.violations == (V("session-state", "session m1 is missed, not booked"),)

    def test_a_closed_course_lists_only_that_it_is_closed(self):
        course, _ = hosted_course()
        confirm(course)
        course.discontinue(reason="couple chose to stop", by=BY)
        err = refused(course, RulesBrokenError, lambda: confirm(course))  # also confirmed already: beside the point
        assert err.violations == (V("course-closed", "the course is discontinued and accepts no more commands"),)

    def test_a_closed_course_refuses_a_first_decision(self):
        course, _ = hosted_course()
        course.discontinue(reason="couple chose to stop", by=BY)
        err = refused(course, RulesBrokenError, lambda: confirm(course, decision="declined", reason="too late"))
        assert err.violations == (V("course-closed", "the course is discontinued and accepts no more commands"),)


class TestDosedCarriesTheIntegrationDeadline:
    def test_the_deadline_is_the_window_of_the_held_session(self):
        course, end = prepared_course()
        dose(course, "m1", end + timedelta(days=2), ["a"])
        dosed = [e for e in course.pending_events if type(e).__name__ == "Dosed"]
        assert len(dosed) == 1
        medicine = course.sessions["m1"]
        assert dosed[0].integration_deadline == course.window_deadline(medicine)
        assert dosed[0].integration_deadline == medicine.held["discharged_at"] + timedelta(hours=48)

    def test_a_configured_window(self):
        course, end = prepared_course(protocol=Protocol(integration_window_hours=96))
        dose(course, "m1", end + timedelta(days=2), ["a"])
        dosed = course.pending_events[-1]
        assert type(dosed).__name__ == "Dosed"
        assert dosed.integration_deadline == course.sessions["m1"].held["discharged_at"] + timedelta(hours=96)

    def test_the_checker_spots_a_wrong_deadline(self):
        course, end = prepared_course()
        dose(course, "m1", end + timedelta(days=2), ["a"])
        integrate(course, "m1")
        assert check_events(list(course.pending_events)) == []
        for event in course.pending_events:
            if type(event).__name__ == "Dosed":
                object.__setattr__(event, "integration_deadline", event.integration_deadline + timedelta(hours=1))
        assert [b.rule for b in check_events(list(course.pending_events))] == ["I4"]


class TestCheckerJudgesConfirmations:
    def force(self, course: Course, cls, by: str = HOST_BY, clinic: str = PARTNER, **kw) -> None:
        course.trigger_event(cls, session_id=kw.pop("sid", "m1"), clinic_id=clinic, by=by, **kw)

    def rules(self, course: Course) -> list[tuple[str, str]]:
        return [(b.rule, b.message) for b in check_events(list(course.pending_events), ended=False)]

    def test_confirmed_by_a_clinic_that_does_not_host_it(self):
        course, _ = hosted_course()
        self.force(course, Course.SessionConfirmed, by="clinic:partner-2", clinic="partner-2")
        assert self.rules(course) == [
            ("session-confirmation", "session m1 is hosted by partner-1, not by partner-2"),
            ("session-confirmation", "session m1 was confirmed by clinic:partner-2, not its host"),
        ]

    def test_a_home_hosted_session_confirmed(self):
        course, _ = hosted_course()
        self.force(course, Course.SessionConfirmed, sid="m-home", by=BY, clinic=HOME)
        assert self.rules(course) == [("session-confirmation", "session m-home needed no confirmation")]

    def test_declined_twice_and_without_a_reason(self):
        course, _ = hosted_course()
        self.force(course, Course.SessionDeclined, reason="room closed")
        self.force(course, Course.SessionDeclined, reason=" ")
        assert self.rules(course) == [
            ("session-confirmation", "session m1 is declined twice"),
            ("session-confirmation", "session m1 is declined without a reason"),
        ]
