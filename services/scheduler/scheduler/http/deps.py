"""What handlers depend on: the composed services and the authenticated principal."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

from litestar import Request
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException
from nats.aio.client import Client as NATS
from notifier.admin import NotifierAdmin

from scheduler.access_log import AccessLog
from scheduler.application.audit import AccessLogReads
from scheduler.application.course_audit import Audit
from scheduler.chain.audit import ChainAudit
from scheduler.application.availability import Availability
from scheduler.application.calendar_feeds import CalendarFeeds
from scheduler.application.calendars import CalendarIds
from scheduler.application.courses import Courses
from scheduler.application.desk import PrescriberDesk
from scheduler.application.directory import Clinics
from scheduler.application.export import Exports
from scheduler.application.handlers import Scheduling
from scheduler.application.hosting import Hosting
from scheduler.application.keys import Keys
from scheduler.application.notifications import Notifications
from scheduler.application.reads import Reads
from scheduler.application.runner import to_the_end
from scheduler.calendar_feeds import CalendarFeedStore
from scheduler.directory import Directory, Principal
from scheduler.http.observe import AUTHENTICATED
from scheduler.http.problems import ProblemError
from scheduler.http.schemas import FIRST_YEAR, LAST_YEAR
from scheduler.idempotency import IdempotencyKeys
from scheduler.page_sessions import PageSessions
from scheduler.readmodels.course_index import INDEXED_TOPICS, CourseIndexView
from scheduler.readmodels.freshness import caught_up
from scheduler.readmodels.delivery import relay_dead_letters

T = TypeVar("T")


@dataclass(frozen=True)
class DeliveryLimits:
    """What /health/delivery checks: the stream the relay feeds and the notifier consumes, and how long each may
    stall before delivery counts as stuck."""

    stream: str
    relay_lock: str  # held by the process that relays (this one or another)
    relay_max_lag: float
    notifier_max_silence: float


@dataclass
class Services:
    courses: Courses
    index: CourseIndexView
    course_index_lock: str  # held by the process that keeps the index (this one or another)
    directory: Directory
    notifier: NotifierAdmin  # the notifier's tables: feeds, webhooks, deliveries, dead letters, heartbeat
    idempotency: IdempotencyKeys
    clock: Callable[[], datetime]
    partner_key: bytes  # keys the ids of partners' calendars (see CalendarIds)
    simulated_time: bool = False
    bus: NATS | None = None
    delivery: DeliveryLimits | None = None  # None: no NATS, nothing is relayed
    webhook_allow_private: bool = False  # KACT_WEBHOOK_ALLOW_PRIVATE: loopback or private webhook URLs
    page_sessions: PageSessions | None = None  # the prescriber and operator pages' sign-ins (None: pages closed)
    # Checks the hash chain of a course and gives its links (None: this process has no audit key to check heads with).
    chain_audit: ChainAudit | None = None
    # The threads the eventsourcing calls run in (asyncio's executor hand-off costs far less than anyio's).
    # Commands wait for the group commit without a thread, so a few threads keep up; more would only take
    # turns at the interpreter lock, and the event loop with them.
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="eventsourcing")
    )

    scheduling: Scheduling = field(init=False)
    hosting: Hosting = field(init=False)
    clinics: Clinics = field(init=False)
    keys: Keys = field(init=False)
    notifications: Notifications = field(init=False)
    calendar_feeds: CalendarFeeds = field(init=False)
    availability: Availability = field(init=False)
    reads: Reads = field(init=False)
    exports: Exports = field(init=False)
    desk: PrescriberDesk = field(init=False)
    course_audit: Audit = field(init=False)  # the operator's audit page of a course
    audit: AccessLogReads = field(init=False)  # the read-access log's queries

    def __post_init__(self) -> None:
        calendars = CalendarIds(self.partner_key)
        self.scheduling = Scheduling(self.courses, self.directory, self.index, calendars, self.run)
        self.calendar_feeds = CalendarFeeds(self.courses, self.directory, CalendarFeedStore(self.directory.pool),
                                            calendars, self.run)
        self.availability = Availability(self.courses, self.directory, calendars, self.run)
        self.reads = Reads(self.index, self.directory, self.index_caught_up, self.run)
        self.desk = PrescriberDesk(self.scheduling, self.courses, self.directory, self.run, self.index_caught_up)
        self.course_audit = Audit(self.scheduling, self.directory.pool, self.run,
                                  self.chain_audit.status_of if self.chain_audit is not None else None)
        self.hosting = Hosting(self.courses, self.index, self.directory, self.run)
        self.audit = AccessLogReads(AccessLog(self.directory.pool))
        self.clinics = Clinics(self.directory)
        self.keys = Keys(self.directory, self.directory.keys)
        self.exports = Exports(self.courses, self.directory.log_access, self.run, self.clock,
                               **({"links": self.chain_audit.links_of} if self.chain_audit is not None else {}))
        self.notifications = Notifications(
            self.directory, self.notifier, self.webhook_allow_private,
            relay_dead_letters=lambda limit, offset: relay_dead_letters(self.directory.pool, limit, offset))

    async def index_caught_up(self) -> None:
        """Wait (bounded) until the course index holds every event stored before now: read your writes."""
        await caught_up(self.directory.pool, self.courses.recorder.events_table_name, self.courses.name,
                        INDEXED_TOPICS)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run a synchronous eventsourcing call off the event loop, in the request's context (a command decided
        again in a thread names what it creates as it did on the loop: `ids.new_id`)."""
        in_context = functools.partial(contextvars.copy_context().run, fn)
        return await to_the_end(asyncio.get_running_loop().run_in_executor(self.executor, in_context))


def provide_services(state: State) -> Services:
    return state.services


SIMULATED_TIME_HEADER = "x-kact-now"
_SIMULATED_TIME_RAW = SIMULATED_TIME_HEADER.encode()


def provide_now(request: Request[Any, Any, Any], services: Services, principal: Principal) -> datetime:
    """The time a command happens: the server clock, or X-Kact-Now where simulated time is enabled.

    It depends on the principal (a request is authenticated before anything else about it is checked), which
    depends on the services: one dependency at a time, where independent ones cost Litestar a task group."""
    return request_now(request, services)


def request_now(request: Request[Any, Any, Any], services: Services) -> datetime:
    """`provide_now` for a route without a key (a calendar feed): X-Kact-Now under simulated time."""
    # The raw ASGI headers: building the request's Headers mapping for one look-up cost more than the rest.
    header = next((v.decode("latin-1") for k, v in request.scope["headers"] if k == _SIMULATED_TIME_RAW), None)
    if header is None:
        return services.clock()
    if not services.simulated_time:
        raise ProblemError(422, "invalid-input", "The request is not valid",
                           "X-Kact-Now is only honoured when KACT_SIMULATED_TIME is enabled")
    try:
        now = datetime.fromisoformat(header)
    except ValueError:
        now = None
    # In the years every other instant lies in: near year 1 or 9999 its offset, or the deadlines counted from it,
    # overflow.
    if now is None or now.tzinfo is None or not FIRST_YEAR <= now.year <= LAST_YEAR:
        raise ProblemError(422, "invalid-input", "The request is not valid",
                           f"X-Kact-Now must be an RFC 3339 instant in the years {FIRST_YEAR} to {LAST_YEAR}")
    return now.astimezone(timezone.utc)




def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The API key of `Authorization: Bearer <key>` among raw ASGI headers, or None."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            key = key.strip()
            return key if scheme.lower() == "bearer" and key else None
    return None


async def provide_principal(request: Request[Any, Any, Any], services: Services) -> Principal:
    authenticated: Principal | None = request.scope.get(AUTHENTICATED)  # type: ignore[assignment]
    if authenticated is not None:
        return authenticated
    key = bearer_token(request.scope["headers"])
    if key is None:
        raise NotAuthorizedException("send 'Authorization: Bearer <api key>'")
    principal = await services.directory.authenticate(key)
    if principal is None:
        raise NotAuthorizedException("the API key is not valid")
    request.scope[AUTHENTICATED] = principal  # type: ignore[literal-required]  # for the log lines
    return principal
