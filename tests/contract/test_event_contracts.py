"""The event contracts: checked-in documents match the models, the mapping is explicit and complete, and
what goes on the bus validates and carries nothing sensitive."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest
from builders import BY, book, completed_course, hours, open_course
from kact_contracts import events as public
from kact_contracts.documents import CONTRACTS_DIR, documents
from kact_contracts.envelope import MAX_MESSAGE_BYTES, CloudEvent, FeedItem, decode, encode, envelope
from kact_contracts.events import MAX_TIMEZONE_LENGTH
from scheduler.domain.course import Course
from scheduler.publishing import MAPPING, to_public

NATS_DEFAULT_MAX_PAYLOAD = 1024 * 1024
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


FIXED_FORM = {"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}


def longest(t: msgspec.inspect.Type, path: str) -> Any:
    """The value of type `t` that encodes longest: every string at its maximum length in characters JSON escapes
    to six bytes each (`\\u0001`), every list at its maximum length. Fails on an unbounded string or list."""
    match t:
        case msgspec.inspect.Metadata():
            return longest(t.type, path)
        case msgspec.inspect.StrType() if t.pattern is not None:
            # A string of a fixed form (the traceparent): of one length, so any valid one is the longest.
            assert t.max_length is not None and t.max_length == t.min_length, f"{path}: a pattern of no fixed length"
            return FIXED_FORM[t.pattern]
        case msgspec.inspect.StrType():
            assert t.max_length is not None, f"{path}: a string without max_length"
            return "\x01" * t.max_length
        case msgspec.inspect.ListType():
            assert t.max_length is not None, f"{path}: a list without max_length"
            return [longest(t.item_type, f"{path}[]")] * t.max_length
        case msgspec.inspect.LiteralType():
            return max(t.values, key=lambda v: len(msgspec.json.encode(v)))
        case msgspec.inspect.DateTimeType():
            return datetime.max.replace(tzinfo=timezone(-timedelta(hours=23, minutes=59)))
        case msgspec.inspect.BoolType():
            return False
        case msgspec.inspect.IntType():
            return -(2**63)
        case msgspec.inspect.NoneType():
            return None
        case msgspec.inspect.UnionType():
            return max((longest(member, path) for member in t.types), key=lambda v: len(msgspec.json.encode(v)))
        case msgspec.inspect.DictType() if path == "CloudEvent.data":
            return {}  # bounded by the event's own type
        case msgspec.inspect.StructType():
            return {f.encode_name: longest(f.type, f"{path}.{f.name}") for f in t.fields}
    raise AssertionError(f"{path}: no bound known for {t!r}")


def longest_message(cls: type[public.PublicEvent]) -> CloudEvent:
    """The longest valid message of an event type (converted, so every constraint of the contract holds)."""
    data = msgspec.to_builtins(msgspec.convert(longest(msgspec.inspect.type_info(cls), cls.__name__), cls))
    envelope_type = msgspec.inspect.type_info(CloudEvent)
    fields = {f.encode_name: longest(f.type, f"CloudEvent.{f.name}") for f in envelope_type.fields}
    return msgspec.convert({**fields, "type": cls.type_name(), "data": data}, CloudEvent)


@pytest.mark.parametrize("cls", [*public.PUBLIC_EVENTS, *public.NOTICES], ids=lambda cls: cls.type_name())
def test_every_message_has_a_bound_far_below_the_bus_limit(cls: type[public.PublicEvent]) -> None:
    message = longest_message(cls)
    assert isinstance(message.decode_data(), cls)  # the longest instance is one the consumer accepts
    size = len(encode(message))
    assert size <= MAX_MESSAGE_BYTES, f"{cls.type_name()}: {size} bytes at most, over {MAX_MESSAGE_BYTES}"
    assert MAX_MESSAGE_BYTES * 8 <= NATS_DEFAULT_MAX_PAYLOAD


def test_a_string_over_its_bound_is_refused_by_the_contract() -> None:
    messages = published_messages(completed_course())
    document = json.loads(encode(messages[0]))
    booked = next(m for m in messages if m.type == public.SessionBooked.type_name())
    too_long = {**json.loads(encode(booked)), "data": {**booked.data, "timezone": "x" * (MAX_TIMEZONE_LENGTH + 1)}}
    with pytest.raises(msgspec.ValidationError, match="timezone"):
        decode(json.dumps(too_long).encode()).decode_data()
    validator = jsonschema.validators.validator_for(schema(booked.type))(schema(booked.type))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(too_long)
    with pytest.raises(msgspec.ValidationError, match="courseid"):
        decode(json.dumps({**document, "courseid": "c" * 65}).encode())


def test_a_classified_cancellation_validates_as_v2_and_would_break_a_v1_consumer() -> None:
    """Why session.cancelled is a new version: v1's schema and model refuse the added fields."""
    course = open_course()
    course.record_screening(partner="a", result="eligible", clinician_id="c1", by=BY)
    book(course, "s1", "assessment", hours(24))
    course.cancel_session(session_id="s1", cancelled_by="partner_a", reason_code="weather_or_travel",
                          note="SECRET-NOTE", by=BY)
    [message] = [m for m in published_messages(course) if m.type.startswith("kact.course.session.cancelled")]
    document = json.loads(encode(message))
    assert message.type == "kact.course.session.cancelled.v2" and b"SECRET-NOTE" not in encode(message)
    assert document["data"] == {"session_id": "s1", "cancelled_by": "partner_a", "reason_code": "weather_or_travel"}
    v2 = schema("kact.course.session.cancelled.v2")
    jsonschema.validators.validator_for(v2)(v2).validate(document)
    with pytest.raises(jsonschema.ValidationError):  # a code outside the closed set
        jsonschema.validators.validator_for(v2)(v2).validate(
            {**document, "data": {**document["data"], "reason_code": "bored"}})
    v1 = schema("kact.course.session.cancelled.v1")
    as_v1 = {**document, "type": "kact.course.session.cancelled.v1", "dataschema": v1["$id"]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validators.validator_for(v1)(v1).validate(as_v1)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(document["data"], public.SessionCancelled)
    # a v1 message already on the stream still decodes
    old = envelope(public.SessionCancelled(session_id="s1"), course_id=course.id, version=3, time=message.time,
                   clinic_id="home", position=1)
    assert decode(encode(old)).decode_data() == public.SessionCancelled(session_id="s1")
