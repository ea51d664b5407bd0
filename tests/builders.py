"""Builds courses up to a given point of the protocol, for tests of later rules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

from scheduler.domain.course import Course, HostFacts, Kind
from scheduler.domain.protocol import Model, Protocol

T0 = datetime(2026, 1, 5, 9, tzinfo=timezone.utc)
BY = "clinic:home"
HOME = "home"
HOME_HOST = HostFacts(HOME, has_prescriber=True, is_partner_of_home=False)
PRESCRIBER = "rx-1"


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def open_course(model: Model | str = Model.TAKING_TURNS, protocol: Protocol | None = None, **kw: Any) -> Course:
    return Course.open(
        course_id=uuid4(),
        home_clinic_id=HOME,
        model=model,
        protocol=protocol or Protocol(),
        partners={"a": "ref-a", "b": "ref-b"},
        by=BY,
        **kw,
    )


def book(course: Course, sid: str, kind: Kind | str, start: datetime, length: timedelta = timedelta(hours=1),
         partners: tuple[str, ...] = ("a", "b"), host: HostFacts | None = HOME_HOST, clinic_id: str = HOME) -> None:
    course.book_session(
        session_id=sid, kind=kind, partners=partners, starts_at=start, ends_at=start + length,
        clinic_id=clinic_id, host=host, by=BY,
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


def vitals(partner: str, stage: str, at: datetime, systolic: int = 120, diastolic: int = 80,
           acceptable: bool = True) -> dict[str, Any]:
    return {"partner": partner, "stage": stage, "at": at, "systolic": systolic, "diastolic": diastolic,
            "heart_rate": 70, "acceptable": acceptable}


def approve(course: Course, sid: str, partner: str, mg: float = 100.0, at: datetime | None = None,
            **decision: Any) -> str:
    aid = f"ap-{sid}-{partner}"
    now = at or course.sessions[sid].starts_at - timedelta(days=1)
    course.request_dose_approval(
        approval_id=aid, session_id=sid, partner=partner, prescriber_id=PRESCRIBER, requested_mg=mg,
        prescriber_authorised=True, now=now, by=BY,
    )
    course.decide_dose_approval(approval_id=aid, prescriber_id=PRESCRIBER, approve=True, now=now,
                                by=f"prescriber:{PRESCRIBER}", **decision)
    return aid


def medicine_record(course: Course, sid: str, partners: list[str], mg: float = 100.0,
                    monitoring: timedelta = timedelta(minutes=130)) -> dict[str, Any]:
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
    course.record_held(session_id=sid, now=start + timedelta(hours=4), by=BY, **medicine_record(course, sid, partners))


def integrate(course: Course, medicine_sid: str, count: int | None = None, prefix: str | None = None) -> datetime:
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


def prepared_course(model: Model | str = Model.TAKING_TURNS, protocol: Protocol | None = None) -> tuple[Course, datetime]:
    course = open_course(model, protocol)
    end = prepare(course, assess(course))
    return course, end
