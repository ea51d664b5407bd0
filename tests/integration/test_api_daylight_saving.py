"""A weekly 10:00-local session over weeks that span a daylight-saving change, booked over HTTP at clinics in
Europe/London and America/New_York: the stored instants move by the hour, the local time stays 10:00."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import httpx
import pytest
from api_support import Tenant, bearer, iso, ok

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("zone", "first_monday", "moved"), [
    ("Europe/London", date(2026, 3, 16), +1),  # clocks forward on Sunday 29 March
    ("Europe/London", date(2026, 10, 12), -1),  # back on Sunday 25 October
    ("America/New_York", date(2026, 2, 23), +1),  # forward on Sunday 8 March
    ("America/New_York", date(2026, 10, 19), -1),  # back on Sunday 1 November
])
def test_a_weekly_10_local_session_stays_at_10_local_across_a_change(
        client: httpx.Client, live_server, zone: str, first_monday: date, moved: int) -> None:
    clinic = ok(client.post("/v1/clinics", json={"name": f"Clinic in {zone}", "timezone": zone},
                            headers=bearer(live_server.operator_token)), 201)
    home = Tenant(client, clinic, ok(client.post(f"/v1/clinics/{clinic['id']}/clinicians", json={
        "name": "Therapist", "role": "therapist"}, headers=bearer(clinic["api_key"])), 201), {},
        bearer(clinic["api_key"]))
    # open Mondays 10:00-11:00 local only
    ok(client.put(f"/v1/clinics/{clinic['id']}/opening-hours", headers=home.headers,
                  json={"intervals": [{"weekday": "monday", "opens": "10:00", "closes": "11:00"}]}), 200)
    cid = home.open_course()["id"]
    mondays = [first_monday + timedelta(weeks=i) for i in range(4)]
    booked = []
    for day in mondays:
        start = datetime(day.year, day.month, day.day, 10, tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)
        booked.append(home.book(cid, "preparation", start, at=start - timedelta(days=1)))
    course = ok(client.get(f"/v1/courses/{cid}", headers=home.headers), 200)
    sessions = sorted(course["sessions"], key=lambda s: s["starts_at"])
    assert [s["id"] for s in sessions] == [s["id"] for s in booked]
    local = [datetime.fromisoformat(s["starts_at_local"]) for s in sessions]
    assert [(t.date(), t.hour, t.minute) for t in local] == [(d, 10, 0) for d in mondays]
    assert all(s["timezone"] == zone for s in sessions)
    utc = [datetime.fromisoformat(s["starts_at"].replace("Z", "+00:00")) for s in sessions]
    assert all(u.utcoffset() == timedelta(0) for u in utc)
    gaps = [b - a for a, b in zip(utc, utc[1:])]
    # exactly one week has the change: it is an hour shorter (forward) or longer (back) in elapsed time
    assert sorted(gaps) == sorted([timedelta(weeks=1)] * 2 + [timedelta(weeks=1) - moved * timedelta(hours=1)])
    offsets = [t.utcoffset() for t in local]
    assert offsets[-1] - offsets[0] == moved * timedelta(hours=1)
    # 10:00 at the UTC time-of-day of the first week, after the change, is not 10:00 local: refused
    shifted = utc[0] + timedelta(weeks=5)  # a Monday after the change, at the UTC clock of the first week
    refused = home.post(f"/v1/courses/{cid}/sessions", {
        "kind": "preparation", "starts_at": iso(shifted), "ends_at": iso(shifted + timedelta(hours=1)),
        "partners": ["a", "b"], "clinician_ids": [home.therapist["id"]]}, at=shifted - timedelta(days=1))
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"] == "/problems/opening-hours"
