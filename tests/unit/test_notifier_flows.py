"""The coordination rules: who is told what, and which follow-ups are planned or cancelled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kact_contracts import events as ev
from notifier.flows import (
    CourseFacts,
    Message,
    Policy,
    SessionFacts,
    clinic,
    decide,
    prescriber,
    remember,
)

T = datetime(2026, 3, 2, 9, tzinfo=UTC)
COURSE = "c-1"
POLICY = Policy(remind_after=timedelta(hours=1), escalate_after=timedelta(hours=4),
                warn_before_window_closes=timedelta(hours=24))
HOME, PARTNER = clinic("home"), clinic("partner")


def facts() -> CourseFacts:
    return CourseFacts(
        home_clinic_id="home",
        sessions={"med-1": SessionFacts("partner", "medicine"), "int-1": SessionFacts("home", "integration", "med-1"),
                  "prep-1": SessionFacts("home", "preparation")},
        approvals={"apr-1": ("med-1", "rx-1"), "apr-2": ("med-1", "rx-2"), "apr-9": ("med-9", "rx-9")},
    )


def booked(clinic_id: str, kind: str = "medicine", needs_confirmation: bool = True) -> ev.SessionBooked:
    return ev.SessionBooked(session_id="med-2", kind=kind, partners=["a", "b"], starts_at=T, ends_at=T + timedelta(hours=3),
                            timezone="UTC", clinic_id=clinic_id, room_id=None, clinician_ids=[], follows=None,
                            needs_confirmation=needs_confirmation)


def test_a_medicine_session_at_a_partner_clinic_is_a_booking_request_to_it() -> None:
    out = decide(booked("partner"), COURSE, facts(), POLICY)
    assert out.messages == [Message(PARTNER, "booking_request"), Message(HOME, "update")]


def test_a_session_at_the_home_clinic_goes_to_the_home_clinic_only() -> None:
    out = decide(booked("home", "preparation", needs_confirmation=False), COURSE, facts(), POLICY)
    assert out.messages == [Message(HOME, "update")]


def test_a_rescheduled_partner_medicine_session_asks_its_host_again_and_other_moves_are_updates() -> None:
    course = facts()
    remember(booked("partner"), course)
    moved = ev.SessionRescheduled(session_id="med-2", starts_at=T + timedelta(days=1),
                                  ends_at=T + timedelta(days=1, hours=3), room_id=None, clinician_ids=[])
    assert decide(moved, COURSE, course, POLICY).messages == [Message(PARTNER, "booking_request"),
                                                              Message(HOME, "update")]
    # a session that needed no confirmation (here: booked before its host's answer was asked for) is an update
    moved_other = ev.SessionRescheduled(session_id="med-1", starts_at=T, ends_at=T + timedelta(hours=3),
                                        room_id=None, clinician_ids=[])
    assert decide(moved_other, COURSE, course, POLICY).messages == [Message(HOME, "update"),
                                                                    Message(PARTNER, "update")]


def test_a_dose_approval_request_goes_to_its_prescriber_with_a_reminder_and_an_escalation_planned() -> None:
    event = ev.DoseApprovalRequested(approval_id="apr-3", session_id="med-1", partner="a", prescriber_id="rx-3",
                                     requested_at=T)
    out = decide(event, COURSE, facts(), POLICY)
    assert out.messages == [Message(prescriber("rx-3"), "dose_approval_request"), Message(HOME, "update")]
    reminder, escalation = out.timers
    assert (reminder.recipient, reminder.due_at, reminder.reason) == (prescriber("rx-3"), T + timedelta(hours=1),
                                                                      "dose_approval_reminder")
    assert (escalation.recipient, escalation.due_at, escalation.reason) == (HOME, T + timedelta(hours=4),
                                                                            "dose_approval_escalation")
    assert isinstance(escalation.notice, ev.DoseApprovalEscalation) and escalation.notice.approval_id == "apr-3"


def test_a_decision_cancels_the_reminder_and_escalation_and_tells_the_prescriber() -> None:
    event = ev.DoseApprovalDecided(approval_id="apr-1", decision="approved", decided_at=T, expires_at=None)
    out = decide(event, COURSE, facts(), POLICY)
    assert out.messages == [Message(HOME, "update"), Message(prescriber("rx-1"), "update")]
    assert out.cancel == [f"{COURSE}:approval:apr-1:"]


def test_a_discharge_recorded_later_tells_the_home_and_the_hosting_clinic() -> None:
    out = decide(ev.SessionDischarged(session_id="med-1", discharged_at=T), COURSE, facts(), POLICY)
    assert {m.recipient for m in out.messages} == {HOME, PARTNER}
    assert {m.notice for m in out.messages} == {"update"}


def test_a_withdrawn_request_cancels_the_reminder_and_escalation_and_tells_the_prescriber() -> None:
    out = decide(ev.DoseApprovalWithdrawn(approval_id="apr-1"), COURSE, facts(), POLICY)
    assert out.messages == [Message(HOME, "update"), Message(prescriber("rx-1"), "update")]
    assert out.cancel == [f"{COURSE}:approval:apr-1:"]


def test_an_adverse_event_alerts_the_prescribers_of_that_session_the_home_and_the_hosting_clinic() -> None:
    event = ev.SessionHeld(session_id="med-1", discharged_at=T,
                           adverse_events=[ev.AdverseEvent(partner="a", at=T, severity="moderate")])
    out = decide(event, COURSE, facts(), POLICY)
    # rx-9 approved a dose in another session: not told
    assert {m.recipient for m in out.messages} == {HOME, PARTNER, prescriber("rx-1"), prescriber("rx-2")}
    assert {m.notice for m in out.messages} == {"adverse_event_alert"}


def test_an_adverse_event_reported_on_its_own_alerts_the_same_at_once() -> None:
    event = ev.AdverseEventReported(session_id="med-1", partner="b", at=T, severity="severe")
    out = decide(event, COURSE, facts(), POLICY)
    assert {m.recipient for m in out.messages} == {HOME, PARTNER, prescriber("rx-1"), prescriber("rx-2")}
    assert {m.notice for m in out.messages} == {"adverse_event_alert"}
    assert out.timers == [] and out.cancel == []


def test_a_session_held_without_adverse_events_is_an_update() -> None:
    out = decide(ev.SessionHeld(session_id="med-1", discharged_at=T, adverse_events=[]), COURSE, facts(), POLICY)
    assert out.messages == [Message(HOME, "update"), Message(PARTNER, "update")]


def test_dosed_informs_every_clinic_involved_and_plans_the_window_warning() -> None:
    out = decide(ev.Dosed(session_id="med-1", integration_deadline=T + timedelta(days=3)), COURSE, facts(), POLICY)
    assert {m.recipient for m in out.messages} == {HOME, PARTNER}
    assert {m.notice for m in out.messages} == {"milestone"}
    (warning,) = out.timers
    assert (warning.recipient, warning.due_at, warning.reason) == (HOME, T + timedelta(days=2),
                                                                    "integration_window_warning")


def test_an_integration_session_held_cancels_its_medicine_sessions_window_warning() -> None:
    out = decide(ev.SessionHeld(session_id="int-1", discharged_at=None, adverse_events=[]), COURSE, facts(), POLICY)
    assert out.cancel == [f"{COURSE}:window:med-1:"]


def test_a_missed_window_alerts_the_home_clinic() -> None:
    out = decide(ev.IntegrationWindowMissed(session_id="med-1", deadline=T), COURSE, facts(), POLICY)
    assert out.messages == [Message(HOME, "integration_window_missed")]
    assert out.cancel == [f"{COURSE}:window:med-1:"]


def test_closing_the_course_cancels_everything_planned_for_it() -> None:
    out = decide(ev.CourseDiscontinued(), COURSE, facts(), POLICY)
    assert out.cancel == [f"{COURSE}:"]
    assert {m.recipient for m in out.messages} == {HOME, PARTNER}


def test_remember_keeps_hosts_and_approvals() -> None:
    known = CourseFacts(home_clinic_id="home")
    remember(booked("partner"), known)
    remember(ev.DoseApprovalRequested(approval_id="apr-3", session_id="med-2", partner="b", prescriber_id="rx-3",
                                      requested_at=T), known)
    assert known.sessions == {"med-2": SessionFacts("partner", "medicine", None, needs_confirmation=True)}
    assert known.approvals == {"apr-3": ("med-2", "rx-3")}
    assert known.partner_hosts() == {"partner"} and known.partner_hosts("nope") == set()


def test_a_vitals_override_tells_the_home_and_the_clinic_hosting_the_dose() -> None:
    out = decide(ev.VitalsLimitOverridden(approval_id="apr-1"), COURSE, facts(), POLICY)
    assert {m.recipient for m in out.messages} == {HOME, PARTNER}
    assert {m.notice for m in out.messages} == {"update"}
    assert out.timers == [] and out.cancel == []


def test_a_hold_that_expired_is_told_to_the_clinic_that_held_it_and_a_hold_at_a_partner_to_the_partner_too() -> None:
    expired = ev.HoldExpired(hold_id="hold_1", expired_at=T)
    assert decide(expired, COURSE, facts(), POLICY).messages == [Message(HOME, "hold_expired")]
    held = ev.SlotHeld(hold_id="hold_2", kind="medicine", starts_at=T, ends_at=T + timedelta(hours=3),
                       clinic_id="partner", room_id=None, clinician_ids=["rx-1"], expires_at=T + timedelta(minutes=10))
    assert decide(held, COURSE, facts(), POLICY).messages == [Message(HOME, "update"), Message(PARTNER, "update")]
    at_home = ev.SlotHeld(hold_id="hold_3", kind="integration", starts_at=T, ends_at=T + timedelta(hours=1),
                          clinic_id="home", room_id=None, clinician_ids=[], expires_at=T + timedelta(minutes=10))
    assert decide(at_home, COURSE, facts(), POLICY).messages == [Message(HOME, "update")]
    released = ev.HoldReleased(hold_id="hold_2", outcome="booked", session_id="med-2")
    assert decide(released, COURSE, facts(), POLICY).messages == [Message(HOME, "update")]
