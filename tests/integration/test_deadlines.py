"""The integration-window deadline watcher on real PostgreSQL (DOMAIN.md I4): a deadline that passed leads to exactly
one IntegrationWindowMissed within seconds, a window kept in time to none, whatever the number of scheduler
processes and restarts."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest
from api_support import T0, Tenant, eventually, ok
from builders import dose, prepared_course
from conftest import serve
from eventsourcing.cryptography import AESCipher
from psycopg import sql
from scheduler.application.courses import Courses, event_store_env
from scheduler.deadlines import BY, DeadlineWatcher
from scheduler.embedded import free_port
from scheduler.readmodels.course_index import course_index_view
from scheduler.settings import Settings
from scheduler.storage import projection_env

pytestmark = pytest.mark.integration
CHECK_SECONDS = 0.3


class Clock:
    """The clock a test moves: commands carry their own time (X-Kact-Now), the watcher reads this one."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def settings_for(database_url: str, schema: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url, "db_schema": schema, "operator_token": secrets.token_urlsafe(24),
        "cipher_key": AESCipher.create_key(32), "http_port": free_port(), "db_pool_size": 5,
        "simulated_time": True, "deadline_check_seconds": CHECK_SECONDS,
    }
    return Settings(**{**values, **overrides})


def rows(settings: Settings) -> dict[tuple[str, str], tuple[datetime, str]]:
    """The watched deadlines: (course id, session id) -> (deadline, status)."""
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        found = conn.execute(
            sql.SQL("SELECT course_id, session_id, deadline, status FROM {}.integration_deadlines").format(
                sql.Identifier(settings.db_schema))
        ).fetchall()
    return {(str(c), s): (d, status) for c, s, d, status in found}


def reopen(settings: Settings) -> None:
    """As if a watcher had crashed after its commands but before marking its rows."""
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        conn.execute(sql.SQL("UPDATE {}.integration_deadlines SET status = 'open'").format(
            sql.Identifier(settings.db_schema)))


def misses(app: Courses, course_id: UUID) -> list[Any]:
    return [e for e in app.history(course_id) if type(e).__name__ == "IntegrationWindowMissed"]


def dosed_courses(app: Courses, count: int) -> list[UUID]:
    """Courses whose medicine session m1 was held (Dosed) and no integration session followed."""
    ids = []
    for _ in range(count):
        course, end = prepared_course()
        dose(course, "m1", end + timedelta(days=2), ["a"])
        app.save(course)
        ids.append(course.id)
    return ids


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_passed_deadline_is_recorded_missed_once_and_a_kept_window_never(database_url: str, schema: str) -> None:
    settings, clock = settings_for(database_url, schema), Clock(T0)
    with serve(settings, clock) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        home = Tenant.onboard(client, settings.operator_token or "")
        missed, kept = home.open_course()["id"], home.open_course()["id"]
        for cid in (missed, kept):  # side by side at the same hours: a therapist each (I10)
            worker = home.with_own_therapist()
            first_dose_day = worker.assess_and_prepare(cid)
            medicine = worker.dose(cid, first_dose_day, ["a"])
        home.integrate(kept, medicine, count=1)  # 20 h after the medicine session: inside the 48 h window
        events = ok(client.get(f"/v1/courses/{missed}/events", headers=home.headers), 200)
        dosed = next(e for e in events if e["type"] == "Dosed")
        deadline = datetime.fromisoformat(dosed["data"]["integration_deadline"])
        held = next(e for e in events if e["type"] == "SessionHeld" and e["data"]["record"].get("discharged_at"))
        assert deadline == datetime.fromisoformat(held["data"]["record"]["discharged_at"]) + timedelta(hours=48)
        wait_for(lambda: len(rows(settings)) == 2)  # the projection follows the Dosed events
        assert {status for _, status in rows(settings).values()} == {"open"}
        time.sleep(3 * CHECK_SECONDS)
        assert all(e["type"] != "IntegrationWindowMissed"
                   for e in ok(client.get(f"/v1/courses/{missed}/events", headers=home.headers), 200))

        clock.now = max(d for d, _ in rows(settings).values()) + timedelta(minutes=1)
        started = time.monotonic()
        history = eventually(
            lambda: ok(client.get(f"/v1/courses/{missed}/events", headers=home.headers), 200),
            lambda evs: any(e["type"] == "IntegrationWindowMissed" for e in evs), timeout=5)
        assert time.monotonic() - started < 5
        wait_for(lambda: {status for _, status in rows(settings).values()} == {"missed", "checked"})
        time.sleep(5 * CHECK_SECONDS)  # later rounds add nothing

        history = ok(client.get(f"/v1/courses/{missed}/events", headers=home.headers), 200)
        recorded = [e for e in history if e["type"] == "IntegrationWindowMissed"]
        assert len(recorded) == 1
        assert recorded[0]["principal"] == BY
        assert recorded[0]["data"] == {"session_id": dosed["data"]["session_id"], "deadline": deadline.isoformat()}
        assert all(e["type"] != "IntegrationWindowMissed"
                   for e in ok(client.get(f"/v1/courses/{kept}/events", headers=home.headers), 200))
        statuses = {cid: status for (cid, _), (_, status) in rows(settings).items()}
        assert statuses == {missed: "missed", kept: "checked"}
        view = ok(client.get(f"/v1/courses/{missed}", headers=home.headers), 200)
        assert [w["session_id"] for w in view["missed_windows"]] == [dosed["data"]["session_id"]]
        assert "acknowledge_missed_window" in view["allowed_actions"]


def test_two_processes_and_restarts_record_each_missed_window_once(database_url: str, schema: str) -> None:
    settings, clock = settings_for(database_url, schema), Clock(T0)
    second = dataclasses.replace(settings, http_port=free_port())
    with serve(settings, clock):
        with serve(second, clock):
            app = Courses(env=event_store_env(settings))
            try:
                courses = dosed_courses(app, 6)
                wait_for(lambda: len(rows(settings)) == len(courses))
                clock.now = max(d for d, _ in rows(settings).values()) + timedelta(minutes=1)
                wait_for(lambda: {s for _, s in rows(settings).values()} == {"missed"})
                time.sleep(5 * CHECK_SECONDS)
                assert [len(misses(app, cid)) for cid in courses] == [1] * len(courses)
            finally:
                app.close()
        # the second process is gone; the first (or, after fail-over, its successor) finds nothing more to do,
        # also when every row looks unsettled, as after a crash between the commands and the marking
        reopen(settings)
        wait_for(lambda: {s for _, s in rows(settings).values()} == {"missed"})
    # a restart on the same database: still one miss per window
    reopen(settings)
    with serve(dataclasses.replace(settings, http_port=free_port()), clock):
        wait_for(lambda: {s for _, s in rows(settings).values()} == {"missed"})
        time.sleep(3 * CHECK_SECONDS)
    app = Courses(env=event_store_env(settings))
    try:
        assert [len(misses(app, cid)) for cid in courses] == [1] * len(courses)
        assert all(misses(app, cid)[0].by == BY for cid in courses)
    finally:
        app.close()


def test_watchers_racing_without_the_lock_still_record_each_window_once(database_url: str, schema: str) -> None:
    """The exactly-once does not rest on the advisory lock: the command is idempotent and saved optimistically."""
    settings, clock = settings_for(database_url, schema, deadline_check_seconds=0), Clock(T0)
    with serve(settings, clock):  # migrates and runs the projection; its own watcher is off
        env = event_store_env(settings)
        apps = [Courses(env=env) for _ in range(3)]
        views = [course_index_view(projection_env(env)) for _ in range(2)]
        watchers = [DeadlineWatcher(apps[i], views[i], clock, check_seconds=0.05) for i in range(2)]
        try:
            courses = dosed_courses(apps[2], 12)
            wait_for(lambda: len(rows(settings)) == len(courses))
            clock.now = max(d for d, _ in rows(settings).values()) + timedelta(minutes=1)
            barrier = threading.Barrier(2)

            def race(watcher: DeadlineWatcher) -> None:
                barrier.wait()
                watcher.check_once()

            threads = [threading.Thread(target=race, args=(w,)) for w in watchers]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            reopen(settings)
            for watcher in watchers:
                watcher.start()
            wait_for(lambda: {s for _, s in rows(settings).values()} == {"missed"})
            assert [len(misses(apps[2], cid)) for cid in courses] == [1] * len(courses)
        finally:
            for watcher in watchers:
                watcher.stop()
            for view in views:
                view.datastore.close()
            for app in apps:
                app.close()
