"""The ketamine clinic that hosts a medicine session for a home clinic's course: it sees its week (the minimum
it needs), confirms the session, its prescriber approves the dose, and it records the session with its own key
and one of its own clinicians; the home clinic may not record what it did not host."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from api_support import EARLY, Tenant, iso, medicine_record, ok
from test_api_confirmation import clinics, confirm  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration
T = TypeVar("T")


def test_the_host_sees_its_week_confirms_and_records_what_it_hosts(
        clinics: tuple[Tenant, Tenant], client: httpx.Client) -> None:  # noqa: F811
    home, host = clinics
    nurse = host.with_own_therapist()  # the host's own clinician, who monitors and records
    room = ok(host.post(f"/v1/clinics/{host.clinic['id']}/rooms", {"name": "Treatment room 2"}), 201)
    cid = home.open_course()["id"]
    start = home.assess_and_prepare(cid)
    # A home-clinic room or clinician cannot be used at the host (I11: its own rooms and clinicians).
    home_room = ok(home.post(f"/v1/clinics/{home.clinic['id']}/rooms", {"name": "Home room"}), 201)
    for wrong in ({"room_id": home_room["id"]}, {"clinician_ids": [home.therapist["id"]]}):
        refused = home.post(f"/v1/courses/{cid}/sessions", {
            "kind": "medicine", "starts_at": iso(start), "ends_at": iso(start + timedelta(hours=3)),
            "partners": ["a", "b"], "clinic_id": host.clinic["id"], **wrong}, at=EARLY)
        assert refused.status_code == 422, refused.text
    session = home.book(cid, "medicine", start, hours=3, clinic_id=host.clinic["id"], room_id=room["id"],
                        clinician_ids=[host.prescriber["id"], nurse.therapist["id"]])

    # The host's week: scheduling facts and who is dosed, nothing of the couple.
    def week_of(tenant: Tenant, clinic: Tenant) -> list[dict[str, Any]]:
        return ok(client.get(f"/v1/clinics/{clinic.clinic['id']}/hosted-sessions",
                             params={"from": iso(start - timedelta(days=1))}, headers=tenant.headers), 200)

    def facts(week: list[dict[str, Any]]) -> list[tuple[str, ...]]:
        return [(s["session_id"], s["course_id"], s["home_clinic_id"], s["confirmation"], s["status"])
                for s in week]

    pending = [(session["id"], cid, home.clinic["id"], "pending", "booked")]
    assert until(lambda: facts(week_of(host, host)), pending) == pending
    week = week_of(host, host)
    assert week[0]["doses"] == [{"partner": "a", "approval_status": None, "approved_mg": None}]  # taking turns
    assert week[0]["room_id"] == room["id"] and "partner-a-" not in str(week) and "notes" not in week[0]
    # Only the clinic itself (or the operator) sees it; the home clinic's week hosts nothing of others.
    other = client.get(f"/v1/clinics/{host.clinic['id']}/hosted-sessions", headers=home.headers)
    assert other.status_code == 404  # another clinic's week: as if it did not exist
    assert week_of(home, home) == []

    # Not yet confirmed: the host cannot record it held (I11).
    the_day_before = start - timedelta(days=1)
    approval = ok(home.post(f"/v1/courses/{cid}/dose-approvals", {
        "session_id": session["id"], "partner": "a", "prescriber_id": host.prescriber["id"], "requested_mg": 100},
        at=the_day_before), 201)
    decided = ok(client.post(f"/v1/dose-approvals/{approval['id']}/decision", json={"approve": True},
                             headers={**host.rx_headers, "X-Kact-Now": iso(the_day_before)}), 200)
    record = {"outcome": "held", "clinician_id": nurse.therapist["id"],
              **medicine_record({"a": decided}, start + timedelta(minutes=10), 100)}
    after = datetime.fromisoformat(session["ends_at"]) + timedelta(hours=1)
    path = f"/v1/courses/{cid}/sessions/{session['id']}/record"
    unconfirmed = host.post(path, record, at=after)
    assert unconfirmed.status_code == 409 and unconfirmed.json()["type"] == "/problems/hosting"
    ok(confirm(host, cid, session["id"]), 200)
    confirmed = [(session["id"], cid, home.clinic["id"], "confirmed", "booked")]
    assert until(lambda: facts(week_of(host, host)), confirmed) == confirmed
    week = week_of(host, host)
    assert week[0]["doses"] == [{"partner": "a", "approval_status": "approved", "approved_mg": 100.0}]

    # The home clinic did not host it, so it does not record it; the host's clinician must be the host's own.
    assert home.post(path, {**record, "clinician_id": home.therapist["id"]}, at=after).status_code == 403
    foreign = host.post(path, {**record, "clinician_id": home.therapist["id"]}, at=after)
    assert foreign.status_code == 422 and "not staff" in foreign.json()["detail"]
    held = ok(host.post(path, record, at=after), 200)
    assert held["status"] == "held" and held["record"]["clinician_id"] == nurse.therapist["id"]

    # The home clinic sees the record and who made it; the course moved on (Dosed).
    course = ok(client.get(f"/v1/courses/{cid}", headers=home.headers), 200)
    assert "dosed" in [m["milestone"] for m in course["milestones"]]
    events = ok(client.get(f"/v1/courses/{cid}/events", headers=home.headers), 200)
    (held_event,) = [e for e in events if e["type"] == "SessionHeld" and e["data"]["session_id"] == session["id"]]
    assert held_event["principal"] == f"clinic:{host.clinic['id']}"
    held_now = [(session["id"], cid, home.clinic["id"], "confirmed", "held")]
    assert until(lambda: facts(week_of(host, host)), held_now) == held_now


def test_a_host_sees_nothing_of_a_course_it_hosts_nothing_for(
        clinics: tuple[Tenant, Tenant], client: httpx.Client) -> None:  # noqa: F811
    home, host = clinics
    cid = home.open_course()["id"]
    session = home.book(cid, "assessment", datetime.fromisoformat("2026-02-02T09:00:00+00:00"))
    recorded = host.post(f"/v1/courses/{cid}/sessions/{session['id']}/record",
                         {"outcome": "missed", "clinician_id": host.therapist["id"]},
                         at=datetime.fromisoformat("2026-02-02T12:00:00+00:00"))
    assert recorded.status_code == 404
    assert client.get(f"/v1/courses/{cid}", headers=host.headers).status_code == 404


def test_the_sessions_two_partners_share_are_listed_for_rebooking(
        clinics: tuple[Tenant, Tenant], client: httpx.Client, live_server) -> None:  # noqa: F811
    home, host = clinics
    cid = home.open_course()["id"]
    start = home.assess_and_prepare(cid)
    session = home.book(cid, "medicine", start, hours=3, clinic_id=host.clinic["id"],
                        clinician_ids=[host.prescriber["id"]])
    expected = [(session["id"], host.clinic["id"], home.clinic["id"])]
    for tenant, partner in ((home, host), (host, home)):
        path = f"/v1/partnerships/{partner.clinic['id']}/sessions"
        assert until(lambda: [(s["session_id"], s["host_clinic_id"], s["home_clinic_id"])
                              for s in ok(client.get(path, headers=tenant.headers), 200)], expected) == expected
    stranger = Tenant.onboard(client, live_server.operator_token, "Stranger")
    assert ok(client.get(f"/v1/partnerships/{home.clinic['id']}/sessions", headers=stranger.headers), 200) == []
    ok(home.post(f"/v1/courses/{cid}/sessions/{session['id']}/cancel", {"reason": "moved to another clinic"},
                 at=start - timedelta(days=1)), 200)
    path = f"/v1/partnerships/{host.clinic['id']}/sessions"
    assert until(lambda: ok(client.get(path, headers=home.headers), 200), []) == []


def until(read: Callable[[], T], expected: T, timeout: float = 10.0) -> T:
    """What `read` returns once it equals `expected` (the index follows the event store within moments), or the
    last answer at the timeout."""
    deadline = time.monotonic() + timeout
    while (now := read()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return now
