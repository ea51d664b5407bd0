"""Example request bodies shown in the OpenAPI document (each is a valid request)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar.openapi.spec import Example
from litestar.params import Body

CLINIC = "6a1f7a58-5a43-4c55-9a0e-3c1f0c6c2d10"
THERAPIST = "0d4f3b5e-8f3c-4b7a-9d5e-1a2b3c4d5e6f"
PRESCRIBER = "9b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e"

EXAMPLES: dict[str, dict[str, Any]] = {
    "ClinicCreate": {"name": "Harbour Couples Therapy", "timezone": "Europe/Berlin"},
    "ClinicianCreate": {"name": "Dr. Mara Lind", "role": "prescriber"},
    "RoomCreate": {"name": "Room 2 (monitored)"},
    "PartnershipCreate": {"partner_clinic_id": CLINIC, "kinds": ["medicine"]},
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
        "ends_at": "2026-03-02T12:00:00Z", "clinic_id": CLINIC, "clinician_ids": [THERAPIST],
    },
    "SessionReschedule": {"starts_at": "2026-03-03T09:00:00Z", "ends_at": "2026-03-03T12:00:00Z"},
    "SessionCancel": {"reason": "couple asked to postpone"},
    "SessionRecord": {
        "outcome": "held",
        "clinician_id": THERAPIST,
        "notes": "settled session",
        "doses": [{"partner": "a", "approval_id": "apr_5c6d7e8f9a0b4c1d8e2f3a4b5c6d7e8f_3f0c2a9e1b2c", "mg": 100,
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
    "DoseApprovalCreate": {"session_id": "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f", "partner": "a",
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
    "WebhookCreate": {"url": "https://clinic.example/kact-hook",
                      "event_types": ["kact.course.session.booked.v1", "kact.notice.dose_approval.reminder.v1"]},
}


def body(struct: type) -> Any:
    """`struct` as a request body annotated with its example."""
    return Annotated[struct, Body(examples=[Example(summary=f"A {struct.__name__} request",
                                                    value=EXAMPLES[struct.__name__])])]
