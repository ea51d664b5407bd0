"""The one place that maps errors to RFC 9457 problem details.

Every problem built here is noted on its request (`observe.note`): its type, and for the operator why it
happened (a cause, a traceback). The request's one log line (`observe`) carries them; nothing here logs a
request's answer itself, so each 4xx and 5xx is logged exactly once."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

import msgspec

import asyncpg
import eventsourcing.persistence
import psycopg

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import Send

from scheduler.api_keys import TooManyKeysError
from scheduler.calendar_feeds import TooManyFeedsError
from scheduler.readmodels.freshness import IndexBehindError
from scheduler.http import observe
from scheduler.application.errors import (
    AlreadyCreatedError,
    ConcurrentUpdateError,
    CourseNotFoundError,
    AlreadyRedrivenError,
    DeliveryNotFailedError,
    ForbiddenError,
    NotFoundError,
    OutcomeUnknownError,
    StoreUnavailableError,
    UnknownReferenceError,
    WebhookDisabledError,
)
from scheduler.domain.rules.planning import UnplannableError
from scheduler.domain.errors import (
    DomainError,
    InvalidCommandError,
    NotAddressedError,
    NotHostingError,
    RulesBrokenError,
    UnknownApprovalError,
    UnknownHoldError,
    UnknownSessionError,
)

log = logging.getLogger("kact.http")
MEDIA_TYPE = "application/problem+json"

RULE_SLUGS = {
    "I1": "phase-order",
    "I2": "medicine-session-limit",
    "I3": "integration-minimum",
    "I4": "integration-window",
    "I5": "medicine-interval",
    "I6": "dose-approval",
    "I7": "dosing-model",
    "I8": "monitoring",
    "I9": "pre-dose-vitals",
    "I10": "double-booking",
    "I11": "hosting",
    "course-closed": "course-closed",
    "session-state": "session-state",
    "session-not-started": "session-not-started",
    "session-started": "session-started",
    "booking-in-the-past": "booking-in-the-past",
    "approval-decided": "approval-decided",
    "booked-sessions": "booked-sessions",
    "session-confirmation": "session-confirmation",
    "opening-hours": "opening-hours",
    "closure": "closure",
    "working-hours": "working-hours",
    "min-notice": "min-notice",
    "booking-horizon": "booking-horizon",
    "buffers": "buffers",
    "clinician-daily-limit": "clinician-daily-limit",
    "clinician-weekly-limit": "clinician-weekly-limit",
    "partner-medicine-daily-cap": "partner-medicine-daily-cap",
    "holds-cap": "holds-cap",
    "hold-expired": "hold-expired",
}


class ProblemError(Exception):
    """An HTTP-level refusal, not a use case's decision (the body guard, idempotency, X-Kact-Now, a docs page)."""

    def __init__(self, status: int, slug: str, title: str, detail: str) -> None:
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        super().__init__(detail)


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> Response[dict[str, Any]]:
    body = {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail, **extra}
    observe.note(body["type"])
    return Response(body, status_code=status, media_type=MEDIA_TYPE)


def _why(request: Request, message: str, exc: BaseException | None = None, level: int = logging.ERROR) -> None:
    """Why the request failed, for its log line; outside a request (a handler called directly), logged here."""
    if not observe.note(cause=message, exc=exc):
        log.log(level, "%s on %s %s", message, request.method, request.url.path, exc_info=exc)


async def send_problem(send: Send, status: int, slug: str, title: str, detail: str,
                       headers: Iterable[tuple[bytes, bytes]] = (), **extra: Any) -> None:
    """`problem()` for ASGI middleware, which answers before (or instead of) the app."""
    observe.note(f"/problems/{slug}")
    body = json.dumps({"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail,
                       **extra}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


def rules_broken(request: Request, exc: RulesBrokenError) -> Response[dict[str, Any]]:
    violations = [{"invariant": v.rule, "detail": v.message} for v in exc.violations]
    rules = {v.rule for v in exc.violations}
    if len(rules) == 1:  # one rule, broken once or for several resources (I10 for a clinician and a room)
        slug = RULE_SLUGS.get(exc.violations[0].rule, "rule-violation")
    else:
        slug = "rule-violations"
    return problem(409, slug, "The command breaks the course's rules", str(exc), violations=violations)


def domain_error(request: Request, exc: DomainError) -> Response[dict[str, Any]]:
    if isinstance(exc, RulesBrokenError):
        return rules_broken(request, exc)
    if isinstance(exc, InvalidCommandError):
        errors = [{"detail": p} for p in exc.problems]
        return problem(422, "invalid-input", "The request is not valid", str(exc), errors=errors)
    if isinstance(exc, UnknownReferenceError):
        # 404 is for the resource the path names; an id in the body that does not exist (or not for this
        # principal) makes the request invalid, and the answer is the same whether or not it exists elsewhere.
        return problem(422, "invalid-input", "The request is not valid", str(exc), errors=[{"detail": str(exc)}])
    if isinstance(exc, ForbiddenError):
        return problem(403, "forbidden", "Forbidden", str(exc))
    if isinstance(exc, UnplannableError):
        return problem(409, "no-plan", "No plan fits", str(exc), item=exc.index, kind=exc.need.kind.value)
    if isinstance(exc, ConcurrentUpdateError):
        return problem(409, "version-conflict", "The course changed concurrently", str(exc))
    if isinstance(exc, NotHostingError):  # another clinic's session does not exist for this one
        return problem(404, "not-found", "Not found", f"no session {exc.session_id} in this course")
    if isinstance(exc, AlreadyCreatedError):
        return problem(409, "already-created", "Already created", str(exc))
    if isinstance(exc, AlreadyRedrivenError):
        return problem(409, "already-redriven", "Already redriven", str(exc))
    if isinstance(exc, DeliveryNotFailedError):
        return problem(409, "delivery-not-failed", "Only a failed delivery is redriven", str(exc))
    if isinstance(exc, WebhookDisabledError):
        return problem(409, "webhook-disabled", "The webhook is disabled", str(exc))
    if isinstance(exc, (NotFoundError, CourseNotFoundError, UnknownSessionError, UnknownApprovalError,
                        UnknownHoldError, NotAddressedError)):
        return problem(404, "not-found", "Not found", str(exc) if not isinstance(exc, NotAddressedError) else
                       f"no dose approval {exc.approval_id}")
    _why(request, "unmapped domain error", exc)
    return problem(500, "internal", "Internal error", "unexpected domain error")


def problem_error(request: Request, exc: ProblemError) -> Response[dict[str, Any]]:
    return problem(exc.status, exc.slug, exc.title, exc.detail)


def too_many_keys(request: Request, exc: TooManyKeysError) -> Response[dict[str, Any]]:
    return problem(409, "too-many-keys", "Too many active keys", str(exc))


def too_many_feeds(request: Request, exc: TooManyFeedsError) -> Response[dict[str, Any]]:
    return problem(409, "too-many-feeds", "Too many calendar feeds", str(exc))


def _allowed_values(body_type: Any, key: str) -> list[Any]:
    """The values a closed-set (enum) field of a request body allows, found by its error's key (`doses[0].partner`);
    [] if the key names no such field."""
    def inner(t: Any) -> Any:
        while True:
            if isinstance(t, msgspec.inspect.Metadata):
                t = t.type
            elif isinstance(t, msgspec.inspect.UnionType):
                members = [m for m in t.types if not isinstance(m, msgspec.inspect.NoneType)]
                if len(members) != 1:
                    return t
                t = members[0]
            elif isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.SetType)):
                t = t.item_type
            else:
                return t

    try:
        t = inner(msgspec.inspect.type_info(body_type))
    except (TypeError, ValueError):
        return []
    for part in (p for p in re.split(r"\.|\[\d+\]", key) if p):
        if not isinstance(t, msgspec.inspect.StructType):
            return []
        t = inner(next((f.type for f in t.fields if f.encode_name == part), None))
    return [v for v in t.values if v is not None] if isinstance(t, msgspec.inspect.LiteralType) else []


_ENUM_ERROR = re.compile(r"^Invalid enum value .* - at `\$\.(?P<key>[^`]+)`$")


def allowed_value_errors(message: str, body_type: Any) -> list[dict[str, Any]]:
    """For msgspec's refusal of a value outside a closed set (`Invalid enum value 'x' - at `$.reason_code``), the
    error naming the values that field allows (`allowed`); [] for any other refusal."""
    match = _ENUM_ERROR.match(message)
    allowed = _allowed_values(body_type, match["key"]) if match and body_type is not None else []
    if not allowed:
        return []
    return [{"key": match["key"], "source": "body", "allowed": allowed,
             "message": f"{match['key']} must be one of {', '.join(map(str, allowed))}"}]


def http_error(request: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    if isinstance(exc, ValidationException):
        errors = exc.extra if isinstance(exc.extra, list) else []
        return problem(422, "invalid-input", "The request is not valid", exc.detail, errors=errors)
    if isinstance(exc, NotAuthorizedException):
        response = problem(401, "unauthorized", "Unauthorized", exc.detail or "a valid API key is required")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    if isinstance(exc, NotFoundException):
        return problem(404, "not-found", "Not found", exc.detail)
    status = exc.status_code
    if status == 405:
        response = problem(405, "method-not-allowed", "Method not allowed", exc.detail or "Method Not Allowed")
        response.headers.update(exc.headers or {})  # Allow: the methods the path has
        return response
    if status == 400:  # Litestar reports undecodable bodies and bad parameters as 400; they are invalid input
        return problem(422, "invalid-input", "The request is not valid", exc.detail,
                       errors=exc.extra if isinstance(exc.extra, list) else [])
    return problem(status, "http-error", exc.detail or "HTTP error", exc.detail)


def unavailable(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    _why(request, f"database unavailable: {type(exc).__name__}: {exc}")
    response = problem(503, "unavailable", "Service unavailable", "the database is unavailable; retry shortly")
    response.headers["Retry-After"] = "2"
    return response


def index_behind(request: Request, exc: IndexBehindError) -> Response[dict[str, Any]]:
    """A read of the course index that could not show the writes before it: no process keeps the index (health
    says so), or it is stuck. Unavailable rather than an answer that hides a write."""
    _why(request, str(exc))
    response = problem(503, "unavailable", "Service unavailable", f"{exc}; retry shortly")
    response.headers["Retry-After"] = "2"
    return response


def data_refused(request: Request, exc: asyncpg.DataError) -> Response[dict[str, Any]]:
    """PostgreSQL refused a value (out of its column's range, a character it cannot store): invalid input that a
    bound in the schemas should have caught first, so it is logged to be added there."""
    # The driver's message may quote the value (a note, a reading): only what kind of refusal it was is logged.
    _why(request, f"PostgreSQL refused a value (a missing bound?): {type(exc).__name__} "
                  f"(SQLSTATE {getattr(exc, 'sqlstate', None)})", level=logging.WARNING)
    return problem(422, "invalid-input", "The request is not valid", "a value is out of the range this API stores")


OUTCOME_HEADER = "kact-outcome"  # "unknown": the idempotency middleware keeps the key's claim


def outcome_unknown(request: Request, exc: OutcomeUnknownError) -> Response[dict[str, Any]]:
    _why(request, f"outcome unknown: {exc}")
    response = problem(503, "outcome-unknown", "Outcome unknown", str(exc) + (
        "; read the course before sending it again, or retry with the same Idempotency-Key"))
    response.headers["Retry-After"] = "2"
    response.headers[OUTCOME_HEADER] = "unknown"
    return response


def failed_database(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    """A database failure of a kind not known to mean "unreachable" (an internal error, a connection in a state
    the driver did not expect): still the database's, so 503; logged with its traceback to be classified."""
    response = unavailable(request, exc)
    _why(request, f"database failure: {type(exc).__name__}: {exc}", exc)
    return response


def stale_write(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    """A write that lost to another (outside the retried commands): nothing was saved, the client may retry."""
    _why(request, f"write conflict: {exc}", level=logging.WARNING)
    return problem(409, "version-conflict", "The course changed concurrently", "nothing was saved; retry the request")


def unexpected(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    _why(request, "unhandled error", exc)
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "internal", "Internal error", "unexpected error; it was logged")


EXCEPTION_HANDLERS = {
    DomainError: domain_error,
    ProblemError: problem_error,
    TooManyKeysError: too_many_keys,
    TooManyFeedsError: too_many_feeds,
    HTTPException: http_error,
    asyncpg.DataError: data_refused,
    asyncpg.PostgresConnectionError: unavailable,
    # cancelled by the statement timeout, the server shutting down or starting up
    asyncpg.exceptions.OperatorInterventionError: unavailable,
    asyncpg.exceptions.LockNotAvailableError: unavailable,
    asyncpg.exceptions.TooManyConnectionsError: unavailable,
    asyncpg.InterfaceError: unavailable,
    psycopg.OperationalError: unavailable,
    StoreUnavailableError: unavailable,
    IndexBehindError: index_behind,
    OutcomeUnknownError: outcome_unknown,
    eventsourcing.persistence.OperationalError: unavailable,
    eventsourcing.persistence.InterfaceError: unavailable,
    OSError: unavailable,
    # Other failures of the database layer are the database's (503), but for those that mean a bug of ours.
    eventsourcing.persistence.PersistenceError: failed_database,
    eventsourcing.persistence.IntegrityError: stale_write,
    eventsourcing.persistence.ProgrammingError: unexpected,
    eventsourcing.persistence.DataError: unexpected,
    eventsourcing.persistence.NotSupportedError: unexpected,
    psycopg.InterfaceError: failed_database,
    psycopg.InternalError: failed_database,
    asyncpg.exceptions.InternalServerError: failed_database,
    asyncpg.exceptions.InternalClientError: failed_database,
    Exception: unexpected,
}
