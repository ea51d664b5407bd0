"""The clinical protocol of a course: defaults and bounds of docs/RULES.md."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from scheduler.domain.errors import InvalidCommandError


class Model(StrEnum):
    TAKING_TURNS = "taking_turns"
    TOGETHER = "together"


@dataclass(frozen=True)
class VitalsLimit:
    """Clinic policy (I9): pre-dose readings above these refuse the dose unless overridden."""

    systolic: int
    diastolic: int
    heart_rate: int | None = None


# (low, high) per setting; max_medicine_sessions widens to 8 for the together low-dose protocol.
BOUNDS: dict[str, tuple[int, int]] = {
    "max_medicine_sessions": (1, 6),
    "min_integration_sessions": (1, 8),
    "integration_window_hours": (24, 120),
    "min_medicine_interval_days": (1, 90),
    "approval_valid_days": (1, 30),
    "min_monitoring_minutes": (60, 240),
    "pre_dose_vitals_minutes": (15, 240),
    "record_tolerance_minutes": (0, 60),
    "individual_preparation_sessions": (1, 4),
    "joint_preparation_sessions": (2, 8),
}
LOW_DOSE_MAX_MEDICINE_SESSIONS = 8
RULE_OF_SETTING = {
    "max_medicine_sessions": "I2",
    "min_integration_sessions": "I3",
    "integration_window_hours": "I4",
    "min_medicine_interval_days": "I5",
    "approval_valid_days": "I6",
    "min_monitoring_minutes": "I8",
    "pre_dose_vitals_minutes": "I8",
    "record_tolerance_minutes": "I8",
    "individual_preparation_sessions": "preparation",
    "joint_preparation_sessions": "preparation",
}


@dataclass(frozen=True)
class Protocol:
    max_medicine_sessions: int = 6
    min_integration_sessions: int = 4
    integration_window_hours: int = 48
    min_medicine_interval_days: int = 7
    approval_valid_days: int = 14
    min_monitoring_minutes: int = 120
    # The pre-dose reading is taken at most this long before the dose (I8).
    pre_dose_vitals_minutes: int = 60
    # What a medicine session records (doses, vitals, discharge) lies within its span, from its start to its
    # recorded end, give or take this much (clocks on a ward are not the booking system's).
    record_tolerance_minutes: int = 15
    individual_preparation_sessions: int = 1
    joint_preparation_sessions: int = 2
    low_dose: bool = False
    vitals_limit: VitalsLimit | None = None

    def check(self, model: Model) -> None:
        """Refuse a protocol outside the bounds of docs/RULES.md."""
        problems = []
        for name, (low, high) in BOUNDS.items():
            if name == "max_medicine_sessions" and self.low_dose and model is Model.TOGETHER:
                high = LOW_DOSE_MAX_MEDICINE_SESSIONS
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                problems.append(
                    f"protocol.{name} ({RULE_OF_SETTING[name]}) must be an integer in {low}..{high}, got {value!r}"
                )
        if self.low_dose and model is not Model.TOGETHER:
            problems.append("protocol.low_dose applies only to the 'together' model")
        limit = self.vitals_limit
        if limit is not None:
            for name in ("systolic", "diastolic", "heart_rate"):
                value = getattr(limit, name)
                if value is not None and not 30 <= value <= 250:
                    problems.append(f"protocol.vitals_limit.{name} (I9) must be in 30..250, got {value!r}")
        if problems:
            raise InvalidCommandError(problems)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Protocol:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidCommandError([f"unknown protocol setting(s): {', '.join(sorted(unknown))}"])
        values = dict(data)
        if values.get("vitals_limit") is not None:
            values["vitals_limit"] = VitalsLimit(**values["vitals_limit"])
        return cls(**values)
