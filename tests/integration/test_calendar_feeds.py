"""Calendar feeds of clinicians and rooms against the real server: created, listed and revoked by the clinic that owns
the clinician or room (another clinic: 404), fetched without a key as iCalendar that `icalendar` parses, showing
each session the resource holds (moved ones at their new time, cancelled ones gone) and nothing of the couple."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from api_support import EARLY, T0, Tenant, bearer, iso, ok
from conftest import serve
from icalendar import Calendar
from scheduler.embedded import free_port
from test_api_confirmation import clinics, confirm  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

TOKEN = re.compile(r"^/calendar-feeds/(kact_cal_[A-Za-z0-9_-]{43})/calendar\.ics$")


def create(tenant: Tenant, path: str, label: str | None = None) -> dict[str, Any]:
    return ok(tenant.client.post(path, json={"label": label} if label else {}, headers=tenant.headers), 201)


def fetch(client: httpx.Client, url: str, now: datetime) -> httpx.Response:
    """What a calendar client fetches (no key); `now` is the server's simulated time (the feed's window)."""
    return client.get(urlsplit(url).path, headers={"X-Kact-Now": iso(now)})


def events(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    calendar = Calendar.from_ical(response.content)
    return {str(event["uid"]): event for event in calendar.walk("VEVENT")}


def utc(event: Any, name: str) -> datetime:
    value = event.decoded(name)
    assert value.utcoffset() == timedelta(0), (name, value)
    return value  # type: ignore[no-any-return]


def test_feeds_show_each_resource_s_sessions_and_nothing_of_the_couple(
        clinics: tuple[Tenant, Tenant], client: httpx.Client, live_server) -> None:  # noqa: F811
    home, host = clinics
    room = ok(host.post(f"/v1/clinics/{host.clinic['id']}/rooms", {"name": "Treatment room 2"}), 201)
    therapist_feeds = f"/v1/clinicians/{home.therapist['id']}/calendar-feeds"
    prescriber_feeds = f"/v1/clinicians/{host.prescriber['id']}/calendar-feeds"
    room_feeds = f"/v1/clinics/{host.clinic['id']}/rooms/{room['id']}/calendar-feeds"
    therapist_feed = create(home, therapist_feeds, "Mara's Google Calendar")
    prescriber_feed = create(host, prescriber_feeds)
    room_feed = create(host, room_feeds, "room display")
    for feed in (therapist_feed, prescriber_feed, room_feed):
        assert TOKEN.match(urlsplit(feed["url"]).path), feed["url"]
        assert feed["url"].startswith(live_server.base_url) and feed["revoked_at"] is None
    assert (therapist_feed["resource"], therapist_feed["resource_id"]) == ("clinician", home.therapist["id"])
    assert (room_feed["resource"], room_feed["resource_id"], room_feed["clinic_id"]) == (
        "room", room["id"], host.clinic["id"])

    # A course: five sessions held with the therapist, a medicine session at the partner clinic (its room, its
    # prescriber) not yet confirmed, one integration session moved, one cancelled.
    course = home.open_course()
    cid, partners = course["id"], course["partners"]
    start = home.assess_and_prepare(cid)
    medicine = home.book(cid, "medicine", start, hours=3, clinic_id=host.clinic["id"], room_id=room["id"],
                         clinician_ids=[host.prescriber["id"]])
    moved = home.book(cid, "integration", start + timedelta(days=1))
    moved_to = start + timedelta(days=1, hours=5)
    ok(home.post(f"/v1/courses/{cid}/sessions/{moved['id']}/reschedule",
                 {"starts_at": iso(moved_to), "ends_at": iso(moved_to + timedelta(hours=1))}, at=EARLY), 200)
    cancelled = home.book(cid, "integration", start + timedelta(days=2))
    ok(home.post(f"/v1/courses/{cid}/sessions/{cancelled['id']}/cancel",
                 {"reason": "partner b caught the flu"}, at=EARLY), 200)
    sessions = {s["id"]: s for s in ok(client.get(f"/v1/courses/{cid}", headers=home.headers), 200)["sessions"]}
    held = [sid for sid, s in sessions.items() if s["status"] == "held"]
    assert len(held) == 5

    # Fetched right after the commands (no index to wait for), without a key, on the day before the medicine.
    before = start - timedelta(days=1)
    therapist = events(fetch(client, therapist_feed["url"], before))
    assert set(therapist) == {f"{sid}@kact" for sid in [*held, moved["id"]]}  # the cancelled one is gone
    for sid in [*held, moved["id"]]:
        event, session = therapist[f"{sid}@kact"], sessions[sid]
        assert utc(event, "dtstart") == datetime.fromisoformat(session["starts_at"])
        assert utc(event, "dtend") == datetime.fromisoformat(session["ends_at"])
        assert str(event["summary"]) == f"{session['kind'].capitalize()} session"
        assert str(event["location"]) == home.clinic["name"]  # no room at the practice
        assert str(event["description"]) == f"Course {cid}"
        assert str(event["status"]) == "CONFIRMED"
        assert event["sequence"] == (1 if sid == moved["id"] else 0)
        utc(event, "dtstamp"), utc(event, "last-modified")
    assert utc(therapist[f"{moved['id']}@kact"], "dtstart") == moved_to  # the new time

    where = f"{host.clinic['name']}, Treatment room 2"
    for feed in (prescriber_feed, room_feed):
        (event,) = events(fetch(client, feed["url"], before)).values()
        assert str(event["uid"]) == f"{medicine['id']}@kact" and str(event["status"]) == "TENTATIVE"
        assert str(event["summary"]) == "Medicine session" and str(event["location"]) == where
        assert utc(event, "dtstart") == start and utc(event, "dtend") == start + timedelta(hours=3)
    ok(confirm(host, cid, medicine["id"]), 200)
    (event,) = events(fetch(client, room_feed["url"], before)).values()
    assert str(event["status"]) == "CONFIRMED"  # at once

    # Nothing of the couple, their notes or the reasons given, anywhere in any feed.
    for feed in (therapist_feed, prescriber_feed, room_feed):
        body = fetch(client, feed["url"], before).text
        for secret in (partners["a"], partners["b"], "partner-", "screening note", "joint assessment", "flu",
                       "partners", "ATTENDEE", "ORGANIZER"):
            assert secret not in body, (secret, feed["resource"])
    # The window: sessions that ended more than 30 days ago leave the feed; the medicine session is still to come.
    later = events(fetch(client, therapist_feed["url"], start - timedelta(hours=1) + timedelta(days=31)))
    assert set(later) == {f"{moved['id']}@kact"}

    # Listed without a URL or token, by the owning clinic and the operator.
    listed = ok(client.get(therapist_feeds, headers=home.headers), 200)
    assert [(f["id"], f["label"], f["created_by"], f["revoked_at"]) for f in listed] == [
        (therapist_feed["id"], "Mara's Google Calendar", f"clinic:{home.clinic['id']}", None)]
    assert "url" not in listed[0] and "kact_cal_" not in str(listed)
    assert ok(client.get(room_feeds, headers=bearer(live_server.operator_token)), 200)[0]["id"] == room_feed["id"]


def test_another_clinic_sees_no_feed_and_a_revoked_feed_answers_404_at_once(
        clinics: tuple[Tenant, Tenant], client: httpx.Client, live_server) -> None:  # noqa: F811
    home, host = clinics
    stranger = Tenant.onboard(client, live_server.operator_token, "Stranger")
    room = ok(host.post(f"/v1/clinics/{host.clinic['id']}/rooms", {"name": "Room 1"}), 201)
    therapist_feeds = f"/v1/clinicians/{home.therapist['id']}/calendar-feeds"
    room_feeds = f"/v1/clinics/{host.clinic['id']}/rooms/{room['id']}/calendar-feeds"
    feed = create(home, therapist_feeds)
    room_feed = create(host, room_feeds)

    # Another clinic (its partner included), or a prescriber's key: neither the clinician, the room nor the feeds.
    for outsider in (stranger.headers, host.headers, home.rx_headers):
        assert client.post(therapist_feeds, json={}, headers=outsider).status_code == 404
        assert client.get(therapist_feeds, headers=outsider).status_code == 404
        assert client.delete(f"{therapist_feeds}/{feed['id']}", headers=outsider).status_code == 404
    for outsider in (stranger.headers, home.headers):
        assert client.post(room_feeds, json={}, headers=outsider).status_code == 404
        assert client.get(room_feeds, headers=outsider).status_code == 404
        assert client.delete(f"{room_feeds}/{room_feed['id']}", headers=outsider).status_code == 404
    # A room under another clinic's path is no room of it, even for the operator; a feed of another resource, none.
    assert client.get(f"/v1/clinics/{home.clinic['id']}/rooms/{room['id']}/calendar-feeds",
                      headers=bearer(live_server.operator_token)).status_code == 404
    assert client.delete(f"{therapist_feeds}/{room_feed['id']}", headers=home.headers).status_code == 404
    assert client.get(urlsplit(feed["url"]).path).status_code == 200  # still served

    # Revoked: 404 from the next fetch on; revoking again changes nothing.
    assert client.delete(f"{therapist_feeds}/{feed['id']}", headers=home.headers).status_code == 204
    gone = client.get(urlsplit(feed["url"]).path)
    assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"
    listed = ok(client.get(therapist_feeds, headers=home.headers), 200)
    assert listed[0]["revoked_by"] == f"clinic:{home.clinic['id']}" and listed[0]["revoked_at"] is not None
    assert client.delete(f"{therapist_feeds}/{feed['id']}", headers=home.headers).status_code == 204
    assert ok(client.get(therapist_feeds, headers=home.headers), 200) == listed
    assert client.get(urlsplit(room_feed["url"]).path).status_code == 200  # the others stay

    # A token nobody was given, and one that is not a token at all.
    unknown = "/calendar-feeds/kact_cal_" + "A" * 43 + "/calendar.ics"
    assert client.get(unknown).status_code == 404
    assert client.get("/calendar-feeds/not-a-token/calendar.ics").status_code == 422


def test_a_feed_is_fetched_at_most_a_burst_then_once_every_few_seconds(
        clinics: tuple[Tenant, Tenant], client: httpx.Client) -> None:  # noqa: F811
    home, _ = clinics
    feeds = f"/v1/clinicians/{home.therapist['id']}/calendar-feeds"
    one, other = create(home, feeds), create(home, feeds)
    answers = [client.get(urlsplit(one["url"]).path).status_code for _ in range(10)]
    assert answers == [200] * 10, answers
    refused = client.get(urlsplit(one["url"]).path)
    # one fetch every 5 s once the burst is spent: 5 s to wait, or 4 if the burst took over a second here
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) in (4, 5), refused.headers
    assert refused.json()["violated-policies"] == ["calendar-feed"]
    assert client.get(urlsplit(other["url"]).path).status_code == 200  # each feed has its own bucket


def test_a_second_api_process_serves_a_booking_at_once_and_refuses_the_feed_once_revoked_through_the_first(
        clinics: tuple[Tenant, Tenant], client: httpx.Client, live_server) -> None:  # noqa: F811
    home, _ = clinics
    feeds = f"/v1/clinicians/{home.therapist['id']}/calendar-feeds"
    feed = create(home, feeds)
    path = urlsplit(feed["url"]).path
    settings = dataclasses.replace(live_server.settings, http_port=free_port(), background_jobs=False)
    with serve(settings) as other, httpx.Client(base_url=other.base_url, timeout=30) as second:
        the_day_before = {"X-Kact-Now": iso(T0 - timedelta(days=1))}
        assert events(second.get(path, headers=the_day_before)) == {}
        cid = home.open_course()["id"]
        home.screen_both(cid)
        session = home.book(cid, "assessment", T0)  # through the first process
        assert list(events(second.get(path, headers=the_day_before))) == [f"{session['id']}@kact"]
        assert client.delete(f"{feeds}/{feed['id']}", headers=home.headers).status_code == 204
        assert second.get(path, headers=the_day_before).status_code == 404
