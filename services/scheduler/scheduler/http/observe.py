"""The outermost layer of every HTTP request: its request id, its span, its log context, and the one log line of
every 4xx and 5xx answer.

The span is the request's server span, child of the W3C `traceparent` the request came with (if any and valid),
and the current span while the app handles it (so the command's span, the events' trace context and the log
lines follow it). A lean middleware of our own rather than the generic ASGI instrumentation: one span per
request, its attributes set only when it is recorded.

It wraps the whole Litestar app (`observe(app)`), so it sees every answer: the handlers', the exception
handlers' (problems.py), the middlewares' own refusals and the router's 404 and 405. A request's log fields
cost one context variable (`kact_contracts.logs.CONTEXT`) set per request; they are read from the ASGI scope only
when a line is written."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import MutableMapping
from typing import Any

from kact_contracts import logs, tracing
from litestar import Litestar
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import StatusCode

log = logging.getLogger("kact.http")
REQUEST_ID_HEADER = b"x-request-id"
TRACEPARENT_HEADER = b"traceparent"
# An incoming X-Request-Id is kept when it is a plain token (what proxies and clients generate: UUIDs, hex,
# base64); anything else (too long, spaces, control characters, quotes) is replaced by one of ours.
SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@+=/-]{1,128}")
# The scope key under which the rate-limiting middleware leaves the principal it authenticated.
AUTHENTICATED = "kact.principal"


class RequestLog:
    """What the log knows of one request: its id and its scope (the route, its path parameters, the principal
    the rate limiter authenticated), and what an error answer recorded of itself (`problems.note`)."""

    __slots__ = ("request_id", "scope", "problem_type", "cause", "exc")

    def __init__(self, request_id: str, scope: Scope) -> None:
        self.request_id, self.scope = request_id, scope
        self.problem_type: str | None = None
        self.cause: str | None = None  # why a 5xx (or an unexpected 4xx) happened: for the operator, not the client
        self.exc: BaseException | None = None  # an exception whose traceback the line carries

    def add_to(self, event: MutableMapping[str, Any]) -> None:
        scope = self.scope
        event.setdefault("request_id", self.request_id)
        principal = scope.get(AUTHENTICATED)
        if principal is not None:  # its id (kind:id): never the key it authenticated with
            event.setdefault("principal", principal.ref)
        params = scope.get("path_params")
        if params:
            course_id = params.get("course_id")
            if course_id is not None:
                event.setdefault("course_id", str(course_id))


def current() -> RequestLog | None:
    context = logs.CONTEXT.get()
    return context if isinstance(context, RequestLog) else None


def note(problem_type: str | None = None, *, cause: str | None = None, exc: BaseException | None = None) -> bool:
    """Record on the current request what its error answer is (its problem type) and why (for its log line);
    False outside a request."""
    context = current()
    if context is None:
        return False
    if problem_type is not None:
        context.problem_type = problem_type
    if cause is not None:
        context.cause = cause
    if exc is not None:
        context.exc = exc
    return True


def _incoming(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes | None]:
    """The request's id (the client's if sane, else a new one) and its `traceparent` header (None: none)."""
    request_id = traceparent = None
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            request_id = value
        elif name == TRACEPARENT_HEADER:
            traceparent = value
    if request_id is None or not SANE_REQUEST_ID.fullmatch(request_id):
        request_id = os.urandom(12).hex().encode()
    return request_id, traceparent


def observe(app: Litestar) -> None:
    """Wrap the app's request handling (inside Litestar's own entry, which puts the app in the scope)."""
    app.asgi_handler = observed(app.asgi_handler)


def observed(inner: ASGIApp) -> ASGIApp:
    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        rid, traceparent = _incoming(scope["headers"])
        method = scope["method"]
        span = tracing.start(method, tracing.context_of(traceparent) or tracing.EMPTY, tracing.SERVER)
        attached = otel_context.attach(trace.set_span_in_context(span, tracing.EMPTY))
        context = RequestLog(rid.decode("ascii"), scope)
        token = logs.CONTEXT.set(context)
        status = 0  # no answer started yet

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                headers = message.get("headers")
                if isinstance(headers, list):
                    headers.append((REQUEST_ID_HEADER, rid))
                else:
                    message["headers"] = [*(headers or ()), (REQUEST_ID_HEADER, rid)]
                status = message["status"]
                if status >= 400:
                    _log_error_answer(context, scope, status)
            await send(message)

        try:
            await inner(scope, receive, answer)
        except Exception as exc:
            if not status:  # nothing answered (the app's own handlers answer every error): the server answers 500
                status = 500
                context.exc = exc
                _log_error_answer(context, scope, status)
            raise
        finally:
            logs.CONTEXT.reset(token)
            if span.is_recording():
                _describe(span, scope, status, context)
            span.end()
            otel_context.detach(attached)

    return handle


def _log_error_answer(context: RequestLog, scope: Scope, status: int) -> None:
    """The one line of a 4xx or 5xx answer: its problem type, status, method and route template."""
    fields: dict[str, Any] = {
        "status": status,
        "problem_type": context.problem_type,
        "method": scope["method"],
        "route": scope.get("path_template") or None,  # None: no route matched (a 404 of the router)
    }
    if context.cause is not None:
        fields["cause"] = context.cause
    if status >= 500:
        log.error("request failed", extra=fields, exc_info=context.exc)
    else:
        log.info("request refused", extra=fields, exc_info=context.exc)


def _describe(span: trace.Span, scope: Scope, status: int, context: RequestLog) -> None:
    """A recorded request span's name and attributes (OpenTelemetry's HTTP semantic conventions)."""
    route = scope.get("path_template") or None
    if route is not None:
        span.update_name(f"{scope['method']} {route}")
        span.set_attribute("http.route", route)
    span.set_attribute("http.request.method", scope["method"])
    if status:
        span.set_attribute("http.response.status_code", status)
    span.set_attribute("kact.request_id", context.request_id)
    if context.problem_type is not None:
        span.set_attribute("kact.problem_type", context.problem_type)
    if status >= 500:
        span.set_status(StatusCode.ERROR)
