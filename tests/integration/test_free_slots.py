"""Free slots through the API: what is offered honours hours, bookings, holds, buffers and limits, any-of
requirements take the first free resource, and a slot offered is a slot a booking accepts (book them all)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from api_support import EARLY, T0, Tenant, iso, ok
from test_api_confirmation import clinics  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]
DAY = "2026-01-06"  # a Tuesday; Berlin is UTC+1


@pytest.fixture
def home(client: httpx.Client, live_server) -> Tenant:
    return Tenant.onboard(client, live_server.operator_token)


def free(tenant: Tenant, clinic: Tenant, at: datetime = EARLY, **params: Any) -> httpx.Response:
    return tenant.client.get(f"/v1/clinics/{clinic.clinic['id']}/free-slots",
                             params={"from": DAY, "duration_minutes": 60, "step_minutes": 60, **params},
                             headers={**tenant.headers, "X-Kact-Now": iso(at)})


def local_hours(slots: list[dict[str, Any]]) -> list[int]:
    return [datetime.fromisoformat(s["starts_at"]).hour for s in slots]


def test_free_slots_honour_hours_bookings_holds_and_buffers(home: Tenant, client: httpx.Client) -> None:
    base = f"/v1/clinics/{home.clinic['id']}"
    ok(client.put(f"{base}/opening-hours", headers=home.headers,
                  json={"intervals": [{"weekday": d, "opens": "09:00", "closes": "15:00"} for d in WEEKDAYS]}), 200)
    ok(client.put(f"{base}/booking-rules", headers=home.headers,
                  json={"buffers": {"integration": {"before_minutes": 0, "after_minutes": 30}}}), 200)
    answer = ok(free(home, home, kind="assessment"), 200)
    assert answer["timezone"] == "Europe/Berlin" and local_hours(answer["slots"]) == [9, 10, 11, 12, 13, 14]
    assert answer["slots"][0]["starts_at"] == "2026-01-06T09:00:00+01:00"
    assert answer["slots"][0]["clinician_ids"] == [home.therapist["id"]]  # the clinic's one therapist
    # a session 10:00-11:00 local and a hold 12:00-13:00 of the therapist
    cid = home.open_course()["id"]
    tuesday = T0 + timedelta(days=1)  # 09:00 UTC = 10:00 local
    home.book(cid, "assessment", tuesday, at=EARLY)
    other = home.open_course()["id"]
    ok(home.post(f"/v1/courses/{other}/holds", {"kind": "assessment", "starts_at": iso(tuesday + timedelta(hours=2)),
                                               "ends_at": iso(tuesday + timedelta(hours=3)),
                                               "clinician_ids": [home.therapist["id"]]}, at=EARLY), 201)
    assert local_hours(ok(free(home, home, kind="assessment"), 200)["slots"]) == [9, 11, 13, 14]
    # the hold expires ten minutes later: its hour is free again then
    later = EARLY + timedelta(minutes=11)
    assert local_hours(ok(free(home, home, at=later, kind="assessment"), 200)["slots"]) == [9, 11, 12, 13, 14]
    # an integration session needs 30 minutes free after it: 09:00 (the session at 10:00 follows) is not offered
    assert 9 not in local_hours(ok(free(home, home, kind="integration"), 200)["slots"])
    # nothing in the past is offered: at 12:50 local, 13:00 is the first slot; at 13:01, 14:00
    assert local_hours(ok(free(home, home, at=tuesday + timedelta(hours=2, minutes=50),
                               kind="assessment"), 200)["slots"]) == [13, 14]
    assert local_hours(ok(free(home, home, at=tuesday + timedelta(hours=3, minutes=1),
                               kind="assessment"), 200)["slots"]) == [14]


def test_any_of_takes_the_first_free_and_a_partner_sees_only_what_its_partnership_covers(
        clinics: tuple[Tenant, Tenant], client: httpx.Client, live_server) -> None:  # noqa: F811
    home, host = clinics
    nurse = host.with_own_therapist()
    room = ok(host.post(f"/v1/clinics/{host.clinic['id']}/rooms", {"name": "Medicine room"}), 201)
    first = ok(free(home, host, kind="medicine", duration_minutes=180, step_minutes=240), 200)["slots"]
    assert [s["room_id"] for s in first] == [room["id"]] * len(first) and len(first) == 6  # 00, 04, ... 20
    assert {tuple(s["clinician_ids"]) for s in first} == {(host.prescriber["id"],)}
    # the prescriber is busy at 08:00 local: a slot then takes the nurse (any one of the two)
    cid = home.open_course()["id"]
    home.book(cid, "medicine", datetime.fromisoformat(first[2]["starts_at"]), hours=3,
              clinic_id=host.clinic["id"], clinician_ids=[host.prescriber["id"]], at=EARLY)
    either = f"{host.prescriber['id']}|{nurse.therapist['id']}"
    slots = ok(free(home, host, kind="medicine", duration_minutes=180, step_minutes=240,
                    require=[either, "room"]), 200)["slots"]
    assert [s["clinician_ids"] for s in slots][2] == [nurse.therapist["id"]]
    assert [s["clinician_ids"] for s in slots][1] == [host.prescriber["id"]]
    # a stranger, and a requirement that is not the clinic's
    stranger = Tenant.onboard(client, live_server.operator_token, "Stranger")
    assert free(stranger, host, kind="medicine").status_code == 404
    refused = free(home, host, kind="medicine", require=[home.therapist["id"]])
    assert refused.status_code == 422 and "is not a clinician or room of the clinic" in refused.text
    assert free(home, host, kind="medicine", to="2026-03-01").status_code == 422  # more than 31 days


def test_a_slot_offered_is_a_slot_a_booking_accepts(home: Tenant, client: httpx.Client) -> None:
    base = f"/v1/clinics/{home.clinic['id']}"
    second = home.with_own_therapist()
    rooms = [ok(home.post(f"{base}/rooms", {"name": f"Room {i}"}), 201) for i in range(2)]
    ok(client.put(f"{base}/opening-hours", headers=home.headers,
                  json={"intervals": [{"weekday": d, "opens": "08:00", "closes": "18:00"} for d in WEEKDAYS]}), 200)
    ok(client.put(f"{base}/booking-rules", headers=home.headers, json={
        "buffers": {"assessment": {"before_minutes": 10, "after_minutes": 20},
                    "preparation": {"before_minutes": 0, "after_minutes": 45}},
        "clinician_daily_limit": 4}), 200)
    either = f"{home.therapist['id']}|{second.therapist['id']}"
    rng = random.Random(20261201)
    booked = 0
    while True:
        kind = rng.choice(["assessment", "preparation"])
        minutes = rng.choice([50, 60, 90])
        slots = ok(free(home, home, kind=kind, duration_minutes=minutes, step_minutes=rng.choice([15, 30]),
                        require=[either, f"{rooms[0]['id']}|{rooms[1]['id']}"], limit=500), 200)["slots"]
        if not slots:
            break
        pick = rng.choice(slots)
        cid = home.open_course()["id"]
        start = datetime.fromisoformat(pick["starts_at"])
        response = home.post(f"/v1/courses/{cid}/sessions", {
            "kind": kind, "partners": ["a"] if kind == "preparation" else ["a", "b"], "starts_at": iso(start),
            "ends_at": iso(start + timedelta(minutes=minutes)), "clinician_ids": pick["clinician_ids"],
            "room_id": pick["room_id"]}, at=EARLY)
        assert response.status_code == 201, (pick, response.text)
        booked += 1
        assert booked <= 8, "more than two therapists' daily limits (4 each) were booked"
    assert booked >= 4  # the day filled up with accepted bookings until nothing more was offered
