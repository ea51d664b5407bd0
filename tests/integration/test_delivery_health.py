"""Delivery health: /health/delivery fails while the relay or the notifier is stuck and recovers when they move
again; the stored events the relay could not publish are listed for the operator, and for nobody else."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import psycopg
import pytest
from api_support import T0, Tenant, bearer, eventually, ok
from builders import BY, HOME, HOME_HOST, hours, open_course
from conftest import LiveServer, NotifierThread, notifier_settings, serve, server_settings
from psycopg import sql
from scheduler.application.courses import Courses, event_store_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def server(database_url: str, nats_url: str, schema: str) -> Iterator[LiveServer]:
    """A server of this test's own schema whose relay counts as stuck after 1 s, its notifier after 2 s."""
    settings = replace(server_settings(database_url, nats_url, schema), relay_max_lag=1.0, notifier_max_silence=2.0)
    with serve(settings) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


def delivery(client: httpx.Client) -> tuple[int, dict[str, Any]]:
    response = client.get("/health/delivery")
    return response.status_code, response.json()


def test_delivery_health_fails_while_the_relay_or_the_notifier_is_stuck_and_recovers(
    server: LiveServer, client: httpx.Client
) -> None:
    # A fresh system: nothing stored, nothing relayed, no notifier yet; nothing is stuck once the relay runs.
    status, body = eventually(lambda: delivery(client), lambda r: r[1]["relay"]["running"])
    assert status == 200 and body["relay"]["head"] == 0 and body["notifier"]["seconds_since_heartbeat"] is None
    notifier = NotifierThread(notifier_settings(server.settings)).start()
    try:
        home = Tenant.onboard(client, server.operator_token)
        course = home.open_course()
        # A booking saves the course's event with its calendars' (which stay internal): relayed whole, nothing
        # is left waiting behind the relay's position.
        home.book(course["id"], "assessment", T0)
        _, body = eventually(lambda: delivery(client), lambda r: r[0] == 200 and r[1]["relay"]["position"] > 0
                             and r[1]["relay"]["behind"] == 0 and r[1]["notifier"]["seconds_since_heartbeat"] is not None)
        assert body["status"] == "ok" and body["relay"]["oldest_waiting_seconds"] is None

        # The relay cannot record its position (its row is locked): events wait, and delivery says so.
        with psycopg.connect(server.settings.database_url or "") as blocker:
            blocker.execute(sql.SQL("SELECT * FROM {} FOR UPDATE").format(
                sql.Identifier(server.settings.db_schema, "relay_tracking")))
            home.open_course()
            status, body = eventually(lambda: delivery(client), lambda r: r[0] == 503, timeout=30)
            assert body["status"] == "unavailable" and body["relay"]["status"] == "stuck"
            assert body["relay"]["behind"] > 0 and body["relay"]["oldest_waiting_seconds"] > 1.0
            assert body["notifier"]["status"] == "ok"
            blocker.rollback()
        status, body = eventually(lambda: delivery(client), lambda r: r[0] == 200, timeout=30)
        assert body["relay"]["behind"] == 0 and body["relay"]["status"] == "ok"
    finally:
        notifier.stop()

    # The notifier stopped: once it has been silent for longer than allowed, delivery fails again.
    status, body = eventually(lambda: delivery(client), lambda r: r[0] == 503, timeout=30)
    assert body["notifier"]["status"] == "stuck" and body["notifier"]["seconds_since_heartbeat"] > 2.0
    assert body["relay"]["status"] == "ok"


def test_an_unpublishable_event_is_listed_for_the_operator_and_delivery_goes_on(
    server: LiveServer, client: httpx.Client
) -> None:
    # Stored straight into the event store, as an older API accepted it: a 2 MB time zone.
    courses = Courses(env=event_store_env(server.settings))
    try:
        bad = open_course()
        bad.book_session(session_id="s1", kind="assessment", partners=("a", "b"), starts_at=hours(24),
                         ends_at=hours(25), clinic_id=HOME, host=HOME_HOST, by=BY, timezone="X" * 2_000_000)
        courses.save(bad)
    finally:
        courses.close()
    operator = bearer(server.operator_token)
    [letter] = eventually(lambda: ok(client.get("/v1/relay/dead-letters", headers=operator), 200), bool)
    assert letter["course_id"] == str(bad.id) and letter["course_version"] == 2
    assert letter["topic"] == "kact.course:SessionBooked.v1" and "timezone" in letter["error"]
    # Delivery went past it: the relay is at the head, not stuck behind the bad event.
    status, body = eventually(lambda: delivery(client), lambda r: r[1]["relay"]["behind"] == 0)
    assert body["relay"]["status"] == "ok" and body["relay"]["position"] == letter["notification_id"]

    # Paged, with bounded parameters; a clinic does not see that they exist.
    assert ok(client.get("/v1/relay/dead-letters", params={"page": 2}, headers=operator), 200) == []
    for params in ({"per_page": 0}, {"per_page": 501}, {"page": 0}):
        response = client.get("/v1/relay/dead-letters", params=params, headers=operator)
        assert response.status_code == 422, params
    clinic = Tenant.onboard(client, server.operator_token)
    refused = client.get("/v1/relay/dead-letters", headers=clinic.headers)
    assert refused.status_code == 404 and refused.json()["type"] == "/problems/not-found"
