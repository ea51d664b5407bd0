"""The CloudEvents 1.0 JSON envelope every public event travels in, and the NATS subject it goes to."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from kact_contracts.events import BY_TYPE, Id, Instant, PublicEvent

SOURCE = "/kact/scheduler"
SCHEMA_BASE = "https://kact.example/contracts/schemas"
# Event ids are derived, not random: the same stored event always gets the same id, so a re-publication
# is a duplicate JetStream drops (`Nats-Msg-Id`) and a consumer's inbox recognises.
EVENT_ID_NAMESPACE = uuid.UUID("6f2f3a8e-4d0c-5b8e-9a57-0c2b1f0e7a11")
# The most an encoded message of any public event or notice can take, its bounded fields at their longest
# (proven by tests/contract/test_event_contracts.py): a sixteenth of NATS's default max_payload (1 MiB).
MAX_MESSAGE_BYTES = 64 * 1024
Short = Annotated[str, msgspec.Meta(max_length=128)]
# The CloudEvents distributed tracing extension: the W3C Trace Context of the command that recorded the event.
Traceparent = Annotated[str, msgspec.Meta(
    pattern="^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$", min_length=55, max_length=55,
    description="W3C traceparent of the command that recorded the event (CloudEvents distributed tracing "
                "extension); absent for events recorded before it was kept, and for notices")]


class FeedItem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One entry of a recipient's feed, and the body of every webhook: `position` numbers the recipient's own
    feed without gaps, so `GET /v1/feed?after=<position>` resumes exactly where a partner stopped."""

    position: int
    recipient: Short  # clinic:<id> | prescriber:<id>
    notice: Short  # why it was sent: booking_request, adverse_event_alert, dose_approval_request, update, ...
    event: CloudEvent


class CloudEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A structured-mode CloudEvents 1.0 JSON message.

    Extension attributes (lower-case per the spec): `courseid` and `streamversion` (the course's event
    stream and the event's version in it, for per-course ordering), `clinicid` (the course's home clinic,
    for routing), `position` (the event's position in the scheduler's whole log) and, when known, `traceparent`
    (the distributed tracing extension: the trace context of the command that recorded the event, which each hop
    leaves as it is; the NATS message's own `traceparent` header names the hop that carried it)."""

    specversion: Literal["1.0"] = "1.0"
    id: Id
    source: Short = SOURCE
    type: Short
    subject: Short
    time: Instant
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: Annotated[str, msgspec.Meta(max_length=256)]
    courseid: Id
    streamversion: int
    clinicid: Id
    position: int
    data: dict[str, Any]
    traceparent: Traceparent | msgspec.UnsetType = msgspec.UNSET  # absent, not null, when unknown

    def decode_data(self) -> PublicEvent:
        """The typed event (raises msgspec.ValidationError if the data does not match its model)."""
        return msgspec.convert(self.data, BY_TYPE[self.type], strict=False)


def event_id(course_id: uuid.UUID, version: int) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{course_id}/{version}"))


def schema_uri(event_type: str) -> str:
    return f"{SCHEMA_BASE}/{event_type}.json"


def envelope(
    event: PublicEvent, *, course_id: uuid.UUID | str, version: int, time: datetime, clinic_id: str, position: int,
    id: str | None = None, traceparent: str | None = None,
) -> CloudEvent:
    """The message for `event`. A course event's id derives from its place in the course's stream; a notice
    passes its own (derived from what it is about, so that it too is the same each time it is made)."""
    return CloudEvent(
        id=id or event_id(uuid.UUID(str(course_id)), version),
        source=event.SOURCE,
        type=event.type_name(),
        subject=f"courses/{course_id}",
        time=time,
        dataschema=schema_uri(event.type_name()),
        courseid=str(course_id),
        streamversion=version,
        clinicid=clinic_id,
        position=position,
        data=msgspec.to_builtins(event),
        traceparent=traceparent if traceparent is not None else msgspec.UNSET,
    )


def encode(message: CloudEvent) -> bytes:
    return msgspec.json.encode(message)


def decode(payload: bytes) -> CloudEvent:
    return msgspec.json.decode(payload, type=CloudEvent)
