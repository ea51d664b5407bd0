"""I10 across the network under concurrency: two scheduler API processes over one database, fifty courses racing
for one therapist's, or one room's, same hour: exactly one wins, every other is refused naming the resource."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from api_support import T0, Tenant, iso, ok
from conftest import LiveServer
from processes import api_process

from scheduler.application.calendars import CalendarIds
from scheduler.application.courses import Courses, event_store_env

pytestmark = pytest.mark.integration
RACERS = 50
HOUR = T0 + timedelta(days=30)


@pytest.fixture(scope="module")
def processes(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two API processes of their own (not the test's in-process server)."""
    logs = tmp_path_factory.mktemp("api")
    with api_process(live_server, logs / "one.log") as one, api_process(live_server, logs / "two.log") as two:
        yield [one, two]


@pytest.fixture
def home(live_server: LiveServer) -> Iterator[Tenant]:
    with httpx.Client(base_url=live_server.base_url, timeout=60) as client:
        yield Tenant.onboard(client, live_server.operator_token)


@pytest.fixture
def event_store(live_server: LiveServer) -> Iterator[Courses]:
    courses = Courses(env=event_store_env(live_server.settings))
    yield courses
    courses.close()


def race(urls: list[str], requests: list[tuple[str, dict[str, Any]]], headers: dict[str, str]) -> list[httpx.Response]:
    """POST every (path, body) at once, alternating between the processes."""
    barrier = threading.Barrier(len(requests))

    def one(i: int) -> httpx.Response:
        path, body = requests[i]
        with httpx.Client(base_url=urls[i % len(urls)], timeout=60) as client:
            client.get("/health/live")  # connected first, so the requests leave together
            barrier.wait()
            return client.post(path, json=body, headers=headers)

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(one, range(len(requests))))


def courses_of(home: Tenant, n: int) -> list[str]:
    return [home.open_course()["id"] for _ in range(n)]


def booking(home: Tenant) -> dict[str, str]:
    """The clinic's headers for booking and moving sessions at T0, before every session here starts."""
    return {**home.headers, "X-Kact-Now": iso(T0)}


def assessment(start: datetime, **extra: Any) -> dict[str, Any]:
    return {"kind": "assessment", "partners": ["a", "b"], "starts_at": iso(start),
            "ends_at": iso(start + timedelta(hours=1)), **extra}


def one_winner(responses: list[httpx.Response], resource: str, taken: str = "already booked for session") -> None:
    statuses = Counter(r.status_code for r in responses)
    assert sum(n for status, n in statuses.items() if 200 <= status < 300) == 1, statuses
    assert statuses[409] == RACERS - 1, [r.text for r in responses if not r.is_success]
    for refused in (r for r in responses if r.status_code == 409):
        problem = refused.json()
        assert problem["type"] == "/problems/double-booking"
        assert [v["invariant"] for v in problem["violations"]] == ["I10"]
        assert resource in problem["detail"] and taken in problem["detail"]


def slots(event_store: Courses, calendar_id: Any) -> list[Any]:
    calendar = event_store.get_calendar(calendar_id)
    return [] if calendar is None else sorted(calendar.slots.values(), key=lambda s: s.starts_at)


def booked_at(home: Tenant, course_ids: list[str], start: datetime) -> list[str]:
    """The courses that hold a booked session starting at `start`."""
    found = []
    for cid in course_ids:
        course = ok(home.client.get(f"/v1/courses/{cid}", headers=home.headers), 200)
        if any(s["status"] == "booked" and datetime.fromisoformat(s["starts_at"]) == start
               for s in course["sessions"]):
            found.append(cid)
    return found


def test_fifty_courses_booking_one_therapists_hour_at_once(
        home: Tenant, processes: list[str], event_store: Courses) -> None:
    course_ids = courses_of(home, RACERS)
    therapist = home.therapist["id"]
    responses = race(processes, [(f"/v1/courses/{cid}/sessions", assessment(HOUR, clinician_ids=[therapist]))
                                 for cid in course_ids], booking(home))
    one_winner(responses, f"clinician {therapist}")
    winner = next(r.json() for r in responses if r.is_success)
    assert booked_at(home, course_ids, HOUR) == [next(c for c, r in zip(course_ids, responses) if r.is_success)]
    held = slots(event_store, CalendarIds(b"").clinician(therapist))
    assert [(s.session_id, s.starts_at) for s in held] == [(winner["id"], HOUR)]


def test_fifty_courses_booking_one_room_at_once(home: Tenant, processes: list[str], event_store: Courses) -> None:
    room = ok(home.post(f"/v1/clinics/{home.clinic['id']}/rooms", {"name": "Room 1"}), 201)
    course_ids = courses_of(home, RACERS)
    responses = race(processes, [(f"/v1/courses/{cid}/sessions", assessment(HOUR, room_id=room["id"]))
                                 for cid in course_ids], booking(home))
    one_winner(responses, f"room {room['id']}")
    held = slots(event_store, CalendarIds(b"").room(room["id"]))
    assert [s.session_id for s in held] == [next(r.json()["id"] for r in responses if r.is_success)]


def test_fifty_courses_holding_one_therapists_hour_at_once(
        home: Tenant, processes: list[str], event_store: Courses) -> None:
    """Two holds of one resource-slot never both succeed, whichever API process takes them."""
    course_ids = courses_of(home, RACERS)
    therapist = home.therapist["id"]
    responses = race(processes, [(f"/v1/courses/{cid}/holds", assessment(HOUR, clinician_ids=[therapist]))
                                 for cid in course_ids], booking(home))
    one_winner(responses, f"clinician {therapist}", "already held for a slot")
    winner = next(r.json() for r in responses if r.is_success)
    held = slots(event_store, CalendarIds(b"").clinician(therapist))
    assert [(s.session_id, s.starts_at, s.expires_at is not None) for s in held] == [(winner["id"], HOUR, True)]


def test_fifty_reschedules_into_one_therapists_hour_at_once(
        home: Tenant, processes: list[str], event_store: Courses) -> None:
    therapist = home.therapist["id"]
    course_ids = courses_of(home, RACERS)
    # each course's session at an hour of its own, without the therapist
    sessions = [ok(home.post(f"/v1/courses/{cid}/sessions", assessment(HOUR + timedelta(hours=2 + 2 * i)), at=T0), 201)
                for i, cid in enumerate(course_ids)]
    move = {"starts_at": iso(HOUR), "ends_at": iso(HOUR + timedelta(hours=1)), "clinician_ids": [therapist]}
    responses = race(processes, [(f"/v1/courses/{cid}/sessions/{s['id']}/reschedule", move)
                                 for cid, s in zip(course_ids, sessions)], booking(home))
    one_winner(responses, f"clinician {therapist}")
    winner = next(r.json() for r in responses if r.is_success)
    held = slots(event_store, CalendarIds(b"").clinician(therapist))
    assert [(s.session_id, s.starts_at) for s in held] == [(winner["id"], HOUR)]
    # the hour is now busy: moving into it again is refused for every other course, from either process
    again = race(processes, [(f"/v1/courses/{cid}/sessions/{s['id']}/reschedule", move)
                             for cid, s in zip(course_ids, sessions) if s["id"] != winner["id"]],
                 booking(home))
    assert {r.status_code for r in again} == {409}
    # the losers kept their own hours; cancelling the winner frees the therapist's hour for the next one
    assert len(booked_at(home, course_ids, HOUR)) == 1
    won = course_ids[[s["id"] for s in sessions].index(winner["id"])]
    ok(home.post(f"/v1/courses/{won}/sessions/{winner['id']}/cancel", {"reason": "couple moved away"},
                 at=HOUR - timedelta(days=1)), 200)
    assert slots(event_store, CalendarIds(b"").clinician(therapist)) == []
    loser = next((c, s) for c, s in zip(course_ids, sessions) if s["id"] != winner["id"])
    ok(home.post(f"/v1/courses/{loser[0]}/sessions/{loser[1]['id']}/reschedule", move, at=T0), 200)


def test_a_partner_is_never_in_two_courses_at_once(home: Tenant, live_server: LiveServer) -> None:
    """The same person (one reference of the home clinic) in two couples' courses: one calendar."""
    body = {"model": "together", "partners": {"a": "person-4711", "b": "person-0815"}}
    first = ok(home.post("/v1/courses", body), 201)
    second = ok(home.post("/v1/courses", {**body, "partners": {"a": "person-0815", "b": "person-9999"}}), 201)
    ok(home.post(f"/v1/courses/{first['id']}/sessions", assessment(HOUR, partners=["b"]), at=T0), 201)
    refused = home.post(f"/v1/courses/{second['id']}/sessions", assessment(HOUR + timedelta(minutes=30),
                                                                            partners=["a"]), at=T0)
    assert refused.status_code == 409 and refused.json()["violations"][0]["invariant"] == "I10"
    assert "partner a is already booked" in refused.json()["detail"]
    assert "person-0815" not in refused.text  # the reference is the clinic's health data, never in a refusal
    # adjacent is fine
    ok(home.post(f"/v1/courses/{second['id']}/sessions", assessment(HOUR + timedelta(hours=1), partners=["a"]), at=T0),
       201)
