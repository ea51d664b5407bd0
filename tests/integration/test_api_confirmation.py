"""A partner clinic confirms or declines, with its own key, a medicine session it hosts for a home clinic; it sees
that session and nothing else of the course."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from api_support import EARLY, Tenant, iso, ok

pytestmark = pytest.mark.integration


@pytest.fixture
def clinics(client: httpx.Client, live_server) -> tuple[Tenant, Tenant]:
    home = Tenant.onboard(client, live_server.operator_token, "Home practice")
    host = Tenant.onboard(client, live_server.operator_token, "Ketamine clinic")
    ok(home.post("/v1/partnerships", {"partner_clinic_id": host.clinic["id"]}), 201)
    assert ok(host.post("/v1/partnerships", {"partner_clinic_id": home.clinic["id"]}), 201)["agreed"] is True
    return home, host


def hosted_session(home: Tenant, host: Tenant) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A prepared course with one medicine session at the host and one at the home clinic."""
    cid = home.open_course()["id"]
    start = home.assess_and_prepare(cid)
    hosted = home.book(cid, "medicine", start, hours=3, clinic_id=host.clinic["id"],
                       clinician_ids=[host.prescriber["id"]])
    at_home = home.book(cid, "medicine", start + timedelta(days=10), hours=3)
    return cid, hosted, at_home


def confirm(tenant: Tenant, cid: str, sid: str, decision: str = "confirmed", reason: str = "") -> httpx.Response:
    return tenant.post(f"/v1/courses/{cid}/sessions/{sid}/confirm", {"decision": decision, "reason": reason})


def test_the_hosting_clinic_confirms_declines_and_is_asked_again_after_a_move(
        clinics: tuple[Tenant, Tenant], client: httpx.Client) -> None:
    home, host = clinics
    cid, hosted, at_home = hosted_session(home, host)
    assert hosted["confirmation"] == "pending" and at_home["confirmation"] == "not_needed"

    declined = ok(confirm(host, cid, hosted["id"], "declined", "no monitoring nurse that morning"), 200)
    assert declined == {
        "id": hosted["id"], "kind": "medicine", "status": "booked", "starts_at": hosted["starts_at"],
        "ends_at": hosted["ends_at"], "timezone": hosted["timezone"], "clinic_id": host.clinic["id"],
        "confirmation": "declined",
    }  # scheduling facts only: no partner references, notes or records
    view = ok(client.get(f"/v1/courses/{cid}", headers=home.headers), 200)
    assert {s["id"]: s["confirmation"] for s in view["sessions"] if s["kind"] == "medicine"} == {
        hosted["id"]: "declined", at_home["id"]: "not_needed"}

    moved_start = datetime.fromisoformat(hosted["starts_at"]) + timedelta(days=1)
    moved = ok(home.post(f"/v1/courses/{cid}/sessions/{hosted['id']}/reschedule", {
        "starts_at": iso(moved_start), "ends_at": iso(moved_start + timedelta(hours=3))}, at=EARLY), 200)
    assert moved["confirmation"] == "pending"
    assert ok(confirm(host, cid, hosted["id"]), 200)["confirmation"] == "confirmed"

    twice = confirm(host, cid, hosted["id"])
    assert twice.status_code == 409
    assert twice.json()["type"] == "/problems/session-confirmation"
    assert twice.json()["violations"] == [
        {"invariant": "session-confirmation", "detail": f"session {hosted['id']} is already confirmed"}]

    events = ok(client.get(f"/v1/courses/{cid}/events", headers=home.headers), 200)
    decisions = [(e["type"], e["principal"], e["data"]) for e in events if e["type"] in (
        "SessionConfirmed", "SessionDeclined")]
    assert decisions == [
        ("SessionDeclined", f"clinic:{host.clinic['id']}",
         {"session_id": hosted["id"], "clinic_id": host.clinic["id"], "reason": "no monitoring nurse that morning"}),
        ("SessionConfirmed", f"clinic:{host.clinic['id']}",
         {"session_id": hosted["id"], "clinic_id": host.clinic["id"]}),
    ]


def test_refusals(clinics: tuple[Tenant, Tenant], client: httpx.Client, live_server) -> None:
    home, host = clinics
    cid, hosted, at_home = hosted_session(home, host)

    no_reason = confirm(host, cid, hosted["id"], "declined", "  ")
    assert no_reason.status_code == 422 and no_reason.json()["type"] == "/problems/invalid-input"
    assert no_reason.json()["errors"] == [{"detail": "declining a session gives a reason"}]
    bad = host.post(f"/v1/courses/{cid}/sessions/{hosted['id']}/confirm", {"decision": "maybe"})
    assert bad.status_code == 422 and bad.json()["type"] == "/problems/invalid-input"

    # the home clinic does not confirm for its partner, and its own sessions need no confirmation
    by_home = confirm(home, cid, hosted["id"])
    assert by_home.status_code == 403 and by_home.json()["type"] == "/problems/forbidden"
    not_needed = confirm(home, cid, at_home["id"])
    assert not_needed.status_code == 409 and not_needed.json()["type"] == "/problems/session-confirmation"

    # the host sees only the sessions it hosts; a session it does not host does not exist for it
    other_session = confirm(host, cid, at_home["id"])
    assert other_session.status_code == 404 and other_session.json()["type"] == "/problems/not-found"
    assert other_session.json()["detail"] == f"no session {at_home['id']} in this course"
    for response in (
        client.get(f"/v1/courses/{cid}", headers=host.headers),
        client.get(f"/v1/courses/{cid}/events", headers=host.headers),
        host.post(f"/v1/courses/{cid}/sessions/{hosted['id']}/cancel", {"reason": "not mine to cancel"}),
    ):
        assert response.status_code == 404, response.text

    # a clinic that hosts nothing in the course does not see it at all
    stranger = Tenant.onboard(client, live_server.operator_token, "Unrelated clinic")
    for sid in (hosted["id"], at_home["id"], str(uuid4())):
        response = confirm(stranger, cid, sid)
        assert response.status_code == 404 and response.json()["detail"] == f"no course {cid}"
    # a session id that is not one is invalid input, whoever asks and whatever the course
    assert confirm(stranger, cid, "no-such-session").status_code == 422
    # neither does a prescriber's key nor the operator's count as a hosting clinic
    as_rx = host.client.post(f"/v1/courses/{cid}/sessions/{hosted['id']}/confirm", json={"decision": "confirmed"},
                             headers=host.rx_headers)
    assert as_rx.status_code == 403

    # a cancelled session, and a closed course, refuse the decision
    ok(home.post(f"/v1/courses/{cid}/sessions/{hosted['id']}/cancel", {"reason": "couple travels"},
                 at=datetime.fromisoformat(hosted["starts_at"]) - timedelta(days=1)), 200)
    cancelled = confirm(host, cid, hosted["id"])
    assert cancelled.status_code == 409 and cancelled.json()["type"] == "/problems/session-state"
    ok(home.post(f"/v1/courses/{cid}/discontinue", {"reason": "couple chose to stop"}), 200)
    closed = confirm(host, cid, hosted["id"])
    assert closed.status_code == 409 and closed.json()["type"] == "/problems/course-closed"  # for that alone
    assert [v["invariant"] for v in closed.json()["violations"]] == ["course-closed"]
