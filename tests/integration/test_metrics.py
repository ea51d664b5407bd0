"""Metrics: the API's `/metrics` (requests by route template and status, command outcomes and the rules they broke,
group-commit batches), the jobs process's (relay lag, relay and deadline watcher) and the notifier's (inbox lag,
messages, webhook deliveries by state), each scraped over HTTP from real servers.

The servers of one test process share prometheus-client's registry, so the API's counters are read before and
after and compared."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import psutil
import pytest
from api_support import T0, Tenant, bearer, eventually, ok
from conftest import NotifierThread, notifier_settings, serve, server_settings
from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families
from receiver import Receiver

from scheduler.embedded import free_port
from scheduler.http.metrics import metrics_route
from scheduler.settings import Settings

pytestmark = pytest.mark.integration

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Series:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(series: Series, name: str, **labels: str) -> float:
    return series.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(url: str, headers: dict[str, str] | None = None) -> Series:
    response = httpx.get(url, headers=headers or {}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def test_api_metrics_count_requests_by_route_and_commands_by_outcome_and_rule(live_server, client) -> None:
    url, operator = f"{live_server.base_url}/metrics", bearer(live_server.operator_token)
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.json()["type"] == "/problems/unauthorized"
    assert client.get("/metrics", headers=bearer("not-the-operator-key")).status_code == 401
    assert "/metrics" not in client.get("/schema/openapi.json").json()["paths"]
    before = scrape(url, operator)

    home = Tenant.onboard(client, live_server.operator_token)
    course = home.open_course()
    home.screen_both(course["id"])
    home.book(course["id"], "assessment", T0)
    # The same couple and therapist again at the same hour: I10, 409 /problems/double-booking.
    clash = home.post(f"/v1/courses/{course['id']}/sessions", {
        "kind": "assessment", "starts_at": "2026-01-05T09:30:00Z", "ends_at": "2026-01-05T10:30:00Z",
        "partners": ["a", "b"], "clinician_ids": [home.therapist["id"]]}, at=T0 - timedelta(days=1))
    assert clash.status_code == 409 and clash.json()["type"] == "/problems/double-booking", clash.text
    for _ in range(3):
        ok(client.get(f"/v1/courses/{course['id']}", headers=home.headers), 200)
    other = "1" if course["id"].endswith("0") else "0"  # another course id, one that does not exist
    unknown = client.get(f"/v1/courses/{course['id'][:-1]}{other}", headers=home.headers)
    assert unknown.status_code == 404

    response = httpx.get(url, headers=operator, timeout=10)
    after = parse(response.text)
    assert "ratelimit" not in response.headers  # never rate-limited

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    course_route = {"route": "/v1/courses/{course_id}", "method": "GET"}
    assert delta("kact_http_requests_total", **course_route, status="200") == 3
    assert delta("kact_http_requests_total", **course_route, status="404") == 1
    assert delta("kact_http_request_duration_seconds_count", **course_route, status="200") == 3
    assert delta("kact_http_request_duration_seconds_bucket", **course_route, status="200", le="+Inf") == 3
    assert delta("kact_http_request_duration_seconds_sum", **course_route, status="200") > 0
    sessions = {"route": "/v1/courses/{course_id}/sessions", "method": "POST"}
    assert delta("kact_http_requests_total", **sessions, status="201") == 1
    assert delta("kact_http_requests_total", **sessions, status="409") == 1

    assert delta("kact_commands_total", command="openCourse", outcome="accepted", problem="") == 1
    assert delta("kact_commands_total", command="recordScreening", outcome="accepted", problem="") == 2
    assert delta("kact_commands_total", command="bookSession", outcome="accepted", problem="") == 1
    assert delta("kact_commands_total", command="bookSession", outcome="refused", problem="double-booking") == 1
    assert delta("kact_rule_violations_total", command="bookSession", invariant="I10") == 1
    assert delta("kact_commands_total", command="createClinic", outcome="accepted", problem="") == 1
    # Reads are no commands.
    assert not any(name == "kact_commands_total" and dict(labels)["command"] == "getCourse"
                   for name, labels in after)
    # Each accepted course command was saved by the group commit, some together with others.
    assert delta("kact_group_commit_batch_size_count") >= 4
    assert delta("kact_group_commit_batch_size_sum") >= delta("kact_group_commit_batch_size_count")

    # Route templates only: no course, clinic or session id, no key, no partner reference.
    text = response.text
    for secret in (course["id"], home.clinic["id"], home.clinic["api_key"], live_server.operator_token,
                   "partner-a-"):
        assert secret not in text


def test_metrics_without_the_operator_key_when_public() -> None:
    """KACT_METRICS_PUBLIC=1: a scraper needs no key (the route alone: no database is involved)."""
    assert Settings.from_env({"KACT_METRICS_PUBLIC": "1"}).metrics_public
    with TestClient(Litestar([metrics_route("the-operator-key", public=True)])) as public:
        answer = public.get("/metrics")
        assert answer.status_code == 200 and "kact_http_requests_total" in answer.text
    with TestClient(Litestar([metrics_route("the-operator-key", public=False)])) as private:
        assert private.get("/metrics").status_code == 401
        assert private.get("/metrics", headers=bearer("the-operator-key")).status_code == 200


@contextmanager
def jobs_process(settings: Settings, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m scheduler.jobs`, as `kact up` runs it, with these (resolved) settings."""
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "scheduler.jobs"], env={**os.environ, **settings.as_env()},
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def test_jobs_and_notifier_serve_relay_lag_deliveries_and_watcher_runs(
        database_url, nats_url, schema, tmp_path) -> None:
    base = server_settings(database_url, nats_url, schema)
    jobs_port = free_port()
    jobs_settings = replace(base, jobs_metrics_port=jobs_port, deadline_check_seconds=0.5)
    with jobs_process(jobs_settings, tmp_path / "jobs.log") as jobs, \
            serve(replace(base, background_jobs=False)) as server, Receiver() as receiver, \
            httpx.Client(base_url=server.base_url, timeout=30) as client:
        jobs_url = f"http://127.0.0.1:{jobs_port}/metrics"
        running = NotifierThread(notifier_settings(base, metrics_port=0)).start()
        try:
            until_up = time.monotonic() + 30
            while running.notifier.metrics_port is None and time.monotonic() < until_up:
                time.sleep(0.05)
            notifier_url = f"http://127.0.0.1:{running.notifier.metrics_port}/metrics"
            receiver.respond = lambda path: 204 if path == "/ok" else 500
            home = Tenant.onboard(client, server.operator_token)
            for path in ("/ok", "/down"):
                ok(client.post(f"/v1/clinics/{home.clinic['id']}/webhooks",
                               json={"url": f"{receiver.url}{path}", "event_types": []}, headers=home.headers), 201)
            notifier_before = scrape(notifier_url)
            course = home.open_course()
            home.book(course["id"], "assessment", T0)
            home.book(course["id"], "assessment", T0 + timedelta(days=1))

            # The relay caught up: nothing waiting, its position at the head of the store.
            lag = eventually(lambda: scrape(jobs_url), lambda s: value(s, "kact_relay_published_total") >= 3
                             and value(s, "kact_relay_behind") == 0, timeout=20)
            assert jobs.poll() is None, (tmp_path / "jobs.log").read_text()
            assert value(lag, "kact_relay_lag_up") == 1
            assert value(lag, "kact_relay_published_total") >= 3  # opened, two sessions booked
            assert value(lag, "kact_relay_head") == value(lag, "kact_relay_position") > 0
            assert value(lag, "kact_relay_oldest_waiting_seconds") == 0
            assert value(lag, "kact_relay_dead_letters") == 0
            assert value(lag, "kact_deadline_watcher_runs_total", outcome="ok") >= 1
            assert value(lag, "kact_deadline_watcher_run_seconds_count") >= 1
            assert value(lag, "process_cpu_seconds_total") > 0  # the process's own, not the API's
            assert not any(name.startswith("kact_http_") for name, _ in lag)
            # Loopback only.
            listening = [c.laddr for c in psutil.Process(jobs.pid).net_connections("tcp")
                         if c.status == psutil.CONN_LISTEN and c.laddr.port == jobs_port]
            assert [address.ip for address in listening] == ["127.0.0.1"]

            # The notifier: the events processed, the good webhook delivered, the bad one retried then failed
            # (4 attempts at most in the tests' settings).
            def delta(s: dict, name: str, **labels: str) -> float:
                return value(s, name, **labels) - value(notifier_before, name, **labels)

            seen = eventually(lambda: scrape(notifier_url),
                              lambda s: delta(s, "kact_notifier_messages_total", outcome="processed") >= 3
                              and delta(s, "kact_webhook_deliveries_total", state="delivered") >= 3
                              and delta(s, "kact_webhook_deliveries_total", state="failed") >= 3, timeout=20)
            assert delta(seen, "kact_notifier_messages_total", outcome="processed") >= 3
            assert delta(seen, "kact_webhook_deliveries_total", state="delivered") >= 3
            assert delta(seen, "kact_webhook_deliveries_total", state="retrying") >= 3 * 3
            assert delta(seen, "kact_webhook_deliveries_total", state="failed") >= 3
            assert delta(seen, "kact_webhook_attempt_seconds_count") >= 3 * 5
            assert value(seen, "kact_notifier_inbox_pending") == 0
            assert value(seen, "kact_notifier_dead_letters_total") == value(notifier_before,
                                                                            "kact_notifier_dead_letters_total")
        finally:
            running.stop()



def test_guessing_the_operator_key_at_metrics_is_limited_per_address() -> None:
    """Each wrong key at /metrics costs the caller's address a token of its unknown-key allowance, as a key the
    directory does not know does; then 429 for that address, while the right key (any case of `Bearer`) still
    answers. The clock is the test's, so the refill does not depend on the machine's speed."""
    from scheduler.http.ratelimit import UNKNOWN_KEY_BURST, RateLimits, rate_limiting

    now = [0.0]
    limits = RateLimits.configure(20, 60, 100, 500)
    app = Litestar([metrics_route("the-operator-key", public=False)], middleware=[rate_limiting(limits, lambda: now[0])])
    with TestClient(app) as client:
        for guess in range(UNKNOWN_KEY_BURST):
            assert client.get("/metrics", headers=bearer(f"guess-{guess}")).status_code == 401
        refused = client.get("/metrics", headers=bearer("guess-again"))
        assert refused.status_code == 429 and refused.json()["type"] == "/problems/rate-limited"
        now[0] += 1.0  # a second later the address may try again
        assert client.get("/metrics", headers={"Authorization": "bearer  the-operator-key "}).status_code == 200
