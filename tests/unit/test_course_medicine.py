"""Medicine sessions: I3, I4 (missed windows), I8, I9 and refusals listing every rule.

Dose approvals (I6) and the two models (I7) are in test_course_approvals.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from builders import (
    BY,
    PRESCRIBER,
    approve,
    assess,
    book,
    dose,
    event_types,
    hold,
    hold_medicine,
    integrate,
    medicine_booked,
    medicine_record,
    open_course,
    refused,
    vitals,
    without_vitals,
)

from scheduler.domain.errors import InvalidCommandError, NotAddressedError, RulesBrokenError
from scheduler.domain.errors import Violation as V
from scheduler.domain.model import Kind, SessionStatus
from scheduler.domain.protocol import Model, Protocol, VitalsLimit

THREE_H = timedelta(hours=3)
DOSE_AFTER = timedelta(minutes=10)  # medicine_record doses 10 min after the start


def held_ok(course, sid):
    assert course.sessions[sid].status is SessionStatus.HELD
    assert course.has_milestone("dosed", sid)


# --------------------------------------------------------------------------- I3


class TestI3IntegrationBeforeNextDose:
    def test_next_dose_refused_until_the_minimum_integration_is_held(self):
        course, start = medicine_booked()
        hold_medicine(course, "m1", medicine_record(course, "m1", ["a"]))
        last = integrate(course, "m1", count=3)
        m2 = start + timedelta(days=8)
        book(course, "m2", Kind.MEDICINE, m2, length=THREE_H)
        approve(course, "m2", "b")
        record = medicine_record(course, "m2", ["b"])
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m2", record))
        assert err.violations == (
            V("I3", "medicine session m1 needs 4 integration sessions held before the next medicine session; 3 held"),
        )
        book(course, "int-4th", Kind.INTEGRATION, last + timedelta(hours=12))
        hold(course, "int-4th")
        hold_medicine(course, "m2", record)
        held_ok(course, "m2")

    def test_configured_minimum(self):
        course, start = medicine_booked(protocol=Protocol(min_integration_sessions=1))
        hold_medicine(course, "m1", medicine_record(course, "m1", ["a"]))
        integrate(course, "m1")
        assert course.has_milestone("integrated", "m1")
        dose(course, "m2", start + timedelta(days=7), ["b"])
        held_ok(course, "m2")


# ------------------------------------------------------------ I4 missed windows


class TestI4MissedWindow:
    def dosed(self):
        course, start = medicine_booked()
        hold_medicine(course, "m1", medicine_record(course, "m1", ["a"]))
        finished = course.sessions["m1"].finished_at
        return course, start, finished, finished + timedelta(hours=48)

    def test_window_missed_only_after_the_deadline_and_recorded_once(self):
        course, _, _, deadline = self.dosed()
        before = len(course.pending_events)
        assert course.record_missed_integration_windows(now=deadline, by=BY) == []
        assert len(course.pending_events) == before
        assert course.record_missed_integration_windows(now=deadline + timedelta(seconds=1), by="system") == ["m1"]
        event = course.pending_events[-1]
        assert type(event).__name__ == "IntegrationWindowMissed"
        assert (event.session_id, event.deadline, event.by) == ("m1", deadline, "system")
        assert course.record_missed_integration_windows(now=deadline + timedelta(days=3), by=BY) == []
        assert event_types(course).count("IntegrationWindowMissed") == 1

    def test_integration_held_in_the_window_is_not_a_miss(self):
        course, _, finished, deadline = self.dosed()
        book(course, "int-0", Kind.INTEGRATION, deadline - timedelta(hours=1))
        hold(course, "int-0")
        assert course.record_missed_integration_windows(now=deadline + timedelta(days=5), by=BY) == []
        assert course.missed_windows == {}

    def test_booked_but_not_held_integration_is_a_miss(self):
        course, _, finished, deadline = self.dosed()
        book(course, "int-0", Kind.INTEGRATION, finished + timedelta(hours=20))
        assert course.record_missed_integration_windows(now=deadline + timedelta(minutes=1), by=BY) == ["m1"]

    def missed_then_integrated(self):
        """m1's first integration session is missed; four later ones are held; m2 booked and approved."""
        course, start, finished, deadline = self.dosed()
        book(course, "int-0", Kind.INTEGRATION, finished + timedelta(hours=20))
        for i in range(1, 5):
            book(course, f"int-{i}", Kind.INTEGRATION, finished + timedelta(days=2 + i))
        course.record_missed(session_id="int-0", reason="no-show", now=finished + timedelta(hours=22), by=BY)
        for i in range(1, 5):
            hold(course, f"int-{i}")
        assert course.has_milestone("integrated", "m1")
        m2 = start + timedelta(days=8)
        book(course, "m2", Kind.MEDICINE, m2, length=THREE_H)
        approve(course, "m2", "b")
        return course, m2

    BLOCKED = V("I4", "the integration window after medicine session m1 was missed; a clinician must acknowledge "
                      "it before the next dose")

    def test_next_dose_blocked_until_acknowledged(self):
        course, m2 = self.missed_then_integrated()
        assert course.record_missed_integration_windows(now=m2 - timedelta(days=1), by=BY) == ["m1"]
        record = medicine_record(course, "m2", ["b"])
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m2", record))
        assert err.violations == (self.BLOCKED,)
        course.acknowledge_missed_window(session_id="m1", reason="couple was ill", by="clinician:t-1")
        event = course.pending_events[-1]
        assert (type(event).__name__, event.session_id, event.reason) == (
            "MissedWindowAcknowledged", "m1", "couple was ill"
        )
        hold_medicine(course, "m2", record)
        held_ok(course, "m2")

    def test_next_dose_blocked_even_if_the_miss_was_never_recorded(self):
        course, m2 = self.missed_then_integrated()
        record = medicine_record(course, "m2", ["b"])
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m2", record))
        assert err.violations == (self.BLOCKED,)

    def test_acknowledging_needs_a_recorded_unacknowledged_miss_and_a_reason(self):
        course, _, _, deadline = self.dosed()
        err = refused(course, RulesBrokenError,
                      lambda: course.acknowledge_missed_window(session_id="m1", reason="x", by=BY))
        assert err.violations == (V("I4", "no missed integration window is recorded for session m1"),)
        course.record_missed_integration_windows(now=deadline + timedelta(hours=1), by=BY)
        err = refused(course, InvalidCommandError,
                      lambda: course.acknowledge_missed_window(session_id="m1", reason=" ", by=BY))
        assert err.problems == ("an acknowledgement gives a reason",)
        course.acknowledge_missed_window(session_id="m1", reason="ill", by=BY)
        err = refused(course, RulesBrokenError,
                      lambda: course.acknowledge_missed_window(session_id="m1", reason="again", by=BY))
        assert err.violations == (V("I4", "the missed window of session m1 is already acknowledged"),)

    def test_a_window_closed_by_the_courses_own_times_is_acknowledged_even_if_no_watcher_recorded_it(self):
        course, m2 = self.missed_then_integrated()
        record = medicine_record(course, "m2", ["b"])
        refused(course, RulesBrokenError, lambda: hold_medicine(course, "m2", record))  # blocked, unrecorded
        course.acknowledge_missed_window(session_id="m1", reason="couple was ill", by=BY, clinician_id="t-1",
                                         now=m2 - timedelta(days=1))
        missed, acknowledged = course.pending_events[-2:]
        assert (type(missed).__name__, missed.session_id, missed.deadline) == (
            "IntegrationWindowMissed", "m1", course.window_deadline(course.sessions["m1"]))
        assert (type(acknowledged).__name__, acknowledged.clinician_id) == ("MissedWindowAcknowledged", "t-1")
        assert course.missed_windows["m1"].clinician_id == "t-1"
        hold_medicine(course, "m2", record)
        held_ok(course, "m2")

    def test_a_window_still_open_or_kept_cannot_be_acknowledged(self):
        course, _, finished, deadline = self.dosed()
        err = refused(course, RulesBrokenError, lambda: course.acknowledge_missed_window(
            session_id="m1", reason="x", by=BY, clinician_id="t-1", now=deadline))  # not closed yet
        assert err.violations == (V("I4", "no missed integration window is recorded for session m1"),)
        book(course, "int-0", Kind.INTEGRATION, finished + timedelta(hours=20))
        hold(course, "int-0")
        refused(course, RulesBrokenError, lambda: course.acknowledge_missed_window(
            session_id="m1", reason="x", by=BY, clinician_id="t-1", now=deadline + timedelta(days=1)))


# --------------------------------------------------------------------------- I8


class TestI8Monitoring:
    def test_missing_pre_dose_vitals(self):
        course, _ = medicine_booked()
        record = without_vitals(medicine_record(course, "m1", ["a"]), "a", "pre")
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I8", "partner a has no vitals recorded before the dose"),)

    def test_pre_dose_vitals_taken_after_the_dose_do_not_count(self):
        course, start = medicine_booked()
        record = without_vitals(medicine_record(course, "m1", ["a"]), "a", "pre")
        record["vitals"].append(vitals("a", "pre", start + DOSE_AFTER + timedelta(minutes=1)))
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I8", "partner a has no vitals recorded before the dose"),)

    @pytest.mark.parametrize("after", [None, timedelta(minutes=20), timedelta(minutes=70)])
    def test_missing_post_dose_vitals(self, after):
        course, start = medicine_booked()
        record = without_vitals(medicine_record(course, "m1", ["a"]), "a", "post")
        if after is not None:  # a reading far from "about 40 min after" does not count
            record["vitals"].append(vitals("a", "post", start + DOSE_AFTER + after))
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I8", "partner a has no vitals recorded about 40 min after the dose"),)

    def test_missing_discharge_vitals(self):
        course, _ = medicine_booked()
        record = without_vitals(medicine_record(course, "m1", ["a"]), "a", "discharge")
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I8", "partner a has no vitals recorded at discharge"),)

    def test_missing_discharge_time(self):
        course, _ = medicine_booked()
        record = {**medicine_record(course, "m1", ["a"]), "discharged_at": None}
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I8", "a held medicine session records the discharge time"),)

    def test_discharge_too_early(self):
        course, start = medicine_booked()
        record = medicine_record(course, "m1", ["a"], monitoring=timedelta(minutes=100))
        earliest = start + DOSE_AFTER + timedelta(minutes=120)
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (
            V("I8", f"discharge is allowed 120 min after the last dose of partner a, at {earliest.isoformat()} "
                    "at the earliest"),
        )

    def test_discharge_at_exactly_the_minimum_is_accepted(self):
        course, _ = medicine_booked()
        hold_medicine(course, "m1", medicine_record(course, "m1", ["a"], monitoring=timedelta(minutes=120)))
        held_ok(course, "m1")

    def test_configured_monitoring_time(self):
        course, start = medicine_booked(protocol=Protocol(min_monitoring_minutes=180))
        record = medicine_record(course, "m1", ["a"])  # 130 min
        earliest = start + DOSE_AFTER + timedelta(minutes=180)
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (
            V("I8", f"discharge is allowed 180 min after the last dose of partner a, at {earliest.isoformat()} "
                    "at the earliest"),
        )
        hold_medicine(course, "m1", medicine_record(course, "m1", ["a"], monitoring=timedelta(minutes=180)))
        held_ok(course, "m1")

    def test_discharge_vitals_not_acceptable(self):
        course, _ = medicine_booked()
        record = medicine_record(course, "m1", ["a"])
        discharge = [v for v in record["vitals"] if v["stage"] == "discharge"][0]
        discharge["acceptable"] = False
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I8", "partner a's discharge vitals are not marked acceptable"),)

    def test_discharge_vitals_judged_by_the_latest_reading_not_list_order(self):
        # BUG (e293bb5): the check takes the last discharge reading in list order, not the latest in time.
        course, _ = medicine_booked()
        base = medicine_record(course, "m1", ["a"])
        discharged = base["discharged_at"]
        kept = without_vitals(base, "a", "discharge")["vitals"]
        latest_bad = vitals("a", "discharge", discharged - timedelta(minutes=1), acceptable=False)
        earlier_ok = vitals("a", "discharge", discharged - timedelta(minutes=30), acceptable=True)
        record = {**base, "vitals": kept + [latest_bad, earlier_ok]}
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I8", "partner a's discharge vitals are not marked acceptable"),)

    def test_together_checks_each_partner(self):
        course, start = medicine_booked(Model.TOGETHER, partners=("a", "b"))
        record = without_vitals(medicine_record(course, "m1", ["a", "b"]), "b", "post")
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I8", "partner b has no vitals recorded about 40 min after the dose"),)


# --------------------------------------------------------------------------- I9


def with_pre(record, partner, **reading):
    record = without_vitals(record, partner, "pre")
    dose_at = next(d["at"] for d in record["doses"] if d["partner"] == partner)
    record["vitals"].append(vitals(partner, "pre", dose_at - DOSE_AFTER, **reading))
    return record


LIMIT = Protocol(vitals_limit=VitalsLimit(systolic=140, diastolic=90))
OVER = V("I9", "partner a's pre-dose vitals exceed the clinic limit (140/90 mmHg) and the prescriber gave no override")


class TestI9PreDoseVitals:
    def test_pre_dose_vitals_not_acceptable(self):
        course, _ = medicine_booked()
        record = with_pre(medicine_record(course, "m1", ["a"]), "a", acceptable=False)
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I9", "partner a's pre-dose vitals are not marked acceptable"),)

    def test_the_latest_pre_dose_reading_counts(self):
        course, start = medicine_booked()
        record = medicine_record(course, "m1", ["a"])
        record["vitals"].append(vitals("a", "pre", start - timedelta(minutes=10), acceptable=False))
        hold_medicine(course, "m1", record)
        held_ok(course, "m1")

    def test_no_numeric_limit_by_default(self):
        course, _ = medicine_booked()
        hold_medicine(course, "m1", with_pre(medicine_record(course, "m1", ["a"]), "a", systolic=180, diastolic=110))
        held_ok(course, "m1")

    @pytest.mark.parametrize("systolic,diastolic", [(141, 80), (120, 91), (150, 100)])
    def test_above_the_clinic_limit_is_refused(self, systolic, diastolic):
        course, _ = medicine_booked(protocol=LIMIT)
        record = with_pre(medicine_record(course, "m1", ["a"]), "a", systolic=systolic, diastolic=diastolic)
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (OVER,)

    def test_at_the_clinic_limit_is_accepted(self):
        course, _ = medicine_booked(protocol=LIMIT)
        hold_medicine(course, "m1", with_pre(medicine_record(course, "m1", ["a"]), "a", systolic=140, diastolic=90))
        held_ok(course, "m1")

    def test_heart_rate_limit(self):
        limit = VitalsLimit(systolic=140, diastolic=90, heart_rate=65)
        course, _ = medicine_booked(protocol=Protocol(vitals_limit=limit))
        record = medicine_record(course, "m1", ["a"])  # heart rate 70
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I9", "partner a's pre-dose vitals exceed the clinic limit (140/90 mmHg, 65 bpm) "
                                          "and the prescriber gave no override"),)

    def override(self, course, start, now=None, reading_at=None, **ceiling):
        values = {"systolic": 160, "diastolic": 100, **ceiling}
        course.override_vitals_limit(approval_id="ap-m1-a", prescriber_id=PRESCRIBER,
                                     reading_at=reading_at or start, reason="white-coat hypertension",
                                     now=now or start + timedelta(minutes=5), by=f"prescriber:{PRESCRIBER}",
                                     **values)

    def test_the_prescriber_overrides_that_reading_on_the_day_up_to_a_ceiling(self):
        course, start = medicine_booked(protocol=LIMIT)
        self.override(course, start)
        (given,) = course.approvals["ap-m1-a"].vitals_overrides
        assert (given.reading_at, given.systolic, given.diastolic, given.reason) == (
            start, 160, 100, "white-coat hypertension")
        hold_medicine(course, "m1", with_pre(medicine_record(course, "m1", ["a"]), "a", systolic=150, diastolic=95))
        held_ok(course, "m1")

    def test_above_the_ceiling_is_refused_naming_it(self):
        course, start = medicine_booked(protocol=LIMIT)
        self.override(course, start, systolic=145, diastolic=92)
        record = with_pre(medicine_record(course, "m1", ["a"]), "a", systolic=150, diastolic=91)
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I9", "partner a's pre-dose vitals exceed the ceiling the prescriber set for "
                                          "that reading (145/92 mmHg)"),)

    def test_an_override_of_another_reading_is_no_override(self):
        course, start = medicine_booked(protocol=LIMIT)
        self.override(course, start, reading_at=start - timedelta(minutes=5))
        record = with_pre(medicine_record(course, "m1", ["a"]), "a", systolic=150, diastolic=95)
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (OVER,)

    def test_only_on_the_day_by_the_prescriber_of_an_approved_dose_with_a_reason(self):
        course, start = medicine_booked(protocol=LIMIT)
        end = course.sessions["m1"].ends_at
        err = refused(course, RulesBrokenError, lambda: self.override(course, start, now=end + timedelta(hours=1)))
        assert err.violations == (V("I9", f"the override comes after session m1 ended ({end.isoformat()}): it is "
                                          "given on the day"),)
        err = refused(course, RulesBrokenError, lambda: self.override(
            course, start, reading_at=start - timedelta(days=2), now=start))
        assert err.violations == (V("I9", "no medicine session still to be recorded under dose approval ap-m1-a "
                                          f"took place at {(start - timedelta(days=2)).isoformat()}"),)
        refused(course, NotAddressedError, lambda: course.override_vitals_limit(
            approval_id="ap-m1-a", prescriber_id="someone-else", reading_at=start, systolic=160, diastolic=100,
            reason="x", now=start + timedelta(minutes=5), by="prescriber:someone-else"))
        err = refused(course, InvalidCommandError, lambda: course.override_vitals_limit(
            approval_id="ap-m1-a", prescriber_id=PRESCRIBER, reading_at=start + timedelta(minutes=10), systolic=160,
            diastolic=100, reason=" ", now=start + timedelta(minutes=5), by=BY))
        assert err.problems == ("an override gives the prescriber's reason", "a reading is overridden once it was taken")

    def test_without_a_numeric_limit_there_is_nothing_to_override(self):
        course, start = medicine_booked()
        err = refused(course, RulesBrokenError, lambda: self.override(course, start))
        assert err.violations == (V("I9", "the course has no numeric vitals limit to override"),)

    def test_an_override_does_not_replace_the_clinicians_judgement(self):
        course, start = medicine_booked(protocol=LIMIT)
        self.override(course, start)
        record = with_pre(medicine_record(course, "m1", ["a"]), "a", systolic=150, acceptable=False)
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I9", "partner a's pre-dose vitals are not marked acceptable"),)

    def test_a_blanket_override_decided_before_per_reading_ones_still_holds(self):
        course, start = medicine_booked(protocol=LIMIT, approved=False)
        day_before = start - timedelta(days=1)
        course.request_dose_approval(approval_id="ap-m1-a", session_id="m1", partner="a", prescriber_id=PRESCRIBER,
                                     requested_mg=100.0, prescriber_authorised=True, now=day_before, by=BY)
        course.trigger_event(type(course).DoseApprovalDecided, approval_id="ap-m1-a", decision="approved",
                             approved_mg=100.0, decided_at=day_before, expires_at=day_before + timedelta(days=14),
                             reason="", vitals_override_reason="reviewed", by=f"prescriber:{PRESCRIBER}")
        hold_medicine(course, "m1", with_pre(medicine_record(course, "m1", ["a"]), "a", systolic=150, diastolic=95))
        held_ok(course, "m1")

    def test_not_acceptable_and_over_the_limit_lists_both(self):
        course, _ = medicine_booked(protocol=LIMIT)
        record = with_pre(medicine_record(course, "m1", ["a"]), "a", systolic=150, acceptable=False)
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I9", "partner a's pre-dose vitals are not marked acceptable"), OVER)


# --------------------------------------------------------------- several rules


class TestEveryBrokenRuleIsListed:
    def test_no_approval_no_vitals_and_early_discharge(self):
        course, start = medicine_booked(approved=False)
        dosed = start + DOSE_AFTER
        record = {
            "doses": [{"partner": "a", "mg": 100.0, "at": dosed}],
            "vitals": [],
            "discharged_at": dosed + timedelta(minutes=30),
        }
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (
            V("I6", "partner a has no dose approval for session m1"),
            V("I8", "partner a has no vitals recorded before the dose"),
            V("I8", "partner a has no vitals recorded about 40 min after the dose"),
            V("I8", f"discharge is allowed 120 min after the last dose of partner a, at "
                    f"{(dosed + timedelta(minutes=120)).isoformat()} at the earliest"),
            V("I8", "partner a has no vitals recorded at discharge"),
        )
        assert course.sessions["m1"].status is SessionStatus.BOOKED

    def test_second_dose_breaking_i3_i4_i7_i6_i8_and_i9(self):
        course, start = medicine_booked()
        hold_medicine(course, "m1", medicine_record(course, "m1", ["a"]))
        m2 = start + timedelta(days=8)
        book(course, "m2", Kind.MEDICINE, m2, length=THREE_H)
        dosed = m2 + DOSE_AFTER
        record = {
            "doses": [{"partner": "a", "mg": 100.0, "at": dosed}],
            "vitals": [vitals("a", "pre", m2, acceptable=False)],
            "discharged_at": dosed + timedelta(minutes=60),
        }
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m2", record))
        assert err.violations == (
            V("I3", "medicine session m1 needs 4 integration sessions held before the next medicine session; 0 held"),
            V("I4", "the integration window after medicine session m1 was missed; a clinician must acknowledge "
                    "it before the next dose"),
            V("I7", "the taking_turns model doses exactly one partner, in turn: expected ['b'], got ['a']"),
            V("I6", "partner b has no dose approval for session m2"),
            V("I6", "partner a has no dose approval for session m2"),
            V("I8", "partner a has no vitals recorded about 40 min after the dose"),
            V("I8", f"discharge is allowed 120 min after the last dose of partner a, at "
                    f"{(dosed + timedelta(minutes=120)).isoformat()} at the earliest"),
            V("I8", "partner a has no vitals recorded at discharge"),
            V("I9", "partner a's pre-dose vitals are not marked acceptable"),
        )

    def test_a_session_no_longer_booked_is_refused_for_that_alone(self):
        course, _ = medicine_booked()
        record = medicine_record(course, "m1", ["a"])
        hold_medicine(course, "m1", record)
        broken = without_vitals({**record, "doses": []}, "a", "pre")  # wrong in several ways: beside the point
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", broken))
        assert err.violations == (V("session-state", "session m1 is held, not booked"),)

    def test_medicine_before_prepared_with_bad_records_lists_i1_too(self):
        course = open_course(Model.TOGETHER)
        end = assess(course)
        start = end + timedelta(days=2)
        book(course, "m1", Kind.MEDICINE, start, length=THREE_H)
        approve(course, "m1", "a")
        record = medicine_record(course, "m1", ["a", "b"])
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (
            V("I1", "a medicine session cannot be held before the course is Prepared"),
            V("I6", "partner b has no dose approval for session m1"),
        )


class TestMalformedMedicineRecords:
    def test_shape_problems_are_invalid(self):
        course, start = medicine_booked()
        record = {
            "doses": [{"partner": "c", "mg": 0, "at": start}],
            "vitals": [{"partner": "a", "stage": "later", "at": start}],
            "adverse_events": [{"partner": "z", "at": start}],
        }
        err = refused(course, InvalidCommandError, lambda: hold_medicine(course, "m1", record))
        assert err.problems == (
            "each adverse event names partner 'a' or 'b'",
            "each dose names partner 'a' or 'b' and a positive mg",
            "each vitals reading names partner 'a' or 'b' and stage pre, post or discharge",
        )

    def test_doses_only_for_medicine_sessions(self):
        course, start = medicine_booked()
        book(course, "prep-x", Kind.PREPARATION, start - timedelta(days=1))
        err = refused(
            course, InvalidCommandError,
            lambda: course.record_held(session_id="prep-x", now=start, by=BY,
                                       doses=[{"partner": "a", "mg": 1, "at": start}]),
        )
        assert err.problems == ("doses, vitals, adverse events, discharge and not dosed belong to medicine sessions",)


# ------------------------------------------------ I8: what a medicine session records took place within it


def shifted(record, partner, stage, at):
    """A copy of a medicine record with the partner's reading of one stage taken at `at`."""
    return {**record, "vitals": [{**v, "at": at} if (v["partner"], v["stage"]) == (partner, stage) else v
                                 for v in record["vitals"]]}


class TestRecordTimesBoundToTheSession:
    """Doses, readings and discharge lie within the session (start to recorded end, give or take the protocol's
    tolerance); the pre-dose reading is recent; the discharge reading comes after the post-dose one."""

    def test_a_dose_dated_before_its_session_is_refused(self):
        course, start = medicine_booked()
        record = medicine_record(course, "m1", ["a"])
        early = start - timedelta(days=10)
        record = {**record, "doses": [{**record["doses"][0], "at": early}]}
        record = shifted(record, "a", "pre", early - timedelta(minutes=5))
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        end = record["discharged_at"]
        span = f"session m1 took place from {start.isoformat()} to {end.isoformat()}"
        assert V("I8", f"partner a's dose at {early.isoformat()} lies outside the session: {span}") in err.violations
        assert V("I8", f"partner a's pre vitals at {(early - timedelta(minutes=5)).isoformat()} lies outside the "
                       f"session: {span}") in err.violations
        assert {v.rule for v in err.violations} <= {"I6", "I8"}

    def test_a_reading_within_the_tolerance_before_the_start_counts_one_beyond_it_does_not(self):
        course, start = medicine_booked()
        record = shifted(medicine_record(course, "m1", ["a"]), "a", "pre", start - timedelta(minutes=20))
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        end = record["discharged_at"]
        assert err.violations == (V(
            "I8", f"partner a's pre vitals at {(start - timedelta(minutes=20)).isoformat()} lies outside the session: "
                  f"session m1 took place from {start.isoformat()} to {end.isoformat()}"),)
        hold_medicine(course, "m1", shifted(record, "a", "pre", start - timedelta(minutes=15)))
        held_ok(course, "m1")

    def test_the_tolerance_is_a_protocol_setting(self):
        course, start = medicine_booked(protocol=Protocol(record_tolerance_minutes=30))
        hold_medicine(course, "m1", shifted(medicine_record(course, "m1", ["a"]), "a", "pre",
                                            start - timedelta(minutes=25)))
        held_ok(course, "m1")

    def test_the_pre_dose_reading_is_taken_at_most_the_protocol_time_before_the_dose(self):
        course, start = medicine_booked()
        record = medicine_record(course, "m1", ["a"])
        late_dose = start + timedelta(minutes=75)  # 75 min after the reading taken at the start
        record = {**record, "doses": [{**record["doses"][0], "at": late_dose}]}
        record = shifted(record, "a", "post", late_dose + timedelta(minutes=40))
        record = {**shifted(record, "a", "discharge", late_dose + timedelta(minutes=125)),
                  "discharged_at": late_dose + timedelta(minutes=130)}
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V(
            "I8", "partner a's last vitals before the dose were taken 75 min before it; the protocol wants them at "
                  "most 60 min before"),)
        hold_medicine(course, "m1", shifted(record, "a", "pre", late_dose - timedelta(minutes=5)))
        held_ok(course, "m1")

    def test_the_pre_dose_time_is_a_protocol_setting(self):
        course, start = medicine_booked(protocol=Protocol(pre_dose_vitals_minutes=90))
        record = medicine_record(course, "m1", ["a"])
        late_dose = start + timedelta(minutes=75)
        record = {**record, "doses": [{**record["doses"][0], "at": late_dose}]}
        record = shifted(record, "a", "post", late_dose + timedelta(minutes=40))
        record = {**shifted(record, "a", "discharge", late_dose + timedelta(minutes=125)),
                  "discharged_at": late_dose + timedelta(minutes=130)}
        hold_medicine(course, "m1", record)
        held_ok(course, "m1")

    def test_a_discharge_reading_before_the_post_dose_reading_is_not_the_discharge_reading(self):
        course, start = medicine_booked()
        record = shifted(medicine_record(course, "m1", ["a"]), "a", "discharge", start + DOSE_AFTER + timedelta(minutes=2))
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
        assert err.violations == (V("I8", "partner a has no vitals recorded at discharge"),)

    def test_the_recorded_end_bounds_the_record_and_starts_the_integration_window(self):
        course, start = medicine_booked()
        record = medicine_record(course, "m1", ["a"])
        discharged = record["discharged_at"]
        err = refused(course, RulesBrokenError, lambda: hold_medicine(
            course, "m1", {**record, "ended_at": discharged - timedelta(minutes=10)}))
        assert V("I8", f"the discharge ({discharged.isoformat()}) is after the session's recorded end "
                       f"({(discharged - timedelta(minutes=10)).isoformat()})") in err.violations
        ended = start + timedelta(hours=3, minutes=30)  # after the discharge and the booked end
        hold_medicine(course, "m1", {**record, "ended_at": ended})
        held_ok(course, "m1")
        assert course.sessions["m1"].finished_at == ended
        dosed = [e for e in course.collect_events() if type(e).__name__ == "Dosed"]
        assert dosed[0].integration_deadline == ended + timedelta(hours=48)

    def test_a_session_cannot_end_before_it_started(self):
        course, start = medicine_booked()
        record = {**medicine_record(course, "m1", ["a"]), "ended_at": start - timedelta(minutes=1)}
        refused(course, InvalidCommandError, lambda: hold_medicine(course, "m1", record))

    def test_a_session_that_ran_long_may_not_run_into_the_next_one(self):
        course = open_course()
        start = assess(course)
        book(course, "prep-a", Kind.PREPARATION, start + timedelta(hours=2), partners=("a",))
        book(course, "prep-b", Kind.PREPARATION, start + timedelta(hours=3, minutes=30), partners=("b", "a"))
        overrun = start + timedelta(hours=4)
        err = refused(course, RulesBrokenError, lambda: course.record_held(
            session_id="prep-a", now=start + timedelta(days=1), by=BY, ended_at=overrun))
        assert err.violations == (V("I10", f"the end at {overrun.isoformat()} runs into session prep-b"),)
        course.record_held(session_id="prep-a", now=start + timedelta(days=1), by=BY,
                           ended_at=start + timedelta(hours=3, minutes=20))
        assert course.sessions["prep-a"].finished_at == start + timedelta(hours=3, minutes=20)

    def test_an_adverse_event_may_come_to_light_after_the_session_never_before_it(self):
        course, start = medicine_booked()
        record = medicine_record(course, "m1", ["a"])
        before = {"partner": "a", "at": start - timedelta(hours=1), "kind": "nausea", "severity": "mild"}
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", {**record, "adverse_events": [before]}))
        end = record["discharged_at"]
        assert err.violations == (V(
            "I8", f"partner a's adverse event at {before['at'].isoformat()} is before the session: session m1 took "
                  f"place from {start.isoformat()} to {end.isoformat()}"),)
        after = {**before, "at": end + timedelta(minutes=30)}
        hold_medicine(course, "m1", {**record, "adverse_events": [after]}, now=end + timedelta(hours=1))
        held_ok(course, "m1")


class TestI5ByTheDosesGiven:
    def test_the_interval_counts_from_the_doses_actually_given(self):
        course, start = medicine_booked()
        hold_medicine(course, "m1", medicine_record(course, "m1", ["a"]))  # dosed 10 min after its start
        integrate(course, "m1")
        m2 = start + timedelta(days=7)  # booked exactly the protocol's 7 days later: fine
        book(course, "m2", Kind.MEDICINE, m2, length=THREE_H)
        approve(course, "m2", "b")
        record = medicine_record(course, "m2", ["b"])
        early = m2 - timedelta(minutes=5)  # within the session's tolerance, but 7 days less 15 min after m1's
        record = shifted({**record, "doses": [{**record["doses"][0], "at": early}]}, "b", "pre", early)
        record = shifted(record, "b", "post", early + timedelta(minutes=40))
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m2", record))
        assert err.violations == (V(
            "I5", f"medicine session m2 doses at {early.isoformat()}, 6 days after medicine session m1 did "
                  f"({(start + DOSE_AFTER).isoformat()}); the protocol wants 7"),)
        hold_medicine(course, "m2", medicine_record(course, "m2", ["b"]))
        held_ok(course, "m2")


class TestAdverseEventsOnTheirOwn:
    """An adverse event of a medicine session is reported on its own, during it or after the couple left."""

    def report(self, course, at, now, sid="m1", **extra):
        values = {"partner": "a", "kind": "dizziness", "severity": "moderate", "note": "called in the evening",
                  "follow_up": "nurse call tomorrow", "clinician_id": "t-1", **extra}
        course.report_adverse_event(session_id=sid, at=at, now=now, by=BY, **values)

    def test_after_the_couple_left_it_is_kept_with_its_reporter(self):
        course, start = medicine_booked()
        record = medicine_record(course, "m1", ["a"])
        hold_medicine(course, "m1", record)
        evening = record["discharged_at"] + timedelta(hours=6)
        self.report(course, evening, evening + timedelta(minutes=30))
        event = course.pending_events[-1]
        assert (type(event).__name__, event.session_id, event.severity, event.clinician_id) == (
            "AdverseEventReported", "m1", "moderate", "t-1")
        assert [(a["at"], a["kind"], a["follow_up"]) for a in course.adverse_events] == [
            (evening, "dizziness", "nurse call tomorrow")]

    def test_while_the_session_runs_it_needs_no_record_yet(self):
        course, start = medicine_booked()
        self.report(course, start + timedelta(minutes=40), start + timedelta(minutes=45))
        assert course.sessions["m1"].status is SessionStatus.BOOKED and len(course.adverse_events) == 1

    def test_never_dated_before_the_session_nor_reported_before_it_started(self):
        course, start = medicine_booked()
        err = refused(course, RulesBrokenError, lambda: self.report(course, start - timedelta(hours=1),
                                                                   start + timedelta(hours=1)))
        end = course.sessions["m1"].ends_at
        assert err.violations == (V(
            "I8", f"partner a's adverse event at {(start - timedelta(hours=1)).isoformat()} is before the session: "
                  f"session m1 took place from {start.isoformat()} to {end.isoformat()}"),)
        err = refused(course, RulesBrokenError, lambda: self.report(course, start - timedelta(days=1),
                                                                   start - timedelta(hours=2)))
        assert V("session-not-started", "session m1 has not started yet") in err.violations
        refused(course, InvalidCommandError, lambda: self.report(course, start + timedelta(hours=2),
                                                                 start + timedelta(hours=1)))  # in the future

    def test_only_of_a_medicine_session_that_took_place(self):
        course, start = medicine_booked()
        book(course, "int-x", Kind.INTEGRATION, start + timedelta(hours=20))
        err = refused(course, InvalidCommandError, lambda: self.report(
            course, start + timedelta(hours=21), start + timedelta(hours=22), sid="int-x"))
        assert err.problems == ("adverse events belong to medicine sessions",)
        course.cancel_session(session_id="m1", reason="postponed", by=BY)
        err = refused(course, RulesBrokenError, lambda: self.report(course, start + timedelta(minutes=30),
                                                                   start + timedelta(hours=1)))
        assert err.violations == (V("session-state", "session m1 is cancelled: it did not take place"),)


class TestExtendedMonitoring:
    """A medicine session recorded while monitoring continues; its discharge later; the course waits for it."""

    def awaiting(self):
        course, start = medicine_booked()
        record = medicine_record(course, "m1", ["a"])
        readings = [v for v in record["vitals"] if v["stage"] != "discharge"]
        adverse = [{"partner": "a", "at": start + timedelta(minutes=50), "kind": "hypertension", "severity": "moderate"}]
        hold_medicine(course, "m1", {"doses": record["doses"], "vitals": readings, "adverse_events": adverse,
                                     "monitoring_continues": True}, now=start + timedelta(hours=2, minutes=30))
        return course, start, record

    def test_the_record_is_kept_and_the_course_waits_for_the_discharge(self):
        course, start, _ = self.awaiting()
        session = course.sessions["m1"]
        assert session.status is SessionStatus.HELD and session.awaiting_discharge
        assert session.held["adverse_events"][0]["kind"] == "hypertension"  # kept, though not yet discharged
        assert not course.has_milestone("dosed", "m1")
        book(course, "int-0", Kind.INTEGRATION, start + timedelta(hours=20))
        err = refused(course, RulesBrokenError, lambda: hold(course, "int-0"))
        assert err.violations == (V("I1", "an integration session cannot be held before its medicine session is "
                                          "Dosed"),)
        assert V("I8", "medicine session m1 awaits its discharge") in course.completion_violations()

    def test_the_discharge_is_judged_when_it_is_recorded_and_the_session_is_then_dosed(self):
        course, start, record = self.awaiting()
        dosed_at = record["doses"][0]["at"]
        early = dosed_at + timedelta(minutes=100)
        err = refused(course, RulesBrokenError, lambda: course.record_discharge(
            session_id="m1", discharged_at=early, vitals=[vitals("a", "discharge", early - timedelta(minutes=5))],
            now=early + timedelta(minutes=5), by=BY, clinician_id="t-1"))
        assert err.violations == (V("I8", f"discharge is allowed 120 min after the last dose of partner a, at "
                                          f"{(dosed_at + timedelta(minutes=120)).isoformat()} at the earliest"),)
        late = start + timedelta(hours=3, minutes=30)  # monitoring ran past the booked end
        err = refused(course, RulesBrokenError, lambda: course.record_discharge(
            session_id="m1", discharged_at=late, vitals=[], now=late + timedelta(minutes=5), by=BY))
        assert err.violations == (V("I8", "partner a has no vitals recorded at discharge"),)
        course.record_discharge(session_id="m1", discharged_at=late,
                                vitals=[vitals("a", "discharge", late - timedelta(minutes=5))],
                                now=late + timedelta(minutes=5), by=BY, clinician_id="t-1")
        assert not course.sessions["m1"].awaiting_discharge
        assert course.sessions["m1"].finished_at == late
        assert course.window_deadline(course.sessions["m1"]) == late + timedelta(hours=48)
        held_ok(course, "m1")
        err = refused(course, RulesBrokenError, lambda: course.record_discharge(
            session_id="m1", discharged_at=late, vitals=[], now=late + timedelta(hours=1), by=BY))
        assert err.violations == (V("session-state", "session m1 is not awaiting its discharge"),)

    def test_monitoring_continues_only_without_a_discharge(self):
        course, start = medicine_booked()
        record = {**medicine_record(course, "m1", ["a"]), "monitoring_continues": True}
        err = refused(course, InvalidCommandError, lambda: hold_medicine(course, "m1", record))
        assert err.problems == ("while monitoring continues, the discharge and the end are recorded later",)


class TestNotDosed:
    """A medicine session that took place without a dose: its reason and pre-dose vitals kept, not Dosed, not
    counted against the protocol's medicine sessions, and its approved doses usable until they expire."""

    def not_dosed(self, protocol=None):
        course, start = medicine_booked(protocol=protocol)
        high = {**vitals("a", "pre", start + timedelta(minutes=5)), "systolic": 172, "acceptable": False}
        course.record_held(session_id="m1", now=start + timedelta(hours=1), vitals=[high],
                           not_dosed="blood pressure too high to dose", ended_at=start + timedelta(minutes=45),
                           by=BY, clinician_id="t-1")
        return course, start

    def test_kept_with_its_reason_and_vitals_and_not_dosed(self):
        course, start = self.not_dosed()
        session = course.sessions["m1"]
        assert session.status is SessionStatus.HELD and session.not_dosed
        assert session.held["not_dosed"] == "blood pressure too high to dose"
        assert [v["systolic"] for v in session.held["vitals"]] == [172]
        assert session.finished_at == start + timedelta(minutes=45)
        assert "Dosed" not in event_types(course) and course.dosed_sessions() == []
        assert course.to_be_dosed(session) == set()

    def test_the_next_medicine_session_uses_the_approval_and_keeps_the_turn(self):
        course, start = self.not_dosed()
        m2 = start + timedelta(days=2)  # no interval to keep from a session without a dose (I5)
        book(course, "m2", Kind.MEDICINE, m2, length=THREE_H)
        record = medicine_record(course, "m2", ["a"])  # partner a's turn still
        record["doses"][0]["approval_id"] = "ap-m1-a"  # approved for m1, not used there
        hold_medicine(course, "m2", record)
        held_ok(course, "m2")
        err = refused(course, RulesBrokenError, lambda: course.request_dose_approval(
            approval_id="ap-again", session_id="m2", partner="a", prescriber_id="rx", requested_mg=100,
            prescriber_authorised=True, now=m2, by=BY))
        assert err.violations == (V("session-state", "session m2 is held, not booked"),)

    def test_a_new_request_is_refused_while_the_carried_approval_stands(self):
        course, start = self.not_dosed()
        m2 = start + timedelta(days=2)
        book(course, "m2", Kind.MEDICINE, m2, length=THREE_H)
        expires = course.approvals["ap-m1-a"].expires_at
        err = refused(course, RulesBrokenError, lambda: course.request_dose_approval(
            approval_id="ap-again", session_id="m2", partner="a", prescriber_id="rx", requested_mg=100,
            prescriber_authorised=True, now=m2 - timedelta(days=1), by=BY))
        assert err.violations == (V("I6", "partner a already has dose approval ap-m1-a for this session (approved "
                                          "for session m1, which took place without a dose; usable until "
                                          f"{expires.isoformat()})"),)

    def test_once_expired_it_no_longer_covers_a_dose_and_may_be_asked_again(self):
        course, start = self.not_dosed(protocol=Protocol(approval_valid_days=3))
        m2 = start + timedelta(days=4)  # the approval, decided the day before m1, expired the day before m2
        book(course, "m2", Kind.MEDICINE, m2, length=THREE_H)
        record = medicine_record(course, "m2", ["a"])
        record["doses"][0]["approval_id"] = "ap-m1-a"
        expiry = course.approvals["ap-m1-a"].expires_at
        err = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m2", record))
        assert err.violations == (V(
            "I6", f"dose approval ap-m1-a is valid from {course.approvals['ap-m1-a'].decided_at.isoformat()} until "
                  f"{expiry.isoformat()}; the dose was given {record['doses'][0]['at'].isoformat()}"),)
        approve(course, "m2", "a")  # a new request is accepted: the carried one no longer stands
        hold_medicine(course, "m2", medicine_record(course, "m2", ["a"]))
        held_ok(course, "m2")

    def test_it_does_not_count_against_the_protocols_medicine_sessions(self):
        course, start = self.not_dosed(protocol=Protocol(max_medicine_sessions=1))
        book(course, "m2", Kind.MEDICINE, start + timedelta(days=2), length=THREE_H)  # I2: m1 does not count
        err = refused(course, RulesBrokenError, lambda: book(course, "m3", Kind.MEDICINE, start + timedelta(days=30),
                                                             length=THREE_H))
        assert err.violations == (V("I2", "the protocol allows at most 1 medicine sessions"),)

    def test_nothing_to_integrate(self):
        course, start = self.not_dosed()
        err = refused(course, RulesBrokenError, lambda: book(course, "int-0", Kind.INTEGRATION,
                                                             start + timedelta(hours=20)))
        assert err.violations == (V("I1", "an integration session must follow a medicine session"),)

    def test_its_vitals_lie_within_the_session(self):
        course, start = medicine_booked()
        stale = vitals("a", "pre", start - timedelta(hours=2))
        err = refused(course, RulesBrokenError, lambda: course.record_held(
            session_id="m1", now=start + timedelta(hours=1), vitals=[stale], not_dosed="too high", by=BY))
        assert [v.rule for v in err.violations] == ["I8"]

    @pytest.mark.parametrize("extra, problem", [
        ({"not_dosed": "  "}, "a medicine session not dosed gives the reason"),
        ({"not_dosed": "too high", "monitoring_continues": True},
         "a medicine session not dosed records no dose, no discharge and no continued monitoring"),
    ])
    def test_malformed(self, extra, problem):
        course, start = medicine_booked()
        err = refused(course, InvalidCommandError, lambda: course.record_held(
            session_id="m1", now=start + timedelta(hours=1), by=BY, **extra))
        assert err.problems == (problem,)

    def test_with_doses_it_is_malformed(self):
        course, start = medicine_booked()
        record = medicine_record(course, "m1", ["a"])
        err = refused(course, InvalidCommandError, lambda: hold_medicine(course, "m1", {**record, "not_dosed": "x"}))
        assert err.problems == ("a medicine session not dosed records no dose, no discharge and no continued "
                                "monitoring",)

    def test_only_a_medicine_session(self):
        course, start = medicine_booked()
        book(course, "p-x", Kind.PREPARATION, start - timedelta(days=2))
        err = refused(course, InvalidCommandError, lambda: hold(course, "p-x", not_dosed="no"))
        assert err.problems == ("doses, vitals, adverse events, discharge and not dosed belong to medicine sessions",)
