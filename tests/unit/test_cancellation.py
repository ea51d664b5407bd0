"""A cancellation says on whose behalf and why (closed sets a clinic can count); its note stays in the course."""

from __future__ import annotations

import json
import typing
from uuid import UUID

import pytest
from builders import BY, book, hours, open_course
from eventsourcing.application import project_aggregate
from eventsourcing.persistence import StoredEvent
from kact_contracts import events as ev
from kact_contracts.envelope import decode, encode, envelope
from notifier.flows import CourseFacts, Policy, SessionFacts, clinic, decide
from scheduler.domain.course import CancelledBy, CancelReason, Course, SessionStatus
from scheduler.domain.errors import InvalidCommandError
from scheduler.http.schemas import CancelledByCode, CancelReasonCode
from scheduler.http.views import course_view
from scheduler.publishing import to_public
from test_course_topics import STREAMS, _mapper


def booked_course() -> Course:
    course = open_course()
    course.record_screening(partner="a", result="eligible", clinician_id="t-1", by=BY)
    book(course, "s1", "assessment", hours(24))
    return course


def test_the_classification_and_the_note_are_stored_and_shown() -> None:
    course = booked_course()
    course.cancel_session(session_id="s1", cancelled_by="partner_b", reason_code="illness", note="flu", by=BY)
    event = course.pending_events[-1]
    assert isinstance(event, Course.SessionCancelled)
    assert (event.cancelled_by, event.reason_code, event.reason) == ("partner_b", "illness", "flu")
    session = course.sessions["s1"]
    assert session.status is SessionStatus.CANCELLED
    assert session.cancellation is not None
    assert (session.cancellation.cancelled_by, session.cancellation.reason_code) == (
        CancelledBy.PARTNER_B, CancelReason.ILLNESS)
    view = {s.id: s for s in course_view(course).sessions}["s1"]
    assert view.cancellation is not None
    assert (view.cancellation.cancelled_by, view.cancellation.reason_code, view.cancellation.note) == (
        "partner_b", "illness", "flu")
    # replayed from its events, the course shows the same
    replayed = project_aggregate(None, course.collect_events())
    assert replayed.sessions["s1"].cancellation == session.cancellation


def test_a_code_other_than_other_needs_no_note() -> None:
    course = booked_course()
    course.cancel_session(session_id="s1", cancelled_by="host_clinic", reason_code="host_unavailable", by=BY)
    assert course.sessions["s1"].cancellation.note == ""


@pytest.mark.parametrize("note", ["", "   "])
def test_other_needs_a_note(note: str) -> None:
    course = booked_course()
    with pytest.raises(InvalidCommandError, match="'other' says why in its note"):
        course.cancel_session(session_id="s1", cancelled_by="couple", reason_code="other", note=note, by=BY)
    assert course.sessions["s1"].status is SessionStatus.BOOKED


def test_unknown_codes_are_refused_naming_the_allowed_values() -> None:
    course = booked_course()
    with pytest.raises(InvalidCommandError) as refused:
        course.cancel_session(session_id="s1", cancelled_by="neighbour", reason_code="bored", note="x", by=BY)
    problems = refused.value.problems
    assert any("cancelled_by must be one of" in p and "'host_clinic'" in p for p in problems)
    assert any("reason_code must be one of" in p and "'weather_or_travel'" in p for p in problems)


def test_the_older_reason_is_the_note_for_the_home_clinic_and_other() -> None:
    course = booked_course()
    course.cancel_session(session_id="s1", reason="couple asked to postpone", by=BY)
    cancellation = course.sessions["s1"].cancellation
    assert (cancellation.cancelled_by, cancellation.reason_code, cancellation.note) == (
        CancelledBy.HOME_CLINIC, CancelReason.OTHER, "couple asked to postpone")
    with pytest.raises(InvalidCommandError, match="not both"):
        booked = booked_course()
        booked.cancel_session(session_id="s1", reason="a", note="b", reason_code="illness", by=BY)


def test_an_event_stored_before_the_classification_loads_with_the_defaults() -> None:
    mapper = _mapper()
    stream = STREAMS[0]
    recorded = [(v, t, state) for v, t, state in stream["events"] if t == "kact.course:SessionCancelled.v1"]
    assert recorded and all("cancelled_by" not in json.loads(state) for _, _, state in recorded)
    events = [mapper.to_domain_event(StoredEvent(UUID(stream["originator_id"]), v, t, state.encode()))
              for v, t, state in stream["events"]]
    course = project_aggregate(None, events)
    cancelled = [s for s in course.sessions.values() if s.status is SessionStatus.CANCELLED]
    assert [s.cancellation for s in cancelled] == [
        type(cancelled[0].cancellation)(CancelledBy.HOME_CLINIC, CancelReason.OTHER, "ill")]
    old = next(e for e in events if isinstance(e, Course.SessionCancelled))
    public = to_public(old, course.home_clinic_id)
    assert public == ev.SessionCancelledV2(session_id=old.session_id, cancelled_by="home_clinic", reason_code="other")


def test_the_closed_sets_are_the_same_in_the_domain_the_api_and_the_contract() -> None:
    by, why = [c.value for c in CancelledBy], [c.value for c in CancelReason]
    assert list(typing.get_args(CancelledByCode)) == list(typing.get_args(ev.CancelledBy)) == by
    assert list(typing.get_args(CancelReasonCode)) == list(typing.get_args(ev.CancelReason)) == why


def test_the_public_event_carries_the_classification_not_the_note() -> None:
    course = booked_course()
    course.cancel_session(session_id="s1", cancelled_by="clinician", reason_code="other", note="SECRET-NOTE", by=BY)
    event = course.pending_events[-1]
    public = to_public(event, course.home_clinic_id)
    assert public == ev.SessionCancelledV2(session_id="s1", cancelled_by="clinician", reason_code="other")
    message = envelope(public, course_id=course.id, version=event.originator_version, time=event.timestamp,
                       clinic_id=course.home_clinic_id, position=1)
    payload = encode(message)
    assert message.type == "kact.course.session.cancelled.v2"
    assert b"SECRET-NOTE" not in payload
    assert decode(payload).decode_data() == public


def test_the_notifier_tells_the_home_and_the_hosting_clinic_of_either_version() -> None:
    facts = CourseFacts(home_clinic_id="home", sessions={"med-1": SessionFacts("partner", "medicine")})
    for event in (ev.SessionCancelled(session_id="med-1"),
                  ev.SessionCancelledV2(session_id="med-1", cancelled_by="host_clinic", reason_code="host_unavailable")):
        out = decide(event, "c-1", facts, Policy())
        assert {(m.recipient, m.notice) for m in out.messages} == {
            (clinic("home"), "update"), (clinic("partner"), "update")}


def test_a_value_outside_a_closed_set_is_answered_with_the_values_allowed() -> None:
    from scheduler.http.problems import allowed_value_errors
    from scheduler.http.schemas import SessionCancel, SessionRecord

    [error] = allowed_value_errors("Invalid enum value 'bored' - at `$.reason_code`", SessionCancel)
    assert sorted(error["allowed"]) == sorted(c.value for c in CancelReason)
    assert error["message"].startswith("reason_code must be one of") and "weather_or_travel" in error["message"]
    [nested] = allowed_value_errors("Invalid enum value 'c' - at `$.doses[0].partner`", SessionRecord)
    assert sorted(nested["allowed"]) == ["a", "b"]
    assert allowed_value_errors("Expected `str`, got `int` - at `$.note`", SessionCancel) == []
