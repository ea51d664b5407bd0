"""Twenty identical conflicting commands at once: exactly one wins, the rest are refused, nothing is doubled."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest

from api_support import EARLY, T0, Tenant, iso, ok

pytestmark = pytest.mark.integration
CONCURRENCY = 20


@pytest.fixture
def home(live_server) -> Iterator[Tenant]:
    with httpx.Client(base_url=live_server.base_url, timeout=60) as client:
        yield Tenant.onboard(client, live_server.operator_token)


def fire_at_once(base_url: str, send: Callable[[httpx.Client], httpx.Response]) -> list[httpx.Response]:
    barrier = threading.Barrier(CONCURRENCY)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            client.get("/health/live")  # connect first, so the requests leave together
            barrier.wait()
            return send(client)

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(one, range(CONCURRENCY)))


def test_recording_the_same_session_held_twenty_times_at_once(home: Tenant, live_server) -> None:
    course = home.open_course()
    cid = course["id"]
    session = home.book(cid, "assessment", T0)
    url = f"/v1/courses/{cid}/sessions/{session['id']}/record"
    headers = {**home.headers, "X-Kact-Now": iso(T0 + timedelta(hours=2))}
    responses = fire_at_once(live_server.base_url,
                             lambda c: c.post(url, json={"outcome": "held", "notes": "once",
                                                                "clinician_id": home.therapist["id"]}, headers=headers))
    assert Counter(r.status_code for r in responses) == {200: 1, 409: CONCURRENCY - 1}
    assert all(r.headers["content-type"].startswith("application/problem+json")
               for r in responses if r.status_code == 409)
    events = ok(home.client.get(f"/v1/courses/{cid}/events", headers=home.headers), 200)
    assert [e["type"] for e in events].count("SessionHeld") == 1


def test_booking_the_couple_twenty_times_into_the_same_hour(home: Tenant, live_server) -> None:
    course = home.open_course()
    cid = course["id"]
    body = {"kind": "assessment", "starts_at": iso(T0), "ends_at": iso(T0 + timedelta(hours=1))}
    responses = fire_at_once(live_server.base_url,
                             lambda c: c.post(f"/v1/courses/{cid}/sessions", json=body,
                                              headers={**home.headers, "X-Kact-Now": iso(EARLY)}))
    assert Counter(r.status_code for r in responses) == {201: 1, 409: CONCURRENCY - 1}
    refusals = {r.json()["type"] for r in responses if r.status_code == 409}
    assert refusals <= {"/problems/double-booking", "/problems/version-conflict"}
    state = ok(home.client.get(f"/v1/courses/{cid}", headers=home.headers), 200)
    assert len(state["sessions"]) == 1
    events = ok(home.client.get(f"/v1/courses/{cid}/events", headers=home.headers), 200)
    assert [e["type"] for e in events].count("SessionBooked") == 1
