"""A course as it stood at any moment, replayed from its events: `?as_of=` takes a version or an instant, and each
historical state is the state the API answered at that moment."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from api_support import EARLY, T0, Tenant, iso, ok

pytestmark = pytest.mark.integration


@pytest.fixture
def home(client: httpx.Client, live_server) -> Tenant:
    return Tenant.onboard(client, live_server.operator_token)


def test_each_moment_of_a_course_replays_to_what_the_api_answered_then(home: Tenant, client: httpx.Client) -> None:
    seen: list[tuple[str, dict]] = []

    def remember(cid: str) -> None:
        seen.append((datetime.now(timezone.utc).isoformat(), ok(client.get(f"/v1/courses/{cid}", headers=home.headers), 200)))
        time.sleep(0.002)  # the next command's events are recorded strictly later

    before = datetime.now(timezone.utc).isoformat()
    cid = home.open_course()["id"]
    remember(cid)
    home.screen_both(cid)
    remember(cid)
    session = home.book(cid, "assessment", T0, at=EARLY)
    remember(cid)
    home.hold(cid, session, notes="joint assessment")
    remember(cid)
    moved = home.book(cid, "preparation", T0 + timedelta(days=1), partners=["a"], at=EARLY)
    ok(home.post(f"/v1/courses/{cid}/sessions/{moved['id']}/cancel", {"reason_code": "illness", "cancelled_by": "partner_a"},
                 at=EARLY), 200)
    remember(cid)
    for at, then in seen:
        assert ok(client.get(f"/v1/courses/{cid}", params={"as_of": at}, headers=home.headers), 200) == then
        assert ok(client.get(f"/v1/courses/{cid}", params={"as_of": then["version"]}, headers=home.headers),
                  200) == then
    # before it was opened the course did not exist; a malformed instant is refused
    assert client.get(f"/v1/courses/{cid}", params={"as_of": before}, headers=home.headers).status_code == 404
    bad = client.get(f"/v1/courses/{cid}", params={"as_of": "2026-13-01T00:00:00Z"}, headers=home.headers)
    assert bad.status_code == 422 and bad.json()["type"] == "/problems/invalid-input"
    assert client.get(f"/v1/courses/{cid}", params={"as_of": iso(T0)[:10]}, headers=home.headers).status_code in (400, 422)


def test_every_event_says_who_recorded_it_from_which_request_and_why(home: Tenant, client: httpx.Client) -> None:
    cid = home.open_course()["id"]
    start = home.assess_and_prepare(cid)
    session = home.book(cid, "medicine", start, hours=3)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    the_day_before = start - timedelta(days=1)
    approval = ok(home.post(f"/v1/courses/{cid}/dose-approvals", {
        "session_id": session["id"], "partner": "a", "prescriber_id": home.prescriber["id"], "requested_mg": 100},
        at=the_day_before, headers={"X-Request-Id": "req-ask-1"}), 201)
    ok(client.post(f"/v1/dose-approvals/{approval['id']}/decision", json={"approve": True, "reason": "screening fine"},
                   headers={**home.rx_headers, "X-Kact-Now": iso(the_day_before), "X-Request-Id": "req-decide-1",
                            "traceparent": f"00-{trace}-00f067aa0ba902b7-01"}), 200)
    ok(home.post(f"/v1/courses/{cid}/discontinue", {"reason": "couple moved abroad"}, at=the_day_before), 200)
    events = ok(client.get(f"/v1/courses/{cid}/events", headers=home.headers), 200)
    by_type = {e["type"]: e["actor"] for e in events}
    assert by_type["DoseApprovalDecided"] == {
        "role": "prescriber", "id": home.prescriber["id"], "clinic_id": home.clinic["id"],
        "clinician_id": home.prescriber["id"], "request_id": "req-decide-1", "trace_id": trace,
        "reason": "screening fine"}
    asked = by_type["DoseApprovalRequested"]
    assert (asked["role"], asked["id"], asked["clinic_id"], asked["request_id"]) == (
        "clinic", home.clinic["id"], home.clinic["id"], "req-ask-1")
    held = [e["actor"] for e in events if e["type"] == "SessionHeld"][0]
    assert held["clinician_id"] == home.therapist["id"] and held["role"] == "clinic"
    assert by_type["Discontinued"]["reason"] == "couple moved abroad"
    assert all(e["actor"]["request_id"] and e["actor"]["trace_id"] for e in events)  # every command's request
