"""A course whose second medicine session waits for its prescriber's decisions, and signing in to the pages over HTTP."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import uuid4

import httpx
from api_support import T0, Tenant, ok

SECOND_DOSE_AT = T0 + timedelta(days=25)


@dataclass
class Waiting:
    """A `together` course dosed once (both partners, 100 mg, vitals recorded), integrated, its second medicine
    session booked, and both partners' doses for it asked of the clinic's prescriber (pending)."""

    tenant: Tenant
    course_id: str
    session: dict[str, Any]
    approvals: dict[str, dict[str, Any]]  # partner -> the pending approval
    partner_refs: dict[str, str]

    @property
    def prescriber_key(self) -> str:
        return str(self.tenant.prescriber["api_key"])

    def course(self) -> dict[str, Any]:
        return ok(self.tenant.client.get(f"/v1/courses/{self.course_id}", headers=self.tenant.headers), 200)

    def approval(self, partner: str) -> dict[str, Any]:
        (found,) = [a for a in self.course()["approvals"] if a["id"] == self.approvals[partner]["id"]]
        return found


def waiting_course(client: httpx.Client, operator_token: str, clinic_name: str = "Harbour Couples Therapy",
                   partner_refs: dict[str, str] | None = None, requested_mg: float = 100) -> Waiting:
    tenant = Tenant.onboard(client, operator_token, clinic_name)
    refs = partner_refs or {p: f"couple-{uuid4().hex[:6]}-{p}" for p in ("a", "b")}
    course = ok(tenant.post("/v1/courses", {"model": "together", "partners": refs}), 201)
    course_id = course["id"]
    start = tenant.assess_and_prepare(course_id)
    first = tenant.dose(course_id, start + timedelta(days=1), ["a", "b"], mg=100)
    tenant.integrate(course_id, first)
    session = tenant.book(course_id, "medicine", SECOND_DOSE_AT, hours=3)
    asked_at = SECOND_DOSE_AT - timedelta(days=2)
    approvals = {
        partner: ok(tenant.post(f"/v1/courses/{course_id}/dose-approvals",
                                {"session_id": session["id"], "partner": partner,
                                 "prescriber_id": tenant.prescriber["id"], "requested_mg": requested_mg},
                                at=asked_at), 201)
        for partner in ("a", "b")
    }
    return Waiting(tenant, course_id, session, approvals, refs)


CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def csrf_in(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: httpx.Client, key: str) -> httpx.Response:
    """Sign in on the form as a browser would (the form's token and its cookie); the client keeps the session cookie."""
    form = client.get("/pages/sign-in")
    assert form.status_code == 200, form.text
    return client.post("/pages/sign-in", data={"key": key, "csrf": csrf_in(form.text), "next": ""})
