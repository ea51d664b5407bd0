"""Stored course streams keep loading: event topics and payloads are the contract with the event store."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import project_aggregate
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    UUIDAsHex,
)

from builders import BY, HOME, approve, assess, book, hold, medicine_record, prepare
from scheduler.domain.course import Course
from scheduler.domain.model import HostFacts, Kind
from scheduler.domain.protocol import Protocol

# The topics as they were before the domain was split (issue 10): stored events name these, so they never change.
TOPICS = {
    "Created": "kact.course:Opened.v1",
    "ScreeningRecorded": "kact.course:ScreeningRecorded.v1",
    "SessionBooked": "kact.course:SessionBooked.v1",
    "SessionRescheduled": "kact.course:SessionRescheduled.v1",
    "SessionConfirmed": "kact.course:SessionConfirmed.v1",
    "SessionDeclined": "kact.course:SessionDeclined.v1",
    "SessionCancelled": "kact.course:SessionCancelled.v1",
    "SessionHeld": "kact.course:SessionHeld.v1",
    "SessionMissed": "kact.course:SessionMissed.v1",
    "DoseApprovalRequested": "kact.course:DoseApprovalRequested.v1",
    "DoseApprovalDecided": "kact.course:DoseApprovalDecided.v1",
    "Assessed": "kact.course:Assessed.v1",
    "Prepared": "kact.course:Prepared.v1",
    "Dosed": "kact.course:Dosed.v1",
    "Integrated": "kact.course:Integrated.v1",
    "IntegrationWindowMissed": "kact.course:IntegrationWindowMissed.v1",
    "MissedWindowAcknowledged": "kact.course:MissedWindowAcknowledged.v1",
    "Completed": "kact.course:Completed.v1",
    "Discontinued": "kact.course:Discontinued.v1",
    "AdverseEventReported": "kact.course:AdverseEventReported.v1",
    "DoseApprovalWithdrawn": "kact.course:DoseApprovalWithdrawn.v1",
    "DischargeRecorded": "kact.course:DischargeRecorded.v1",
    "VitalsLimitOverridden": "kact.course:VitalsLimitOverridden.v1",
    "SlotHeld": "kact.course:SlotHeld.v1",
    "HoldReleased": "kact.course:HoldReleased.v1",
    "HoldExpired": "kact.course:HoldExpired.v1",
}
# Topics added since the fixture streams were recorded (the streams cannot use them).
LATER_TOPICS = {"kact.course:AdverseEventReported.v1", "kact.course:DoseApprovalWithdrawn.v1",
                "kact.course:DischargeRecorded.v1", "kact.course:VitalsLimitOverridden.v1",
                "kact.course:SlotHeld.v1", "kact.course:HoldReleased.v1", "kact.course:HoldExpired.v1"}

# The two streams below, recorded with the domain as one module (before the split) and the library's default
# transcodings: one through every command to completion, one discontinued at screening. Together they use every topic.
STREAMS = json.loads((Path(__file__).parent / "fixtures" / "course_streams_v1.json").read_text())


def _completed_course() -> Course:
    course = Course.open(
        course_id=UUID("6f1c2a3e-0000-4000-8000-000000000001"),
        home_clinic_id=HOME,
        model="taking_turns",
        protocol=Protocol(min_integration_sessions=2),
        partners={"a": "ref-a", "b": "ref-b"},
        by=BY,
    )
    end = prepare(course, assess(course))
    # a missed and a cancelled session
    book(course, "extra-1", Kind.PREPARATION, end + timedelta(days=1))
    course.record_missed(session_id="extra-1", reason="no show", now=end + timedelta(days=1, hours=2), by=BY)
    book(course, "extra-2", Kind.PREPARATION, end + timedelta(days=2))
    course.cancel_session(session_id="extra-2", reason="ill", by=BY)
    # a medicine session hosted by a partner clinic: declined, confirmed, moved, confirmed again
    start = end + timedelta(days=5)
    host = HostFacts("partner", has_prescriber=True, is_partner_of_home=True)
    book(course, "m1", Kind.MEDICINE, start, length=timedelta(hours=3), host=host, clinic_id="partner")
    course.confirm_session(
        session_id="m1", clinic_id="partner", decision="declined", reason="full", by="clinic:partner"
    )
    course.confirm_session(session_id="m1", clinic_id="partner", decision="confirmed", by="clinic:partner")
    start += timedelta(days=1)
    course.reschedule_session(session_id="m1", starts_at=start, ends_at=start + timedelta(hours=3), by=BY)
    course.confirm_session(session_id="m1", clinic_id="partner", decision="confirmed", by="clinic:partner")
    approve(course, "m1", "a")
    course.record_held(
        session_id="m1", now=start + timedelta(hours=4), by=BY, **medicine_record(course, "m1", ["a"])
    )
    # the integration window closes unused, is recorded missed and acknowledged; late integration follows
    deadline = course.window_deadline(course.sessions["m1"])
    assert course.record_missed_integration_windows(now=deadline + timedelta(hours=1), by="system") == ["m1"]
    course.acknowledge_missed_window(session_id="m1", reason="couple travelled", by=BY)
    for i in range(2):
        book(course, f"int-{i}", Kind.INTEGRATION, deadline + timedelta(days=i + 1))
        hold(course, f"int-{i}")
    course.complete(by=BY)
    return course


def _discontinued_course() -> Course:
    course = Course.open(
        course_id=UUID("6f1c2a3e-0000-4000-8000-000000000002"),
        home_clinic_id=HOME,
        model="together",
        protocol=Protocol(),
        partners={"a": "ref-a", "b": "ref-b"},
        first_dosed="b",
        by=BY,
    )
    course.record_screening(partner="a", result="ineligible", clinician_id="t-1", notes="bp", by=BY)
    return course


def _record(course: Course) -> dict[str, Any]:
    """A course's new events as the event store keeps them, with the state digest they lead to."""
    mapper = _mapper()
    stored = [mapper.to_stored_event(e) for e in course.collect_events()]
    return {
        "originator_id": str(course.id),
        "events": [[s.originator_version, s.topic, s.state.decode()] for s in stored],
        "digest": _digest(course),
    }


def _mapper() -> Mapper[UUID]:
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return Mapper(transcoder=transcoder)


def _event_classes() -> dict[str, type]:
    return {
        name: cls
        for name, cls in vars(Course).items()
        if isinstance(cls, type) and issubclass(cls, Course.Event) and cls is not Course.Event
    }


def _digest(course: Course) -> dict[str, Any]:
    return {
        "version": course.version,
        "phase": course.phase.value,
        "status": course.status.value,
        "model": course.model.value,
        "protocol": course.protocol.to_dict(),
        "partners": course.partners,
        "first_dosed": course.first_dosed,
        "discontinue_reason": course.discontinue_reason,
        "screenings": course.screenings,
        "sessions": {
            k: [s.kind.value, s.status.value, s.confirmation.value, s.follows, s.starts_at.isoformat(),
                s.finished_at.isoformat()]
            for k, s in course.sessions.items()
        },
        "approvals": {
            k: [a.status.value, a.approved_mg, a.expires_at.isoformat() if a.expires_at else None]
            for k, a in course.approvals.items()
        },
        "milestones": [[m["milestone"], m["session_id"]] for m in course.milestones],
        "missed_windows": {
            k: [w.deadline.isoformat(), w.acknowledged, w.reason] for k, w in course.missed_windows.items()
        },
        "allowed_actions": course.allowed_actions(),
    }


def test_every_event_keeps_its_topic() -> None:
    assert Course.TOPIC == "kact.course:Course"
    assert {name: cls.TOPIC for name, cls in _event_classes().items()} == TOPICS


def test_the_recorded_streams_use_every_topic() -> None:
    recorded = {topic for stream in STREAMS for _, topic, _ in stream["events"]}
    assert recorded == set(TOPICS.values()) - LATER_TOPICS


# Protocol settings added since the fixture was recorded, at their defaults: a course opened before them takes
# the defaults, and a course opened now records them in its opening event.
ADDED_SETTINGS = {"pre_dose_vitals_minutes": 60, "record_tolerance_minutes": 15}


def _without_added_settings(protocol: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in protocol.items() if not (k in ADDED_SETTINGS and v == ADDED_SETTINGS[k])}


def _as_recorded(digest: dict[str, Any]) -> dict[str, Any]:
    return {**digest, "protocol": _without_added_settings(digest["protocol"])}


def test_streams_recorded_before_the_split_load_to_the_same_course() -> None:
    mapper = _mapper()
    for stream in STREAMS:
        originator_id = UUID(stream["originator_id"])
        events = [
            mapper.to_domain_event(StoredEvent(originator_id, version, topic, state.encode()))
            for version, topic, state in stream["events"]
        ]
        course = project_aggregate(None, events)
        assert isinstance(course, Course)
        assert _as_recorded(_digest(course)) == stream["digest"]
        # Stored before they were kept: no trace context, no request id.
        assert all(e.traceparent is None and e.request_id is None for e in events)
        assert {k: course.protocol.to_dict()[k] for k in ADDED_SETTINGS} == ADDED_SETTINGS


# Optional fields added to an event since the fixture was recorded: absent from the streams recorded before, and
# empty (None) when the command leaves them out, so old and new events mean the same.
# `occurred_at`, added to every event, is None where the command gave no clock (as these do).
# `traceparent` and `request_id`, added to every event, are None where the command has no trace and no request.
EVERY_EVENT_ADDED = {"occurred_at", "traceparent", "request_id", "by_clinic"}
ADDED_FIELDS = {"kact.course:SessionMissed.v1": {"clinician_id"},
                "kact.course:SessionRescheduled.v1": {"hours_override"},
                "kact.course:MissedWindowAcknowledged.v1": {"clinician_id"}}
# Fields added with a default that an event stored before them reads as: a command that gives only what was asked
# then records the default, which means the same as its absence.
ADDED_DEFAULTS = {"kact.course:SessionCancelled.v1": {"cancelled_by": "home_clinic", "reason_code": "other"}}


def test_the_same_commands_record_the_same_events() -> None:
    def payloads(stream: dict[str, Any]) -> list[tuple[int, str, dict[str, Any]]]:
        # The timestamp is when the command ran, the only part that differs between runs.
        def fields(state: str) -> dict[str, Any]:
            data = json.loads(state)
            if "protocol" in data:
                data["protocol"] = _without_added_settings(data["protocol"])
            return data

        return [(v, topic, {k: x for k, x in fields(state).items()
                            if k != "timestamp" and not (k in ADDED_FIELDS.get(topic, ()) and x is None)
                            and not (k in ADDED_DEFAULTS.get(topic, {}) and x == ADDED_DEFAULTS[topic][k])
                            and not (k in EVERY_EVENT_ADDED and x is None)})
                for v, topic, state in stream["events"]]

    for recorded, course in zip(STREAMS, (_completed_course(), _discontinued_course()), strict=True):
        now = _record(course)
        assert payloads(now) == payloads(recorded)
        assert _as_recorded(now["digest"]) == recorded["digest"]


def test_loaded_events_store_the_same_payloads_again() -> None:
    mapper = _mapper()
    for stream in STREAMS:
        originator_id = UUID(stream["originator_id"])
        for version, topic, state in stream["events"]:
            event = mapper.to_domain_event(StoredEvent(originator_id, version, topic, state.encode()))
            stored = mapper.to_stored_event(event)
            assert (stored.topic, json.loads(stored.state)) == (topic, json.loads(state))


if __name__ == "__main__":
    # Regenerates the fixture; run only to record a new stream shape on purpose (`python tests/unit/...py`).
    import sys

    json.dump([_record(_completed_course()), _record(_discontinued_course())], sys.stdout, indent=1)
    print()
