"""Cancelling a session over HTTP: classified on whose behalf and why, shown in the course, the older `reason`
still accepted, and a bad code answered with the values it may take."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from api_support import EARLY, T0, Tenant, ok

pytestmark = pytest.mark.integration


@pytest.fixture
def home(client: httpx.Client, live_server) -> Tenant:
    return Tenant.onboard(client, live_server.operator_token)


def cancel(home: Tenant, cid: str, sid: str, body: dict) -> httpx.Response:
    return home.post(f"/v1/courses/{cid}/sessions/{sid}/cancel", body, at=EARLY)


def test_a_classified_cancellation_is_stored_shown_and_kept_off_the_bus(home: Tenant, client: httpx.Client) -> None:
    cid = home.open_course()["id"]
    sessions = [home.book(cid, "assessment", T0 + timedelta(days=i), at=EARLY) for i in range(4)]

    # classified, with a note
    cancelled = ok(cancel(home, cid, sessions[0]["id"], {
        "cancelled_by": "partner_b", "reason_code": "illness", "note": "flu since Sunday"}), 200)
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancellation"] == {"cancelled_by": "partner_b", "reason_code": "illness",
                                         "note": "flu since Sunday"}
    # on the hosting clinic's behalf, no note; cancelled_by defaults to the home clinic
    ok(cancel(home, cid, sessions[1]["id"], {"cancelled_by": "host_clinic", "reason_code": "host_unavailable"}), 200)
    ok(cancel(home, cid, sessions[2]["id"], {"reason_code": "scheduling_conflict"}), 200)
    # an older client: only a reason, which becomes the note, for the home clinic and `other`
    ok(cancel(home, cid, sessions[3]["id"], {"reason": "couple asked to postpone"}), 200)

    course = ok(client.get(f"/v1/courses/{cid}", headers=home.headers), 200)
    shown = {s["id"]: s["cancellation"] for s in course["sessions"]}
    assert [shown[s["id"]] for s in sessions] == [
        {"cancelled_by": "partner_b", "reason_code": "illness", "note": "flu since Sunday"},
        {"cancelled_by": "host_clinic", "reason_code": "host_unavailable", "note": ""},
        {"cancelled_by": "home_clinic", "reason_code": "scheduling_conflict", "note": ""},
        {"cancelled_by": "home_clinic", "reason_code": "other", "note": "couple asked to postpone"},
    ]
    # the audit history has the whole stored event
    events = ok(client.get(f"/v1/courses/{cid}/events", headers=home.headers), 200)
    stored = [e["data"] for e in events if e["type"] == "SessionCancelled"]
    assert stored[0] == {"session_id": sessions[0]["id"], "reason": "flu since Sunday", "cancelled_by": "partner_b",
                         "reason_code": "illness"}


@pytest.mark.parametrize(("body", "says"), [
    ({"reason_code": "bored"}, ["reason_code must be one of", "weather_or_travel", "other"]),
    ({"cancelled_by": "neighbour", "reason_code": "illness"}, ["cancelled_by must be one of", "host_clinic"]),
    ({"reason_code": "other"}, ["'other' says why in its note"]),
    ({"reason_code": "other", "note": "  "}, ["'other' says why in its note"]),
    ({}, ["reason_code is required"]),
    ({"reason": "old", "note": "new", "reason_code": "illness"}, ["not both"]),
])
def test_a_bad_cancellation_is_422_saying_what_is_allowed(home: Tenant, body: dict, says: list[str]) -> None:
    cid = home.open_course()["id"]
    session = home.book(cid, "assessment", T0, at=EARLY)
    refused = cancel(home, cid, session["id"], body)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["type"] == "/problems/invalid-input"
    for words in says:
        assert words in refused.text, (words, problem)
    if "must be one of" in says[0]:
        field = says[0].split()[0]
        [error] = [e for e in problem["errors"] if e.get("key") == field]
        assert "other" in error["allowed"] or "host_clinic" in error["allowed"]
    # nothing was cancelled
    course = ok(home.client.get(f"/v1/courses/{cid}", headers=home.headers), 200)
    assert [s["status"] for s in course["sessions"]] == ["booked"]
