"""W3C trace context as the services read and write it, and the exporter the OTEL_* variables choose."""

from __future__ import annotations

import pytest
from kact_contracts import tracing
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_valid_traceparent_names_its_remote_parent() -> None:
    context = tracing.context_of(VALID)
    assert context is not None
    parent = trace.get_current_span(context).get_span_context()
    assert parent.is_remote and parent.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert parent.span_id == 0xB7AD6B7169203331 and parent.trace_flags.sampled
    assert tracing.context_of(VALID.encode()) is not None
    assert tracing.context_of("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-later") is not None  # a later version
    assert tracing.trace_id_of(VALID) == "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize("value", [
    None, "", "garbage", VALID.upper(), VALID + "-more",  # version 00 has four fields
    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # version ff is invalid
    "00-00000000000000000000000000000000-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
    "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
    "00-0af7651916cd43dd_448eb211c80319c-b7ad6b7169203331-01",
])
def test_an_invalid_traceparent_is_ignored(value: str | None) -> None:
    assert tracing.context_of(value) is None


def test_a_span_continues_its_parents_trace_and_passes_on_its_own_id() -> None:
    tracing.configure("test")
    span = tracing.start("child", tracing.context_of(VALID))
    version, trace_id, span_id, flags = tracing.traceparent(span).split("-")
    assert (version, trace_id, flags) == ("00", "0af7651916cd43dd8448eb211c80319c", "01")
    assert span_id != "b7ad6b7169203331" and int(span_id, 16) != 0
    root = tracing.start("root", tracing.EMPTY)
    assert tracing.traceparent(root).split("-")[1] != trace_id and not tracing.exporting()


def test_the_exporter_is_what_the_otel_variables_ask_for() -> None:
    assert tracing.exporter_from_env({}) is None
    assert tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": "none"}) is None
    assert isinstance(tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": "console"}), ConsoleSpanExporter)
    assert isinstance(tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": "otlp"}), OTLPSpanExporter)
    assert isinstance(tracing.exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}),
                      OTLPSpanExporter)
    assert tracing.exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                                      "OTEL_SDK_DISABLED": "true"}) is None
    assert tracing.exporter_from_env({"OTEL_TRACES_EXPORTER": "zipkin"}) is None
