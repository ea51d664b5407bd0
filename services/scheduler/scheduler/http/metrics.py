"""Request and command metrics (a lean ASGI middleware), and `GET /metrics` in the Prometheus text format.

The middleware is ours rather than Litestar's `PrometheusMiddleware`: that one builds a `Request` and three label
dicts per request and looks its metrics up by name each time, and keeps an in-progress gauge (which multiprocess
mode cannot sum cheaply); this one costs two clock reads, one dict look-up of the (route, method, status) children
and their increments (a few microseconds against the 0.4-1 ms of CPU a command takes). It is the outermost
middleware, so rate-limited (429), oversized (413) and every other refusal is counted, and it runs after routing
(Litestar applies app middleware per route), so a route is its path template, never a path with ids in it; a path
that matches no route is not counted.

Every request with a body-changing method (POST, PUT, DELETE) is a command, counted once here by its operation id
and outcome: accepted (2xx), refused (4xx, with the problem type of the answer, and each invariant its
`violations` name) or failed (5xx). The problem body is read only for those answers, from what is sent."""

from __future__ import annotations

import hmac
import re
from time import perf_counter
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import generate_latest

from scheduler.http.deps import bearer_token
from scheduler.http.problem_types import PROBLEM_TYPES
from scheduler.http.problems import RULE_SLUGS, problem
from scheduler.metrics import COMMANDS, HTTP_LATENCY, HTTP_REQUESTS, RULE_VIOLATIONS, registry

READS = frozenset({"GET", "HEAD", "OPTIONS"})
_PARAMETER = re.compile(r"\{(\w+):[^}]*\}")
_PROBLEM_PREFIX = "/problems/"
# The classic text format (every Prometheus reads it; our names need none of 1.0.0's escaping). Litestar adds
# the charset.
TEXT_FORMAT = "text/plain; version=0.0.4"


def _route(template: str) -> str:
    """`/v1/courses/{course_id:uuid}` -> `/v1/courses/{course_id}`."""
    return _PARAMETER.sub(r"{\1}", template) or "/"


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    # The label children, created once each: by (path template, method, status).
    requests: dict[tuple[str, str, int], tuple[Any, Any]] = {}
    accepted_commands: dict[tuple[str, str, int], Any] = {}  # None: the route is no command (no operation id)

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = perf_counter()
        status = 500  # unless an answer starts (an exception past every handler is a 500)
        refusal: bytes | None = None

        async def sending(message: Message) -> None:
            nonlocal status, refusal
            if message["type"] == "http.response.start":
                status = message["status"]
            elif status >= 400 and refusal is None:  # a problem's body: one message (Litestar, send_problem)
                refusal = message.get("body", b"")
            await send(message)

        try:
            await app(scope, receive, sending)
        finally:
            elapsed = perf_counter() - started
            method = scope["method"]
            key = (scope.get("path_template", ""), method, status)
            children = requests.get(key)
            if children is None:
                labels = (_route(key[0]), method, str(status))
                children = requests[key] = (HTTP_REQUESTS.labels(*labels), HTTP_LATENCY.labels(*labels))
            children[0].inc()
            children[1].observe(elapsed)
            if method not in READS:
                if status < 400:
                    accepted = accepted_commands.get(key)
                    if accepted is None:
                        command = _command(scope)
                        accepted = accepted_commands[key] = COMMANDS.labels(command, "accepted", "") if command \
                            else None
                    if accepted is not None:
                        accepted.inc()
                else:
                    _count_refusal(scope, status, refusal)

    return middleware


def _command(scope: Scope) -> str | None:
    """The operation id of the route's handler (a command's type)."""
    command = getattr(scope.get("route_handler"), "operation_id", None)
    return command if isinstance(command, str) else None


def _count_refusal(scope: Scope, status: int, refusal: bytes | None) -> None:
    command = _command(scope)
    if command is None:
        return
    problem_type, invariants = _problem_of(refusal)
    COMMANDS.labels(command, "refused" if status < 500 else "failed", problem_type).inc()
    for invariant in invariants:
        RULE_VIOLATIONS.labels(command, invariant).inc()


def _problem_of(body: bytes | None) -> tuple[str, set[str]]:
    """The problem type's name (one of `PROBLEM_TYPES`, else "other") and the known invariants it names."""
    try:
        problem_body = msgspec.json.decode(body or b"")
    except msgspec.DecodeError:
        return "other", set()
    if not isinstance(problem_body, dict):
        return "other", set()
    kind = problem_body.get("type")
    name = kind[len(_PROBLEM_PREFIX):] if isinstance(kind, str) and kind.startswith(_PROBLEM_PREFIX) else ""
    violations = problem_body.get("violations")
    invariants = {v.get("invariant") for v in violations if isinstance(v, dict)} if isinstance(violations, list) \
        else set()
    return (name if name in PROBLEM_TYPES else "other"), {i for i in invariants if i in RULE_SLUGS}


def metrics_route(operator_token: str, public: bool) -> Any:
    """`GET /metrics`: the operator's key is required unless `public` (KACT_METRICS_PUBLIC=1). Out of the OpenAPI
    document (an operator's endpoint, not the partners' contract) and never rate-limited (`ratelimit.is_public`);
    the key is compared in constant time, without the database; each wrong key costs the caller's address a token of
    its unknown-key allowance (`ratelimit.rate_limiting`)."""
    expected = operator_token.encode()

    @get("/metrics", include_in_schema=False, cache=False, sync_to_thread=False)
    def metrics(request: Request[Any, Any, Any]) -> Response[Any]:
        if not public:
            given = (bearer_token(request.scope["headers"]) or "").encode()
            if not hmac.compare_digest(given, expected):
                response = problem(401, "unauthorized", "Unauthorized",
                                   "the operator key is required (or set KACT_METRICS_PUBLIC=1)")
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
        return Response(generate_latest(registry()), media_type=TEXT_FORMAT)

    return metrics
