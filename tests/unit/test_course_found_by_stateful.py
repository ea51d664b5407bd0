"""Rules the stateful test found the aggregate missing: each with an accepted and a refused case."""

from __future__ import annotations

from datetime import timedelta

from builders import (
    approve,
    book,
    dose,
    hold,
    hold_medicine,
    integrate,
    medicine_booked,
    medicine_record,
    prepared_course,
    refused,
)
from scheduler.domain.errors import RulesBrokenError
from scheduler.domain.errors import Violation as V
from scheduler.domain.model import Kind
from scheduler.domain.protocol import Protocol


def test_a_discharge_may_run_past_the_booked_end_into_free_time() -> None:
    course, start = medicine_booked()
    hold_medicine(course, "m1", medicine_record(course, "m1", ["a"], monitoring=timedelta(hours=3, minutes=20)))
    assert course.has_milestone("dosed", "m1")


def test_a_discharge_may_not_run_into_the_couples_next_session() -> None:
    course, start = medicine_booked()
    book(course, "int-1", Kind.INTEGRATION, start + timedelta(hours=3, minutes=15))
    record = medicine_record(course, "m1", ["a"], monitoring=timedelta(hours=3, minutes=20))
    error = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m1", record))
    assert error.violations == (
        V("I10", f"discharge at {record['discharged_at'].isoformat()} runs into session int-1"),)


def test_integration_counts_only_sessions_that_took_place_before_the_next_medicine_session() -> None:
    protocol = Protocol(min_integration_sessions=1, min_medicine_interval_days=1, integration_window_hours=50)
    course, end = prepared_course(protocol=protocol)
    first = end + timedelta(days=1)
    dose(course, "m1", first, ["a"])
    book(course, "int-late", Kind.INTEGRATION, first + timedelta(hours=40))
    book(course, "m2", Kind.MEDICINE, first + timedelta(days=1), length=timedelta(hours=3))
    approve(course, "m2", "b")
    hold(course, "int-late")  # recorded first, but it took place after m2
    error = refused(course, RulesBrokenError, lambda: hold_medicine(course, "m2", medicine_record(course, "m2", ["b"])))
    assert error.violations == (
        V("I3", "medicine session m1 needs 1 integration sessions held before the next medicine session; 0 held"),)


def test_the_next_medicine_session_after_its_integration_is_accepted() -> None:
    protocol = Protocol(min_integration_sessions=1, min_medicine_interval_days=1)
    course, end = prepared_course(protocol=protocol)
    first = end + timedelta(days=1)
    dose(course, "m1", first, ["a"])
    integrate(course, "m1", count=1)
    dose(course, "m2", first + timedelta(days=3), ["b"])
    assert course.has_milestone("dosed", "m2")
