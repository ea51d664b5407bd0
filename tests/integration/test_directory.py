"""The directory over HTTP: what a clinic reads of itself, partnerships with a scope and an end, and the opening
hours, closures and working hours that bookings keep (unless a reason overrides them)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from api_support import EARLY, T0, Tenant, bearer, iso, ok

pytestmark = pytest.mark.integration

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]


@pytest.fixture
def home(client: httpx.Client, live_server) -> Tenant:
    return Tenant.onboard(client, live_server.operator_token)


def session_body(tenant: Tenant, kind: str, start: datetime, hours: float = 1, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "starts_at": iso(start), "ends_at": iso(start + timedelta(hours=hours)),
            "clinician_ids": [tenant.therapist["id"]], **extra}


def events_of(tenant: Tenant, cid: str, kind: str) -> list[dict[str, Any]]:
    events = ok(tenant.client.get(f"/v1/courses/{cid}/events", headers=tenant.headers), 200)
    return [e["data"] for e in events if e["type"] == kind]


def test_a_clinic_reads_its_directory_and_to_another_clinic_it_does_not_exist(
        home: Tenant, client: httpx.Client, live_server) -> None:
    room = ok(home.post(f"/v1/clinics/{home.clinic['id']}/rooms", {"name": "Room 2"}), 201)
    base = f"/v1/clinics/{home.clinic['id']}"
    for headers in (home.headers, bearer(live_server.operator_token)):
        clinic = ok(client.get(base, headers=headers), 200)
        assert clinic == {"id": home.clinic["id"], "name": "Home practice", "timezone": "Europe/Berlin",
                          "opening_hours": None, "closures": []}
        staff = ok(client.get(f"{base}/clinicians", headers=headers), 200)
        assert [(c["id"], c["role"], c["working_hours"]) for c in staff] == [
            (home.therapist["id"], "therapist", None), (home.prescriber["id"], "prescriber", None)]
        assert all("api_key" not in c for c in staff)
        assert ok(client.get(f"{base}/rooms", headers=headers), 200) == [room]
        assert ok(client.get(f"{base}/partnerships", headers=headers), 200) == []
    # another clinic (or a prescriber) gets 404 for every read and change of this one
    other = Tenant.onboard(client, live_server.operator_token, "Other practice")
    hours = {"intervals": [{"weekday": "monday", "opens": "09:00", "closes": "17:00"}]}
    for headers in (other.headers, home.rx_headers):
        for response in (
            *(client.get(f"{base}{tail}", headers=headers)
              for tail in ("", "/clinicians", "/rooms", "/partnerships", "/opening-hours", "/closures")),
            client.put(f"{base}/opening-hours", json=hours, headers=headers),
            client.get(f"/v1/clinicians/{home.therapist['id']}/working-hours", headers=headers),
            client.put(f"/v1/clinicians/{home.therapist['id']}/working-hours", json=hours, headers=headers),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["type"] == "/problems/not-found"
    # time zones are IANA names that exist
    unknown = client.post("/v1/clinics", json={"name": "Nowhere", "timezone": "Europe/Atlantis"},
                          headers=bearer(live_server.operator_token))
    assert unknown.status_code == 422 and "IANA" in unknown.text


def test_a_partnership_covers_what_both_agreed_changes_and_ends_keeping_its_history(
        home: Tenant, client: httpx.Client, live_server) -> None:
    host = Tenant.onboard(client, live_server.operator_token, "Ketamine clinic")
    cid = home.open_course()["id"]
    start = home.assess_and_prepare(cid)

    def at_host(kind: str, when: datetime, hours: float = 1) -> httpx.Response:
        staff = host.prescriber["id"] if kind == "medicine" else host.therapist["id"]
        return home.post(f"/v1/courses/{cid}/sessions", session_body(
            host, kind, when, hours, clinic_id=host.clinic["id"], clinician_ids=[staff]), at=EARLY)

    # proposed by the home clinic for medicine and preparation; the host consents to medicine only (the default)
    proposed = ok(home.post("/v1/partnerships", {"partner_clinic_id": host.clinic["id"],
                                                 "kinds": ["preparation", "medicine"]}), 201)
    assert (proposed["state"], proposed["agreed"], proposed["kinds"]) == ("proposed", False, [])
    agreed = ok(host.post("/v1/partnerships", {"partner_clinic_id": home.clinic["id"]}), 201)
    assert (agreed["state"], agreed["kinds"], agreed["own_kinds"], agreed["partner_kinds"]) == (
        "agreed", ["medicine"], ["medicine"], ["preparation", "medicine"])
    # I11: the scope is what both agreed: medicine, not preparation
    refused = at_host("preparation", start)
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/hosting"
    assert "covering preparation sessions" in refused.json()["detail"]
    medicine = ok(at_host("medicine", start + timedelta(days=1), hours=3), 201)
    # the host widens its consent: preparation is covered from now on
    widened = ok(host.post("/v1/partnerships", {"partner_clinic_id": home.clinic["id"],
                                                "kinds": ["medicine", "preparation"]}), 201)
    assert widened["kinds"] == ["preparation", "medicine"]
    ok(at_host("preparation", start), 201)
    # the host ends it: no new session is hosted under it, a booked one stays booked
    ended = ok(host.post(f"/v1/partnerships/{home.clinic['id']}/end", {"reason": "no monitoring staff"}), 200)
    assert (ended["state"], ended["agreed"], ended["kinds"]) == ("ended", False, [])
    for kind, when in (("medicine", start + timedelta(days=9)), ("preparation", start + timedelta(days=2))):
        refused = at_host(kind, when, 3 if kind == "medicine" else 1)
        assert refused.status_code == 409 and refused.json()["type"] == "/problems/hosting", refused.text
    course = ok(client.get(f"/v1/courses/{cid}", headers=home.headers), 200)
    assert {s["id"]: s["status"] for s in course["sessions"]}[medicine["id"]] == "booked"
    # ending again changes nothing; a clinic without a partnership has none to end
    assert ok(home.post(f"/v1/partnerships/{host.clinic['id']}/end", {"reason": "again"}), 200)["history"] == \
        ended["history"]
    stranger = Tenant.onboard(client, live_server.operator_token, "Stranger")
    assert stranger.post(f"/v1/partnerships/{home.clinic['id']}/end", {"reason": "?"}).status_code == 404
    # the history, in order, as either clinic lists it
    listed = ok(client.get(f"/v1/clinics/{home.clinic['id']}/partnerships", headers=home.headers), 200)
    assert len(listed) == 1 and listed[0]["partner_clinic_id"] == host.clinic["id"]
    history = [(h["clinic_id"], h["change"], h["kinds"], h["reason"], h["by"]) for h in listed[0]["history"]]
    assert history == [
        (home.clinic["id"], "consented", ["preparation", "medicine"], None, f"clinic:{home.clinic['id']}"),
        (host.clinic["id"], "consented", ["medicine"], None, f"clinic:{host.clinic['id']}"),
        (host.clinic["id"], "consented", ["preparation", "medicine"], None, f"clinic:{host.clinic['id']}"),
        (host.clinic["id"], "ended", [], "no monitoring staff", f"clinic:{host.clinic['id']}"),
    ]
    from_host = ok(client.get(f"/v1/clinics/{host.clinic['id']}/partnerships", headers=host.headers), 200)
    assert from_host[0]["partner_clinic_id"] == home.clinic["id"] and from_host[0]["history"] == listed[0]["history"]
    # consenting again after the end proposes it anew
    again = ok(home.post("/v1/partnerships", {"partner_clinic_id": host.clinic["id"]}), 201)
    assert again["state"] == "proposed" and len(again["history"]) == 5


def test_opening_hours_closures_and_working_hours_are_kept_unless_a_reason_overrides_them(
        home: Tenant, client: httpx.Client) -> None:
    base = f"/v1/clinics/{home.clinic['id']}"
    cid = home.open_course()["id"]
    monday = T0.replace(hour=0)  # 2026-01-05, a Monday; Berlin is UTC+1 in January

    def book(start: datetime, **extra: Any) -> httpx.Response:
        return home.post(f"/v1/courses/{cid}/sessions", session_body(home, "assessment", start, **extra), at=EARLY)

    # opening hours Monday to Friday 09:00-17:00 local; changing them keeps the first setting in the history
    ok(client.put(f"{base}/opening-hours", headers=home.headers, json={"intervals": [
        {"weekday": d, "opens": "08:00", "closes": "12:00"} for d in WEEKDAYS]}), 200)
    hours = ok(client.put(f"{base}/opening-hours", headers=home.headers, json={"intervals": [
        {"weekday": d, "opens": "09:00", "closes": "17:00"} for d in WEEKDAYS]}), 200)
    assert hours["intervals"][0] == {"weekday": "monday", "opens": "09:00", "closes": "17:00"}
    assert [h["intervals"][0]["opens"] for h in hours["history"]] == ["08:00", "09:00"]
    assert ok(client.get(base, headers=home.headers), 200)["opening_hours"] == hours["intervals"]
    ok(book(monday + timedelta(hours=8)), 201)  # 09:00-10:00 local
    refused = book(monday + timedelta(hours=16))  # 17:00-18:00 local
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/opening-hours"
    assert "Home practice is not open on Monday 2026-01-05 17:00-18:00 (Europe/Berlin)" in refused.json()["detail"]
    # a closure: refused that day, with its reason
    closure = ok(home.post(f"{base}/closures", {"starts_on": "2026-01-06", "ends_on": "2026-01-06",
                                               "reason": "staff training"}), 201)
    refused = book(monday + timedelta(days=1, hours=9))
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/closure"
    assert "staff training" in refused.json()["detail"]
    # a therapist working Monday mornings only
    ok(client.put(f"/v1/clinicians/{home.therapist['id']}/working-hours", headers=home.headers, json={
        "intervals": [{"weekday": "monday", "opens": "09:00", "closes": "12:00"}]}), 200)
    refused = book(monday + timedelta(days=2, hours=9))  # Wednesday 10:00 local
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/working-hours"
    assert "Therapist does not work on Wednesday 2026-01-07 10:00-11:00" in refused.json()["detail"]
    # several at once, each named
    refused = book(monday + timedelta(days=1, hours=17))  # Tuesday 18:00 local: closed, after hours, not working
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/rule-violations"
    assert [v["invariant"] for v in refused.json()["violations"]] == ["opening-hours", "closure", "working-hours"]
    # with a reason it is booked, and the reason is kept in the course's history
    late = ok(book(monday + timedelta(days=2, hours=17), hours_override_reason="the couple works day shifts"), 201)
    booked = [e["session"] for e in events_of(home, cid, "SessionBooked")]
    assert booked[-1]["id"] == late["id"] and booked[-1]["hours_override"] == "the couple works day shifts"
    assert "hours_override" not in booked[0]  # within hours: nothing to override
    # moving a session: the same rules, the same override
    first = booked[0]["id"]
    moved = home.post(f"/v1/courses/{cid}/sessions/{first}/reschedule", {
        "starts_at": iso(monday + timedelta(hours=12)), "ends_at": iso(monday + timedelta(hours=13))}, at=EARLY)
    assert moved.status_code == 409 and moved.json()["type"] == "/problems/working-hours"  # 13:00 local
    ok(home.post(f"/v1/courses/{cid}/sessions/{first}/reschedule", {
        "starts_at": iso(monday + timedelta(hours=12)), "ends_at": iso(monday + timedelta(hours=13)),
        "hours_override_reason": "therapist stays late once"}, at=EARLY), 200)
    assert events_of(home, cid, "SessionRescheduled")[-1]["hours_override"] == "therapist stays late once"
    # lifting the closure keeps it in the history; the day is bookable again (in working hours: Monday only, so
    # the therapist's hours are cleared first, which is null: always available)
    assert client.delete(f"{base}/closures/{closure['id']}", headers=home.headers).status_code == 204
    assert client.delete(f"{base}/closures/{closure['id']}", headers=home.headers).status_code == 204
    closures = ok(client.get(f"{base}/closures", headers=home.headers), 200)
    assert closures["current"] == [] and [c["change"] for c in closures["history"]] == ["added", "lifted"]
    cleared = ok(client.put(f"/v1/clinicians/{home.therapist['id']}/working-hours", headers=home.headers,
                            json={"intervals": None}), 200)
    assert cleared["intervals"] is None and len(cleared["history"]) == 2
    ok(book(monday + timedelta(days=1, hours=9)), 201)


def test_hours_are_checked_as_they_are_set(home: Tenant, client: httpx.Client) -> None:
    base = f"/v1/clinics/{home.clinic['id']}"
    for intervals in ([{"weekday": "monday", "opens": "17:00", "closes": "09:00"}],
                      [{"weekday": "someday", "opens": "09:00", "closes": "17:00"}],
                      [{"weekday": "monday", "opens": "9:00", "closes": "24:01"}]):
        response = client.put(f"{base}/opening-hours", headers=home.headers, json={"intervals": intervals})
        assert response.status_code == 422, response.text
    backwards = home.post(f"{base}/closures", {"starts_on": "2026-02-02", "ends_on": "2026-02-01", "reason": "x"})
    assert backwards.status_code == 422
    # until midnight: 24:00
    ok(client.put(f"{base}/opening-hours", headers=home.headers, json={"intervals": [
        {"weekday": "monday", "opens": "20:00", "closes": "24:00"}]}), 200)
    cid = home.open_course()["id"]
    late = datetime(2026, 1, 5, 22, tzinfo=timezone.utc)  # Monday 23:00-24:00 local
    ok(home.post(f"/v1/courses/{cid}/sessions", session_body(home, "assessment", late), at=EARLY), 201)
