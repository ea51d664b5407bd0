"""The NATS side of the contract: subject layout, the JetStream stream and the notifier's consumer.

Subjects: `<prefix>.course.<course id>.<event name>.v<version>`, e.g.
`kact.course.0f8e...c1.session.booked.v1`. One stream holds every subject under `<prefix>.course.>`;
events reach it in the order the relay publishes them, which is the event store's order, so a course's
events are in stream-version order on the bus. Filter one course with `<prefix>.course.<id>.>` and one
kind of event with `<prefix>.course.*.session.booked.v1`.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass

from kact_contracts.events import PublicEvent

DEFAULT_PREFIX = "kact"
DEFAULT_STREAM = "KACT_EVENTS"
DEFAULT_CONSUMER = "notifier"


def subject(prefix: str, course_id: uuid.UUID | str, event: type[PublicEvent] | PublicEvent) -> str:
    return f"{prefix}.course.{course_id}.{event.NAME}.v{event.VERSION}"


def all_subjects(prefix: str) -> str:
    return f"{prefix}.course.>"


@dataclass(frozen=True)
class StreamSettings:
    """The stream as the relay creates or updates it at start (idempotent)."""

    name: str = DEFAULT_STREAM
    prefix: str = DEFAULT_PREFIX
    storage: str = "file"  # with the server's `sync_interval: always`, an acked message is on disk
    retention: str = "limits"
    duplicate_window_seconds: float = 600.0  # re-publications within this window are dropped (Nats-Msg-Id)
    max_age_seconds: float = 0.0  # 0: kept until removed; the event store remains the record
    num_replicas: int = 1
    max_msg_size: int = -1  # -1: no limit of the stream's own (the server's max_payload still applies)

    @property
    def subjects(self) -> list[str]:
        return [all_subjects(self.prefix)]

    def document(self) -> dict[str, object]:
        return {**asdict(self), "subjects": self.subjects}


@dataclass(frozen=True)
class ConsumerSettings:
    """The notifier's durable pull consumer."""

    durable_name: str = DEFAULT_CONSUMER
    deliver_policy: str = "all"
    ack_policy: str = "explicit"
    ack_wait_seconds: float = 30.0
    max_deliver: int = 6  # then the notifier records the message as a dead letter
    backoff_seconds: tuple[float, ...] = (1.0, 5.0, 15.0, 30.0, 60.0)
    max_ack_pending: int = 1000

    def document(self) -> dict[str, object]:
        return {**asdict(self), "backoff_seconds": list(self.backoff_seconds)}
