"""Structured logs: the API's JSON lines carry the request id, the principal, the course and the problem type of
every error answer (once each), never a key; `python -m scheduler.jobs` writes the same format."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from api_support import Tenant, bearer
from conftest import LiveServer
from kact_contracts import logs

pytestmark = pytest.mark.integration


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """What the process logs, as kact's JSON lines, while the test runs."""
    out = io.StringIO()
    handler = logs.handler("api", "json", out)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def parsed(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_error_answers_are_logged_once_with_request_principal_course_and_problem_type(
    live_server: LiveServer, client: httpx.Client, lines: io.StringIO
) -> None:
    home = Tenant.onboard(client, live_server.operator_token)
    clinic_key = home.headers["Authorization"].split()[1]
    course = home.open_course()
    missing = str(uuid4())

    # A 404 of a course that does not exist, with a request id of the client's own.
    answer = client.get(f"/v1/courses/{missing}", headers={**home.headers, "X-Request-Id": "client-req-0042"})
    assert answer.status_code == 404
    assert answer.headers["x-request-id"] == "client-req-0042"
    # A 422 (invalid input) on an existing course: the request id is ours, the header it came with is not sane.
    refused = client.post(f"/v1/courses/{course['id']}/sessions", json={"kind": "nonsense"},
                          headers={**home.headers, "X-Request-Id": "bad id\twith spaces"})
    assert refused.status_code == 422
    generated = refused.headers["x-request-id"]
    assert generated != "bad id\twith spaces" and len(generated) == 24
    # A 401 for a key that is not valid: the key never reaches the log.
    bogus_key = "kact_clinic_" + uuid4().hex
    assert client.get("/v1/courses", headers=bearer(bogus_key)).status_code == 401
    # A success is not logged by default.
    ok_answer = client.get(f"/v1/courses/{course['id']}", headers={**home.headers, "X-Request-Id": "fine-1"})
    assert ok_answer.status_code == 200 and ok_answer.headers["x-request-id"] == "fine-1"

    time.sleep(0.2)  # the server thread wrote its lines after answering
    records = parsed(lines)
    principal = f"clinic:{home.clinic['id']}"

    not_found = [r for r in records if r.get("request_id") == "client-req-0042"]
    assert len(not_found) == 1, not_found  # logged exactly once
    line = not_found[0]
    assert line["event"] == "request refused" and line["level"] == "info" and line["logger"] == "kact.http"
    assert line["status"] == 404 and line["problem_type"] == "/problems/not-found"
    assert line["method"] == "GET" and line["route"] == "/v1/courses/{course_id}"
    assert line["principal"] == principal and line["course_id"] == missing
    assert line["process"] == "api" and line["timestamp"].endswith("Z")

    invalid = [r for r in records if r.get("request_id") == generated]
    assert len(invalid) == 1, invalid
    assert invalid[0]["status"] == 422 and invalid[0]["problem_type"] == "/problems/invalid-input"
    assert invalid[0]["course_id"] == course["id"] and invalid[0]["principal"] == principal
    assert invalid[0]["route"] == "/v1/courses/{course_id}/sessions"

    unauthorized = [r for r in records if r.get("status") == 401]
    assert len(unauthorized) == 1 and unauthorized[0]["problem_type"] == "/problems/unauthorized"
    assert "principal" not in unauthorized[0]

    assert not [r for r in records if r.get("request_id") == "fine-1"]
    text = lines.getvalue()
    for secret in (bogus_key, clinic_key, live_server.operator_token, "partner-a-", "partner-b-"):
        assert secret not in text, secret


def test_a_route_that_does_not_exist_and_a_replayed_refusal_are_logged_with_their_problem_type(
    live_server: LiveServer, client: httpx.Client, lines: io.StringIO
) -> None:
    home = Tenant.onboard(client, live_server.operator_token)
    assert client.get("/v1/nowhere", headers={**home.headers, "X-Request-Id": "r-nowhere"}).status_code == 404
    body = {"model": "taking_turns", "partners": {"a": "x", "b": ""}}  # an empty partner: 422, remembered
    for attempt in ("r-first", "r-replay"):
        answer = client.post("/v1/courses", json=body,
                             headers={**home.headers, "Idempotency-Key": "k-422", "X-Request-Id": attempt})
        assert answer.status_code == 422
    time.sleep(0.2)
    records = {r["request_id"]: r for r in parsed(lines) if "request_id" in r}
    assert records["r-nowhere"]["route"] is None and records["r-nowhere"]["problem_type"] == "/problems/not-found"
    assert records["r-first"]["problem_type"] == records["r-replay"]["problem_type"] == "/problems/invalid-input"


def test_the_jobs_process_writes_json_lines(live_server: LiveServer, tmp_path) -> None:
    env = {**os.environ, **live_server.settings.as_env(), "KACT_LOG_FORMAT": "auto", "KACT_LOG_LEVEL": "info",
           "KACT_DEADLINE_CHECK_SECONDS": "0"}
    log_path = tmp_path / "jobs.log"  # not a terminal: auto means JSON
    records = _records_of_a_run("scheduler.jobs", env, log_path, "background jobs started")
    started = [r for r in records if r["event"].startswith("background jobs started")]
    assert started and started[0]["process"] == "jobs" and started[0]["logger"] == "kact.jobs"
    assert started[0]["level"] == "info" and "timestamp" in started[0]
    assert any(r["event"] == "background jobs stopped" for r in records)
    text = log_path.read_text()
    assert live_server.settings.cipher_key not in text and live_server.settings.operator_token not in text


def test_the_notifier_process_writes_json_lines(live_server: LiveServer, schema: str, tmp_path) -> None:
    from conftest import STREAMS

    stream = f"T_log_{uuid4().hex[:8]}"
    STREAMS.add(stream)
    env = {**os.environ, **live_server.settings.as_env(), "KACT_DB_SCHEMA": schema, "KACT_NATS_STREAM": stream,
           "KACT_NATS_PREFIX": f"tlog{uuid4().hex[:6]}", "KACT_LOG_FORMAT": "json"}
    log_path = tmp_path / "notifier.log"
    records = _records_of_a_run("notifier", env, log_path, "this process consumes")
    consuming = [r for r in records if r["event"] == "notifier: this process consumes"]
    assert consuming and consuming[0]["process"] == "notifier" and consuming[0]["logger"] == "kact.notifier"
    assert live_server.settings.cipher_key not in log_path.read_text()


def _records_of_a_run(module: str, env: dict[str, str], log_path: Path, ready: str) -> list[dict[str, Any]]:
    """The log records `python -m <module>` wrote from its start until it logged `ready` and was stopped (SIGTERM)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", module], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while ready not in log_path.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
