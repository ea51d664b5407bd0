"""What handlers depend on: the composed services and the authenticated principal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

import anyio.to_thread
from litestar import Request
from nats.aio.client import Client as NATS
from notifier.webhooks import SecretBox
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException

from scheduler.application import Courses
from scheduler.directory import Directory, Principal
from scheduler.http.problems import ProblemError
from scheduler.idempotency import IdempotencyKeys
from scheduler.readmodels.course_index import CourseIndexView

T = TypeVar("T")


@dataclass
class Services:
    courses: Courses
    index: CourseIndexView
    course_index_lock: str  # held by the process that keeps the index (this one or another)
    directory: Directory
    idempotency: IdempotencyKeys
    clock: Callable[[], datetime]
    simulated_time: bool = False
    bus: NATS | None = None
    webhook_secrets: SecretBox | None = None  # encrypts webhook signing secrets (the cipher key's)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run a synchronous eventsourcing call off the event loop."""
        return await anyio.to_thread.run_sync(fn)


def provide_services(state: State) -> Services:
    return state.services


SIMULATED_TIME_HEADER = "x-kact-now"


def provide_now(request: Request[Any, Any, Any], state: State) -> datetime:
    """The time a command happens: the server clock, or X-Kact-Now where simulated time is enabled."""
    services: Services = state.services
    header = request.headers.get(SIMULATED_TIME_HEADER)
    if header is None:
        return services.clock()
    if not services.simulated_time:
        raise ProblemError(422, "invalid-input", "The request is not valid",
                           "X-Kact-Now is only honoured when KACT_SIMULATED_TIME is enabled")
    try:
        now = datetime.fromisoformat(header)
    except ValueError:
        now = None
    if now is None or now.tzinfo is None:
        raise ProblemError(422, "invalid-input", "The request is not valid", "X-Kact-Now must be an RFC 3339 instant")
    return now.astimezone(timezone.utc)


async def provide_principal(request: Request[Any, Any, Any], state: State) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise NotAuthorizedException("send 'Authorization: Bearer <api key>'")
    principal = await state.services.directory.authenticate(key.strip())
    if principal is None:
        raise NotAuthorizedException("the API key is not valid")
    return principal
