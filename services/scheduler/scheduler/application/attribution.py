"""Who recorded a course's event, and what the event says apart from its envelope: the one reading of a stored event
that the API's history (`GET /v1/courses/{id}/events`) and the audit export both show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Not the event's data: where and when it happened, and the trace context and request id of the command that
# recorded it (kept for the operator's diagnosis and the trace, not part of the course's history).
ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic", "by", "occurred_at", "traceparent",
            "request_id", "by_clinic"}
REASONS = ("reason", "note", "hours_override", "not_dosed")  # what a command says of why, by event field
ROLES = ("clinic", "prescriber", "operator")  # any other principal (the deadline watcher, a job) is the system


@dataclass(frozen=True)
class Actor:
    role: str  # clinic | prescriber | operator | system
    id: str
    clinic_id: str | None
    clinician_id: str | None
    request_id: str | None
    trace_id: str | None
    reason: str | None


def event_type(event: Any) -> str:
    """`SessionBooked` for topic `kact.course:SessionBooked.v1`."""
    return str(type(event).TOPIC).split(":", 1)[1].split(".v")[0]


def event_data(event: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(event).items() if k not in ENVELOPE}


def actor_of(event: Any, data: dict[str, Any]) -> Actor:
    """Who recorded `event`, as far as it says: the principal of `by` (`kind:id`), its clinic, the clinician it
    names (a prescriber is its own), the request and trace, the reason it gives."""
    role, _, principal_id = str(event.by).partition(":")
    held = data.get("session") if isinstance(data.get("session"), dict) else data.get("record")
    nested = held if isinstance(held, dict) else {}
    reason = next((str(v) for key in REASONS for v in (data.get(key), nested.get(key)) if v), None)
    clinician = data.get("clinician_id") or nested.get("clinician_id") or (principal_id if role == "prescriber" else None)
    clinic = getattr(event, "by_clinic", None) or (principal_id if role == "clinic" else None)
    traceparent = getattr(event, "traceparent", None)
    trace_id = traceparent.split("-")[1] if traceparent and traceparent.count("-") == 3 else None
    return Actor(role=role if role in ROLES else "system", id=principal_id or str(event.by), clinic_id=clinic,
                 clinician_id=clinician, request_id=getattr(event, "request_id", None), trace_id=trace_id,
                 reason=reason)
