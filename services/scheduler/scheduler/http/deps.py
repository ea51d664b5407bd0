"""What handlers depend on: the composed services and the authenticated principal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

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
    # The threads the eventsourcing calls run in (asyncio's executor hand-off costs far less than anyio's):
    # as many as commands may wait at once for the group commit.
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=64, thread_name_prefix="eventsourcing")
    )

    async def run(self, fn: Callable[[], T]) -> T:
        """Run a synchronous eventsourcing call off the event loop. Cancelled, it still waits for the call to
        end (a command commits or not) before the cancellation goes on."""
        future = asyncio.get_running_loop().run_in_executor(self.executor, fn)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])
            raise


def provide_services(state: State) -> Services:
    return state.services


SIMULATED_TIME_HEADER = "x-kact-now"


def provide_now(request: Request[Any, Any, Any], services: Services, principal: Principal) -> datetime:
    """The time a command happens: the server clock, or X-Kact-Now where simulated time is enabled.

    It depends on the principal (a request is authenticated before anything else about it is checked), which
    depends on the services: one dependency at a time, where independent ones cost Litestar a task group."""
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


async def provide_principal(request: Request[Any, Any, Any], services: Services) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise NotAuthorizedException("send 'Authorization: Bearer <api key>'")
    principal = await services.directory.authenticate(key.strip())
    if principal is None:
        raise NotAuthorizedException("the API key is not valid")
    return principal
