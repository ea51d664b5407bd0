"""Nothing lost, nothing doubled: a notifier killed mid-stream, and NATS down while commands keep coming."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import nats
import psycopg
import pytest
from api_support import Tenant, ok
from bus_support import delete_stream
from conftest import (
    LiveServer,
    NotifierThread,
    notifier_settings,
    serve,
    server_settings,
)
from psycopg import sql
from receiver import Receiver
from scheduler.embedded import EmbeddedNats

pytestmark = pytest.mark.integration
PUBLIC_EVENTS_PER_COURSE = 13


def rows(server: LiveServer, query: str, *args: object) -> list[tuple]:
    with psycopg.connect(server.settings.database_url or "") as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(server.settings.db_schema)))
        return conn.execute(query, args).fetchall()


def stream_count(server: LiveServer) -> int:
    async def count() -> int:
        nc = await nats.connect(server.settings.nats_url or "")
        try:
            return (await nc.jetstream().stream_info(server.settings.nats_stream)).state.messages
        finally:
            await nc.close()

    return asyncio.run(count())


def wait_until(predicate, timeout: float = 90.0, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def run_courses(server: LiveServer, tenant: Tenant, courses: int, failures: list[str]) -> None:
    """Walk `courses` courses through assessment and preparation: 13 public events each (opened, 5 booked,
    5 held, assessed, prepared; screenings stay internal)."""
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        clinic = Tenant(client, tenant.clinic, tenant.therapist, tenant.prescriber, tenant.headers)
        for _ in range(courses):
            try:
                worker = clinic.with_own_therapist()  # every course at the same hours
                course = worker.open_course()
                worker.assess_and_prepare(course["id"])
            except AssertionError as exc:  # any non-2xx
                failures.append(str(exc))


def register_webhook(client: httpx.Client, tenant: Tenant, url: str) -> dict:
    return ok(client.post(f"/v1/clinics/{tenant.clinic['id']}/webhooks", json={"url": url, "event_types": []},
                          headers=tenant.headers), 201)


def home_feed_is_complete(server: LiveServer, tenant: Tenant, expected: int) -> bool:
    (count,) = rows(server, "SELECT count(*) FROM feed WHERE recipient = %s", f"clinic:{tenant.clinic['id']}")[0]
    return count >= expected


def test_a_notifier_killed_mid_stream_loses_and_doubles_nothing(
    database_url: str, nats_url: str, schema: str, tmp_path: Path
) -> None:
    settings = server_settings(database_url, nats_url, schema)
    env = {**os.environ, **settings.as_env(), "KACT_WEBHOOK_BASE_DELAY": "0.2", "KACT_WEBHOOK_MAX_DELAY": "1"}
    log = (tmp_path / "notifier.log").open("ab")

    def start_notifier() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "notifier"], env=env, stdout=log, stderr=subprocess.STDOUT)

    with serve(settings) as server, Receiver() as receiver, httpx.Client(base_url=server.base_url) as client:
        tenant = Tenant.onboard(client, server.operator_token)
        register_webhook(client, tenant, f"{receiver.url}/home")
        first = start_notifier()
        failures: list[str] = []
        writers = [threading.Thread(target=run_courses, args=(server, tenant, 21, failures)) for _ in range(2)]
        for writer in writers:
            writer.start()
        wait_until(lambda: rows(server, "SELECT count(*) FROM notifier_inbox")[0][0] >= 150
                   if rows(server, "SELECT to_regclass('notifier_inbox')")[0][0] else False)
        first.send_signal(signal.SIGKILL)  # in the middle of the stream
        assert first.wait(10) == -signal.SIGKILL
        second = start_notifier()
        try:
            for writer in writers:
                writer.join()
            assert failures == []
            published = 42 * PUBLIC_EVENTS_PER_COURSE
            wait_until(lambda: stream_count(server) >= published)
            assert stream_count(server) == published
            wait_until(lambda: home_feed_is_complete(server, tenant, published))
            # Every event processed once: one inbox row each, one feed entry each, positions 1..n.
            assert rows(server, "SELECT count(*), count(DISTINCT event_id) FROM notifier_inbox")[0] == (
                published, published)
            positions = [r[0] for r in rows(server, "SELECT position FROM feed WHERE recipient = %s ORDER BY position",
                                            f"clinic:{tenant.clinic['id']}")]
            assert positions == list(range(1, published + 1))
            # Every webhook delivered at least once (a kill between sending and recording may repeat one).
            ids = {r[0] for r in rows(server, "SELECT event_id FROM feed WHERE recipient = %s",
                                      f"clinic:{tenant.clinic['id']}")}
            wait_until(lambda: ids <= {r.item["event"]["id"] for r in receiver.at("/home")})
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0, "the notifier did not drain and exit cleanly on SIGTERM"
    log.close()
    asyncio.run(delete_stream(nats_url, settings.nats_stream))


class RestartableNats(EmbeddedNats):
    """An embedded NATS that comes back on the same port after `stop()`, with its store."""

    def _launch(self, binary: Path) -> None:
        if self.port is None:
            super()._launch(binary)
            return
        self.config_file.write_text(self._config(), encoding="utf-8")
        self._spawn([str(binary), "--config", str(self.config_file)], cwd=self.data_dir)
        self._wait_until_healthy()


def test_nats_down_for_ten_seconds_the_api_keeps_accepting_and_every_event_arrives_in_course_order(
    database_url: str, schema: str, tmp_path: Path
) -> None:
    with RestartableNats(tmp_path) as bus:
        settings = server_settings(database_url, bus.url, schema)
        with serve(settings) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
            running = NotifierThread(notifier_settings(settings)).start()
            try:
                tenant = Tenant.onboard(client, server.operator_token)
                failures: list[str] = []
                before = threading.Thread(target=run_courses, args=(server, tenant, 3, failures))
                before.start()
                before.join()
                bus.stop()
                stopped_at = time.monotonic()
                during = 0
                while time.monotonic() - stopped_at < 10:  # commands keep arriving while NATS is away
                    run_courses(server, tenant, 1, failures)
                    during += 1
                bus.start()
                run_courses(server, tenant, 2, failures)
                assert failures == [] and during >= 1
                published = (3 + during + 2) * PUBLIC_EVENTS_PER_COURSE
                wait_until(lambda: rows(server, "SELECT count(*) FROM notifier_inbox")[0][0] >= published, 120)
                assert rows(server, "SELECT count(*) FROM notifier_inbox")[0][0] == published
                order: dict[str, list[int]] = defaultdict(list)
                for course_id, version in rows(
                    server, "SELECT course_id, course_version FROM notifier_inbox ORDER BY processed"
                ):
                    order[str(course_id)].append(version)
                assert len(order) == 3 + during + 2
                assert all(versions == sorted(versions) for versions in order.values())
            finally:
                running.stop()
