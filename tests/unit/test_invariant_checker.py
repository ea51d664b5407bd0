"""The independent checker (tests/invariants.py) is not vacuous.

Bad streams are made by triggering events directly (`course.trigger_event(...)`), which bypasses every check of
the aggregate, so they hold exactly the breach each test names; a course run by the book gives no breach, also
after a round trip through an encrypted event store.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from builders import (
    BY,
    PRESCRIBER,
    T0,
    approve,
    assess,
    book,
    completed_course,
    dose,
    hold,
    integrate,
    medicine_record,
    open_course,
    prepared_course,
    vitals,
)
from eventsourcing.application import Application
from eventsourcing.cryptography import AESCipher
from invariants import check_events, rules_broken
from scheduler.domain.course import Course
from scheduler.domain.model import Kind
from scheduler.domain.protocol import Model, Protocol, VitalsLimit

THREE_H = timedelta(hours=3)


def stream(course: Course) -> list[Any]:
    return list(course.pending_events)


def messages(course: Course, rule: str) -> str:
    return " | ".join(b.message for b in check_events(stream(course)) if b.rule == rule)


def force_book(course: Course, sid: str, kind: Kind, start, length=timedelta(hours=1), partners=("a", "b"),
               follows: str | None = None) -> None:
    course.trigger_event(Course.SessionBooked, session={
        "id": sid, "kind": kind.value, "partners": list(partners), "starts_at": start, "ends_at": start + length,
        "clinic_id": "home", "room_id": None, "clinician_ids": [], "timezone": "UTC", "follows": follows,
    }, by=BY)


def force_held(course: Course, sid: str, **record: Any) -> None:
    """Records a session held without any check (and Dosed after a medicine session, as the aggregate would)."""
    course.trigger_event(Course.SessionHeld, session_id=sid, record={"notes": "", **record}, by=BY)
    if course.sessions[sid].kind is Kind.MEDICINE:
        deadline = course.window_deadline(course.sessions[sid])
        course.trigger_event(Course.Dosed, session_id=sid, integration_deadline=deadline, by=BY)


def booked_medicine(model=Model.TAKING_TURNS, protocol=None, partners=("a",)):
    """A prepared course with medicine session m1 booked and approved for `partners`."""
    course, end = prepared_course(model, protocol)
    start = end + timedelta(days=3)
    book(course, "m1", Kind.MEDICINE, start, length=THREE_H)
    for p in partners:
        approve(course, "m1", p)
    return course, start


# ------------------------------------------------------------------------------ sound streams


@pytest.mark.parametrize("model", list(Model))
@pytest.mark.parametrize("protocol", [Protocol(), Protocol(min_integration_sessions=1, min_medicine_interval_days=1,
                                                           vitals_limit=VitalsLimit(140, 90))])
def test_a_course_run_by_the_book_breaks_nothing(model, protocol):
    course = completed_course(model, protocol, medicine_sessions=3)
    events = stream(course)
    assert [type(e).__name__ for e in events].count("Dosed") == 3
    assert type(events[-1]).__name__ == "Completed"
    assert check_events(events) == []


def test_the_stored_and_decrypted_stream_of_a_sound_course_breaks_nothing():
    course = completed_course(Model.TOGETHER)
    app = Application(env={
        "PERSISTENCE_MODULE": "eventsourcing.popo",
        "CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher",
        "CIPHER_KEY": AESCipher.create_key(32),
    })
    app.save(course)
    stored = list(app.events.get(course.id))
    assert len(stored) == course.version
    assert check_events(stored) == []


def test_every_prefix_of_a_sound_course_breaks_nothing():
    events = stream(completed_course())
    for n in range(1, len(events) + 1):
        assert check_events(events[:n], ended=False) == [], n


def test_a_prefix_cut_inside_a_command_misses_its_milestone():
    events = stream(completed_course())
    names = [type(e).__name__ for e in events]
    cut = names.index("Assessed")  # right after the joint assessment was held, before Assessed
    assert rules_broken(events[:cut]) == {"milestone"}
    assert check_events(events[:cut], ended=False) == []


# ------------------------------------------------------------------------------ I1 phase order


def test_i1_preparation_held_before_assessed():
    course = open_course()
    book(course, "prep-1", Kind.PREPARATION, T0 + timedelta(days=3))
    force_held(course, "prep-1")
    assert rules_broken(stream(course)) == {"I1"}
    assert "before the course was Assessed" in messages(course, "I1")


def test_i1_medicine_held_before_prepared():
    course = open_course()
    end = assess(course)
    start = end + timedelta(days=2)
    book(course, "m1", Kind.MEDICINE, start, length=THREE_H)
    force_held(course, "m1", **medicine_record(course, "m1", ["a"]))
    assert "before the course was Prepared" in messages(course, "I1")


def test_i1_integration_held_before_its_medicine_session_is_dosed():
    course, start = booked_medicine()
    book(course, "int-0", Kind.INTEGRATION, start + THREE_H + timedelta(hours=2))
    assert course.sessions["int-0"].follows == "m1"
    force_held(course, "int-0")
    assert "before medicine session m1 was Dosed" in messages(course, "I1")


# ------------------------------------------------------------------------------ I2, I5, I10 calendar


def test_i2_more_active_medicine_sessions_than_the_protocol_allows():
    course, end = prepared_course(protocol=Protocol(max_medicine_sessions=1))
    book(course, "m1", Kind.MEDICINE, end + timedelta(days=1), length=THREE_H)
    force_book(course, "m2", Kind.MEDICINE, end + timedelta(days=30), length=THREE_H)
    assert rules_broken(stream(course)) == {"I2"}


def test_i5_medicine_sessions_too_close():
    course, end = prepared_course()
    book(course, "m1", Kind.MEDICINE, end + timedelta(days=1), length=THREE_H)
    force_book(course, "m2", Kind.MEDICINE, end + timedelta(days=7), length=THREE_H)
    assert rules_broken(stream(course)) == {"I5"}


def test_i10_overlapping_sessions():
    course, end = prepared_course()
    book(course, "s1", Kind.PREPARATION, end + timedelta(days=1))
    force_book(course, "s2", Kind.PREPARATION, end + timedelta(days=1, minutes=30), partners=("a",))
    assert rules_broken(stream(course)) == {"I10"}


def test_i10_a_discharge_later_than_the_booked_end_runs_into_the_next_session():
    course, start = booked_medicine()
    book(course, "int-0", Kind.INTEGRATION, start + THREE_H + timedelta(minutes=15))
    record = medicine_record(course, "m1", ["a"], monitoring=timedelta(minutes=200))  # discharge 3h30 after start
    force_held(course, "m1", **record)
    assert rules_broken(stream(course)) == {"I10"}


def test_cancelled_sessions_do_not_count_for_the_calendar():
    course, end = prepared_course()
    book(course, "s1", Kind.PREPARATION, end + timedelta(days=1))
    course.cancel_session(session_id="s1", reason="moved", by=BY)
    force_book(course, "s2", Kind.PREPARATION, end + timedelta(days=1))
    assert check_events(stream(course)) == []


# ------------------------------------------------------------------------------ I3 integration before the next dose


def test_i3_next_medicine_session_held_with_too_few_integration_sessions():
    course, end = prepared_course()
    dose(course, "m1", end + timedelta(days=1), ["a"])
    last = integrate(course, "m1", count=3)
    start = last + timedelta(days=10)
    book(course, "m2", Kind.MEDICINE, start, length=THREE_H)
    approve(course, "m2", "b")
    force_held(course, "m2", **medicine_record(course, "m2", ["b"]))
    assert rules_broken(stream(course)) == {"I3"}
    assert "3 integration sessions of m1; 4 are required" in messages(course, "I3")


def test_i3_integration_sessions_that_took_place_after_the_next_medicine_session_do_not_count():
    course, end = prepared_course(protocol=Protocol(min_integration_sessions=2))
    dose(course, "m1", end + timedelta(days=1), ["a"])
    finished = course.sessions["m1"].finished_at
    book(course, "int-0", Kind.INTEGRATION, finished + timedelta(hours=20))
    book(course, "int-1", Kind.INTEGRATION, finished + timedelta(days=12))
    m2 = finished + timedelta(days=10)  # between the two integration sessions
    book(course, "m2", Kind.MEDICINE, m2, length=THREE_H)
    approve(course, "m2", "b")
    hold(course, "int-0")
    hold(course, "int-1")
    force_held(course, "m2", **medicine_record(course, "m2", ["b"]))
    assert rules_broken(stream(course)) == {"I3"}
    assert "only 1 integration sessions of m1" in messages(course, "I3")


def test_i3_completed_before_the_last_medicine_session_is_integrated():
    course, end = prepared_course()
    dose(course, "m1", end + timedelta(days=1), ["a"])
    integrate(course, "m1", count=2)
    course.trigger_event(Course.Completed, by=BY)
    assert rules_broken(stream(course)) == {"I3"}


def test_i3_integrated_milestone_with_too_few_sessions():
    course, end = prepared_course()
    dose(course, "m1", end + timedelta(days=1), ["a"])
    integrate(course, "m1", count=1)
    course.trigger_event(Course.Integrated, session_id="m1", by=BY)
    assert rules_broken(stream(course)) == {"I3"}


# ------------------------------------------------------------------------------ I4 integration window


def test_i4_first_integration_booked_outside_the_window():
    course, end = prepared_course()
    dose(course, "m1", end + timedelta(days=1), ["a"])
    finished = course.sessions["m1"].finished_at
    force_book(course, "int-0", Kind.INTEGRATION, finished + timedelta(hours=49), follows="m1")
    assert rules_broken(stream(course)) == {"I4"}


def test_i4_moving_a_medicine_session_earlier_pushes_its_first_integration_out_of_the_window():
    course, end = prepared_course()
    start = end + timedelta(days=5)
    book(course, "m1", Kind.MEDICINE, start, length=THREE_H)
    book(course, "int-0", Kind.INTEGRATION, start + THREE_H + timedelta(hours=40))
    new_start = start - timedelta(days=2)
    course.trigger_event(Course.SessionRescheduled, session_id="m1", starts_at=new_start,
                         ends_at=new_start + THREE_H, room_id=None, clinician_ids=[], follows=None, by=BY)
    assert rules_broken(stream(course)) == {"I4"}


def test_i4_dose_after_a_recorded_missed_window_without_acknowledgement():
    protocol = Protocol(min_integration_sessions=1, min_medicine_interval_days=1)
    course, end = prepared_course(protocol=protocol)
    dose(course, "m1", end + timedelta(days=1), ["a"])
    finished = course.sessions["m1"].finished_at
    course.record_missed_integration_windows(now=finished + timedelta(hours=49), by=BY)
    force_book(course, "int-0", Kind.INTEGRATION, finished + timedelta(hours=50), follows="m1")
    hold(course, "int-0")
    start = finished + timedelta(days=3)
    book(course, "m2", Kind.MEDICINE, start, length=THREE_H)
    approve(course, "m2", "b")
    force_held(course, "m2", **medicine_record(course, "m2", ["b"]))
    assert "was not acknowledged before medicine session m2" in messages(course, "I4")


def test_i4_missed_window_derived_from_the_times_when_none_was_recorded():
    protocol = Protocol(min_integration_sessions=1, min_medicine_interval_days=1)
    course, end = prepared_course(protocol=protocol)
    dose(course, "m1", end + timedelta(days=1), ["a"])
    finished = course.sessions["m1"].finished_at
    force_book(course, "int-0", Kind.INTEGRATION, finished + timedelta(hours=60), follows="m1")
    hold(course, "int-0")
    start = finished + timedelta(days=4)
    book(course, "m2", Kind.MEDICINE, start, length=THREE_H)
    approve(course, "m2", "b")
    force_held(course, "m2", **medicine_record(course, "m2", ["b"]))
    found = messages(course, "I4")
    assert "after its window closed" in found  # the booking
    assert "was not acknowledged before medicine session m2" in found  # and the dose


def test_i4_missed_window_recorded_although_an_integration_session_was_held_in_it():
    course, end = prepared_course()
    dose(course, "m1", end + timedelta(days=1), ["a"])
    integrate(course, "m1", count=1)
    deadline = course.window_deadline(course.sessions["m1"])
    course.trigger_event(Course.IntegrationWindowMissed, session_id="m1", deadline=deadline, by=BY)
    assert rules_broken(stream(course)) == {"I4"}


def test_after_a_recorded_and_acknowledged_missed_window_late_integration_and_the_next_dose_are_fine():
    protocol = Protocol(min_integration_sessions=1, min_medicine_interval_days=1)
    course, end = prepared_course(protocol=protocol)
    dose(course, "m1", end + timedelta(days=1), ["a"])
    finished = course.sessions["m1"].finished_at
    course.record_missed_integration_windows(now=finished + timedelta(hours=49), by=BY)
    course.acknowledge_missed_window(session_id="m1", reason="couple was ill", by=BY)
    book(course, "int-0", Kind.INTEGRATION, finished + timedelta(hours=50))  # late, after the recorded miss
    hold(course, "int-0")
    start = finished + timedelta(days=3)
    book(course, "m2", Kind.MEDICINE, start, length=THREE_H)
    approve(course, "m2", "b")
    course.record_held(session_id="m2", now=start + timedelta(hours=4), by=BY,
                       **medicine_record(course, "m2", ["b"]))
    assert check_events(stream(course)) == []


# ------------------------------------------------------------------------------ I6 dose approvals


def test_i6_dose_above_the_approved_amount():
    course, _start = booked_medicine()
    force_held(course, "m1", **medicine_record(course, "m1", ["a"], mg=120.0))
    assert rules_broken(stream(course)) == {"I6"}
    assert "was given 120.0 mg; 100.0 mg was approved" in messages(course, "I6")


def test_i6_dose_without_an_approval():
    course, end = prepared_course()
    book(course, "m1", Kind.MEDICINE, end + timedelta(days=3), length=THREE_H)
    force_held(course, "m1", **medicine_record(course, "m1", ["a"]))
    assert rules_broken(stream(course)) == {"I6"}


def test_i6_dose_after_the_approval_expired():
    course, end = prepared_course(protocol=Protocol(approval_valid_days=1))
    start = end + timedelta(days=5)
    book(course, "m1", Kind.MEDICINE, start, length=THREE_H)
    approve(course, "m1", "a", at=start - timedelta(days=3))
    force_held(course, "m1", **medicine_record(course, "m1", ["a"]))
    assert rules_broken(stream(course)) == {"I6"}
    assert "outside approval" in messages(course, "I6")


def test_i6_approval_decided_by_a_prescriber_it_was_not_addressed_to():
    course, start = booked_medicine(partners=())
    course.request_dose_approval(approval_id="ap-1", session_id="m1", partner="a", prescriber_id=PRESCRIBER,
                                 requested_mg=100.0, prescriber_authorised=True, now=start - timedelta(days=1), by=BY)
    course.trigger_event(Course.DoseApprovalDecided, approval_id="ap-1", decision="approved", approved_mg=100.0,
                         decided_at=start - timedelta(days=1), expires_at=start + timedelta(days=13), reason="",
                         vitals_override_reason=None, by="prescriber:rx-2")
    assert rules_broken(stream(course)) == {"I6"}
    assert "decided by prescriber:rx-2" in messages(course, "I6")


def test_i6_declined_approval_does_not_cover_a_dose():
    course, start = booked_medicine(partners=())
    now = start - timedelta(days=1)
    course.request_dose_approval(approval_id="ap-m1-a", session_id="m1", partner="a", prescriber_id=PRESCRIBER,
                                 requested_mg=100.0, prescriber_authorised=True, now=now, by=BY)
    course.decide_dose_approval(approval_id="ap-m1-a", prescriber_id=PRESCRIBER, approve=False, now=now,
                                reason="blood pressure", by=f"prescriber:{PRESCRIBER}")
    force_held(course, "m1", **medicine_record(course, "m1", ["a"]))
    assert "is declined" in messages(course, "I6")


# ------------------------------------------------------------------------------ I7 models


def force_approve(course: Course, sid: str, partner: str) -> None:
    """Requests (without the aggregate's I7 check) and approves a dose for `partner`."""
    now = course.sessions[sid].starts_at - timedelta(days=1)
    course.trigger_event(Course.DoseApprovalRequested, approval_id=f"ap-{sid}-{partner}", session_id=sid,
                         partner=partner, prescriber_id=PRESCRIBER, requested_mg=100.0, requested_at=now, by=BY)
    course.decide_dose_approval(approval_id=f"ap-{sid}-{partner}", prescriber_id=PRESCRIBER, approve=True, now=now,
                                by=f"prescriber:{PRESCRIBER}")


def test_i7_taking_turns_doses_the_wrong_partner():
    course, _start = booked_medicine(partners=())
    force_approve(course, "m1", "b")
    force_held(course, "m1", **medicine_record(course, "m1", ["b"]))
    assert rules_broken(stream(course)) == {"I7"}


def test_i7_taking_turns_alternates():
    course, end = prepared_course(protocol=Protocol(min_integration_sessions=1))
    dose(course, "m1", end + timedelta(days=1), ["a"])
    last = integrate(course, "m1")
    start = last + timedelta(days=10)
    book(course, "m2", Kind.MEDICINE, start, length=THREE_H)
    force_approve(course, "m2", "a")
    force_held(course, "m2", **medicine_record(course, "m2", ["a"]))
    assert rules_broken(stream(course)) == {"I7"}


def test_i7_together_doses_both_partners():
    course, _start = booked_medicine(Model.TOGETHER, partners=("a", "b"))
    force_held(course, "m1", **medicine_record(course, "m1", ["a"]))
    assert rules_broken(stream(course)) == {"I7"}


# ------------------------------------------------------------------------------ I8, I9 monitoring and vitals


def test_i8_no_vitals_about_40_minutes_after_the_dose():
    course, _start = booked_medicine()
    record = medicine_record(course, "m1", ["a"])
    record["vitals"] = [v for v in record["vitals"] if v["stage"] != "post"]
    force_held(course, "m1", **record)
    assert rules_broken(stream(course)) == {"I8"}


def test_i8_discharge_before_the_minimum_monitoring_time():
    course, _start = booked_medicine()
    force_held(course, "m1", **medicine_record(course, "m1", ["a"], monitoring=timedelta(minutes=100)))
    assert rules_broken(stream(course)) == {"I8"}
    assert "was discharged" in messages(course, "I8")


def test_i8_the_latest_discharge_vitals_decide_not_the_list_order():
    course, _start = booked_medicine()
    record = medicine_record(course, "m1", ["a"])
    discharged = record["discharged_at"]
    record["vitals"] = [v for v in record["vitals"] if v["stage"] != "discharge"] + [
        vitals("a", "discharge", discharged - timedelta(minutes=2), acceptable=False),
        vitals("a", "discharge", discharged - timedelta(minutes=20)),
    ]
    force_held(course, "m1", **record)
    assert rules_broken(stream(course)) == {"I8"}
    assert "latest discharge vitals" in messages(course, "I8")


def test_i9_pre_dose_vitals_not_acceptable():
    course, start = booked_medicine()
    record = medicine_record(course, "m1", ["a"])
    record["vitals"][0] = vitals("a", "pre", start, acceptable=False)
    force_held(course, "m1", **record)
    assert rules_broken(stream(course)) == {"I9"}


def test_i9_pre_dose_vitals_above_the_clinic_limit_without_override():
    course, start = booked_medicine(protocol=Protocol(vitals_limit=VitalsLimit(140, 90)))
    record = medicine_record(course, "m1", ["a"])
    record["vitals"][0] = vitals("a", "pre", start, systolic=150)
    force_held(course, "m1", **record)
    assert rules_broken(stream(course)) == {"I9"}


def test_i9_an_override_allows_that_reading_above_the_limit_up_to_its_ceiling():
    course, end = prepared_course(protocol=Protocol(vitals_limit=VitalsLimit(140, 90)))
    start = end + timedelta(days=3)
    book(course, "m1", Kind.MEDICINE, start, length=THREE_H)
    approve(course, "m1", "a")
    course.override_vitals_limit(approval_id="ap-m1-a", prescriber_id=PRESCRIBER, reading_at=start, systolic=155,
                                 diastolic=90, reason="usual for this patient", now=start + timedelta(minutes=5),
                                 by=f"prescriber:{PRESCRIBER}")
    record = medicine_record(course, "m1", ["a"])
    record["vitals"][0] = vitals("a", "pre", start, systolic=150)
    course.record_held(session_id="m1", now=start + timedelta(hours=4), by=BY, **record)
    assert check_events(stream(course)) == []


def test_i9_a_reading_above_the_ceiling_the_prescriber_set():
    course, end = prepared_course(protocol=Protocol(vitals_limit=VitalsLimit(140, 90)))
    start = end + timedelta(days=3)
    book(course, "m1", Kind.MEDICINE, start, length=THREE_H)
    approve(course, "m1", "a")
    course.trigger_event(Course.VitalsLimitOverridden, approval_id="ap-m1-a", reading_at=start,
                         ceiling={"systolic": 145, "diastolic": 90, "heart_rate": None}, reason="usual",
                         decided_at=start + timedelta(minutes=5), by=f"prescriber:{PRESCRIBER}")
    record = medicine_record(course, "m1", ["a"])
    record["vitals"][0] = vitals("a", "pre", start, systolic=150)
    course.trigger_event(Course.SessionHeld, session_id="m1", record=record, by=BY)
    course.trigger_event(Course.Dosed, session_id="m1", integration_deadline=record["discharged_at"]
                         + timedelta(hours=48), by=BY)
    assert "ceiling" in messages(course, "I9")


# ------------------------------------------------------------------------------ closed course, milestones, stream


def test_closed_no_event_after_completion():
    course = completed_course()
    course.trigger_event(Course.ScreeningRecorded, partner="a", result="eligible", clinician_id="t", notes="", by=BY)
    assert rules_broken(stream(course)) == {"closed", "I1"}


def test_closed_no_event_after_discontinuation():
    course, end = prepared_course()
    course.discontinue(reason="couple separated", by=BY)
    force_book(course, "s1", Kind.PREPARATION, end + timedelta(days=1))
    assert rules_broken(stream(course)) == {"closed"}


def test_milestone_assessed_without_a_joint_assessment_session():
    course = open_course()
    course.record_screening(partner="a", result="eligible", clinician_id="t", by=BY)
    course.record_screening(partner="b", result="eligible", clinician_id="t", by=BY)
    course.trigger_event(Course.Assessed, by=BY)
    assert rules_broken(stream(course)) == {"milestone"}


def test_milestone_recorded_twice():
    course, _end = prepared_course()
    course.trigger_event(Course.Prepared, by=BY)
    assert "Prepared is recorded twice" in messages(course, "milestone")


def test_milestone_missing_once_its_conditions_hold():
    course = open_course()
    end = assess(course)
    plan = [("a",), ("b",), ("a", "b"), ("a", "b")]
    for i, partners in enumerate(plan):
        book(course, f"prep-{i}", Kind.PREPARATION, end + timedelta(days=i + 1), partners=partners)
        force_held(course, f"prep-{i}")  # holds without recording Prepared
    assert rules_broken(stream(course)) == {"milestone"}
    assert "not Prepared" in messages(course, "milestone")


def test_milestone_dosed_missing_after_a_medicine_session_was_held():
    course, _start = booked_medicine()
    record = {"notes": "", **medicine_record(course, "m1", ["a"])}
    course.trigger_event(Course.SessionHeld, session_id="m1", record=record, by=BY)
    assert rules_broken(stream(course)) == {"milestone"}


def test_milestone_an_ineligible_screening_ends_the_course():
    course = open_course()
    course.trigger_event(Course.ScreeningRecorded, partner="a", result="ineligible", clinician_id="t", notes="", by=BY)
    assert rules_broken(stream(course)) == {"milestone"}
    course.trigger_event(Course.Discontinued, reason="ineligible", by=BY)
    assert check_events(stream(course)) == []


def test_stream_with_a_lost_event():
    events = stream(completed_course())
    assert "stream" in rules_broken(events[:5] + events[6:])


def test_session_state_holding_a_cancelled_session():
    course, end = prepared_course()
    book(course, "s1", Kind.PREPARATION, end + timedelta(days=1))
    course.cancel_session(session_id="s1", reason="ill", by=BY)
    force_held(course, "s1")
    assert rules_broken(stream(course)) == {"session-state"}


def test_breaches_name_the_event_and_its_position():
    course, end = prepared_course()
    book(course, "s1", Kind.PREPARATION, end + timedelta(days=1))
    force_book(course, "s2", Kind.PREPARATION, end + timedelta(days=1))
    [breach] = check_events(stream(course))
    assert (breach.rule, breach.position, breach.event) == ("I10", course.version - 1, "SessionBooked")
