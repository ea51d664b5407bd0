"""How a dosed partner is watched: I8 (vitals around the dose, discharge) and I9 (pre-dose vitals acceptable)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from scheduler.domain.errors import InvalidCommandError, Violation
from scheduler.domain.model import PARTNERS, Session, Stage

if TYPE_CHECKING:
    from scheduler.domain.state import CourseState

POST_DOSE_VITALS_FROM = timedelta(minutes=30)  # "about 40 min after" the dose (I8)
POST_DOSE_VITALS_UNTIL = timedelta(minutes=60)


def check_record_shape(
    doses: list[dict[str, Any]], vitals: list[dict[str, Any]], adverse_events: list[dict[str, Any]]
) -> None:
    """Refuse a medicine session's record whose doses, vitals or adverse events are malformed."""
    problems = []
    for dose in doses:
        if dose.get("partner") not in PARTNERS or not (isinstance(dose.get("mg"), (int, float)) and dose["mg"] > 0):
            problems.append("each dose names partner 'a' or 'b' and a positive mg")
        if not isinstance(dose.get("at"), datetime) or dose["at"].tzinfo is None:
            problems.append("each dose has a time 'at' with a UTC offset")
    for reading in vitals:
        if reading.get("partner") not in PARTNERS or reading.get("stage") not in tuple(Stage):
            problems.append("each vitals reading names partner 'a' or 'b' and stage pre, post or discharge")
        if not isinstance(reading.get("at"), datetime) or reading["at"].tzinfo is None:
            problems.append("each vitals reading has a time 'at' with a UTC offset")
    for adverse in adverse_events:
        if adverse.get("partner") not in PARTNERS:
            problems.append("each adverse event names partner 'a' or 'b'")
        if not isinstance(adverse.get("at"), datetime) or adverse["at"].tzinfo is None:
            problems.append("each adverse event has a time 'at' with a UTC offset")
    if problems:
        raise InvalidCommandError(sorted(set(problems)))


def span_violations(
    course: CourseState, session: Session, doses: list[dict[str, Any]], vitals: list[dict[str, Any]],
    adverse_events: list[dict[str, Any]], discharged_at: datetime | None, ended_at: datetime | None,
) -> list[Violation]:
    """I8: what a medicine session records took place within it, from its start to its recorded end (when it
    ended, else the discharge, else its booked end), give or take the protocol's tolerance; an adverse event may
    come to light after the session, never before it."""
    tolerance = timedelta(minutes=course.protocol.record_tolerance_minutes)
    end = ended_at or discharged_at or session.ends_at
    earliest, latest = session.starts_at - tolerance, end + tolerance
    span = f"session {session.id} took place from {session.starts_at.isoformat()} to {end.isoformat()}"
    violations = []
    if ended_at is not None and discharged_at is not None and discharged_at > ended_at:
        violations.append(Violation("I8", f"the discharge ({discharged_at.isoformat()}) is after the session's "
                                          f"recorded end ({ended_at.isoformat()})"))
    for what, at in [*((f"partner {d['partner']}'s dose", d["at"]) for d in doses),
                     *((f"partner {v['partner']}'s {v['stage']} vitals", v["at"]) for v in vitals),
                     *([("the discharge", discharged_at)] if discharged_at is not None else [])]:
        if not earliest <= at <= latest:
            violations.append(Violation("I8", f"{what} at {at.isoformat()} lies outside the session: {span}"))
    for adverse in adverse_events:
        if adverse["at"] < earliest:
            violations.append(Violation("I8", f"partner {adverse['partner']}'s adverse event at "
                                              f"{adverse['at'].isoformat()} is before the session: {span}"))
    return violations


def vitals_violations(
    course: CourseState, dose: dict[str, Any], vitals: list[dict[str, Any]], discharged_at: datetime | None,
    last_dose_at: datetime, awaiting_discharge: bool = False,
) -> list[Violation]:
    """I8 and I9 for one partner's dose, from the vitals the session recorded and its discharge time: a reading
    recent before the dose, one about 40 min after it, and one after that at discharge, which comes the
    monitoring minimum after the partner's last administration (`last_dose_at`)."""
    partner, dosed_at = dose["partner"], dose["at"]
    recent = timedelta(minutes=course.protocol.pre_dose_vitals_minutes)
    mine = [v for v in vitals if v["partner"] == partner]
    before = [v for v in mine if v["stage"] == Stage.PRE and v["at"] <= dosed_at]
    pre = [v for v in before if dosed_at - v["at"] <= recent]
    post = _post_dose(mine, dosed_at)
    violations = []
    if not before:
        violations.append(Violation("I8", f"partner {partner} has no vitals recorded before the dose"))
    elif not pre:
        latest = max(v["at"] for v in before)
        violations.append(Violation(
            "I8", f"partner {partner}'s last vitals before the dose were taken {_minutes(dosed_at - latest)} min "
                  f"before it; the protocol wants them at most {course.protocol.pre_dose_vitals_minutes} min before"))
    if not post:
        violations.append(Violation("I8", f"partner {partner} has no vitals recorded about 40 min after the dose"))
    if not awaiting_discharge:  # judged when the discharge is recorded (discharge_violations)
        violations += _discharge_violations(course, partner, dosed_at, last_dose_at, mine, discharged_at)
    if pre:
        violations += _pre_dose_violations(course, dose, max(pre, key=lambda v: v["at"]))
    return violations


def discharge_violations(course: CourseState, doses: list[dict[str, Any]], vitals: list[dict[str, Any]],
                         discharged_at: datetime) -> list[Violation]:
    """I8 for a discharge recorded after monitoring continued: per dosed partner, the monitoring minimum after
    their last administration, and an acceptable reading after the post-dose one and at or before discharge."""
    violations = []
    for partner in sorted({d["partner"] for d in doses}):
        given = sorted((d["at"] for d in doses if d["partner"] == partner))
        mine = [v for v in vitals if v["partner"] == partner]
        violations += _discharge_violations(course, partner, given[0], given[-1], mine, discharged_at)
    return violations


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)


def _post_dose(readings: list[dict[str, Any]], dosed_at: datetime) -> list[dict[str, Any]]:
    """The readings taken about 40 min after the (first administration of the) dose."""
    return [v for v in readings
            if v["stage"] == Stage.POST and POST_DOSE_VITALS_FROM <= v["at"] - dosed_at <= POST_DOSE_VITALS_UNTIL]


def _discharge_violations(
    course: CourseState,
    partner: str,
    first_dose_at: datetime,
    last_dose_at: datetime,
    mine: list[dict[str, Any]],
    discharged_at: datetime | None,
) -> list[Violation]:
    """The partner's discharge: the monitoring minimum after their last administration, with an acceptable
    reading after the post-dose one and at or before the discharge."""
    after_post = max([v["at"] for v in _post_dose(mine, first_dose_at)], default=first_dose_at)
    discharge = [v for v in mine if v["stage"] == Stage.DISCHARGE]
    if discharged_at is None:
        return [Violation("I8", "a held medicine session records the discharge time")]
    violations = []
    minimum = timedelta(minutes=course.protocol.min_monitoring_minutes)
    if discharged_at < last_dose_at + minimum:
        violations.append(
            Violation(
                "I8",
                f"discharge is allowed {course.protocol.min_monitoring_minutes} min after the last dose of partner "
                f"{partner}, at {(last_dose_at + minimum).isoformat()} at the earliest",
            )
        )
    at_discharge = [v for v in discharge if after_post < v["at"] <= discharged_at]
    if not at_discharge:
        violations.append(Violation("I8", f"partner {partner} has no vitals recorded at discharge"))
    elif not max(at_discharge, key=lambda v: v["at"])["acceptable"]:
        violations.append(Violation("I8", f"partner {partner}'s discharge vitals are not marked acceptable"))
    return violations


def _pre_dose_violations(course: CourseState, dose: dict[str, Any], reading: dict[str, Any]) -> list[Violation]:
    """I9: the last reading before the dose is acceptable and, unless the prescriber overrode it, within limits."""
    partner = dose["partner"]
    violations = []
    if not reading["acceptable"]:
        violations.append(Violation("I9", f"partner {partner}'s pre-dose vitals are not marked acceptable"))
    limit = course.protocol.vitals_limit
    approval = course.approvals.get(dose.get("approval_id") or "")
    overridden = approval is not None and bool(approval.vitals_override_reason)
    if limit is not None and not overridden:
        over = reading["systolic"] > limit.systolic or reading["diastolic"] > limit.diastolic or (
            limit.heart_rate is not None and reading["heart_rate"] > limit.heart_rate
        )
        if over:
            violations.append(
                Violation(
                    "I9",
                    f"partner {partner}'s pre-dose vitals exceed the clinic limit "
                    f"({limit.systolic}/{limit.diastolic} mmHg"
                    + (f", {limit.heart_rate} bpm" if limit.heart_rate is not None else "")
                    + ") and the prescriber gave no override",
                )
            )
    return violations
