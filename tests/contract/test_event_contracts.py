"""The event contracts: checked-in documents match the models, the mapping is explicit and complete, and
what goes on the bus validates and carries nothing sensitive."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import jsonschema
import msgspec
import pytest
from builders import BY, book, completed_course, hours, open_course
from kact_contracts import events as public
from kact_contracts.documents import CONTRACTS_DIR, documents
from kact_contracts.envelope import CloudEvent, FeedItem, decode, encode, envelope
from scheduler.domain.course import Course
from scheduler.publishing import MAPPING, to_public

DOMAIN_EVENTS = [
    cls for cls in vars(Course).values()
    if isinstance(cls, type) and issubclass(cls, Course.Event) and cls is not Course.Event
]


def schema(event_type: str) -> dict:
    return json.loads((CONTRACTS_DIR / "schemas" / f"{event_type}.json").read_text())


@pytest.mark.parametrize("relative", sorted(documents()))
def test_checked_in_documents_match_the_models(relative: str) -> None:
    path = CONTRACTS_DIR / relative
    assert path.exists() and path.read_text() == documents()[relative], (
        f"contracts/{relative} is stale: run `python -m kact_contracts.documents` and commit the result")


def test_no_stale_schema_files_remain() -> None:
    on_disk = {f"schemas/{p.name}" for p in (CONTRACTS_DIR / "schemas").glob("*.json")}
    assert on_disk == {k for k in documents() if k.startswith("schemas/")}


@pytest.mark.parametrize("relative", sorted(k for k in documents() if k.startswith("schemas/")))
def test_every_schema_is_a_valid_json_schema(relative: str) -> None:
    document = json.loads(documents()[relative])
    jsonschema.validators.validator_for(document).check_schema(document)


def test_asyncapi_has_a_channel_and_message_per_public_event() -> None:
    doc = json.loads((CONTRACTS_DIR / "asyncapi.json").read_text())
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {f"kact.course.{{courseId}}.{cls.NAME}.v{cls.VERSION}" for cls in public.PUBLIC_EVENTS}
    for message in doc["components"]["messages"].values():
        assert (CONTRACTS_DIR / message["payload"]["$ref"]).exists()


def test_every_domain_event_has_an_explicit_entry_in_the_mapping() -> None:
    assert set(MAPPING) == set(DOMAIN_EVENTS)


def test_type_names_are_unique_and_versioned() -> None:
    names = [cls.type_name() for cls in (*public.PUBLIC_EVENTS, *public.NOTICES)]
    assert len(names) == len(set(names))
    assert all(name.rsplit(".", 1)[1] == f"v{cls.VERSION}"
               for name, cls in zip(names, (*public.PUBLIC_EVENTS, *public.NOTICES), strict=True))


def published_messages(course: Course) -> list[CloudEvent]:
    messages = []
    for position, event in enumerate(course.pending_events, start=1):
        mapped = to_public(event, course.home_clinic_id)
        if mapped is not None:
            messages.append(envelope(mapped, course_id=course.id, version=event.originator_version,
                                     time=event.timestamp, clinic_id=course.home_clinic_id, position=position))
    return messages


def test_a_whole_course_maps_to_messages_that_validate_and_round_trip() -> None:
    course = completed_course()
    messages = published_messages(course)
    assert len({m.type for m in messages}) >= 10
    for message in messages:
        document = json.loads(encode(message))
        jsonschema.validators.validator_for(schema(message.type))(schema(message.type)).validate(document)
        assert decode(encode(message)) == message
        assert isinstance(message.decode_data(), public.BY_TYPE[message.type])
    versions = [m.streamversion for m in messages]
    assert versions == sorted(versions) and len({m.id for m in messages}) == len(messages)


def test_a_schema_refuses_a_message_with_extra_or_missing_fields() -> None:
    message = published_messages(completed_course())[0]
    document = json.loads(encode(message))
    validator = jsonschema.validators.validator_for(schema(message.type))(schema(message.type))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**document, "data": {**document["data"], "partners": {"a": "Alice"}}})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({k: v for k, v in document.items() if k != "courseid"})
    with pytest.raises(msgspec.ValidationError):
        decode(json.dumps({**document, "time": "2026-01-01T09:00:00"}).encode())  # no offset


def test_event_ids_are_stable_for_the_same_stored_event() -> None:
    course = completed_course()
    assert [m.id for m in published_messages(course)] == [m.id for m in published_messages(course)]


def test_nothing_sensitive_reaches_a_message() -> None:
    """Minimum necessary: partner references, notes, reasons, doses and vitals stay in the event store."""
    course = completed_course()
    extra = open_course()
    extra.record_screening(partner="a", result="eligible", clinician_id="c1", notes="SECRET-NOTE", by=BY)
    book(extra, "s1", "assessment", hours(24))
    extra.cancel_session(session_id="s1", reason="SECRET-REASON", by=BY)
    extra.discontinue(reason="SECRET-WHY", by=BY)
    stored = repr([e.__dict__ for c in (course, extra) for e in c.pending_events])
    payload = b"".join(encode(m) for c in (course, extra) for m in published_messages(c))
    secrets = ("ref-a", "ref-b", "SECRET-NOTE", "SECRET-REASON", "SECRET-WHY", "'mg'", "systolic", "notes")
    for secret in secrets:
        assert secret in stored, f"the test no longer exercises {secret}"
        assert secret.strip("'").encode() not in payload, secret


def test_feed_item_schema_matches_the_model() -> None:
    item = FeedItem(position=1, recipient="clinic:x", notice="update",
                    event=published_messages(completed_course())[0])
    feed_schema = json.loads(documents()["schemas/feed-item.json"])
    jsonschema.validators.validator_for(feed_schema)(feed_schema).validate(msgspec.to_builtins(item))


def test_notices_fit_the_same_envelope() -> None:
    course = completed_course()
    first = published_messages(course)[0]
    notice = public.IntegrationWindowClosing(session_id="med-1", deadline=first.time + timedelta(days=1))
    message = envelope(notice, course_id=course.id, version=3, time=first.time, clinic_id="home", position=9,
                       id="n-1")
    assert message.source == "/kact/notifier" and message.type == "kact.notice.integration_window.closing.v1"
    jsonschema.validators.validator_for(schema(message.type))(schema(message.type)).validate(
        json.loads(encode(message)))


def test_contracts_directory_is_where_the_generator_writes() -> None:
    assert CONTRACTS_DIR == Path(__file__).resolve().parents[2] / "contracts"
