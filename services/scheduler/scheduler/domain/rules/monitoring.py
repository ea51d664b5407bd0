"""How a dosed partner is watched: I8 (vitals around the dose, discharge) and I9 (pre-dose vitals acceptable)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from scheduler.domain.errors import InvalidCommandError, Violation
from scheduler.domain.model import PARTNERS, ApprovalStatus, DoseApproval, Kind, Session, SessionStatus, Stage
from scheduler.domain.rules.dosing import covers

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

    def span() -> str:  # only for a refusal: most records are within their session
        return f"session {session.id} took place from {session.starts_at.isoformat()} to {end.isoformat()}"

    violations = []
    if ended_at is not None and discharged_at is not None and discharged_at > ended_at:
        violations.append(Violation("I8", f"the discharge ({discharged_at.isoformat()}) is after the session's "
                                          f"recorded end ({ended_at.isoformat()})"))
    for what, at in [*((f"partner {d['partner']}'s dose", d["at"]) for d in doses),
                     *((f"partner {v['partner']}'s {v['stage']} vitals", v["at"]) for v in vitals),
                     *([("the discharge", discharged_at)] if discharged_at is not None else [])]:
        if not earliest <= at <= latest:
            violations.append(Violation("I8", f"{what} at {at.isoformat()} lies outside the session: {span()}"))
    for adverse in adverse_events:
        if adverse["at"] < earliest:
            violations.append(Violation("I8", f"partner {adverse['partner']}'s adverse event at "
                                              f"{adverse['at'].isoformat()} is before the session: {span()}"))
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
    """I9: the last reading before the dose is acceptable and within the clinic's limit, unless the prescriber
    overrode the limit for that very reading, on the day, and it stays within the ceiling they set."""
    partner = dose["partner"]
    violations = []
    if not reading["acceptable"]:
        violations.append(Violation("I9", f"partner {partner}'s pre-dose vitals are not marked acceptable"))
    limit = course.protocol.vitals_limit
    if limit is None or not exceeds(reading, limit.systolic, limit.diastolic, limit.heart_rate):
        return violations
    approval = course.approvals.get(dose.get("approval_id") or "")
    if approval is not None and approval.vitals_override_reason:  # decided before per-reading overrides
        return violations
    override = approval.override_of(reading["at"]) if approval is not None else None
    if override is None:
        violations.append(Violation("I9", f"partner {partner}'s pre-dose vitals exceed the clinic limit "
                                          f"({_limits(limit.systolic, limit.diastolic, limit.heart_rate)}) and the "
                                          "prescriber gave no override"))
    elif not override.allows(reading):
        violations.append(Violation("I9", f"partner {partner}'s pre-dose vitals exceed the ceiling the prescriber "
                                          f"set for that reading "
                                          f"({_limits(override.systolic, override.diastolic, override.heart_rate)})"))
    return violations


def exceeds(reading: dict[str, Any], systolic: int, diastolic: int, heart_rate: int | None) -> bool:
    return reading["systolic"] > systolic or reading["diastolic"] > diastolic or (
        heart_rate is not None and reading["heart_rate"] > heart_rate)


def _limits(systolic: int, diastolic: int, heart_rate: int | None) -> str:
    return f"{systolic}/{diastolic} mmHg" + (f", {heart_rate} bpm" if heart_rate is not None else "")


def override_violations(course: CourseState, approval: DoseApproval, reading_at: datetime,
                        now: datetime) -> list[Violation]:
    """I9: a prescriber overrides the clinic's vitals limit for one reading of a session their approved dose is
    for (or carried to), on the day: taken within the session, and the override given before the session ended."""
    violations = []
    if course.protocol.vitals_limit is None:
        violations.append(Violation("I9", "the course has no numeric vitals limit to override"))
    if approval.status is not ApprovalStatus.APPROVED:
        violations.append(Violation("I9", f"dose approval {approval.id} is {approval.status.value}, not approved"))
    elif approval.expires_at is not None and approval.expires_at < now:
        violations.append(Violation("I9", f"dose approval {approval.id} expired {approval.expires_at.isoformat()}"))
    tolerance = timedelta(minutes=course.protocol.record_tolerance_minutes)
    sessions = [s for s in course.sessions.values()
                if s.kind is Kind.MEDICINE and s.status is SessionStatus.BOOKED and covers(course, approval, s)]
    during = [s for s in sessions if s.starts_at - tolerance <= reading_at <= s.ends_at + tolerance]
    if not during:
        violations.append(Violation("I9", f"no medicine session still to be recorded under dose approval "
                                          f"{approval.id} took place at {reading_at.isoformat()}"))
    elif now > during[0].ends_at + tolerance:
        violations.append(Violation("I9", f"the override comes after session {during[0].id} ended "
                                          f"({during[0].ends_at.isoformat()}): it is given on the day"))
    return violations
