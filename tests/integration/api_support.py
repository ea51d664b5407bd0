"""A partner clinic's view of the API: set up tenants and walk a course through it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import httpx

T0 = datetime(2026, 1, 5, 9, tzinfo=timezone.utc)
EARLY = T0 - timedelta(days=1)  # a clock before every session the tests book (a booking in the past is refused)


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Tenant:
    """A clinic with a therapist and a prescriber, as onboarded by the operator."""

    client: httpx.Client
    clinic: dict[str, Any]
    therapist: dict[str, Any]
    prescriber: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def onboard(cls, client: httpx.Client, operator_token: str, name: str = "Home practice") -> Tenant:
        clinic = ok(client.post("/v1/clinics", json={"name": name, "timezone": "Europe/Berlin"},
                               headers=bearer(operator_token)), 201)
        headers = bearer(clinic["api_key"])
        therapist = ok(client.post(f"/v1/clinics/{clinic['id']}/clinicians",
                                   json={"name": "Therapist", "role": "therapist"}, headers=headers), 201)
        prescriber = ok(client.post(f"/v1/clinics/{clinic['id']}/clinicians",
                                    json={"name": "Prescriber", "role": "prescriber"}, headers=headers), 201)
        return cls(client, clinic, therapist, prescriber, headers)

    def with_own_therapist(self) -> Tenant:
        """This clinic with a therapist of its own: courses driven side by side at the same hours need one each,
        as a clinician is never in two sessions at once (I10)."""
        therapist = ok(self.client.post(f"/v1/clinics/{self.clinic['id']}/clinicians",
                                        json={"name": "Therapist", "role": "therapist"}, headers=self.headers), 201)
        return Tenant(self.client, self.clinic, therapist, self.prescriber, self.headers)

    @property
    def rx_headers(self) -> dict[str, str]:
        return bearer(self.prescriber["api_key"])

    def post(self, path: str, body: dict[str, Any] | None = None, at: datetime | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        """POST as this clinic; `at` is the simulated time of the command (X-Kact-Now)."""
        extra = {"X-Kact-Now": iso(at)} if at else {}
        return self.client.post(path, json=body or {}, headers={**self.headers, **extra, **(headers or {})})

    def open_course(self, model: str = "taking_turns", **extra: Any) -> dict[str, Any]:
        couple = uuid4().hex[:8]  # each course is another couple: their calendars are their own
        body = {"model": model, "partners": {"a": f"partner-a-{couple}", "b": f"partner-b-{couple}"}, **extra}
        return ok(self.post("/v1/courses", body), 201)

    def book(self, course_id: str, kind: str, start: datetime, hours: float = 1, partners: list[str] | None = None,
             at: datetime | None = None, **extra: Any) -> dict[str, Any]:
        """Book a session; by default the clinic books it the day before (a booking in the past is refused)."""
        body = {"kind": kind, "starts_at": iso(start), "ends_at": iso(start + timedelta(hours=hours)),
                "partners": partners or ["a", "b"], "clinician_ids": [self.therapist["id"]], **extra}
        return ok(self.post(f"/v1/courses/{course_id}/sessions", body, at=at or start - timedelta(days=1)), 201)

    def hold(self, course_id: str, session: dict[str, Any], **record: Any) -> dict[str, Any]:
        after = datetime.fromisoformat(session["ends_at"]) + timedelta(hours=1)
        return ok(self.post(f"/v1/courses/{course_id}/sessions/{session['id']}/record",
                            {"outcome": "held", "clinician_id": self.therapist["id"], **record}, at=after), 200)

    def screen_both(self, course_id: str) -> None:
        for partner in ("a", "b"):
            ok(self.post(f"/v1/courses/{course_id}/screenings",
                         {"partner": partner, "result": "eligible", "clinician_id": self.therapist["id"],
                          "notes": f"screening note {partner}"}), 200)

    def assess_and_prepare(self, course_id: str) -> datetime:
        self.screen_both(course_id)
        session = self.book(course_id, "assessment", T0)
        self.hold(course_id, session, notes="joint assessment")
        plan = [["a"], ["b"], ["a", "b"], ["a", "b"]]
        for i, partners in enumerate(plan):
            session = self.book(course_id, "preparation", T0 + timedelta(days=i + 1), partners=partners)
            self.hold(course_id, session)
        return T0 + timedelta(days=len(plan) + 1)

    def approved(self, course_id: str, session: dict[str, Any], partner: str, mg: float = 100) -> dict[str, Any]:
        """The partner's dose for a medicine session, asked for and approved by the clinic's prescriber the day
        before the session."""
        the_day_before = datetime.fromisoformat(session["starts_at"]) - timedelta(days=1)
        approval = ok(self.post(f"/v1/courses/{course_id}/dose-approvals",
                                {"session_id": session["id"], "partner": partner,
                                 "prescriber_id": self.prescriber["id"], "requested_mg": mg}, at=the_day_before), 201)
        return ok(self.client.post(f"/v1/dose-approvals/{approval['id']}/decision", json={"approve": True},
                                   headers={**self.rx_headers, "X-Kact-Now": iso(the_day_before)}), 200)

    def dose(self, course_id: str, start: datetime, partners: list[str], mg: float = 100) -> dict[str, Any]:
        session = self.book(course_id, "medicine", start, hours=3)
        approvals = {partner: self.approved(course_id, session, partner, mg) for partner in partners}
        dosed_at = start + timedelta(minutes=10)
        record = medicine_record(approvals, dosed_at, mg)
        self.hold(course_id, session, **record)
        return session

    def integrate(self, course_id: str, medicine: dict[str, Any], count: int = 4) -> None:
        end = datetime.fromisoformat(medicine["ends_at"])
        for i in range(count):
            session = self.book(course_id, "integration", end + timedelta(hours=20 + 24 * i))
            self.hold(course_id, session)


def medicine_record(approvals: dict[str, dict[str, Any]], dosed_at: datetime, mg: float) -> dict[str, Any]:
    doses, vitals = [], []
    for partner, approval in approvals.items():
        doses.append({"partner": partner, "approval_id": approval["id"], "mg": mg, "at": iso(dosed_at)})
        for stage, minutes in (("pre", -10), ("post", 40), ("discharge", 125)):
            vitals.append({"partner": partner, "stage": stage, "at": iso(dosed_at + timedelta(minutes=minutes)),
                           "systolic": 128, "diastolic": 82, "heart_rate": 74, "acceptable": True})
    return {"doses": doses, "vitals": vitals, "discharged_at": iso(dosed_at + timedelta(minutes=130)),
            "notes": "calm session"}


def eventually(read: Callable[[], Any], until: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    """Lists follow the event store within milliseconds: read until the condition holds (or time runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if until(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def ok(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
    return response.json()
