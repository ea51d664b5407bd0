"""Bad input gets a clear 4xx problem and loses nothing: never a 500, never a body buffered past its limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from api_support import T0, Tenant, bearer, iso, ok
from scheduler.application.courses import Courses, event_store_env
from scheduler.domain.course import Course

pytestmark = pytest.mark.integration

DEEP = "[" * 1000 + "]" * 1000


@pytest.fixture
def home(client, live_server) -> Tenant:
    return Tenant.onboard(client, live_server.operator_token)


def _json(client: httpx.Client, method: str, path: str, content: bytes | str, headers: dict[str, str]) -> httpx.Response:
    return client.request(method, path, content=content, headers={**headers, "Content-Type": "application/json"})


def _bad_requests(home: Tenant, operator: dict[str, str], course: str) -> Iterator[tuple[str, Any]]:
    """(what, a function sending one bad request) for every kind of bad input found answering 500 before."""
    c, h = home.client, home.headers
    clinic = home.clinic["id"]
    session = {"kind": "assessment", "clinician_ids": [home.therapist["id"]]}
    yield "JSON nested 1,000 deep", lambda: _json(c, "POST", "/v1/courses", DEEP, h)
    yield "objects nested 1,000 deep", lambda: _json(c, "POST", "/v1/courses", '{"a":' * 1000 + "1" + "}" * 1000, h)
    yield "nested 40 deep in a field", lambda: _json(
        c, "POST", "/v1/courses", '{"model": "together", "protocol": ' + "[" * 40 + "]" * 40 + "}", h)
    yield "NUL in a room name", lambda: c.post(f"/v1/clinics/{clinic}/rooms", json={"name": "Room\u0000"}, headers=h)
    yield "NUL in a clinic name", lambda: c.post("/v1/clinics", json={"name": "A\u0000"}, headers=operator)
    yield "NUL in a query parameter", lambda: c.get("/v1/feed", params={"recipient": "clinic:\u0000"}, headers=operator)
    for start, end in [("9999-12-31T20:00:00-05:00", "9999-12-31T23:00:00-05:00"),
                       ("0001-01-01T00:30:00+01:00", "0001-01-01T00:50:00+01:00"),
                       ("9999-12-31T22:59:59+00:00", "9999-12-31T23:59:59+00:00"),
                       ("1999-12-31T10:00:00Z", "1999-12-31T11:00:00Z")]:
        yield f"a session starting {start}", lambda s=start, e=end: c.post(
            f"/v1/courses/{course}/sessions", json={**session, "starts_at": s, "ends_at": e}, headers=h)
    hosted = f"/v1/clinics/{clinic}/hosted-sessions"
    # a range with no end ends seven days after its start: never computed for a start out of range
    yield "hosted sessions from 9999-12-31 with no end", lambda: c.get(
        hosted, params={"from": "9999-12-31T00:00:00Z"}, headers=h)
    yield "hosted sessions from year 1 with an offset", lambda: c.get(
        hosted, params={"from": "0001-01-01T00:00:00+01:00"}, headers=h)
    for now in ("9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00", "9999-12-31T00:00:00Z"):
        yield f"X-Kact-Now {now}", lambda n=now: c.get(hosted, headers={**h, "X-Kact-Now": n})
    huge = "99999999999999999999999"
    yield "?after= beyond 64 bits", lambda: c.get(f"/v1/feed?after={huge}", headers=h)
    yield "?page= beyond 64 bits", lambda: c.get(f"/v1/courses?page={huge}", headers=h)
    yield "a dead letter id beyond 64 bits", lambda: c.post(f"/v1/dead-letters/{huge}/redrive", headers=operator)
    yield "dead letters ?page= beyond 64 bits", lambda: c.get(f"/v1/dead-letters?page={huge}", headers=operator)
    yield "?as_of= beyond 64 bits", lambda: c.get(f"/v1/courses/{course}?as_of={huge}", headers=h)
    yield "a time zone on Mars", lambda: c.post("/v1/clinics", json={"name": "M", "timezone": "Mars/Olympus_Mons"},
                                               headers=operator)
    yield "a path as a time zone", lambda: c.post("/v1/clinics", json={"name": "M", "timezone": "../../etc/passwd"},
                                                 headers=operator)
    yield "a 100 KB time zone", lambda: c.post(f"/v1/courses/{course}/sessions", json={
        **session, "starts_at": iso(T0), "ends_at": iso(T0 + timedelta(hours=1)), "timezone": "x" * 100_000}, headers=h)
    yield "a session id that is not a UUID", lambda: c.post(
        f"/v1/courses/{course}/sessions/{'a' * 5000}/cancel", json={"reason": "x"}, headers=h)
    yield "an approval id that is not one", lambda: c.post(
        f"/v1/dose-approvals/{'a' * 5000}/decision", json={"approve": True}, headers=h)
    yield "a dose approval for a session id that is not a UUID", lambda: c.post(
        f"/v1/courses/{course}/dose-approvals", json={"session_id": "x" * 300, "partner": "a",
                                                      "prescriber_id": home.prescriber["id"], "requested_mg": 10},
        headers=h)
    yield "a protocol setting beyond 64 bits", lambda: c.post("/v1/courses", json={
        "model": "together", "partners": {"a": "x", "b": "y"}, "protocol": {"min_integration_sessions": 10**30}},
        headers=h)
    yield "invalid UTF-8", lambda: _json(c, "POST", "/v1/courses", b'{"model": "\xff\xfe"}', h)
    yield "a lone surrogate", lambda: _json(c, "POST", f"/v1/clinics/{clinic}/rooms", b'{"name": "\\ud800"}', h)
    yield "too many vitals", lambda: c.post(f"/v1/courses/{course}/sessions/{course}/record", json={
        "outcome": "held", "vitals": [{"partner": "a", "stage": "pre", "at": iso(T0), "systolic": 120, "diastolic": 80,
                                       "heart_rate": 70, "acceptable": True}] * 61}, headers=h)
    yield "a text body", lambda: c.post("/v1/courses", content=b"model=together", headers={
        **h, "Content-Type": "application/x-www-form-urlencoded"})


def test_every_bad_request_is_a_problem_never_a_500(home: Tenant, live_server) -> None:
    operator = bearer(live_server.operator_token)
    course = home.open_course()["id"]
    answers = {}
    for what, send in _bad_requests(home, operator, course):
        response = send()
        answers[what] = response.status_code
        assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
        assert response.headers["content-type"].startswith("application/problem+json"), what
        assert response.json()["status"] == response.status_code, what
    assert answers["a text body"] == 415
    assert answers["JSON nested 1,000 deep"] == answers["NUL in a room name"] == 422
    # nothing of it was written: the course is as it was opened
    assert ok(home.client.get(f"/v1/courses/{course}", headers=home.headers), 200)["sessions"] == []


def test_a_body_over_the_limit_is_refused_before_it_is_read(home: Tenant, live_server) -> None:
    limit = live_server.settings.max_body_bytes
    declared = home.client.post("/v1/courses", content=b"{" + b" " * limit + b"}",
                                headers={**home.headers, "Content-Type": "application/json"})
    assert declared.status_code == 413 and declared.json()["type"] == "/problems/body-too-large"

    sent = 0

    def chunks() -> Iterator[bytes]:  # no Content-Length: the guard counts while it reads
        nonlocal sent
        yield b'{"model": "'
        for _ in range(64):
            sent += 256 * 1024
            yield b"a" * (256 * 1024)
        yield b'"}'

    streamed = home.client.post("/v1/courses", content=chunks(),
                                headers={**home.headers, "Content-Type": "application/json", "Idempotency-Key": "big"})
    assert streamed.status_code == 413
    assert streamed.json()["detail"] == f"the body may have at most {limit} bytes"


def test_the_same_json_with_other_whitespace_and_key_order_is_the_same_request(home: Tenant) -> None:
    key = {"Idempotency-Key": "open-ws", "Content-Type": "application/json"}
    compact = b'{"model":"together","partners":{"a":"r1","b":"r2"}}'
    spaced = b'{ "partners" : { "b": "r2", "a": "r1" },\n  "model": "together" }'
    first = home.client.post("/v1/courses", content=compact, headers={**home.headers, **key})
    again = home.client.post("/v1/courses", content=spaced, headers={**home.headers, **key})
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true" and again.json()["id"] == first.json()["id"]


def test_an_immediate_retry_after_an_answer_replays_it(home: Tenant) -> None:
    # The stored result is committed before the response leaves: a retry sent the moment the answer arrives
    # finds it (before, 2 of 30 such retries were told "in progress").
    for attempt in range(30):
        headers = {"Idempotency-Key": f"quick-{attempt}"}
        first = home.post("/v1/courses", {"model": "together", "partners": {"a": "q", "b": "r"}}, headers=headers)
        retry = home.post("/v1/courses", {"model": "together", "partners": {"a": "q", "b": "r"}}, headers=headers)
        assert first.status_code == 201, first.text
        assert retry.status_code == 201 and retry.headers.get("idempotent-replayed") == "true", retry.text
        assert retry.json() == first.json()


async def _rewrite(live_server, sql: str, *args: Any) -> None:
    settings = live_server.settings
    conn = await asyncpg.connect(settings.database_url, server_settings={"search_path": settings.db_schema})
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


def test_a_claim_whose_lease_ran_out_does_not_block_its_key(home: Tenant, live_server) -> None:
    import msgspec
    from scheduler.http.schemas import CourseCreate
    from scheduler.idempotency import IdempotencyKeys, request_hash

    body = {"model": "together", "partners": {"a": "l1", "b": "l2"}}
    principal = f"clinic:{home.clinic['id']}"

    async def claim_as_a_request_that_died() -> None:
        settings = live_server.settings
        conn = await asyncpg.connect(settings.database_url, server_settings={"search_path": settings.db_schema})
        try:  # a lease of 0.2 s: the attempt died with its process, or could not release with the database gone
            keys = IdempotencyKeys(conn, settings.cipher_key or "", lease_seconds=0.2)  # type: ignore[arg-type]
            await keys.claim(principal, "died-1", request_hash("POST", "/v1/courses", msgspec.convert(body, CourseCreate)))
        finally:
            await conn.close()

    asyncio.run(claim_as_a_request_that_died())
    running = home.post("/v1/courses", body, headers={"Idempotency-Key": "died-1"})
    assert running.status_code == 409 and running.headers["retry-after"] == "1"
    asyncio.run(asyncio.sleep(0.3))
    retried = home.post("/v1/courses", body, headers={"Idempotency-Key": "died-1"})
    assert retried.status_code == 201, retried.text


def _answer_lost(live_server, principal: str, key: str) -> None:
    """The key's state once its request was carried out but its answer never stored (the API answered 503
    outcome-unknown, or died after saving), and the claim's lease ran out: a retry runs the request again."""
    asyncio.run(_rewrite(live_server, "UPDATE idempotency_keys SET status_code = NULL, body = NULL, "
                                      "lease_until = now() - interval '1 second' WHERE principal = $1 AND key = $2",
                         principal, key))


def _stored_courses_of(live_server, partner_a: str) -> list[UUID]:
    """The courses the event store holds for a couple (not the index, which may trail)."""
    app = Courses(env={**event_store_env(live_server.settings), "CREATE_TABLE": "n"})
    try:
        events = (app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(start=1, limit=10**7))
        return [e.originator_id for e in events if isinstance(e, Course.Created) and e.partners["a"] == partner_a]
    finally:
        app.close()


def test_a_course_run_again_after_its_lease_ran_out_is_not_opened_twice(home: Tenant, live_server) -> None:
    couple = f"again-{uuid4().hex[:8]}"
    body = {"model": "together", "partners": {"a": couple, "b": f"{couple}-b"}}
    first = ok(home.post("/v1/courses", body, headers={"Idempotency-Key": couple}), 201)
    _answer_lost(live_server, f"clinic:{home.clinic['id']}", couple)
    retried = home.post("/v1/courses", body, headers={"Idempotency-Key": couple})
    # the rerun names the course the first run opened (its id derives from the key): refused, saying which
    assert retried.status_code == 409, retried.text
    assert retried.json()["type"] == "/problems/already-created" and first["id"] in retried.json()["detail"]
    assert _stored_courses_of(live_server, couple) == [UUID(first["id"])]
    # the same body under another key is another request: another course
    other = ok(home.post("/v1/courses", body, headers={"Idempotency-Key": f"{couple}-2"}), 201)
    assert other["id"] != first["id"]


def test_a_session_run_again_after_its_lease_ran_out_is_not_booked_twice(home: Tenant, live_server) -> None:
    course = home.open_course()["id"]
    booking = {"kind": "assessment", "starts_at": iso(T0), "ends_at": iso(T0 + timedelta(hours=1)),
               "partners": ["a", "b"], "clinician_ids": [home.therapist["id"]]}
    headers = {**home.headers, "Idempotency-Key": f"book-{course}", "X-Kact-Now": iso(T0 - timedelta(days=1))}
    first = ok(home.client.post(f"/v1/courses/{course}/sessions", json=booking, headers=headers), 201)
    _answer_lost(live_server, f"clinic:{home.clinic['id']}", f"book-{course}")
    retried = home.client.post(f"/v1/courses/{course}/sessions", json=booking, headers=headers)
    # not a second session (nor a double booking of the first's partners and clinician): the first, named
    assert retried.status_code == 409 and retried.json()["type"] == "/problems/already-created", retried.text
    assert first["id"] in retried.json()["detail"]
    sessions = ok(home.client.get(f"/v1/courses/{course}", headers=home.headers), 200)["sessions"]
    assert [s["id"] for s in sessions] == [first["id"]]


def test_a_room_run_again_after_its_lease_ran_out_is_not_added_twice(home: Tenant, live_server) -> None:
    rooms = f"/v1/clinics/{home.clinic['id']}/rooms"
    first = ok(home.post(rooms, {"name": "Garden room"}, headers={"Idempotency-Key": "room-again"}), 201)
    _answer_lost(live_server, f"clinic:{home.clinic['id']}", "room-again")
    retried = home.post(rooms, {"name": "Garden room"}, headers={"Idempotency-Key": "room-again"})
    assert retried.status_code == 409 and retried.json()["type"] == "/problems/already-created", retried.text
    assert first["id"] in retried.json()["detail"]
    listed = ok(home.client.get(rooms, headers=home.headers), 200)
    assert [r["id"] for r in listed if r["name"] == "Garden room"] == [first["id"]]


def test_a_key_expires_after_its_time_to_live(home: Tenant, live_server) -> None:
    headers = {"Idempotency-Key": "old-1"}
    first = ok(home.post("/v1/courses", {"model": "together", "partners": {"a": "o", "b": "p"}}, headers=headers), 201)
    ttl = live_server.settings.idempotency_ttl_seconds
    asyncio.run(_rewrite(live_server, "UPDATE idempotency_keys SET created_at = now() - make_interval(secs => $1) "
                                      "WHERE key = 'old-1'", float(ttl + 1)))
    # past its time to live the key is free again: another body under it is a new request, not a 422
    other = home.post("/v1/courses", {"model": "taking_turns", "partners": {"a": "o", "b": "p"}}, headers=headers)
    assert other.status_code == 201 and other.json()["id"] != first["id"]
    assert "idempotent-replayed" not in other.headers


def test_the_problem_bodies_are_json(home: Tenant) -> None:
    response = _json(home.client, "POST", "/v1/courses", DEEP, home.headers)
    assert json.loads(response.content)["type"] == "/problems/invalid-input"
