"""Protocol bounds (DOMAIN.md table) and opening a course."""

from __future__ import annotations

from dataclasses import replace
from uuid import uuid4

import pytest
from builders import BY, HOME

from scheduler.domain.course import Course
from scheduler.domain.errors import InvalidCommandError
from scheduler.domain.protocol import Model, Protocol, VitalsLimit

# setting -> (rule, low, high) as DOMAIN.md states them
BOUNDS = {
    "max_medicine_sessions": ("I2", 1, 6),
    "min_integration_sessions": ("I3", 1, 8),
    "integration_window_hours": ("I4", 24, 120),
    "min_medicine_interval_days": ("I5", 1, 90),
    "approval_valid_days": ("I6", 1, 30),
    "min_monitoring_minutes": ("I8", 60, 240),
    "individual_preparation_sessions": ("preparation", 1, 4),
    "joint_preparation_sessions": ("preparation", 2, 8),
}
DEFAULTS = {
    "max_medicine_sessions": 6,
    "min_integration_sessions": 4,
    "integration_window_hours": 48,
    "min_medicine_interval_days": 7,
    "approval_valid_days": 14,
    "min_monitoring_minutes": 120,
    "individual_preparation_sessions": 1,
    "joint_preparation_sessions": 2,
}


def problem(name: str, value, low=None, high=None) -> str:
    rule, default_low, default_high = BOUNDS[name]
    low = default_low if low is None else low
    high = default_high if high is None else high
    return f"protocol.{name} ({rule}) must be an integer in {low}..{high}, got {value!r}"


def invalid(protocol: Protocol, model: Model = Model.TAKING_TURNS) -> tuple[str, ...]:
    with pytest.raises(InvalidCommandError) as info:
        protocol.check(model)
    return info.value.problems


def test_defaults_match_domain_md():
    protocol = Protocol()
    assert {name: getattr(protocol, name) for name in DEFAULTS} == DEFAULTS
    assert protocol.low_dose is False and protocol.vitals_limit is None
    for model in Model:
        protocol.check(model)


@pytest.mark.parametrize("name", sorted(BOUNDS))
@pytest.mark.parametrize("model", list(Model))
def test_each_setting_accepted_at_its_bounds(name, model):
    _, low, high = BOUNDS[name]
    replace(Protocol(), **{name: low}).check(model)
    replace(Protocol(), **{name: high}).check(model)


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_each_setting_refused_below_and_above_its_bounds(name):
    _, low, high = BOUNDS[name]
    assert invalid(replace(Protocol(), **{name: low - 1})) == (problem(name, low - 1),)
    assert invalid(replace(Protocol(), **{name: high + 1})) == (problem(name, high + 1),)


@pytest.mark.parametrize("value", [True, 2.5, "4", None])
def test_settings_must_be_integers(value):
    assert invalid(Protocol(min_integration_sessions=value)) == (problem("min_integration_sessions", value),)


def test_every_problem_is_listed():
    protocol = Protocol(
        max_medicine_sessions=0, integration_window_hours=12, min_monitoring_minutes=30, low_dose=True,
        vitals_limit=VitalsLimit(systolic=300, diastolic=20, heart_rate=10),
    )
    assert invalid(protocol) == (
        problem("max_medicine_sessions", 0),
        problem("integration_window_hours", 12),
        problem("min_monitoring_minutes", 30),
        "protocol.low_dose applies only to the 'together' model",
        "protocol.vitals_limit.systolic (I9) must be in 30..250, got 300",
        "protocol.vitals_limit.diastolic (I9) must be in 30..250, got 20",
        "protocol.vitals_limit.heart_rate (I9) must be in 30..250, got 10",
    )


class TestLowDose:
    def test_together_low_dose_allows_eight_medicine_sessions(self):
        Protocol(max_medicine_sessions=8, low_dose=True).check(Model.TOGETHER)
        Protocol(max_medicine_sessions=7, low_dose=True).check(Model.TOGETHER)

    def test_together_low_dose_refuses_nine(self):
        assert invalid(Protocol(max_medicine_sessions=9, low_dose=True), Model.TOGETHER) == (
            problem("max_medicine_sessions", 9, high=8),
        )

    def test_together_without_low_dose_stays_at_six(self):
        assert invalid(Protocol(max_medicine_sessions=7), Model.TOGETHER) == (problem("max_medicine_sessions", 7),)

    def test_taking_turns_cannot_use_low_dose_nor_eight_sessions(self):
        assert invalid(Protocol(max_medicine_sessions=8, low_dose=True), Model.TAKING_TURNS) == (
            problem("max_medicine_sessions", 8),
            "protocol.low_dose applies only to the 'together' model",
        )
        assert invalid(Protocol(low_dose=True), Model.TAKING_TURNS) == (
            "protocol.low_dose applies only to the 'together' model",
        )


class TestVitalsLimit:
    def test_limits_within_bounds_are_accepted(self):
        Protocol(vitals_limit=VitalsLimit(systolic=140, diastolic=90)).check(Model.TAKING_TURNS)
        Protocol(vitals_limit=VitalsLimit(systolic=250, diastolic=30, heart_rate=120)).check(Model.TOGETHER)

    @pytest.mark.parametrize("field,value", [("systolic", 29), ("systolic", 251), ("diastolic", 29),
                                             ("diastolic", 251), ("heart_rate", 29), ("heart_rate", 251)])
    def test_limits_out_of_bounds_are_refused(self, field, value):
        limit = replace(VitalsLimit(systolic=140, diastolic=90, heart_rate=100), **{field: value})
        assert invalid(Protocol(vitals_limit=limit)) == (
            f"protocol.vitals_limit.{field} (I9) must be in 30..250, got {value}",
        )


class TestSerialisation:
    def test_round_trip_with_vitals_limit(self):
        protocol = Protocol(min_integration_sessions=3, vitals_limit=VitalsLimit(140, 90, 100))
        assert Protocol.from_dict(protocol.to_dict()) == protocol

    def test_unknown_setting_is_refused(self):
        with pytest.raises(InvalidCommandError) as info:
            Protocol.from_dict({"min_integration_sessions": 4, "zeta": 1, "alpha": 2})
        assert info.value.problems == ("unknown protocol setting(s): alpha, zeta",)


class TestOpeningACourse:
    def open(self, **kw):
        args = dict(course_id=uuid4(), home_clinic_id=HOME, model=Model.TAKING_TURNS, protocol=Protocol(),
                    partners={"a": "ref-a", "b": "ref-b"}, by=BY)
        args.update(kw)
        return Course.open(**args)

    def test_opened_course_records_one_created_event_with_its_protocol(self):
        protocol = Protocol(max_medicine_sessions=8, low_dose=True)
        course = self.open(model="together", protocol=protocol, first_dosed="b")
        events = course.pending_events
        assert len(events) == 1
        assert type(events[0]) is Course.Created
        assert events[0].protocol == protocol.to_dict()
        assert course.protocol == protocol and course.model is Model.TOGETHER and course.first_dosed == "b"

    def test_bad_protocol_is_refused(self):
        with pytest.raises(InvalidCommandError) as info:
            self.open(protocol=Protocol(min_integration_sessions=0))
        assert info.value.problems == (problem("min_integration_sessions", 0),)

    def test_unknown_model_is_refused(self):
        with pytest.raises(InvalidCommandError) as info:
            self.open(model="threesome")
        assert info.value.problems == ("model must be one of ['taking_turns', 'together']",)

    def test_bad_partners_and_first_dosed_are_listed(self):
        with pytest.raises(InvalidCommandError) as info:
            self.open(partners={"a": "ref-a", "b": " "}, first_dosed="c")
        assert info.value.problems == (
            "partners must give a non-empty reference for exactly 'a' and 'b'",
            "first_dosed must be 'a' or 'b'",
        )
        with pytest.raises(InvalidCommandError):
            self.open(partners={"a": "ref-a", "b": "ref-b", "c": "ref-c"})
