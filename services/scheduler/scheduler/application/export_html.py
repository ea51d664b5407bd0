"""A course's history as one HTML page a human auditor reads: the course, its sessions as they stand, and every
event in order, each with who recorded it, when it was recorded and when it happened, what it says in a sentence,
its data in full and its link in the hash chain. Written with Jinja2, everything escaped (a clinic's note is text,
never markup)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.application import project_aggregate
from jinja2 import Environment, StrictUndefined

from scheduler.application.attribution import actor_of, event_data, event_type
from scheduler.domain.course import Course

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Course {{ course_id }}: audit timeline</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem; color: #1d1d1f; }
table { border-collapse: collapse; width: 100%; margin-bottom: 2rem; }
th, td { border: 1px solid #d0d0d5; padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { background: #f2f2f5; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; }
pre { white-space: pre-wrap; word-break: break-word; margin: .3rem 0 0; font-size: 12px; }
.muted { color: #6e6e73; }
code { font-size: 12px; }
</style>
</head>
<body>
<h1>Course audit timeline</h1>
<dl>
<dt>Course</dt><dd><code>{{ course_id }}</code></dd>
<dt>Home clinic</dt><dd><code>{{ course.home_clinic_id }}</code></dd>
<dt>Model</dt><dd>{{ course.model.value }}</dd>
<dt>Partners</dt><dd>{% for p, ref in partners %}{{ p }}: <code>{{ ref }}</code>{% if not loop.last %}, {% endif %}{% endfor %}
 <span class="muted">(the home clinic's pseudonymous references)</span></dd>
<dt>Status</dt><dd>{{ course.status.value }} (phase {{ course.phase.value }})</dd>
<dt>Events</dt><dd>{{ rows|length }} (versions 1 to {{ rows|length }})</dd>
<dt>Hash chain</dt><dd>{% if linked %}{{ linked }} of {{ rows|length }} events linked{% else %}not linked in this export{% endif %}</dd>
<dt>Exported</dt><dd>{{ generated_at }}</dd>
</dl>

<h2>Sessions</h2>
<table>
<thead><tr><th>Session</th><th>Kind</th><th>Status</th><th>Partners</th><th>Booked (UTC)</th><th>Host clinic</th><th>Room</th><th>Clinicians</th></tr></thead>
<tbody>
{% for s in sessions %}
<tr><td><code>{{ s.id }}</code></td><td>{{ s.kind.value }}</td><td>{{ s.status.value }}{% if s.confirmation.value not in ("not_needed", "confirmed") %} (host: {{ s.confirmation.value }}){% endif %}</td>
<td>{{ s.partners|join(", ") }}</td><td>{{ when(s.starts_at) }} to {{ when(s.ends_at) }}</td>
<td><code>{{ s.clinic_id }}</code></td><td>{% if s.room_id %}<code>{{ s.room_id }}</code>{% else %}<span class="muted">none</span>{% endif %}</td>
<td>{% for c in s.clinician_ids %}<code>{{ c }}</code>{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>
{% else %}
<tr><td colspan="8" class="muted">No session was booked.</td></tr>
{% endfor %}
</tbody>
</table>

<h2>Events</h2>
<table>
<thead><tr><th>#</th><th>Recorded (UTC)</th><th>Happened (UTC)</th><th>Event</th><th>Recorded by</th><th>What</th><th>Chain</th></tr></thead>
<tbody>
{% for row in rows %}
<tr id="v{{ row.version }}">
<td>{{ row.version }}</td>
<td>{{ when(row.time) }}</td>
<td>{% if row.occurred_at %}{{ when(row.occurred_at) }}{% else %}<span class="muted">not kept</span>{% endif %}</td>
<td>{{ row.type }}<br><span class="muted">{{ row.topic }}</span></td>
<td>{{ row.actor.role }} <code>{{ row.actor.id }}</code>
{% if row.actor.clinic_id and row.actor.clinic_id != row.actor.id %}<br>clinic <code>{{ row.actor.clinic_id }}</code>{% endif %}
{% if row.actor.clinician_id %}<br>clinician <code>{{ row.actor.clinician_id }}</code>{% endif %}
{% if row.actor.request_id %}<br>request <code>{{ row.actor.request_id }}</code>{% endif %}
{% if row.actor.trace_id %}<br>trace <code>{{ row.actor.trace_id }}</code>{% endif %}
{% if row.actor.reason %}<br>reason: {{ row.actor.reason }}{% endif %}</td>
<td>{{ row.summary }}<details><summary>data</summary><pre>{{ row.data }}</pre></details></td>
<td>{% if row.chain is not none %}<pre>{{ row.chain }}</pre>{% else %}<span class="muted">none</span>{% endif %}</td>
</tr>
{% endfor %}
</tbody>
</table>
</body>
</html>
"""

_ENVIRONMENT = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_PAGE = _ENVIRONMENT.from_string(TEMPLATE)


def html_timeline(course_id: UUID, events: list[Any], links: Mapping[int, Any], generated_at: datetime) -> str:
    course = project_aggregate(None, events)
    assert isinstance(course, Course)
    rows = []
    for event in events:
        data = event_data(event)
        link = links.get(event.originator_version)
        rows.append({
            "version": event.originator_version, "type": event_type(event), "topic": type(event).TOPIC,
            "time": event.timestamp, "occurred_at": event.occurred_at, "actor": actor_of(event, data),
            "summary": summary(event_type(event), data), "data": _json(data),
            "chain": None if link is None else link if isinstance(link, str) else _json(link),
        })
    return _PAGE.render(
        course_id=course_id, course=course, partners=sorted(course.partners.items()),
        sessions=sorted(course.sessions.values(), key=lambda s: (s.starts_at, s.id)), rows=rows,
        linked=sum(1 for row in rows if row["chain"] is not None), generated_at=when(generated_at), when=when)


def when(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _json(value: Any) -> str:
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()


def _session(s: dict[str, Any]) -> str:
    room = f", room {s['room_id']}" if s.get("room_id") else ""
    return (f"{s['kind']} session {s['id']} for {', '.join(s['partners'])}, {when(s['starts_at'])} to "
            f"{when(s['ends_at'])}, at clinic {s['clinic_id']}{room}")


def _held(d: dict[str, Any]) -> str:
    record = d["record"]
    parts = [f"Session {d['session_id']} held"]
    doses = record.get("doses") or []
    if doses:
        parts.append("doses: " + ", ".join(f"partner {x['partner']} {x['mg']:g} mg at {when(x['at'])}" for x in doses))
    if record.get("vitals"):
        parts.append(f"{len(record['vitals'])} vitals readings")
    if record.get("adverse_events"):
        parts.append(f"{len(record['adverse_events'])} adverse events")
    if record.get("discharged_at"):
        parts.append(f"discharged {when(record['discharged_at'])}")
    if record.get("monitoring") == "continues":
        parts.append("monitoring continues")
    if record.get("not_dosed"):
        parts.append("not dosed")
    return "; ".join(parts)


def _decided(d: dict[str, Any]) -> str:
    text = f"Dose approval {d['approval_id']} {d['decision']}"
    if d.get("approved_mg") is not None:
        text += f": {d['approved_mg']:g} mg"
    if d.get("expires_at") is not None:
        text += f", valid until {when(d['expires_at'])}"
    return text


SUMMARIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "Opened": lambda d: f"Course opened ({d['model']}) by home clinic {d['home_clinic_id']}",
    "ScreeningRecorded": lambda d: f"Partner {d['partner']} screened {d['result']} by clinician {d['clinician_id']}",
    "SessionBooked": lambda d: "Booked: " + _session(d["session"]),
    "SlotHeld": lambda d: f"Slot held until {when(d['hold']['expires_at'])}: " + _session(d["hold"]),
    "HoldReleased": lambda d: f"Hold {d['hold_id']} {d['outcome']}"
                              + (f" as session {d['session_id']}" if d.get("session_id") else ""),
    "HoldExpired": lambda d: f"Hold {d['hold_id']} expired at {when(d['expired_at'])}",
    "SessionRescheduled": lambda d: f"Session {d['session_id']} moved to {when(d['starts_at'])} to "
                                    f"{when(d['ends_at'])}",
    "SessionConfirmed": lambda d: f"Session {d['session_id']} confirmed by its host clinic {d['clinic_id']}",
    "SessionDeclined": lambda d: f"Session {d['session_id']} declined by its host clinic {d['clinic_id']}",
    "SessionCancelled": lambda d: f"Session {d['session_id']} cancelled on behalf of {d['cancelled_by']} "
                                  f"({d['reason_code']})",
    "SessionHeld": _held,
    "SessionMissed": lambda d: f"Session {d['session_id']} missed",
    "DoseApprovalRequested": lambda d: f"Dose approval {d['approval_id']} requested of prescriber "
                                       f"{d['prescriber_id']}: partner {d['partner']}, {d['requested_mg']:g} mg at "
                                       f"session {d['session_id']}",
    "DoseApprovalWithdrawn": lambda d: f"Dose approval {d['approval_id']} withdrawn",
    "DoseApprovalDecided": _decided,
    "VitalsLimitOverridden": lambda d: f"Vitals limit lifted for approval {d['approval_id']}, the reading at "
                                       f"{when(d['reading_at'])}: up to {d['ceiling']['systolic']}/"
                                       f"{d['ceiling']['diastolic']} mmHg",
    "Assessed": lambda d: "Milestone: assessed",
    "Prepared": lambda d: "Milestone: prepared",
    "Dosed": lambda d: f"Milestone: session {d['session_id']} dosed; its integration window closes "
                       f"{when(d['integration_deadline'])}",
    "Integrated": lambda d: f"Milestone: session {d['session_id']} integrated",
    "IntegrationWindowMissed": lambda d: f"The integration window of session {d['session_id']} closed "
                                         f"{when(d['deadline'])} without an integration session",
    "MissedWindowAcknowledged": lambda d: f"The missed integration window of session {d['session_id']} "
                                          "acknowledged",
    "AdverseEventReported": lambda d: f"Adverse event ({d['severity']}) of partner {d['partner']} in session "
                                      f"{d['session_id']} at {when(d['at'])}: {d['kind']}",
    "DischargeRecorded": lambda d: f"Session {d['session_id']}: discharged {when(d['discharged_at'])}, "
                                   f"{len(d['vitals'])} more vitals readings",
    "Completed": lambda d: "Course completed",
    "Discontinued": lambda d: "Course discontinued",
}


def summary(kind: str, data: dict[str, Any]) -> str:
    """The event in a sentence (its data in full is beside it); an event of a kind not described here has none."""
    describe = SUMMARIES.get(kind)
    return describe(data) if describe is not None else ""
