"""Builds courses up to a given point of the protocol, for tests of later rules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

from scheduler.domain.course import Course
from scheduler.domain.model import HostFacts, Kind
from scheduler.domain.protocol import Model, Protocol

T0 = datetime(2026, 1, 5, 9, tzinfo=timezone.utc)
BY = "clinic:home"
HOME = "home"
HOME_HOST = HostFacts(HOME, has_prescriber=True, is_partner_of_home=False)
PRESCRIBER = "rx-1"


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def open_course(
    model: Model | str = Model.TAKING_TURNS, protocol: Protocol | None = None, **kw: Any
) -> Course:
    return Course.open(
        course_id=uuid4(),
        home_clinic_id=HOME,
        model=model,
        protocol=protocol or Protocol(),
        partners={"a": "ref-a", "b": "ref-b"},
        by=BY,
        **kw,
    )


def book(
    course: Course,
    sid: str,
    kind: Kind | str,
    start: datetime,
    length: timedelta = timedelta(hours=1),
    partners: tuple[str, ...] = ("a", "b"),
    host: HostFacts | None = HOME_HOST,
    clinic_id: str = HOME,
) -> None:
    course.book_session(
        session_id=sid,
        kind=kind,
        partners=partners,
        starts_at=start,
        ends_at=start + length,
        clinic_id=clinic_id,
        host=host,
        by=BY,
    )


def hold(course: Course, sid: str, **kw: Any) -> None:
    session = course.sessions[sid]
    course.record_held(session_id=sid, now=session.ends_at + timedelta(minutes=30), by=BY, **kw)


def assess(course: Course, at: datetime = T0) -> datetime:
    """Screens both partners eligible and holds a joint assessment; returns when it ended."""
    course.record_screening(partner="a", result="eligible", clinician_id="t-1", by=BY)
    course.record_screening(partner="b", result="eligible", clinician_id="t-1", by=BY)
    book(course, "assess-1", Kind.ASSESSMENT, at)
    hold(course, "assess-1")
    return at + timedelta(hours=1)


def prepare(course: Course, after: datetime) -> datetime:
    """Holds the protocol's minimum of individual and joint preparation sessions, one a day."""
    plan = [("a",)] * course.protocol.individual_preparation_sessions
    plan += [("b",)] * course.protocol.individual_preparation_sessions
    plan += [("a", "b")] * course.protocol.joint_preparation_sessions
    start = after
    for i, partners in enumerate(plan):
        start = after + timedelta(days=i + 1)
        book(course, f"prep-{i}", Kind.PREPARATION, start, partners=partners)
        hold(course, f"prep-{i}")
    return start + timedelta(hours=1)


def vitals(
    partner: str,
    stage: str,
    at: datetime,
    systolic: int = 120,
    diastolic: int = 80,
    acceptable: bool = True,
) -> dict[str, Any]:
    return {
        "partner": partner,
        "stage": stage,
        "at": at,
        "systolic": systolic,
        "diastolic": diastolic,
        "heart_rate": 70,
        "acceptable": acceptable,
    }


def approve(
    course: Course,
    sid: str,
    partner: str,
    mg: float = 100.0,
    at: datetime | None = None,
    **decision: Any,
) -> str:
    aid = f"ap-{sid}-{partner}"
    now = at or course.sessions[sid].starts_at - timedelta(days=1)
    course.request_dose_approval(
        approval_id=aid,
        session_id=sid,
        partner=partner,
        prescriber_id=PRESCRIBER,
        requested_mg=mg,
        prescriber_authorised=True,
        now=now,
        by=BY,
    )
    course.decide_dose_approval(
        approval_id=aid,
        prescriber_id=PRESCRIBER,
        approve=True,
        now=now,
        by=f"prescriber:{PRESCRIBER}",
        **decision,
    )
    return aid


def medicine_record(
    course: Course,
    sid: str,
    partners: list[str],
    mg: float = 100.0,
    monitoring: timedelta = timedelta(minutes=130),
) -> dict[str, Any]:
    """A complete, rule-abiding record of a medicine session held as booked."""
    start = course.sessions[sid].starts_at
    dosed_at = start + timedelta(minutes=10)
    doses, readings = [], []
    for p in partners:
        doses.append({"partner": p, "approval_id": f"ap-{sid}-{p}", "mg": mg, "at": dosed_at})
        readings += [
            vitals(p, "pre", start),
            vitals(p, "post", dosed_at + timedelta(minutes=40)),
            vitals(p, "discharge", dosed_at + monitoring - timedelta(minutes=5)),
        ]
    return {"doses": doses, "vitals": readings, "discharged_at": dosed_at + monitoring}


def dose(course: Course, sid: str, start: datetime, partners: list[str]) -> None:
    """Books, approves and holds a medicine session at `start` for the given partners."""
    book(course, sid, Kind.MEDICINE, start, length=timedelta(hours=3))
    for p in partners:
        approve(course, sid, p)
    course.record_held(
        session_id=sid,
        now=start + timedelta(hours=4),
        by=BY,
        **medicine_record(course, sid, partners),
    )


def integrate(
    course: Course, medicine_sid: str, count: int | None = None, prefix: str | None = None
) -> datetime:
    """Holds `count` integration sessions (default: the protocol minimum), a day apart, after a medicine session."""
    count = course.protocol.min_integration_sessions if count is None else count
    end = course.sessions[medicine_sid].finished_at
    start = end
    for i in range(count):
        start = end + timedelta(days=i + 1) - timedelta(hours=2)
        sid = f"{prefix or 'int-' + medicine_sid}-{i}"
        book(course, sid, Kind.INTEGRATION, start)
        hold(course, sid)
    return start + timedelta(hours=1)


def prepared_course(
    model: Model | str = Model.TAKING_TURNS, protocol: Protocol | None = None
) -> tuple[Course, datetime]:
    course = open_course(model, protocol)
    end = prepare(course, assess(course))
    return course, end


def refused(course: Course, error: type[Exception], command: Any) -> Any:
    """Runs `command()` expecting `error`; asserts the course recorded nothing and kept its state.

    Returns the raised exception so a test can compare its exact violations.
    """
    import copy

    import pytest

    before_events = len(course.pending_events)
    before_version = course.version
    before_state = copy.deepcopy(course.__dict__)
    with pytest.raises(error) as info:
        command()
    assert len(course.pending_events) == before_events, "a refused command recorded an event"
    assert course.version == before_version, "a refused command changed the version"
    assert course.__dict__ == before_state, "a refused command changed the course's state"
    return info.value


def event_types(course: Course) -> list[str]:
    """Class names of the events the course recorded and has not yet collected."""
    return [type(e).__name__ for e in course.pending_events]


def completed_course(model: Model | str = Model.TAKING_TURNS, protocol: Protocol | None = None,
                     medicine_sessions: int = 2) -> Course:
    """A course run by the book from opening to completion: every rule kept, events still pending."""
    course, end = prepared_course(model, protocol)
    start = end + timedelta(days=1)
    for n in range(medicine_sessions):
        sid = f"med-{n + 1}"
        partners = ["a", "b"] if Model(model) is Model.TOGETHER else sorted(course.expected_dosed(n))
        dose(course, sid, start, partners)
        last = integrate(course, sid)
        start = max(last + timedelta(days=1), start + timedelta(days=course.protocol.min_medicine_interval_days))
    course.complete(by=BY)
    return course


def medicine_booked(
    model: Model | str = Model.TAKING_TURNS,
    protocol: Protocol | None = None,
    partners: tuple[str, ...] = ("a",),
    approved: bool = True,
) -> tuple[Course, datetime]:
    """A prepared course with a 3-hour medicine session "m1" booked 20 days after preparation,
    approved for `partners` unless approved=False; returns the course and m1's start."""
    course, end = prepared_course(model, protocol)
    start = end + timedelta(days=20)
    book(course, "m1", Kind.MEDICINE, start, length=timedelta(hours=3))
    if approved:
        for p in partners:
            approve(course, "m1", p)
    return course, start


def hold_medicine(course: Course, sid: str, record: dict[str, Any], now: datetime | None = None) -> None:
    """Records a medicine session held with `record` (see medicine_record), by default 4 h after its start."""
    now = now or course.sessions[sid].starts_at + timedelta(hours=4)
    course.record_held(session_id=sid, now=now, by=BY, **record)


def without_vitals(record: dict[str, Any], partner: str, stage: str) -> dict[str, Any]:
    """A copy of a medicine record without the partner's vitals of one stage."""
    readings = [v for v in record["vitals"] if not (v["partner"] == partner and v["stage"] == stage)]
    return {**record, "vitals": readings}
