"""Traces (OpenTelemetry) across the API, the event store, the bus and the notifier.

Every process makes spans with the SDK's tracer provider (`configure`), so each request, command and message
has a trace id and span id, which its log lines carry (`trace_id`) and which travel on as W3C `traceparent`:
from the HTTP request into each stored event, from the event to the bus (NATS header and the CloudEvents
`traceparent` attribute), and from there to each webhook request.

Export is off unless the standard OTEL_* variables ask for it (`OTEL_TRACES_EXPORTER=otlp` or `console`, or an
`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; OTLP over HTTP, which reads its own
OTEL_EXPORTER_OTLP_* settings). Off, no span records anything: each is a non-recording span with fresh ids,
a few microseconds, where a recording one costs tens. On, spans are sampled as `OTEL_TRACES_SAMPLER` says
(default: parent-based, always on); the ids propagate whatever the sampling."""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import MutableMapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.util.types import Attributes

from kact_contracts import logs

log = logging.getLogger("kact.tracing")
HEADER = "traceparent"
# W3C Trace Context: version-traceid-parentid-flags; a later version may append fields (kept out: version 00 only
# has four), version ff is invalid, and all-zero ids are invalid.
_TRACEPARENT = re.compile(r"([0-9a-e][0-9a-f]|f[0-9a-e])-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\s]*)?")
EMPTY = Context()  # no parent: a span started with it begins a trace
SERVER, CLIENT, PRODUCER, CONSUMER = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER


class _Sampler(sampling.Sampler):
    """Nothing is recorded until an exporter is installed (`export_to`); then `OTEL_TRACES_SAMPLER` decides."""

    _DROP = sampling.SamplingResult(sampling.Decision.DROP)

    def __init__(self) -> None:
        self.inner: sampling.Sampler | None = None

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[trace.Link] | None = None,
                      trace_state: trace.TraceState | None = None) -> sampling.SamplingResult:
        inner = self.inner
        if inner is None:
            return self._DROP
        return inner.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"kact({self.inner.get_description() if self.inner else 'not exported'})"


_sampler = _Sampler()
_provider: TracerProvider | None = None
_tracer: trace.Tracer = trace.get_tracer("kact")  # until `configure`: the API's no-op (no ids)


def configure(process: str) -> TracerProvider:
    """This process's tracer provider (once; later calls return it), exporting as the OTEL_* variables say."""
    global _provider, _tracer
    if _provider is not None:
        return _provider
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"kact-{process}"}
    _provider = TracerProvider(sampler=_sampler, resource=Resource.create(attributes))
    trace.set_tracer_provider(_provider)
    _tracer = _provider.get_tracer("kact")
    logs.add_field_source(_trace_id)
    exporter = exporter_from_env(os.environ)
    if exporter is not None:
        export_to(BatchSpanProcessor(exporter))
    return _provider


def configured() -> bool:
    return _provider is not None


def export_to(processor: SpanProcessor) -> None:
    """Record spans and hand them to `processor` (an exporter's), sampled as OTEL_TRACES_SAMPLER says."""
    assert _provider is not None, "configure first"
    _provider.add_span_processor(processor)
    _sampler.inner = sampling._get_from_env_or_default()  # the SDK's reading of OTEL_TRACES_SAMPLER(_ARG)


def stop_exporting() -> None:
    """Record nothing any more (the processors stay, and get no spans)."""
    _sampler.inner = None


def exporter_from_env(env: MutableMapping[str, str] | Any) -> SpanExporter | None:
    """The exporter the OTEL_* variables ask for, or None (the default)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names and (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        names = ["otlp"]
    if not names or names == ["none"]:
        return None
    if "otlp" in names:
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
        if protocol and protocol != "http/protobuf":
            log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s is not installed; exporting OTLP over http/protobuf", protocol)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if "console" in names:
        return ConsoleSpanExporter()
    log.warning("OTEL_TRACES_EXPORTER=%s is not supported (otlp, console or none); not exporting", ",".join(names))
    return None


def exporting() -> bool:
    """Whether spans are recorded (an exporter is installed): else only their ids matter."""
    return _sampler.inner is not None


def start(name: str, parent: Context | None = None, kind: SpanKind = SpanKind.INTERNAL) -> Span:
    """A span (not made current), child of `parent`, else of the current span.

    While nothing is exported, the span is made here rather than by the SDK (a fifth of its cost): a
    non-recording span with a fresh span id, in its parent's trace (else a new one), keeping the parent's
    sampled flag, which this process does not decide on."""
    if _sampler.inner is not None or _provider is None:
        return _tracer.start_span(name, context=parent, kind=kind)
    above = trace.get_current_span(parent).get_span_context()
    if above.is_valid:
        trace_id, flags = above.trace_id, above.trace_flags
    else:
        trace_id, flags = _random_id(128), _NOT_SAMPLED
    return NonRecordingSpan(SpanContext(trace_id, _random_id(64), False, flags))


_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


def _random_id(bits: int) -> int:
    while not (value := random.getrandbits(bits)):  # zero is the invalid id
        pass
    return value


def context_of(traceparent: str | bytes | None) -> Context | None:
    """The remote parent a W3C `traceparent` names, or None if there is none or it is not valid."""
    if not traceparent:
        return None
    if isinstance(traceparent, bytes):
        traceparent = traceparent.decode("latin-1")
    match = _TRACEPARENT.fullmatch(traceparent.strip())
    if match is None or (match[1] == "00" and match[5]):
        return None
    trace_id, span_id = int(match[2], 16), int(match[3], 16)
    if not trace_id or not span_id:
        return None
    remote = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(match[4], 16)))
    return trace.set_span_in_context(NonRecordingSpan(remote), EMPTY)


def traceparent(span: Span) -> str | None:
    """The W3C `traceparent` that makes the next hop a child of `span` (None for a span without ids)."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def current_traceparent() -> str | None:
    return traceparent(trace.get_current_span())


def trace_id_of(traceparent: str | None) -> str | None:
    match = _TRACEPARENT.fullmatch(traceparent) if traceparent else None
    return match[2] if match else None


def _trace_id(event: MutableMapping[str, Any]) -> None:
    """A log line's `trace_id`: the current span's (unless the line names one itself)."""
    if "trace_id" not in event:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            event["trace_id"] = f"{context.trace_id:032x}"
