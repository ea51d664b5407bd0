"""Traces: one trace from the HTTP request through the event store, the relay, NATS and the notifier to the
webhook request at a real receiver; and, recorded in memory, the spans of that path and how they nest."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from api_support import T0, Tenant, iso, ok
from kact_contracts import tracing
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from receiver import Received, Receiver
from scheduler.application.courses import Courses, event_store_env

pytestmark = pytest.mark.integration
BOOKED = "kact.course.session.booked.v1"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


def traceparent() -> tuple[str, str, str]:
    """A W3C traceparent of a caller's own, sampled: (header, trace id, span id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def hook(client: httpx.Client, receiver: Receiver, home: Tenant) -> str:
    path = f"/trace-{secrets.token_hex(4)}"
    ok(client.post(f"/v1/clinics/{home.clinic['id']}/webhooks", json={"url": receiver.url + path, "event_types": [BOOKED]},
                   headers=home.headers), 201)
    return path


def book(home: Tenant, course_id: str, headers: dict[str, str], day: int = 0) -> dict[str, Any]:
    start = T0 + timedelta(days=day)
    body = {"kind": "assessment", "starts_at": iso(start), "ends_at": iso(start + timedelta(hours=1)),
            "partners": ["a", "b"], "clinician_ids": [home.therapist["id"]]}
    return ok(home.post(f"/v1/courses/{course_id}/sessions", body, at=T0.replace(day=1), headers=headers), 201)


def webhook_of(receiver: Receiver, path: str, session_id: str) -> Received:
    (received,) = receiver.wait_for(path, lambda item: item["event"]["data"]["session_id"] == session_id)
    return received


def test_one_trace_id_spans_the_request_to_the_webhook(live_server, notifier, client: httpx.Client,
                                                       receiver: Receiver) -> None:
    home = Tenant.onboard(client, live_server.operator_token)
    path = hook(client, receiver, home)
    course = home.open_course()
    header, trace_id, caller_span = traceparent()
    session = book(home, course["id"], {"traceparent": header, "X-Request-Id": "trace-test-req-1"})

    received = webhook_of(receiver, path, session["id"])
    version, sent_trace, sent_span, flags = received.headers["traceparent"].split("-")
    assert (version, sent_trace) == ("00", trace_id)  # the caller's trace, all the way to the receiver
    assert sent_span != caller_span and len(sent_span) == 16 and int(sent_span, 16) != 0
    event_trace = received.item["event"]["traceparent"]  # the CloudEvents attribute: the recording command's
    assert event_trace.split("-")[1] == trace_id and event_trace.split("-")[2] != caller_span

    # A request without a trace context starts one: the webhook carries that trace, not the first one.
    second = book(home, course["id"], {}, day=1)
    other = webhook_of(receiver, path, second["id"]).headers["traceparent"].split("-")[1]
    assert other != trace_id and int(other, 16) != 0

    # The stored event keeps the trace context and the request id; the course's history shows the trace id and the
    # request id as who recorded each event (its actor), never the raw trace context.
    courses = Courses(env=event_store_env(live_server.settings))
    try:
        booked = [e for e in courses.history(course["id"]) if type(e).__name__ == "SessionBooked"]
    finally:
        courses.close()
    assert booked[0].traceparent == event_trace and booked[0].request_id == "trace-test-req-1"
    assert booked[1].traceparent.split("-")[1] == other and len(booked[1].request_id) == 24
    history = ok(client.get(f"/v1/courses/{course['id']}/events", headers=home.headers), 200)
    assert "traceparent" not in str(history) and event_trace not in str(history)
    actors = [e["actor"] for e in history if e["type"] == "SessionBooked"]
    assert (actors[0]["request_id"], actors[0]["trace_id"]) == ("trace-test-req-1", trace_id)
    assert actors[1]["trace_id"] == other


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans recorded in memory (this process: the API, its relay thread and the notifier thread) while the test runs."""
    assert tracing.configured()  # by the app: the process's tracer provider is kact's
    exporter = InMemorySpanExporter()
    tracing.export_to(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        tracing.stop_exporting()
        exporter.shutdown()


def test_the_spans_of_a_command_nest_from_the_request_to_the_webhook(
    live_server, notifier, client: httpx.Client, receiver: Receiver, spans: InMemorySpanExporter
) -> None:
    home = Tenant.onboard(client, live_server.operator_token)
    path = hook(client, receiver, home)
    course = home.open_course()
    header, trace_id, caller_span = traceparent()
    session = book(home, course["id"], {"traceparent": header})
    received = webhook_of(receiver, path, session["id"])

    def ours() -> list[ReadableSpan]:
        return [s for s in spans.get_finished_spans() if s.context.trace_id == int(trace_id, 16)]

    deadline = time.monotonic() + 10  # the notifier's span ends after its ack, the webhook's after its record
    while not ({"process", "webhook"} <= {s.name for s in ours()}) and time.monotonic() < deadline:
        time.sleep(0.05)
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in ours():
        by_name.setdefault(span.name, []).append(span)

    (server,) = by_name["POST /v1/courses/{course_id}/sessions"]
    assert server.kind is SpanKind.SERVER and server.parent is not None and server.parent.is_remote
    assert server.parent.span_id == int(caller_span, 16)
    assert server.attributes["http.response.status_code"] == 201
    assert server.attributes["http.route"] == "/v1/courses/{course_id}/sessions"
    (command,) = by_name["Scheduling.book_session"]
    assert command.parent.span_id == server.context.span_id
    (commit,) = by_name["commit"]
    assert commit.parent.span_id == command.context.span_id
    (publish,) = by_name[f"publish {BOOKED}"]
    assert publish.kind is SpanKind.PRODUCER and publish.parent.span_id == command.context.span_id
    (process,) = by_name["process"]
    assert process.kind is SpanKind.CONSUMER and process.parent.span_id == publish.context.span_id
    (webhook,) = by_name["webhook"]
    assert webhook.kind is SpanKind.CLIENT and webhook.parent.span_id == command.context.span_id
    assert webhook.attributes["http.response.status_code"] == 204
    assert received.headers["traceparent"] == f"00-{trace_id}-{webhook.context.span_id:016x}-01"
    assert received.item["event"]["traceparent"] == f"00-{trace_id}-{command.context.span_id:016x}-01"
    # Few spans per request (the request, the command, its wait for the commit), one per hop after it.
    assert sorted(by_name) == sorted(["POST /v1/courses/{course_id}/sessions", "Scheduling.book_session", "commit",
                                      f"publish {BOOKED}", "process", "webhook"])


def test_an_api_process_exports_its_spans_over_otlp_when_the_otel_variables_say_so(
    live_server, receiver: Receiver, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real API process (as `kact up` runs a worker) with OTEL_EXPORTER_OTLP_ENDPOINT set: its spans reach the
    collector (a real HTTP server) as OTLP/protobuf, and its log line of a refused request carries the trace id."""
    from processes import api_process

    collector = f"/otlp-{secrets.token_hex(3)}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{receiver.url}{collector}/v1/traces")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("KACT_LOG_LEVEL", "INFO")
    header, trace_id, caller_span = traceparent()
    log_path = tmp_path / "api.log"
    with api_process(live_server, log_path) as base_url:
        answer = httpx.get(f"{base_url}/v1/courses/{uuid4()}", timeout=10,
                           headers={"traceparent": header, "Authorization": f"Bearer {live_server.operator_token}"})
        assert answer.status_code == 404
        ours = _exported_spans_of(trace_id, receiver, collector)
    assert len(ours) == 1 and ours[0].parent_span_id.hex() == caller_span and ours[0].kind == 2  # SERVER
    assert ours[0].name == "GET /v1/courses/{course_id}"
    lines = [line for line in log_path.read_text().splitlines() if '"request refused"' in line]
    assert len(lines) == 1 and f'"trace_id":"{trace_id}"' in lines[0] and '"process":"api"' in lines[0]


def _exported_spans_of(trace_id: str, receiver: Receiver, collector: str, timeout: float = 20.0) -> list[Any]:
    """The spans of `trace_id` the collector got, once it got any (the exporter batches every 100 ms, and an earlier
    batch may hold only other spans, such as the readiness checks')."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    def ours() -> list[Any]:
        return [span for request in receiver.at(f"{collector}/v1/traces")
                for resource in _decoded(ExportTraceServiceRequest, request.body).resource_spans
                for scope in resource.scope_spans for span in scope.spans if span.trace_id.hex() == trace_id]

    deadline = time.monotonic() + timeout
    while not ours():
        assert time.monotonic() < deadline, "no span of the request's trace was exported"
        time.sleep(0.05)
    time.sleep(0.3)  # another span of the trace would come in the same batch or the next: none should
    return ours()


def _decoded(message_type: Any, body: bytes) -> Any:
    message = message_type()
    message.ParseFromString(body)
    return message
