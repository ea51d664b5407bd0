"""Dose approvals (I6) and the two models (I7)."""

from __future__ import annotations

from datetime import timedelta

from builders import (
    BY,
    PRESCRIBER,
    approve,
    assess,
    book,
    event_types,
    hold_medicine,
    integrate,
    medicine_booked,
    medicine_record,
    open_course,
    prepare,
    prepared_course,
    refused,
)

from scheduler.domain.errors import (
    InvalidCommandError,
    NotAddressedError,
    RulesBrokenError,
    UnknownApprovalError,
)
from scheduler.domain.errors import Violation as V
from scheduler.domain.model import ApprovalStatus, Kind, SessionStatus
from scheduler.domain.protocol import Model, Protocol

THREE_H = timedelta(hours=3)
DOSE_AFTER = timedelta(minutes=10)  # medicine_record doses 10 min after the start


def request(course, sid, partner, aid=None, authorised=True, now=None, prescriber=PRESCRIBER, mg=100.0):
    course.request_dose_approval(
        approval_id=aid or f"ap-{sid}-{partner}", session_id=sid, partner=partner, prescriber_id=prescriber,
        requested_mg=mg, prescriber_authorised=authorised,
        now=now or course.sessions[sid].starts_at - timedelta(days=1), by=BY,
    )


def decide(course, aid, approve_it=True, prescriber=PRESCRIBER, now=None, **kw):
    course.decide_dose_approval(
        approval_id=aid, prescriber_id=prescriber, approve=approve_it,
        now=now or course.approvals[aid].requested_at, by=f"prescriber:{prescriber}", **kw,
    )


def held_ok(course, sid):
    assert course.sessions[sid].status is SessionStatus.HELD
    assert course.has_milestone("dosed", sid)


# --------------------------------------------------------------------------- I6


class TestI6DoseApproval:
    def test_approved_dose_is_accepted(self):
        course, _ = medicine_booked()
        hold_medicine(course, "m1", medicine_record(course, "m1", ["a"]))
        held_ok(course, "m1")

    def test_missing_approval(self):
        course, _ = medicine_booked(approved=False)
        record = medicine_record(course, "m1", ["a"])
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I6", "partner a has no dose approval for session m1"),)

    def test_approval_of_another_session_does_not_count(self):
        course, start = medicine_booked(approved=False)
        book(course, "m2", Kind.MEDICINE, start + timedelta(days=7), length=THREE_H)
        request(course, "m2", "b")
        decide(course, "ap-m2-b")
        record = medicine_record(course, "m1", ["a"])
        record["doses"][0]["approval_id"] = "ap-m2-b"
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I6", "partner a has no dose approval for session m1"),)

    def test_pending_approval(self):
        course, _ = medicine_booked(approved=False)
        request(course, "m1", "a")
        record = medicine_record(course, "m1", ["a"])
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I6", "dose approval ap-m1-a is pending, not approved"),)

    def test_declined_approval(self):
        course, _ = medicine_booked(approved=False)
        request(course, "m1", "a")
        decide(course, "ap-m1-a", approve_it=False, reason="blood pressure history")
        approval = course.approvals["ap-m1-a"]
        assert (approval.status, approval.expires_at, approval.approved_mg) == (ApprovalStatus.DECLINED, None, None)
        record = medicine_record(course, "m1", ["a"])
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I6", "dose approval ap-m1-a is declined, not approved"),)

    def test_a_new_request_after_a_decline_is_accepted(self):
        course, _ = medicine_booked(approved=False)
        request(course, "m1", "a", aid="first")
        decide(course, "first", approve_it=False)
        request(course, "m1", "a", aid="second")
        assert course.approvals["second"].status is ApprovalStatus.PENDING

    def test_expired_approval(self):
        course, start = medicine_booked(approved=False)
        decided = start - timedelta(days=15)
        approve(course, "m1", "a", at=decided)
        record = medicine_record(course, "m1", ["a"])
        expires = decided + timedelta(days=14)
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (
            V("I6", f"dose approval ap-m1-a is valid from {decided.isoformat()} until {expires.isoformat()}; "
                    f"the dose was given {(start + DOSE_AFTER).isoformat()}"),
        )

    def test_approval_within_its_configured_validity_is_accepted(self):
        course, start = medicine_booked(protocol=Protocol(approval_valid_days=30), approved=False)
        approve(course, "m1", "a", at=start - timedelta(days=29))
        hold_medicine(course, "m1", medicine_record(course, "m1", ["a"]))
        held_ok(course, "m1")

    def test_dose_above_the_approved_mg(self):
        course, _ = medicine_booked(approved=False)
        approve(course, "m1", "a", mg=100.0, approved_mg=80.0)
        record = medicine_record(course, "m1", ["a"], mg=100.0)
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I6", "partner a was given 100.0 mg; 80.0 mg was approved"),)
        hold_medicine(course, "m1", medicine_record(course, "m1", ["a"], mg=80.0))
        held_ok(course, "m1")

    def test_expired_and_above_the_approved_mg_lists_both(self):
        course, start = medicine_booked(approved=False)
        decided = start - timedelta(days=20)
        approve(course, "m1", "a", at=decided, approved_mg=50.0)
        record = medicine_record(course, "m1", ["a"])
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (
            V("I6", f"dose approval ap-m1-a is valid from {decided.isoformat()} until "
                    f"{(decided + timedelta(days=14)).isoformat()}; the dose was given "
                    f"{(start + DOSE_AFTER).isoformat()}"),
            V("I6", "partner a was given 100.0 mg; 50.0 mg was approved"),
        )

    def test_prescriber_not_authorised_at_the_hosting_clinic(self):
        course, _ = medicine_booked(approved=False)
        err = refused(course, RulesBrokenError, lambda: request(course, "m1", "a", authorised=False))
        assert err.violations == (V("I6", "prescriber rx-1 is not authorised at hosting clinic home"),)
        request(course, "m1", "a", authorised=True)
        assert event_types(course)[-1] == "DoseApprovalRequested"

    def test_decision_by_another_prescriber_is_not_addressed(self):
        course, _ = medicine_booked(approved=False)
        request(course, "m1", "a")
        err = refused(course, NotAddressedError, lambda: decide(course, "ap-m1-a", prescriber="rx-2"))
        assert err.approval_id == "ap-m1-a"
        assert str(err) == "dose approval ap-m1-a is not addressed to this prescriber"
        assert course.approvals["ap-m1-a"].status is ApprovalStatus.PENDING
        decide(course, "ap-m1-a", prescriber=PRESCRIBER)
        assert course.approvals["ap-m1-a"].status is ApprovalStatus.APPROVED

    def test_approval_decided_once(self):
        course, _ = medicine_booked()
        err = refused(course, RulesBrokenError, lambda: decide(course, "ap-m1-a", approve_it=False))
        assert err.violations == (V("approval-decided", "dose approval ap-m1-a is already approved"),)

    def test_one_open_approval_per_partner_and_session(self):
        course, _ = medicine_booked()
        err = refused(course, RulesBrokenError, lambda: request(course, "m1", "a", aid="again"))
        assert err.violations == (V("I6", "partner a already has dose approval ap-m1-a for this session"),)

    def test_an_expired_or_declined_approval_can_be_requested_again(self):
        course, start = medicine_booked()  # ap-m1-a approved the day before m1, valid 14 days
        expires = course.approvals["ap-m1-a"].expires_at
        err = refused(course, RulesBrokenError, lambda: request(course, "m1", "a", aid="again", now=expires))
        assert err.violations == (V("I6", "partner a already has dose approval ap-m1-a for this session"),)
        request(course, "m1", "a", aid="again", now=expires + timedelta(minutes=1))  # expired: asked anew
        decide(course, "again", approve_it=False, now=expires + timedelta(hours=1))
        request(course, "m1", "a", aid="third", now=expires + timedelta(hours=2))  # declined: asked anew
        assert course.approvals["third"].status is ApprovalStatus.PENDING

    def test_a_pending_request_is_withdrawn_and_asked_again(self):
        course, _ = medicine_booked(approved=False)
        request(course, "m1", "a")
        err = refused(course, InvalidCommandError, lambda: course.withdraw_dose_approval(
            approval_id="ap-m1-a", reason=" ", by=BY))
        assert err.problems == ("withdrawing a request gives a reason",)
        course.withdraw_dose_approval(approval_id="ap-m1-a", reason="session moves to next month", by=BY)
        assert course.approvals["ap-m1-a"].status is ApprovalStatus.WITHDRAWN
        err = refused(course, RulesBrokenError, lambda: decide(course, "ap-m1-a"))
        assert err.violations == (V("approval-decided", "dose approval ap-m1-a is already withdrawn"),)
        request(course, "m1", "a", aid="again")  # the withdrawn one does not stand in the way
        decide(course, "again")
        err = refused(course, RulesBrokenError, lambda: course.withdraw_dose_approval(
            approval_id="again", reason="too late", by=BY))
        assert err.violations == (V("approval-decided", "dose approval again is already approved"),)

    def test_a_session_moved_past_an_approvals_expiry_asks_the_prescriber_again(self):
        course, start = medicine_booked()  # ap-m1-a approved the day before m1, valid 14 days
        expires = course.approvals["ap-m1-a"].expires_at
        ids = iter(["asked-again", "unused"])
        course.reschedule_session(session_id="m1", starts_at=start + timedelta(days=3),
                                  ends_at=start + timedelta(days=3) + THREE_H, by=BY, now=start - timedelta(hours=1),
                                  new_approval_id=lambda: next(ids))
        assert set(course.approvals) == {"ap-m1-a"}  # still valid at the new time: nobody is asked
        later = expires + timedelta(days=2)
        course.reschedule_session(session_id="m1", starts_at=later, ends_at=later + THREE_H, by=BY,
                                  now=start, new_approval_id=lambda: next(ids))
        again = course.approvals["asked-again"]
        assert (again.status, again.partner, again.prescriber_id, again.requested_mg, again.requested_at) == (
            ApprovalStatus.PENDING, "a", PRESCRIBER, 100.0, start)
        assert [type(e).__name__ for e in course.pending_events][-2:] == ["SessionRescheduled", "DoseApprovalRequested"]
        course.reschedule_session(session_id="m1", starts_at=later + timedelta(days=1),
                                  ends_at=later + timedelta(days=1) + THREE_H, by=BY, now=start,
                                  new_approval_id=lambda: next(ids))
        assert "unused" not in course.approvals  # one request stands: not asked twice

    def test_approvals_are_for_medicine_sessions(self):
        course, start = medicine_booked(approved=False)
        book(course, "int-x", Kind.INTEGRATION, start + timedelta(hours=20))
        err = refused(course, RulesBrokenError, lambda: request(course, "int-x", "a"))
        assert err.violations == (V("I6", "dose approvals are for medicine sessions"),)

    def test_malformed_requests_and_decisions(self):
        course, _ = medicine_booked()
        err = refused(course, InvalidCommandError, lambda: request(course, "m1", "c", aid="ap-m1-a", mg=0))
        assert err.problems == (
            "partner must be 'a' or 'b'", "requested_mg must be positive",
            "approval id ap-m1-a is already used in this course",
        )
        err = refused(
            course, UnknownApprovalError, lambda: decide(course, "nope", now=course.sessions["m1"].starts_at)
        )
        assert str(err) == "no dose approval nope in this course"

    def test_approved_mg_above_the_request_is_invalid(self):
        course, _ = medicine_booked(approved=False)
        request(course, "m1", "a", mg=100.0)
        err = refused(course, InvalidCommandError, lambda: decide(course, "ap-m1-a", approved_mg=120.0))
        assert err.problems == ("approved_mg must be in (0, 100.0]",)


# --------------------------------------------------------------------------- I7


class TestI7Models:
    def test_taking_turns_doses_the_first_partner_first(self):
        course, _ = medicine_booked(approved=False)
        err = refused(course, RulesBrokenError, lambda: request(course, "m1", "b"))
        assert err.violations == (V("I7", "in the taking_turns model, partner a is dosed at this session"),)
        record = medicine_record(course, "m1", ["b"])
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (
            V("I7", "the taking_turns model doses exactly one partner, in turn: expected ['a'], got ['b']"),
            V("I6", "partner a has no dose approval for session m1"),  # the partner left undosed has none either
            V("I6", "partner b has no dose approval for session m1"),
        )

    def test_taking_turns_refuses_both_partners(self):
        course, _ = medicine_booked()
        record = medicine_record(course, "m1", ["a", "b"])
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (
            V("I7", "the taking_turns model doses exactly one partner, in turn: expected ['a'], got ['a', 'b']"),
            V("I6", "partner b has no dose approval for session m1"),
        )

    def test_a_dose_in_two_administrations_stays_within_the_approved_total(self):
        course, _ = medicine_booked()
        record = medicine_record(course, "m1", ["a"])  # 100 mg approved, 10 min after the start
        first = record["doses"][0]
        twice = [first, {**first, "at": first["at"] + timedelta(minutes=5)}]
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", {**record, "doses": twice}))
        assert err.violations == (V("I6", "partner a was given 200.0 mg in 2 administrations; 100.0 mg was approved"),)
        split = [{**first, "mg": 60}, {**first, "mg": 40, "at": first["at"] + timedelta(minutes=5)}]
        hold_medicine(course, "m1", {**record, "doses": split})
        held_ok(course, "m1")

    def test_discharge_counts_from_the_last_administration(self):
        course, _ = medicine_booked()
        record = medicine_record(course, "m1", ["a"])  # discharged 130 min after the first administration
        first = record["doses"][0]
        late = first["at"] + timedelta(minutes=20)
        split = [{**first, "mg": 60}, {**first, "mg": 40, "at": late}]
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", {**record, "doses": split}))
        assert err.violations == (V("I8", f"discharge is allowed 120 min after the last dose of partner a, at "
                                          f"{(late + timedelta(minutes=120)).isoformat()} at the earliest"),)

    def test_first_dosed_b_starts_with_b(self):
        course = open_course(first_dosed="b")
        end = prepare(course, assess(course))
        start = end + timedelta(days=2)
        book(course, "m1", Kind.MEDICINE, start, length=THREE_H)
        err = refused(course, RulesBrokenError, lambda: request(course, "m1", "a"))
        assert err.violations == (V("I7", "in the taking_turns model, partner b is dosed at this session"),)
        approve(course, "m1", "b")
        hold_medicine(course, "m1", medicine_record(course, "m1", ["b"]))
        held_ok(course, "m1")

    def test_taking_turns_alternates_across_two_medicine_sessions(self):
        course, start = medicine_booked()
        hold_medicine(course, "m1", medicine_record(course, "m1", ["a"]))
        integrate(course, "m1")
        book(course, "m2", Kind.MEDICINE, start + timedelta(days=7), length=THREE_H)
        err = refused(course, RulesBrokenError, lambda: request(course, "m2", "a"))
        assert err.violations == (V("I7", "in the taking_turns model, partner b is dosed at this session"),)
        approve(course, "m2", "b")
        hold_medicine(course, "m2", medicine_record(course, "m2", ["b"]))
        held_ok(course, "m2")
        assert [course.dosed_partners(s) for s in course.dosed_sessions()] == [{"a"}, {"b"}]

    def test_request_time_check_counts_earlier_booked_medicine_sessions(self):
        course, start = medicine_booked(approved=False)
        book(course, "m2", Kind.MEDICINE, start + timedelta(days=7), length=THREE_H)
        err = refused(course, RulesBrokenError, lambda: request(course, "m2", "a"))
        assert err.violations == (V("I7", "in the taking_turns model, partner b is dosed at this session"),)
        request(course, "m2", "b")
        request(course, "m1", "a")

    def test_hold_time_check_catches_an_approval_given_under_an_earlier_plan(self):
        # m2 was booked and approved for a while it was the first medicine session; m1 was added before it.
        course, end = prepared_course()
        m1 = end + timedelta(days=2)
        m2 = m1 + timedelta(days=7)
        book(course, "m2", Kind.MEDICINE, m2, length=THREE_H)
        approve(course, "m2", "a")
        book(course, "m1", Kind.MEDICINE, m1, length=THREE_H)
        approve(course, "m1", "a")
        hold_medicine(course, "m1", medicine_record(course, "m1", ["a"]))
        integrate(course, "m1")
        record = medicine_record(course, "m2", ["a"])
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m2", record))
        assert err.violations == (
            V("I7", "the taking_turns model doses exactly one partner, in turn: expected ['b'], got ['a']"),
            V("I6", "partner b has no dose approval for session m2"),
        )

    def test_together_dosing_one_partner_lists_the_missing_dose_and_the_missing_approval(self):
        course, start = medicine_booked(Model.TOGETHER, partners=("a",))
        record = medicine_record(course, "m1", ["a"])
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (
            V("I7", "the together model doses both partners: expected ['a', 'b'], got ['a']"),
            V("I6", "partner b has no dose approval for session m1"),
        )

    def test_together_doses_both(self):
        course, start = medicine_booked(Model.TOGETHER, partners=("a", "b"))
        record = medicine_record(course, "m1", ["a"])
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (
            V("I7", "the together model doses both partners: expected ['a', 'b'], got ['a']"),
        )
        hold_medicine(course, "m1", medicine_record(course, "m1", ["a", "b"]))
        assert course.dosed_partners(course.sessions["m1"]) == {"a", "b"}
        integrate(course, "m1")
        book(course, "m2", Kind.MEDICINE, start + timedelta(days=7), length=THREE_H)
        approve(course, "m2", "a")
        approve(course, "m2", "b")
        hold_medicine(course, "m2", medicine_record(course, "m2", ["a", "b"]))
        held_ok(course, "m2")

    def test_a_held_medicine_session_records_doses(self):
        course, _ = medicine_booked()
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", {}))
        assert err.violations == (V("I7", "a held medicine session records the doses given"),)
