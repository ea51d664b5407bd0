"""Holds and a clinic's booking rules through the API: a held slot is nobody else's until it expires or is
booked; booking converts it; a partner clinic caps the holds a home clinic keeps there; buffers, notice,
horizon, clinicians' limits and the host's daily medicine cap each refuse by name."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from api_support import EARLY, T0, Tenant, eventually, iso, ok
from test_api_confirmation import clinics  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


@pytest.fixture
def home(client: httpx.Client, live_server) -> Tenant:
    return Tenant.onboard(client, live_server.operator_token)


def slot(tenant: Tenant, kind: str, start: datetime, hours: float = 1, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "starts_at": iso(start), "ends_at": iso(start + timedelta(hours=hours)),
            "clinician_ids": [tenant.therapist["id"]], **extra}


def hold(tenant: Tenant, cid: str, body: dict[str, Any], at: datetime = EARLY) -> httpx.Response:
    return tenant.post(f"/v1/courses/{cid}/holds", body, at=at)


def event_types(tenant: Tenant, cid: str) -> list[str]:
    return [e["type"] for e in ok(tenant.client.get(f"/v1/courses/{cid}/events", headers=tenant.headers), 200)]


def test_a_held_slot_is_nobody_elses_until_booked_and_booking_converts_it(home: Tenant) -> None:
    first, second = home.open_course()["id"], home.open_course()["id"]
    # hold the therapist's Monday 10:00 for the first course
    held = ok(hold(home, first, slot(home, "assessment", T0 + timedelta(hours=1))), 201)
    assert held["id"].startswith("hold_") and held["kind"] == "assessment"
    assert datetime.fromisoformat(held["expires_at"]) == EARLY + timedelta(minutes=10)  # the default 10 minutes
    assert [h["id"] for h in ok(home.client.get(f"/v1/courses/{first}", headers=home.headers), 200)["holds"]] == [
        held["id"]]
    # another course can neither hold nor book any of that time
    refused = hold(home, second, slot(home, "assessment", T0 + timedelta(hours=1, minutes=30)))
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/double-booking", refused.text
    assert "is already held" in refused.json()["detail"]
    refused = home.post(f"/v1/courses/{second}/sessions", slot(home, "assessment", T0 + timedelta(hours=1)),
                        at=EARLY)
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/double-booking"
    # booking the hold converts it: a session at the held time, no hold left
    session = ok(home.post(f"/v1/courses/{first}/holds/{held['id']}/book", at=EARLY + timedelta(minutes=5)), 201)
    assert (session["starts_at"], session["ends_at"], session["status"]) == (
        held["starts_at"], held["ends_at"], "booked")
    course = ok(home.client.get(f"/v1/courses/{first}", headers=home.headers), 200)
    assert course["holds"] == [] and [s["id"] for s in course["sessions"]] == [session["id"]]
    assert event_types(home, first)[-3:] == ["SlotHeld", "SessionBooked", "HoldReleased"]
    # the time is the session's now: still nobody else's; a hold is booked once
    refused = hold(home, second, slot(home, "assessment", T0 + timedelta(hours=1)))
    assert refused.status_code == 409 and "is already booked for session" in refused.json()["detail"]
    again = home.post(f"/v1/courses/{first}/holds/{held['id']}/book", at=EARLY + timedelta(minutes=6))
    assert again.status_code == 404 and again.json()["type"] == "/problems/not-found"


def test_a_released_or_expired_hold_frees_its_slot_and_the_expiry_is_recorded(home: Tenant) -> None:
    first, second = home.open_course()["id"], home.open_course()["id"]
    start = T0 + timedelta(days=1, hours=1)
    # released: the time is free at once
    held = ok(hold(home, first, slot(home, "assessment", start)), 201)
    ok(home.post(f"/v1/courses/{first}/holds/{held['id']}/release", at=EARLY), 200)
    again = ok(hold(home, second, slot(home, "assessment", start), at=EARLY + timedelta(minutes=1)), 201)
    ok(home.post(f"/v1/courses/{second}/holds/{again['id']}/release", at=EARLY + timedelta(minutes=1)), 200)
    # a two-minute hold: three minutes later it keeps nothing, and is booked no more
    short = ok(hold(home, first, {**slot(home, "assessment", start), "minutes": 2}), 201)
    assert datetime.fromisoformat(short["expires_at"]) == EARLY + timedelta(minutes=2)
    later = EARLY + timedelta(minutes=3)
    late = home.post(f"/v1/courses/{first}/holds/{short['id']}/book", at=later)
    assert late.status_code == 409 and late.json()["type"] == "/problems/hold-expired", late.text
    ok(home.post(f"/v1/courses/{second}/sessions", slot(home, "assessment", start), at=later), 201)
    # the watcher records the expiry (an event the notifier tells the home clinic of)
    eventually(lambda: event_types(home, first), lambda types: "HoldExpired" in types, timeout=30)
    assert ok(home.client.get(f"/v1/courses/{first}", headers=home.headers), 200)["holds"] == []


def test_the_clinic_that_held_a_slot_is_told_when_the_hold_expired(home: Tenant, notifier) -> None:
    cid = home.open_course()["id"]
    short = ok(hold(home, cid, {**slot(home, "assessment", T0 + timedelta(days=3)), "minutes": 1}), 201)

    def told() -> list[dict[str, Any]]:
        items = ok(home.client.get("/v1/feed", params={"after": 0, "limit": 500}, headers=home.headers), 200)["items"]
        return [i for i in items if i["notice"] == "hold_expired"]

    (notice,) = eventually(told, bool, timeout=45)
    assert notice["event"]["type"] == "kact.course.hold.expired.v1" and notice["event"]["courseid"] == cid
    assert notice["event"]["data"]["hold_id"] == short["id"]


def test_a_partner_clinic_caps_the_slots_a_home_clinic_holds_there(
        clinics: tuple[Tenant, Tenant], client: httpx.Client) -> None:  # noqa: F811
    home, host = clinics
    rules = ok(client.put(f"/v1/clinics/{host.clinic['id']}/booking-rules", headers=host.headers,
                          json={"max_partner_holds": 1, "hold_minutes": 5}), 200)
    assert rules["rules"]["max_partner_holds"] == 1 and len(rules["history"]) == 1
    cid = home.open_course()["id"]
    at_host = {"clinic_id": host.clinic["id"], "clinician_ids": [host.prescriber["id"]]}
    first = ok(hold(home, cid, {**slot(home, "medicine", T0 + timedelta(days=10), hours=3), **at_host}), 201)
    assert datetime.fromisoformat(first["expires_at"]) == EARLY + timedelta(minutes=5)  # the host's hold_minutes
    body = {**slot(home, "medicine", T0 + timedelta(days=20), hours=3), **at_host}
    refused = hold(home, cid, body)
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/holds-cap", refused.text
    # the home clinic's own slots are not capped by the partner
    ok(hold(home, cid, slot(home, "assessment", T0 + timedelta(days=1))), 201)
    ok(home.post(f"/v1/courses/{cid}/holds/{first['id']}/release", at=EARLY), 200)
    ok(hold(home, cid, body), 201)
    # the host sees its rules; another clinic does not see them at all
    assert ok(client.get(f"/v1/clinics/{host.clinic['id']}/booking-rules", headers=host.headers), 200) == rules
    assert client.get(f"/v1/clinics/{host.clinic['id']}/booking-rules", headers=home.headers).status_code == 404


def test_buffers_notice_horizon_and_a_clinicians_daily_limit_each_refuse_by_name(home: Tenant) -> None:
    base = f"/v1/clinics/{home.clinic['id']}"
    ok(home.client.put(f"{base}/booking-rules", headers=home.headers, json={
        "buffers": {"assessment": {"before_minutes": 15, "after_minutes": 30}}, "min_notice_minutes": 1440,
        "horizon_days": 30, "clinician_daily_limit": 2}), 200)
    courses = [home.open_course()["id"] for _ in range(4)]
    day = T0 + timedelta(days=2)

    def book(cid: str, start: datetime, at: datetime = EARLY, **extra: Any) -> httpx.Response:
        return home.post(f"/v1/courses/{cid}/sessions", slot(home, "assessment", start, **extra), at=at)

    ok(book(courses[0], day), 201)  # 09:00-10:00 UTC
    # 20 minutes after it ends: inside its 30-minute buffer
    refused = book(courses[1], day + timedelta(hours=1, minutes=20))
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/buffers", refused.text
    ok(book(courses[1], day + timedelta(hours=1, minutes=45)), 201)  # 30 after, and its own 15 before: fine
    # a third session that day for the therapist: the daily limit
    refused = book(courses[2], day + timedelta(hours=5))
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/clinician-daily-limit"
    # too short notice, and beyond the horizon, named together
    refused = book(courses[3], day + timedelta(days=1), at=day + timedelta(days=1, hours=-2))
    assert refused.json()["type"] == "/problems/min-notice", refused.text
    refused = book(courses[3], day + timedelta(days=40), at=day)
    assert refused.json()["type"] == "/problems/booking-horizon", refused.text
    # rescheduling a session onto a full day is judged by the same rules (its own slot aside)
    moved = ok(book(courses[3], day + timedelta(days=1)), 201)
    refused = home.post(f"/v1/courses/{courses[3]}/sessions/{moved['id']}/reschedule",
                        {"starts_at": iso(day + timedelta(hours=6)), "ends_at": iso(day + timedelta(hours=7))},
                        at=EARLY)
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/clinician-daily-limit"
    # bad rules: every problem named
    bad = home.client.put(f"{base}/booking-rules", headers=home.headers,
                          json={"horizon_days": 1, "min_notice_minutes": 2000})
    assert bad.status_code == 422 and "min_notice_minutes must not reach past horizon_days" in bad.text


def test_a_host_caps_the_medicine_sessions_it_hosts_for_partners_each_day(
        clinics: tuple[Tenant, Tenant], client: httpx.Client) -> None:  # noqa: F811
    home, host = clinics
    nurse = host.with_own_therapist()
    ok(client.put(f"/v1/clinics/{host.clinic['id']}/booking-rules", headers=host.headers,
                  json={"partner_medicine_daily_cap": 1}), 200)
    day = T0 + timedelta(days=12)
    first, second = home.open_course()["id"], home.open_course()["id"]
    ok(home.post(f"/v1/courses/{first}/sessions", {**slot(home, "medicine", day, hours=3),
                 "clinic_id": host.clinic["id"], "clinician_ids": [host.prescriber["id"]]}, at=EARLY), 201)
    refused = home.post(f"/v1/courses/{second}/sessions", {**slot(home, "medicine", day + timedelta(hours=4), hours=3),
                        "clinic_id": host.clinic["id"], "clinician_ids": [nurse.therapist["id"]]}, at=EARLY)
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/partner-medicine-daily-cap", \
        refused.text
    # the next day is free; and the host's own courses are not counted against its partners' cap
    ok(home.post(f"/v1/courses/{second}/sessions", {**slot(home, "medicine", day + timedelta(days=1), hours=3),
                 "clinic_id": host.clinic["id"], "clinician_ids": [nurse.therapist["id"]]}, at=EARLY), 201)
    own = host.open_course()["id"]
    ok(host.post(f"/v1/courses/{own}/sessions", {**slot(host, "medicine", day + timedelta(hours=4), hours=3),
                 "clinician_ids": [nurse.therapist["id"]]}, at=EARLY), 201)
