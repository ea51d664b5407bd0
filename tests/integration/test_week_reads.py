"""A clinic's week over HTTP: calendars of clinicians and rooms by local day and ISO week, the course list's
filters and cursor, reads that show the write answered just before them (no polling here), and who may read."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import httpx
import psycopg
import pytest
from psycopg import sql

from api_support import T0, Tenant, bearer, iso, ok

pytestmark = pytest.mark.integration
ENTRY_FIELDS = {"session_id", "course_id", "kind", "starts_at", "ends_at", "clinic_id", "room_id", "clinician_ids",
                "status", "confirmation"}


def calendar(client: httpx.Client, tenant: Tenant, view: str, day: str, clinician: str | None = None,
             headers: dict[str, str] | None = None, **params: str) -> httpx.Response:
    return client.get(f"/v1/clinicians/{clinician or tenant.therapist['id']}/calendar",
                      params={"view": view, "date": day, **params}, headers=headers or tenant.headers)


def session_ids(body: dict) -> list[str]:
    return [e["session_id"] for e in body["entries"]]


def test_a_clinicians_day_and_week_show_each_booking_at_once_in_the_clinics_zone(client, live_server,
                                                                                 database_url, db_schema) -> None:
    home = Tenant.onboard(client, live_server.operator_token)  # Europe/Berlin
    course = home.open_course()
    monday = home.book(course["id"], "assessment", T0)  # 2026-01-05 09:00 UTC: 10:00 in Berlin
    # Read right after the write, without waiting: the read waits for the index itself.
    day = ok(calendar(client, home, "day", "2026-01-05"), 200)
    assert session_ids(day) == [monday["id"]]
    entry = day["entries"][0]
    assert set(entry) == ENTRY_FIELDS  # nothing of the couple
    assert (entry["starts_at"], entry["ends_at"]) == ("2026-01-05T10:00:00+01:00", "2026-01-05T11:00:00+01:00")
    assert (entry["status"], entry["kind"], entry["course_id"]) == ("booked", "assessment", course["id"])
    assert (day["starts_at"], day["ends_at"], day["hours"]) == ("2026-01-05T00:00:00+01:00",
                                                                "2026-01-06T00:00:00+01:00", 24.0)
    assert "partner" not in str(day)

    # A session from Sunday 23:30 to Monday 00:30 (Berlin) belongs to both days and both ISO weeks.
    late = home.book(course["id"], "preparation", datetime(2026, 1, 11, 22, 30, tzinfo=timezone.utc),
                     partners=["a"])
    week = ok(calendar(client, home, "week", "2026-01-08"), 200)
    assert session_ids(week) == [monday["id"], late["id"]]
    assert (week["starts_at"], week["hours"]) == ("2026-01-05T00:00:00+01:00", 168.0)
    assert session_ids(ok(calendar(client, home, "day", "2026-01-12"), 200)) == [late["id"]]
    assert session_ids(ok(calendar(client, home, "week", "2026-01-12"), 200)) == [late["id"]]
    assert session_ids(ok(calendar(client, home, "day", "2026-01-06"), 200)) == []

    # Cancelled: gone from the calendar at once (shown on request, marked cancelled).
    ok(home.post(f"/v1/courses/{course['id']}/sessions/{late['id']}/cancel", {"reason": "ill"},
                 at=T0), 200)
    assert session_ids(ok(calendar(client, home, "day", "2026-01-12"), 200)) == []
    shown = ok(calendar(client, home, "day", "2026-01-12", include_cancelled="true"), 200)
    assert [e["status"] for e in shown["entries"]] == ["cancelled"]

    # Held: marked so.
    home.hold(course["id"], monday)
    assert [e["status"] for e in ok(calendar(client, home, "day", "2026-01-05"), 200)["entries"]] == ["held"]

    # Every read is in the access log, under the reading clinic's name.
    with psycopg.connect(database_url) as conn:
        logged = conn.execute(sql.SQL("SELECT count(*) FROM {}.access_log WHERE principal = %s AND action = %s")
                              .format(sql.Identifier(db_schema)),
                              (f"clinic:{home.clinic['id']}", "read_clinician_calendar")).fetchone()[0]
    assert logged >= 8


def test_a_rooms_calendar_and_who_may_read_calendars(client, live_server) -> None:
    home = Tenant.onboard(client, live_server.operator_token)
    other = Tenant.onboard(client, live_server.operator_token, "Another practice")
    room = ok(home.post(f"/v1/clinics/{home.clinic['id']}/rooms", {"name": "Room 1"}), 201)
    course = home.open_course()
    booked = home.book(course["id"], "assessment", T0 + timedelta(days=2), room_id=room["id"])
    room_path = f"/v1/clinics/{home.clinic['id']}/rooms/{room['id']}/calendar"
    body = ok(client.get(room_path, params={"view": "week", "date": "2026-01-07"}, headers=home.headers), 200)
    assert session_ids(body) == [booked["id"]] and body["entries"][0]["room_id"] == room["id"]
    assert (body["resource"], body["timezone"]) == ("room", "Europe/Berlin")
    operator = bearer(live_server.operator_token)
    assert ok(client.get(room_path, params={"date": "2026-01-07"}, headers=operator), 200)["entries"]
    assert ok(calendar(client, home, "week", "2026-01-07", headers=operator), 200)["entries"]

    # Another clinic, or the room under another clinic's path: it does not exist.
    for response in (client.get(room_path, params={"date": "2026-01-07"}, headers=other.headers),
                     calendar(client, home, "week", "2026-01-07", headers=other.headers),
                     calendar(client, home, "week", "2026-01-07", headers=home.rx_headers),
                     client.get(f"/v1/clinics/{other.clinic['id']}/rooms/{room['id']}/calendar", headers=operator)):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("application/problem+json")

    # Bad input: problem details, never a 500.
    for params in ({"view": "month"}, {"date": "2026-13-01"}, {"date": "1900-01-01"}, {"date": "soon"}):
        response = calendar(client, home, params.get("view", "day"), params.get("date", "2026-01-07"))
        assert response.status_code in (400, 422), response.text
        assert response.headers["content-type"].startswith("application/problem+json")

    # A discontinued course's booked sessions no longer hold their time.
    ok(home.post(f"/v1/courses/{course['id']}/discontinue", {"reason": "moved away"}), 200)
    assert ok(client.get(room_path, params={"date": "2026-01-07"}, headers=home.headers), 200)["entries"] == []


def listed(client: httpx.Client, tenant: Tenant, **params: str) -> list[str]:
    return [c["id"] for c in ok(client.get("/v1/courses", params=params, headers=tenant.headers), 200)["items"]]


def test_the_course_list_filters_by_status_phase_clinician_and_next_session(client, live_server) -> None:
    home = Tenant.onboard(client, live_server.operator_token)
    second = home.with_own_therapist()
    fresh, assessed, booked = (home.open_course() for _ in range(3))
    # Each course is in the list as soon as it is opened (the read waits for the index).
    assert set(listed(client, home)) == {fresh["id"], assessed["id"], booked["id"]}
    home.screen_both(assessed["id"])
    home.hold(assessed["id"], home.book(assessed["id"], "assessment", T0))
    soon = second.book(booked["id"], "assessment", T0 + timedelta(days=3))
    later = second.book(booked["id"], "preparation", T0 + timedelta(days=9), partners=["a"])

    assert listed(client, home, phase="preparation") == [assessed["id"]]
    assert set(listed(client, home, phase="assessment")) == {fresh["id"], booked["id"]}
    assert listed(client, home, clinician_id=second.therapist["id"]) == [booked["id"]]
    assert listed(client, home, next_session_from=iso(T0 + timedelta(days=2)),
                  next_session_before=iso(T0 + timedelta(days=4))) == [booked["id"]]
    items = ok(client.get("/v1/courses", params={"phase": "assessment"}, headers=home.headers), 200)["items"]
    assert {c["id"]: c["next_session_at"] for c in items} == {
        fresh["id"]: None, booked["id"]: soon["starts_at"].replace("Z", "+00:00").replace("+00:00", "Z")}
    # Cancel the first: the next session is the other one, at once.
    ok(home.post(f"/v1/courses/{booked['id']}/sessions/{soon['id']}/cancel", {"reason": "ill"}, at=T0), 200)
    assert listed(client, home, next_session_before=iso(T0 + timedelta(days=4))) == []
    assert listed(client, home, next_session_from=iso(T0 + timedelta(days=8))) == [booked["id"]]
    ok(home.post(f"/v1/courses/{booked['id']}/sessions/{later['id']}/cancel", {"reason": "ill"}, at=T0), 200)
    assert listed(client, home, clinician_id=second.therapist["id"]) == []
    ok(home.post(f"/v1/courses/{fresh['id']}/discontinue", {"reason": "moved away"}), 200)
    assert listed(client, home, status="discontinued") == [fresh["id"]]
    assert listed(client, home, phase="discontinued") == [fresh["id"]]

    for params in ({"phase": "dosing"}, {"clinician_id": "nope"}, {"next_session_from": "yesterday"},
                   {"next_session_from": "2026-01-05T09:00:00"}, {"limit": "0"}, {"limit": "1000"},
                   {"cursor": "bm90IGEgY3Vyc29y"}, {"cursor": "abc", "page": "2"}):
        response = client.get("/v1/courses", params=params, headers=home.headers)
        assert response.status_code in (400, 422), (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


def test_walking_the_cursor_sees_every_course_once_while_more_are_opened(client, live_server) -> None:
    home = Tenant.onboard(client, live_server.operator_token)
    before = {home.open_course()["id"] for _ in range(9)}
    stop, opened_during = threading.Event(), set()

    def keep_opening() -> None:
        with httpx.Client(base_url=live_server.base_url, timeout=30) as own:
            writer = Tenant(own, home.clinic, home.therapist, home.prescriber, home.headers)
            while not stop.is_set() and len(opened_during) < 30:
                opened_during.add(writer.open_course()["id"])

    thread = threading.Thread(target=keep_opening)
    thread.start()
    seen: list[str] = []
    try:
        body = ok(client.get("/v1/courses", params={"limit": 2}, headers=home.headers), 200)
        assert (body["page"], body["next_page"]) == (1, 2)  # the older page numbers still answer
        while True:
            seen += [c["id"] for c in body["items"]]
            if body["next_cursor"] is None:
                break
            body = ok(client.get("/v1/courses", params={"limit": 2, "cursor": body["next_cursor"]},
                                 headers=home.headers), 200)
            assert body["page"] is None
    finally:
        stop.set()
        thread.join()
    assert len(seen) == len(set(seen))  # no course twice
    assert before <= set(seen)  # none opened before the walk missed
    assert set(seen) <= before | opened_during
    # Newest first, as the walk went.
    everything = ok(client.get("/v1/courses", params={"limit": 200}, headers=home.headers), 200)["items"]
    order = [c["id"] for c in everything]
    assert [i for i in order if i in set(seen)] == seen
    # Page numbers still walk the list (without a cursor).
    paged, page = [], 1
    while page:
        body = ok(client.get("/v1/courses", params={"limit": 4, "page": page}, headers=home.headers), 200)
        paged += [c["id"] for c in body["items"]]
        page = body["next_page"]
    assert set(paged) == set(order)
