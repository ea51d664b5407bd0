"""Examples shown in the OpenAPI document: request bodies (each a valid request) and, per operation, its success
response. Both tell one story: a clinic, its staff and rooms, and one couple's course through its first medicine
session; each response is what the API answers to the request example of its operation (a contract test checks
every one against its schema)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from kact_contracts import events
from kact_contracts.bus import DEFAULT_PREFIX, subject
from kact_contracts.envelope import envelope, event_id
from litestar.openapi.spec import Example
from litestar.params import Body

from scheduler.domain.protocol import Protocol
from scheduler.http.problem_types import PROBLEM_TYPES, index_page, page
from scheduler.http.rules import page as rules_page

CLINIC = "6a1f7a58-5a43-4c55-9a0e-3c1f0c6c2d10"  # the home clinic
THERAPIST = "0d4f3b5e-8f3c-4b7a-9d5e-1a2b3c4d5e6f"
PRESCRIBER = "9b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e"
ROOM = "b4c3d2e1-0f9e-4d8c-8b7a-6f5e4d3c2b1a"
PARTNER_CLINIC = "3e8d1c2b-7a6f-4e5d-9c4b-2a1f0e9d8c7b"  # hosts a medicine session for the home clinic
PARTNER_ROOM = "47a5c3e1-9b8d-4f6e-a2c4-e6f8a0b2c4d6"
PARTNER_THERAPIST = "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b"
COURSE = "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"
ASSESSMENT = "a3c1e5f7-2b4d-4e6f-8a0c-1e3f5a7b9c2d"
PREPARATION = ["c2d4e6f8-1a3b-4c5d-9e7f-2b4d6f8a0c1e", "d3e5f7a9-2b4c-4d6e-8f0a-3c5e7a9b1d2f",
               "e4f6a8b0-3c5d-4e7f-9a1b-4d6f8b0c2e3a", "f5a7b9c1-4d6e-4f8a-8b2c-5e7a9c1d3f4b"]
MEDICINE = "8f7e6d5c-4b3a-4c2d-9e1f-0a9b8c7d6e5f"
INTEGRATION = ["2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a", "3e4f5a6b-7c8d-4e9f-8a1b-2c3d4e5f6a7b",
               "4f5a6b7c-8d9e-4f0a-9b2c-3d4e5f6a7b8c", "5a6b7c8d-9e0f-4a1b-8c3d-4e5f6a7b8c9d"]
HOSTED = "6b7c8d9e-0f1a-4b2c-9d4e-5f6a7b8c9d0e"  # the second medicine session, at the partner clinic
APPROVAL = f"apr_{UUID(COURSE).hex}_3f0c2a9e1b2c"
CLOSURE = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
WEBHOOK = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"
PRESCRIBER_WEBHOOK = "d2e3f4a5-b6c7-4d8e-9f0a-1b2c3d4e5f6a"
DELIVERY = "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f"
KEYS = ["1f2e3d4c-5b6a-4978-8a6b-5c4d3e2f1a0b", "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d",
        "3b4c5d6e-7f8a-4b9c-8d1e-2f3a4b5c6d7e", "4c5d6e7f-8a9b-4c0d-9e2f-3a4b5c6d7e8f"]
CLINIC_KEY = "kact_clinic_Vq3xT0pLw9mZr2sKd7YbN4cHf1gJe6uA8oQiXtEyW5n"  # secrets, as they look (never real)
PRESCRIBER_KEY = "kact_rx_Hs8Kd2LmQ7wPz4xTn9cVb1rYg6jFu3eAo5iWk0NtZqE"
NEXT_PRESCRIBER_KEY = "kact_rx_p4Nw7Qz1Kx8Bv3Mc6Ld9Fs2Hj5Tg0Ry4Ue7Ia1Ob3Zk"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw3lXj8UVDHxo="
OPERATOR = "operator:root"
BY_CLINIC = f"clinic:{CLINIC}"
BY_PRESCRIBER = f"prescriber:{PRESCRIBER}"

EXAMPLES: dict[str, dict[str, Any]] = {
    "ClinicCreate": {"name": "Harbour Couples Therapy", "timezone": "Europe/Berlin"},
    "ClinicianCreate": {"name": "Dr. Mara Lind", "role": "prescriber"},
    "RoomCreate": {"name": "Room 2 (monitored)"},
    "PartnershipCreate": {"partner_clinic_id": PARTNER_CLINIC, "kinds": ["medicine"]},
    "PartnershipEnd": {"reason": "the clinic no longer offers monitored dosing"},
    "HoursSet": {"intervals": [{"weekday": "monday", "opens": "08:00", "closes": "12:30"},
                               {"weekday": "monday", "opens": "13:30", "closes": "18:00"},
                               {"weekday": "tuesday", "opens": "08:00", "closes": "18:00"}]},
    "ClosureCreate": {"starts_on": "2026-12-24", "ends_on": "2026-12-26", "reason": "Christmas"},
    "CourseCreate": {
        "model": "taking_turns",
        "partners": {"a": "couple-4711-a", "b": "couple-4711-b"},
        "protocol": {"min_integration_sessions": 4, "integration_window_hours": 48},
        "first_dosed": "a",
    },
    "ScreeningCreate": {"partner": "a", "result": "eligible", "clinician_id": THERAPIST, "notes": "no contraindications"},
    "SessionCreate": {
        "kind": "medicine", "partners": ["a", "b"], "starts_at": "2026-03-02T09:00:00Z",
        "ends_at": "2026-03-02T12:00:00Z", "clinic_id": CLINIC, "room_id": ROOM, "clinician_ids": [THERAPIST],
    },
    "SessionReschedule": {"starts_at": "2026-03-03T09:00:00Z", "ends_at": "2026-03-03T12:00:00Z"},
    "HoldCreate": {
        "kind": "integration", "starts_at": "2026-03-03T14:00:00Z", "ends_at": "2026-03-03T15:00:00Z",
        "clinician_ids": [THERAPIST], "minutes": 10,
    },
    "PlanRequest": {"medicine_sessions": 2, "medicine_clinic_id": CLINIC, "weekdays": ["monday", "tuesday",
                    "wednesday", "thursday", "friday"], "starts_between": ["09:00", "16:00"], "one_a_day": True},
    "PlanHold": {"items": [{"kind": "integration", "partners": ["a", "b"], "starts_at": "2026-03-03T09:00:00Z",
                            "ends_at": "2026-03-03T10:00:00Z", "clinician_ids": [THERAPIST]}], "minutes": 10},
    "PlanBook": {"hold_ids": ["hold_9f1c2b3a4d5e6f708192a3b4c5d6e7f8"]},
    "BookingRulesSet": {
        "buffers": {"medicine": {"before_minutes": 15, "after_minutes": 45},
                    "integration": {"before_minutes": 0, "after_minutes": 10}},
        "min_notice_minutes": 720, "horizon_days": 180, "clinician_daily_limit": 6, "clinician_weekly_limit": 25,
        "partner_medicine_daily_cap": 2, "hold_minutes": 10, "max_partner_holds": 20,
    },
    "SessionCancel": {"cancelled_by": "partner_b", "reason_code": "illness", "note": "flu, asked to postpone"},
    "SessionRecord": {
        "outcome": "held",
        "clinician_id": THERAPIST,
        "notes": "settled session",
        "doses": [{"partner": "a", "approval_id": APPROVAL, "mg": 100,
                   "at": "2026-03-02T09:10:00Z"}],
        "vitals": [
            {"partner": "a", "stage": "pre", "at": "2026-03-02T09:00:00Z", "systolic": 124, "diastolic": 80,
             "heart_rate": 72, "acceptable": True},
            {"partner": "a", "stage": "post", "at": "2026-03-02T09:50:00Z", "systolic": 138, "diastolic": 86,
             "heart_rate": 84, "acceptable": True},
            {"partner": "a", "stage": "discharge", "at": "2026-03-02T11:15:00Z", "systolic": 126, "diastolic": 82,
             "heart_rate": 74, "acceptable": True},
        ],
        "adverse_events": [{"partner": "a", "at": "2026-03-02T09:30:00Z", "kind": "nausea", "severity": "mild"}],
        "discharged_at": "2026-03-02T11:20:00Z",
    },
    "DoseApprovalCreate": {"session_id": MEDICINE, "partner": "a",
                           "prescriber_id": PRESCRIBER, "requested_mg": 100},
    "DoseApprovalDecision": {"approve": True, "approved_mg": 100, "reason": "screening and vitals fine"},
    "Discontinue": {"reason": "couple chose to stop"},
    "VitalsOverrideIn": {"reading_at": "2026-03-02T09:05:00Z", "systolic": 155, "diastolic": 95,
                         "reason": "white-coat hypertension; home readings 130/85 all week"},
    "DischargeRecord": {"discharged_at": "2026-03-02T12:40:00Z", "clinician_id": PRESCRIBER, "vitals": [
        {"partner": "a", "stage": "discharge", "at": "2026-03-02T12:35:00Z", "systolic": 128, "diastolic": 82,
         "heart_rate": 76, "acceptable": True}]},
    "Withdraw": {"reason": "the medicine session moves to next month"},
    "Acknowledge": {"reason": "integration session moved by illness; therapist called both partners",
                    "clinician_id": THERAPIST},
    "AdverseEventReport": {"partner": "b", "at": "2026-03-02T19:40:00Z", "kind": "dizziness", "severity": "moderate",
                           "note": "called the clinic in the evening", "follow_up": "nurse call the next morning",
                           "clinician_id": PRESCRIBER},
    "SessionConfirm": {"decision": "declined", "reason": "no monitoring nurse available that morning"},
    "ApiKeyCreate": {"label": "booking system, rotated 2026-12"},
    "CalendarFeedCreate": {"label": "Jonas Berg's Google Calendar"},
    "WebhookCreate": {"url": "https://clinic.example/kact-hook",
                      "event_types": ["kact.course.session.booked.v1", "kact.notice.dose_approval.reminder.v1"]},
}


def body(struct: type) -> Any:
    """`struct` as a request body annotated with its example."""
    return Annotated[struct, Body(examples=[Example(summary=f"A {struct.__name__} request",
                                                    value=EXAMPLES[struct.__name__])])]


# ------------------------------------------------------------------------------------------- success responses

HOURS = EXAMPLES["HoursSet"]["intervals"]
PROTOCOL = Protocol(**EXAMPLES["CourseCreate"]["protocol"]).to_dict()  # the settings, with every default filled in
PARTNERS = EXAMPLES["CourseCreate"]["partners"]
BOOKED, RECORD = EXAMPLES["SessionCreate"], EXAMPLES["SessionRecord"]
ZONE = EXAMPLES["ClinicCreate"]["timezone"]


def _offset(instant: str) -> str:
    """An instant as stored in a record or an event's data (ISO 8601 with +00:00)."""
    return instant.replace("Z", "+00:00")


def _session(id: str, kind: str, partners: list[str], starts_at: str, ends_at: str, *, status: str = "held",
             record: dict[str, Any] | None = None, follows: str | None = None, room_id: str | None = None,
             clinic_id: str = CLINIC, confirmation: str = "not_needed") -> dict[str, Any]:
    if status == "held" and record is None:
        record = {"notes": "", "clinician_id": THERAPIST}
    return {"id": id, "kind": kind, "status": status, "partners": partners, "clinic_id": clinic_id,
            "room_id": room_id, "clinician_ids": [THERAPIST], "timezone": ZONE, "follows": follows, "record": record,
            "confirmation": confirmation, "cancellation": None, **_times(starts_at, ends_at)}


def _times(starts_at: str, ends_at: str) -> dict[str, str]:
    """A session's instants, and the same in the clinic's zone (with its offset on that day)."""
    def local(instant: str) -> str:
        return datetime.fromisoformat(instant).astimezone(ZoneInfo(ZONE)).isoformat()

    return {"starts_at": starts_at, "ends_at": ends_at, "starts_at_local": local(starts_at),
            "ends_at_local": local(ends_at)}


def _approval(**changes: Any) -> dict[str, Any]:
    request = EXAMPLES["DoseApprovalCreate"]
    return {"id": APPROVAL, "course_id": COURSE, "session_id": request["session_id"], "partner": request["partner"],
            "prescriber_id": request["prescriber_id"], "requested_mg": float(request["requested_mg"]),
            "status": "pending", "approved_mg": None, "requested_at": "2026-02-24T10:00:00Z", "decided_at": None,
            "expires_at": None, "reason": None, "vitals_override_reason": None, "vitals_overrides": [], **changes}


DECISION = EXAMPLES["DoseApprovalDecision"]
APPROVED = _approval(status="approved", approved_mg=float(DECISION["approved_mg"]), reason=DECISION["reason"],
                     decided_at="2026-02-24T16:00:00Z", expires_at="2026-03-10T16:00:00Z")  # approval_valid_days 14
MEDICINE_RECORD = {
    "notes": RECORD["notes"], "clinician_id": RECORD["clinician_id"],
    "doses": [{**dose, "mg": float(dose["mg"]), "at": _offset(dose["at"])} for dose in RECORD["doses"]],
    "vitals": [{**reading, "at": _offset(reading["at"])} for reading in RECORD["vitals"]],
    "adverse_events": [{**event, "at": _offset(event["at"]), "note": ""} for event in RECORD["adverse_events"]],
    "discharged_at": _offset(RECORD["discharged_at"]),
}
MEDICINE_BOOKED = _session(MEDICINE, "medicine", BOOKED["partners"], BOOKED["starts_at"], BOOKED["ends_at"],
                           status="booked", room_id=ROOM)
MEDICINE_HELD = {**MEDICINE_BOOKED, "status": "held", "record": MEDICINE_RECORD}
HOLD = {"id": "hold_9f1c2b3a4d5e6f708192a3b4c5d6e7f8", **{k: v for k, v in EXAMPLES["HoldCreate"].items()
                                                          if k != "minutes"},
        "partners": ["a", "b"], "clinic_id": CLINIC, "room_id": None, "timezone": ZONE,
        "expires_at": "2026-03-02T12:40:00Z", "starts_at_local": "2026-03-03T15:00:00+01:00",
        "ends_at_local": "2026-03-03T16:00:00+01:00"}
INTEGRATION_HELD_ID = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
RULES_SET = {"rules": EXAMPLES["BookingRulesSet"], "history": [
    {"rules": EXAMPLES["BookingRulesSet"], "at": "2026-01-20T10:05:00Z", "by": BY_CLINIC}]}
# What comes before the medicine session: the assessment and the preparation (one individual session each, two
# joint), all held.
BEFORE_MEDICINE = [
    _session(ASSESSMENT, "assessment", ["a", "b"], "2026-02-03T09:00:00Z", "2026-02-03T10:30:00Z",
             record={"notes": "both partners eligible; goals agreed", "clinician_id": THERAPIST}),
    _session(PREPARATION[0], "preparation", ["a"], "2026-02-09T09:00:00Z", "2026-02-09T10:00:00Z"),
    _session(PREPARATION[1], "preparation", ["b"], "2026-02-10T09:00:00Z", "2026-02-10T10:00:00Z"),
    _session(PREPARATION[2], "preparation", ["a", "b"], "2026-02-16T09:00:00Z", "2026-02-16T10:30:00Z"),
    _session(PREPARATION[3], "preparation", ["a", "b"], "2026-02-23T09:00:00Z", "2026-02-23T10:30:00Z"),
]
INTEGRATIONS = [_session(id, "integration", ["a", "b"], f"2026-03-{day}T15:00:00Z", f"2026-03-{day}T16:30:00Z",
                         follows=MEDICINE) for id, day in zip(INTEGRATION, ("03", "10", "17", "24"))]
MILESTONES = [{"milestone": "assessed", "session_id": None, "at": "2026-02-03T10:45:00Z"},
              {"milestone": "prepared", "session_id": None, "at": "2026-02-23T10:45:00Z"},
              {"milestone": "dosed", "session_id": MEDICINE, "at": "2026-03-02T11:30:00Z"}]
WINDOW_DEADLINE = "2026-03-04T11:20:00Z"  # the discharge plus integration_window_hours (I4)


def _course(**changes: Any) -> dict[str, Any]:
    opened = EXAMPLES["CourseCreate"]
    return {"id": COURSE, "version": 1, "home_clinic_id": CLINIC, "model": opened["model"], "partners": PARTNERS,
            "first_dosed": opened["first_dosed"], "protocol": PROTOCOL, "status": "open", "phase": "assessment",
            "discontinue_reason": None, "screenings": {}, "milestones": [], "sessions": [], "approvals": [],
            "missed_windows": [], "allowed_actions": ["book_session", "discontinue", "record_screening"], **changes}


# After its first medicine session: dosed, the first integration session booked.
COURSE_DOSED = _course(
    version=21, phase="medicine", screenings={"a": "eligible", "b": "eligible"}, milestones=MILESTONES,
    sessions=[*BEFORE_MEDICINE, MEDICINE_HELD, {**INTEGRATIONS[0], "status": "booked", "record": None}],
    approvals=[APPROVED],
    allowed_actions=["book_session", "cancel_session", "discontinue", "record_session", "reschedule_session"])

# The prescriber's feed, as the notifier writes it (and every webhook carries it): the request for a dose approval.
_REQUESTED_AT = datetime(2026, 2, 24, 10, tzinfo=timezone.utc)
FEED_ITEM = {"position": 1, "recipient": BY_PRESCRIBER, "notice": "dose_approval_request",
             "event": msgspec.to_builtins(envelope(
                 events.DoseApprovalRequested(approval_id=APPROVAL, session_id=MEDICINE, partner="a",
                                              prescriber_id=PRESCRIBER, requested_at=_REQUESTED_AT),
                 course_id=COURSE, version=17, time=_REQUESTED_AT, clinic_id=CLINIC, position=18342))}
BOOKED_EVENT_ID = event_id(UUID(COURSE), 16)  # the medicine session's booking, the course's 16th event
BOOKED_MESSAGE = envelope(
    events.SessionBooked(session_id=MEDICINE, kind="medicine", partners=["a", "b"],
                         starts_at=datetime(2026, 3, 2, 9, tzinfo=timezone.utc),
                         ends_at=datetime(2026, 3, 2, 12, tzinfo=timezone.utc), timezone=ZONE, clinic_id=CLINIC,
                         room_id=ROOM, clinician_ids=[THERAPIST], follows=None, needs_confirmation=False),
    course_id=COURSE, version=16, time=datetime(2026, 2, 23, 14, 5, tzinfo=timezone.utc), clinic_id=CLINIC,
    position=18301)

HEALTHY = {"status": "ok", "checks": {"postgres": "ok", "nats": "ok", "course_index": "ok"}}
DELIVERING = {
    "status": "ok",
    "relay": {"status": "ok", "running": True, "position": 18342, "head": 18342, "behind": 0,
              "oldest_waiting_seconds": None, "max_lag_seconds": 60.0},
    "notifier": {"status": "ok", "seconds_since_heartbeat": 2.4, "max_silence_seconds": 60.0},
}
# The body of a 503 from the health checks (not a problem: the same shape as the 200, saying what failed).
UNHEALTHY: dict[str, dict[str, Any]] = {
    "ready": {"status": "unavailable", "checks": {"postgres": "ok", "nats": "error: disconnected",
                                                  "course_index": "ok"}},
    "deliveryHealth": {**DELIVERING, "status": "unavailable",
                       "relay": {**DELIVERING["relay"], "status": "stuck", "running": False, "head": 18390,
                                 "behind": 48, "oldest_waiting_seconds": 312.5}},
}

CLOSURE_ADDED = {"id": CLOSURE, **EXAMPLES["ClosureCreate"], "at": "2026-11-02T08:15:00Z", "by": BY_CLINIC}
HOURS_SET = {"intervals": HOURS, "history": [{"intervals": HOURS, "at": "2026-01-19T07:45:00Z", "by": BY_CLINIC}]}
CONSENTED = {"clinic_id": CLINIC, "change": "consented", "kinds": ["medicine"], "reason": None,
             "at": "2026-02-10T12:00:00Z", "by": BY_CLINIC}
PARTNER_CONSENTED = {**CONSENTED, "clinic_id": PARTNER_CLINIC, "at": "2026-02-11T09:30:00Z",
                     "by": f"clinic:{PARTNER_CLINIC}"}
PARTNERSHIP = {"clinic_id": CLINIC, "partner_clinic_id": PARTNER_CLINIC, "agreed": True, "state": "agreed",
               "kinds": ["medicine"], "own_kinds": ["medicine"], "partner_kinds": ["medicine"],
               "history": [CONSENTED, PARTNER_CONSENTED]}
HOSTED_BOOKED = {"starts_at": "2026-03-16T09:00:00Z", "ends_at": "2026-03-16T12:00:00Z"}
KEY = {"id": KEYS[0], "owner": BY_CLINIC, "label": None, "created_at": "2026-01-12T08:00:00Z", "created_by": OPERATOR,
       "last_used_at": "2026-03-02T11:31:00Z", "revoked_at": None, "revoked_by": None}
ISSUED = {**KEY, "id": KEYS[1], **EXAMPLES["ApiKeyCreate"], "created_at": "2026-12-01T09:00:00Z",
          "created_by": BY_CLINIC, "last_used_at": None}
WEBHOOK_CREATED = {"id": WEBHOOK, "owner": BY_CLINIC, **EXAMPLES["WebhookCreate"],
                   "created_at": "2026-01-12T08:30:00Z", "secret": WEBHOOK_SECRET}
FAILED = {"id": DELIVERY, "webhook_id": WEBHOOK, "recipient": BY_CLINIC, "event_id": BOOKED_EVENT_ID,
          "event_type": BOOKED_MESSAGE.type, "feed_position": 12, "status": "failed", "attempts": 8,
          "next_attempt_at": None, "last_error": "HTTP 503", "created_at": "2026-02-23T14:05:01Z", "delivered_at": None}
DEAD_LETTER = {"id": 3, "subject": subject(DEFAULT_PREFIX, COURSE, events.SessionBooked), "event_id": BOOKED_EVENT_ID,
               "error": "ConnectionDoesNotExistError: connection was closed in the middle of operation",
               "deliveries": 5, "created_at": "2026-02-23T14:05:09Z", "redrive_requested_at": None,
               "redriven_at": None, "payload": msgspec.json.encode(BOOKED_MESSAGE).decode()}

FEEDS = ["8e9f0a1b-2c3d-4e4f-9a5b-6c7d8e9f0a1b", "9f0a1b2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c"]
FEED_TOKEN = "kact_cal_R4nD0mT0k3nXq9Lw2Zp7Vb5Nc8Kd1Jf6Hs3Gt0Ym4Ua"  # as tokens look (never a real one)
CLINICIAN_FEED = {"id": FEEDS[1], "resource": "clinician", "resource_id": THERAPIST, "clinic_id": CLINIC,
                  **EXAMPLES["CalendarFeedCreate"], "created_at": "2026-12-01T09:00:00Z", "created_by": BY_CLINIC,
                  "revoked_at": None, "revoked_by": None}
OLD_FEED = {**CLINICIAN_FEED, "id": FEEDS[0], "label": "front desk tablet", "created_at": "2026-02-02T08:40:00Z",
            "revoked_at": "2026-11-30T17:00:00Z", "revoked_by": BY_CLINIC}
ROOM_FEED = {**CLINICIAN_FEED, "resource": "room", "resource_id": ROOM, "label": "Room 2 display"}
FEED_URL = f"https://kact.example/calendar-feeds/{FEED_TOKEN}/calendar.ics"


def _feed_example() -> str:
    """The therapist's feed on the day of the medicine session: it, and the integration session booked next."""
    from scheduler.application.calendar_feeds import FeedEntry
    from scheduler.http.ics import render

    def at(instant: str) -> datetime:
        return datetime.fromisoformat(_offset(instant))

    sessions = [MEDICINE_HELD, INTEGRATIONS[0]]
    entries = [FeedEntry(session_id=s["id"], course_id=COURSE, kind=s["kind"], starts_at=at(s["starts_at"]),
                         ends_at=at(s["ends_at"]), clinic_id=CLINIC, room_id=s["room_id"], status="confirmed",
                         sequence=0, last_modified=at("2026-02-23T14:05:00Z")) for s in sessions]
    clinic, room = EXAMPLES["ClinicCreate"]["name"], EXAMPLES["RoomCreate"]["name"]
    locations = {MEDICINE: f"{clinic}, {room}", INTEGRATION[0]: clinic}
    return render(f"Jonas Berg ({clinic})", entries, locations, at("2026-03-02T12:00:00Z")).decode()


def _export_history() -> list[Any]:
    """A short course as the event store gives it: opened, its medicine session booked, the dose approved, the session
    held (one dose, three readings): what the export examples render."""
    from scheduler.domain.course import Course

    def at(instant: str) -> datetime:
        return datetime.fromisoformat(_offset(instant))

    course, opened = UUID(COURSE), EXAMPLES["CourseCreate"]
    trace = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "request_id": "0c8f2b1e6a3d4f5e"}
    booked = {"id": MEDICINE, "kind": "medicine", "partners": BOOKED["partners"], "starts_at": at(BOOKED["starts_at"]),
              "ends_at": at(BOOKED["ends_at"]), "clinic_id": CLINIC, "room_id": ROOM, "clinician_ids": [THERAPIST],
              "timezone": ZONE, "follows": None}
    record = {**MEDICINE_RECORD, "doses": [{**d, "at": at(d["at"])} for d in MEDICINE_RECORD["doses"]],
              "vitals": [{**v, "at": at(v["at"])} for v in MEDICINE_RECORD["vitals"]],
              "adverse_events": [{**a, "at": at(a["at"])} for a in MEDICINE_RECORD["adverse_events"]],
              "discharged_at": at(MEDICINE_RECORD["discharged_at"])}
    request, decided = EXAMPLES["DoseApprovalCreate"], APPROVED
    return [
        Course.Created(originator_id=course, originator_version=1, timestamp=at("2026-02-02T08:30:00Z"),
                       originator_topic=Course.TOPIC, by=BY_CLINIC, occurred_at=at("2026-02-02T08:30:00Z"),
                       by_clinic=CLINIC, home_clinic_id=CLINIC, model=opened["model"], protocol=PROTOCOL,
                       partners=PARTNERS, first_dosed=opened["first_dosed"], **trace),
        Course.SessionBooked(originator_id=course, originator_version=2, timestamp=at("2026-02-23T14:05:00Z"),
                             by=BY_CLINIC, occurred_at=at("2026-02-23T14:05:00Z"), by_clinic=CLINIC, session=booked,
                             **trace),
        Course.DoseApprovalRequested(originator_id=course, originator_version=3, timestamp=at(decided["requested_at"]),
                                     by=BY_CLINIC, occurred_at=at(decided["requested_at"]), by_clinic=CLINIC,
                                     approval_id=APPROVAL, session_id=MEDICINE, partner=request["partner"],
                                     prescriber_id=PRESCRIBER, requested_mg=float(request["requested_mg"]),
                                     requested_at=at(decided["requested_at"]), **trace),
        Course.DoseApprovalDecided(originator_id=course, originator_version=4, timestamp=at(decided["decided_at"]),
                                   by=BY_PRESCRIBER, occurred_at=at(decided["decided_at"]), by_clinic=CLINIC,
                                   approval_id=APPROVAL, decision="approved", approved_mg=decided["approved_mg"],
                                   decided_at=at(decided["decided_at"]), expires_at=at(decided["expires_at"]),
                                   reason=decided["reason"], vitals_override_reason=None, **trace),
        Course.SessionHeld(originator_id=course, originator_version=5, timestamp=at("2026-03-02T11:30:00Z"),
                           by=BY_CLINIC, occurred_at=at("2026-03-02T11:30:00Z"), by_clinic=CLINIC,
                           session_id=MEDICINE, record=record, **trace),
    ]


def _export_examples() -> dict[str, Any]:
    """The export of that course in each format, as the API answers it (the FHIR Bundle as JSON)."""
    from scheduler.application.export import MEDIA_TYPES, render

    history, course, exported = _export_history(), UUID(COURSE), datetime(2026, 12, 1, 9, tzinfo=timezone.utc)
    return {MEDIA_TYPES[fmt]: (msgspec.json.decode(export.body) if fmt == "fhir" else export.body.decode())
            for fmt in MEDIA_TYPES for export in [render(fmt, course, history, {}, exported)]}


# operation id: the success response's body for each media type it answers in (one operation, several formats).
MEDIA_RESPONSES: dict[str, dict[str, Any]] = {"exportCourse": _export_examples()}

# operation id: the body of its success response (204s have none).
RESPONSES: dict[str, Any] = {
    "live": {"status": "ok", "checks": {}},
    "ready": HEALTHY,
    "deliveryHealth": DELIVERING,
    "listProblemTypes": index_page(),
    "getRules": rules_page(),
    "getProblemType": page("double-booking", PROBLEM_TYPES["double-booking"]),
    "createClinic": {"id": CLINIC, **EXAMPLES["ClinicCreate"], "api_key": CLINIC_KEY},
    "getClinic": {"id": CLINIC, **EXAMPLES["ClinicCreate"], "opening_hours": HOURS, "closures": [CLOSURE_ADDED]},
    "createClinician": {"id": PRESCRIBER, "clinic_id": CLINIC, **EXAMPLES["ClinicianCreate"],
                        "api_key": PRESCRIBER_KEY},
    "listClinicians": [
        {"id": THERAPIST, "clinic_id": CLINIC, "name": "Jonas Berg", "role": "therapist", "working_hours": HOURS},
        {"id": PRESCRIBER, "clinic_id": CLINIC, **EXAMPLES["ClinicianCreate"], "working_hours": None}],
    "createRoom": {"id": ROOM, "clinic_id": CLINIC, **EXAMPLES["RoomCreate"]},
    "listRooms": [{"id": "5d6e7f8a-9b0c-4d1e-8f2a-3b4c5d6e7f8a", "clinic_id": CLINIC, "name": "Room 1"},
                  {"id": ROOM, "clinic_id": CLINIC, **EXAMPLES["RoomCreate"]}],
    "getOpeningHours": HOURS_SET,
    "setOpeningHours": HOURS_SET,
    "getWorkingHours": {"intervals": HOURS, "history": [{"intervals": HOURS, "at": "2026-01-19T07:50:00Z",
                                                         "by": BY_CLINIC}]},
    "setWorkingHours": {"intervals": HOURS, "history": [{"intervals": HOURS, "at": "2026-01-19T07:50:00Z",
                                                         "by": BY_CLINIC}]},
    "addClosure": CLOSURE_ADDED,
    "listClosures": {"current": [CLOSURE_ADDED], "history": [{**CLOSURE_ADDED, "change": "added"}]},
    "consentToPartnership": {**PARTNERSHIP, "agreed": False, "state": "proposed", "kinds": [],
                             "partner_kinds": None, "history": [CONSENTED]},
    "listPartnerships": [PARTNERSHIP],
    "endPartnership": {**PARTNERSHIP, "agreed": False, "state": "ended", "kinds": [], "own_kinds": None,
                       "partner_kinds": None, "history": [
                           CONSENTED, PARTNER_CONSENTED,
                           {**CONSENTED, "change": "ended", "kinds": [], **EXAMPLES["PartnershipEnd"],
                            "at": "2026-06-30T16:00:00Z"}]},
    "listSharedSessions": [{"course_id": COURSE, "session_id": HOSTED, "home_clinic_id": CLINIC,
                            "host_clinic_id": PARTNER_CLINIC, "kind": "medicine", **HOSTED_BOOKED,
                            "confirmation": "confirmed"}],
    "listHostedSessions": [{"course_id": COURSE, "session_id": HOSTED, "home_clinic_id": CLINIC, "kind": "medicine",
                            **HOSTED_BOOKED, "timezone": ZONE, "status": "booked", "confirmation": "pending",
                            "room_id": PARTNER_ROOM, "clinician_ids": [PARTNER_THERAPIST],
                            "doses": [{"partner": "b", "approval_status": "approved", "approved_mg": 100.0}]}],
    "confirmSession": {"id": HOSTED, "kind": "medicine", "status": "booked", **HOSTED_BOOKED, "timezone": ZONE,
                       "clinic_id": PARTNER_CLINIC, "confirmation": EXAMPLES["SessionConfirm"]["decision"]},
    "listCourses": {"items": [{"id": COURSE, "home_clinic_id": CLINIC, "model": "taking_turns", "status": "open",
                               "phase": "medicine", "opened_at": "2026-02-02T08:30:00Z",
                               "updated_at": "2026-03-02T11:30:00Z", "next_session_at": "2026-03-09T10:00:00Z"}],
                    "next_cursor": "eyJ2IjoxLCJvIjoiMjAyNi0wMi0wMlQwODozMDowMCswMDowMCIsImMiOiI1YzZkN2U4Zi05YTBiLTRjMWQtOGUyZi0zYTRiNWM2ZDdlOGYifQ",
                    "page": 1, "next_page": 2},
    "openCourse": _course(),
    "recordScreening": _course(version=2, screenings={EXAMPLES["ScreeningCreate"]["partner"]: "eligible"}),
    "getCourse": COURSE_DOSED,
    "discontinueCourse": _course(version=4, status="discontinued", phase="discontinued",
                                 discontinue_reason=EXAMPLES["Discontinue"]["reason"],
                                 screenings={"a": "eligible", "b": "eligible"}, allowed_actions=[]),
    # The first integration session was cancelled (illness), the window closed and was recorded missed.
    "acknowledgeMissedWindow": {
        **COURSE_DOSED, "version": 24,
        "sessions": [*COURSE_DOSED["sessions"][:-1], {**INTEGRATIONS[0], "status": "cancelled", "record": None,
                                                       "cancellation": {"cancelled_by": "couple",
                                                                        "reason_code": "illness", "note": ""}}],
        "missed_windows": [{"session_id": MEDICINE, "deadline": WINDOW_DEADLINE, "acknowledged": True,
                            **EXAMPLES["Acknowledge"]}],
        "allowed_actions": ["book_session", "discontinue"]},
    "completeCourse": {
        **COURSE_DOSED, "version": 30, "status": "completed", "phase": "completed",
        "sessions": [*BEFORE_MEDICINE, MEDICINE_HELD, *INTEGRATIONS],
        "milestones": [*MILESTONES, {"milestone": "integrated", "session_id": MEDICINE,
                                     "at": "2026-03-24T16:45:00Z"}],
        "allowed_actions": []},
    "listCourseEvents": [
        {"version": 1, "type": "Opened", "topic": "kact.course:Opened.v1", "time": "2026-02-02T08:30:00Z",
         "occurred_at": "2026-02-02T08:30:00Z", "principal": BY_CLINIC,
         "data": {"home_clinic_id": CLINIC, "model": "taking_turns", "protocol": PROTOCOL, "partners": PARTNERS,
                  "first_dosed": "a"},
         "actor": {"role": "clinic", "id": CLINIC, "clinic_id": CLINIC, "clinician_id": None,
                   "request_id": "0c8f2b1e6a3d4f5e", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "reason": None}},
        {"version": 2, "type": "ScreeningRecorded", "topic": "kact.course:ScreeningRecorded.v1",
         "time": "2026-02-02T09:10:00Z", "occurred_at": "2026-02-02T09:10:00Z", "principal": BY_CLINIC,
         "data": {**EXAMPLES["ScreeningCreate"]},
         "actor": {"role": "clinic", "id": CLINIC, "clinic_id": CLINIC, "clinician_id": THERAPIST,
                   "request_id": "5d2a9c7b1e0f4a38", "trace_id": "0af7651916cd43dd8448eb211c80319c", "reason": None}}],
    "bookSession": MEDICINE_BOOKED,
    "holdSlot": HOLD,
    "releaseHold": HOLD,
    "bookHold": _session(INTEGRATION_HELD_ID, "integration", ["a", "b"], HOLD["starts_at"], HOLD["ends_at"],
                         status="booked", follows=MEDICINE),
    "listFreeSlots": {"clinic_id": CLINIC, "timezone": ZONE, "kind": "integration", "duration_minutes": 60,
                      "slots": [{"starts_at": f"2026-03-03T{h}:00:00+01:00", "ends_at": f"2026-03-03T{h + 1}:00:00+01:00",
                                 "clinician_ids": [THERAPIST], "room_id": None} for h in (10, 11, 14)]},
    "listNextSlots": {"course_id": COURSE, "kind": "integration", "clinic_id": CLINIC, "timezone": ZONE, "slots": [
        {"starts_at": f"2026-03-03T{h}:00:00+01:00", "ends_at": f"2026-03-03T{h + 1}:00:00+01:00",
         "clinic_id": CLINIC, "clinician_ids": [THERAPIST], "room_id": None,
         "checked": ["I1", "I4", "I10", "I11", "opening-hours", "closure", "working-hours", "min-notice",
                     "booking-horizon", "buffers", "clinician-daily-limit", "clinician-weekly-limit"]}
        for h in (10, 11)]},
    "planCourse": {"course_id": COURSE, "timezone": ZONE, "items": [
        {"kind": "medicine", "partners": ["a", "b"], "starts_at": "2026-03-02T10:00:00+01:00",
         "ends_at": "2026-03-02T13:00:00+01:00", "clinic_id": CLINIC, "room_id": ROOM, "clinician_ids": [PRESCRIBER],
         "follows_item": None, "follows": None},
        {"kind": "integration", "partners": ["a", "b"], "starts_at": "2026-03-03T10:00:00+01:00",
         "ends_at": "2026-03-03T11:00:00+01:00", "clinic_id": CLINIC, "room_id": None, "clinician_ids": [THERAPIST],
         "follows_item": 0, "follows": None}]},
    "holdPlan": [{**HOLD, "starts_at": "2026-03-03T09:00:00Z", "ends_at": "2026-03-03T10:00:00Z",
                  "starts_at_local": "2026-03-03T10:00:00+01:00", "ends_at_local": "2026-03-03T11:00:00+01:00"}],
    "bookPlan": [_session(INTEGRATION_HELD_ID, "integration", ["a", "b"], HOLD["starts_at"], HOLD["ends_at"],
                          status="booked", follows=MEDICINE)],
    "getBookingRules": RULES_SET,
    "setBookingRules": RULES_SET,
    "rescheduleSession": {**MEDICINE_BOOKED, **_times(EXAMPLES["SessionReschedule"]["starts_at"],
                                                       EXAMPLES["SessionReschedule"]["ends_at"])},
    "cancelSession": {**MEDICINE_BOOKED, "status": "cancelled", "cancellation": EXAMPLES["SessionCancel"]},
    "recordSession": MEDICINE_HELD,
    # Recorded while monitoring continued (no discharge then), discharged later with one more reading.
    "recordDischarge": {**MEDICINE_HELD, "record": {
        **MEDICINE_RECORD, "vitals": [*MEDICINE_RECORD["vitals"][:2], *(
            {**reading, "at": _offset(reading["at"])} for reading in EXAMPLES["DischargeRecord"]["vitals"])],
        "discharged_at": _offset(EXAMPLES["DischargeRecord"]["discharged_at"])}},
    "reportAdverseEvent": {"session_id": MEDICINE, **EXAMPLES["AdverseEventReport"],
                           "reported_at": "2026-03-02T19:52:00Z"},
    "requestDoseApproval": _approval(),
    "withdrawDoseApproval": _approval(status="withdrawn", reason=EXAMPLES["Withdraw"]["reason"]),
    "decideDoseApproval": APPROVED,
    "listDoseApprovals": [_approval()],
    "overrideVitalsLimit": {**APPROVED, "vitals_overrides": [{  # no heart_rate: the clinic's limit for it stands
        **EXAMPLES["VitalsOverrideIn"], "heart_rate": None, "decided_at": "2026-03-02T09:08:00Z"}]},
    "readFeed": {"recipient": BY_PRESCRIBER, "items": [FEED_ITEM], "next_after": 1, "has_more": False},
    "listDeadLetters": [DEAD_LETTER],
    "redriveDeadLetter": {**DEAD_LETTER, "redrive_requested_at": "2026-02-23T15:00:00Z"},
    "listRelayDeadLetters": [{"notification_id": 18377, "course_id": COURSE, "course_version": 19,
                              "topic": "kact.course:SessionHeld.v1", "event_id": event_id(UUID(COURSE), 19),
                              "error": "MaxPayloadError: the message is larger than the server accepts",
                              "created_at": "2026-03-02T11:30:01Z"}],
    "createClinicWebhook": WEBHOOK_CREATED,
    "listClinicWebhooks": [{**WEBHOOK_CREATED, "secret": None}],
    "createPrescriberWebhook": {**WEBHOOK_CREATED, "id": PRESCRIBER_WEBHOOK, "owner": BY_PRESCRIBER,
                                "created_at": "2026-01-20T10:00:00Z"},
    "listPrescriberWebhooks": [{**WEBHOOK_CREATED, "id": PRESCRIBER_WEBHOOK, "owner": BY_PRESCRIBER,
                                "created_at": "2026-01-20T10:00:00Z", "secret": None}],
    "listDeliveries": {"items": [FAILED], "page": 1, "next_page": None},
    "getDelivery": {**FAILED, "attempt_log": [
        {"attempt": n, "at": at, "status_code": 503, "error": "HTTP 503", "duration_ms": ms}
        for n, (at, ms) in enumerate([("2026-02-23T14:05:01Z", 41), ("2026-02-23T14:05:03Z", 38),
                                      ("2026-02-23T14:05:08Z", 44), ("2026-02-23T14:05:26Z", 40),
                                      ("2026-02-23T14:06:31Z", 39), ("2026-02-23T14:10:02Z", 52),
                                      ("2026-02-23T14:26:40Z", 47), ("2026-02-23T15:31:15Z", 43)], start=1)]},
    "redriveDelivery": {**FAILED, "status": "pending", "attempts": 0, "next_attempt_at": "2026-02-24T08:00:00Z"},
    "listClinicKeys": [KEY, ISSUED],
    "issueClinicKey": {**ISSUED, "api_key": CLINIC_KEY},
    "listPrescriberKeys": [{**KEY, "id": KEYS[2], "owner": BY_PRESCRIBER, "created_at": "2026-01-20T09:55:00Z",
                            "created_by": BY_CLINIC}],  # the key createClinician gave
    "issuePrescriberKey": {**ISSUED, "id": KEYS[3], "owner": BY_PRESCRIBER, "api_key": NEXT_PRESCRIBER_KEY},
    "createSignInLink": {
        "url": "https://kact.example/pages/sign-in/link?token=Q2h0cE9uZVRpbWVUb2tlbl9leGFtcGxlX29ubHlfMDE",
        "path": "/pages/sign-in/link?token=Q2h0cE9uZVRpbWVUb2tlbl9leGFtcGxlX29ubHlfMDE",
        "expires_at": "2026-03-01T09:15:00Z", "valid_seconds": 900},
    "createClinicianCalendarFeed": {**CLINICIAN_FEED, "url": FEED_URL},
    "listClinicianCalendarFeeds": [OLD_FEED, CLINICIAN_FEED],
    "createRoomCalendarFeed": {**ROOM_FEED, "url": FEED_URL},
    "listRoomCalendarFeeds": [ROOM_FEED],
    "getCalendarFeed": _feed_example(),
    "getClinicianCalendar": {
        "resource": "clinician", "resource_id": THERAPIST, "clinic_id": CLINIC, "timezone": ZONE, "view": "week",
        "starts_at": "2026-03-23T00:00:00+01:00", "ends_at": "2026-03-30T00:00:00+02:00", "hours": 167.0,
        "entries": [{"session_id": INTEGRATION[0], "course_id": COURSE, "kind": "integration",
                     "starts_at": "2026-03-27T10:00:00+01:00", "ends_at": "2026-03-27T11:00:00+01:00",
                     "clinic_id": CLINIC, "room_id": ROOM, "clinician_ids": [THERAPIST], "status": "booked",
                     "confirmation": "not_needed"}]},
    "getRoomCalendar": {
        "resource": "room", "resource_id": PARTNER_ROOM, "clinic_id": PARTNER_CLINIC, "timezone": ZONE,
        "view": "day", "starts_at": "2026-03-09T00:00:00+01:00", "ends_at": "2026-03-10T00:00:00+01:00",
        "hours": 24.0,
        "entries": [{"session_id": HOSTED, "course_id": COURSE, "kind": "medicine",
                     "starts_at": "2026-03-09T11:00:00+01:00", "ends_at": "2026-03-09T14:00:00+01:00",
                     "clinic_id": PARTNER_CLINIC, "room_id": PARTNER_ROOM, "clinician_ids": [PARTNER_THERAPIST],
                     "status": "booked", "confirmation": "confirmed"}]},
    # Newest first: the home clinic reads the course, another clinic is refused it, the prescriber's queue shows it.
    "listAccessLog": {"items": [
        {"id": 90412, "at": "2026-03-02T09:15:02.118Z", "principal": BY_CLINIC, "action": "read_course",
         "course_id": COURSE, "outcome": "ok", "request_id": "7f3a9c2e5b1d4e60"},
        {"id": 90398, "at": "2026-03-02T09:14:40.530Z", "principal": f"clinic:{PARTNER_CLINIC}",
         "action": "read_course", "course_id": COURSE, "outcome": "denied", "request_id": "1c4e7a0d3f6b9e28"},
        {"id": 90377, "at": "2026-03-02T09:12:11.007Z", "principal": BY_PRESCRIBER, "action": "list_dose_approvals",
         "course_id": COURSE, "outcome": "ok", "request_id": "b8d1f4a7c0e3b6d9"}],
        "next_cursor": "eyJ2IjoxLCJhdCI6IjIwMjYtMDMtMDJUMDk6MTI6MTEuMDA3MDAwKzAwOjAwIiwiaWQiOjkwMzc3fQ"},
}
