"""The scheduler's composition root: connects the event store, projections, directory and HTTP app."""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone

import anyio.to_thread
import asyncpg
import nats
from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute
from kact_contracts import logs, tracing
from notifier.admin import NotifierAdmin

from scheduler.api_keys import ApiKeys, hash_key
from scheduler.application.calendars import partner_calendar_key
from scheduler.application.courses import Courses, event_store_env
from scheduler.http.audit import ROUTES as AUDIT_ROUTES
from scheduler.http.availability import ROUTES as AVAILABILITY_ROUTES
from scheduler.http.planning import ROUTES as PLANNING_ROUTES
from scheduler.http.calendar_feeds import ROUTES as CALENDAR_FEED_ROUTES
from scheduler.http.calendars import ROUTES as CALENDAR_ROUTES
from scheduler.directory import Directory
from scheduler.http.courses import CourseController, DoseApprovalController
from scheduler.http.dead_letters import list_dead_letters, list_relay_dead_letters, redrive_dead_letter
from scheduler.chain.audit import ChainAudit
from scheduler.http.deps import (
    DeliveryLimits,
    Services,
    provide_now,
    provide_principal,
    provide_services,
)
from scheduler.http.export import ROUTES as EXPORT_ROUTES
from scheduler.http.directory import ClinicController, ClinicianController, PartnershipController
from scheduler.http.hosting import HostedSessionController, SharedSessionController
from scheduler.http.feed import read_feed
from scheduler.http import docs_ui, pages
from scheduler.http.sign_in_links import create_sign_in_link
from scheduler.http.body_guard import body_guard
from scheduler.http.contract import complete as complete_contract
from scheduler.http.health import delivery, live, ready
from scheduler.http.idempotency import idempotency_middleware
from scheduler.http.metrics import metrics_middleware, metrics_route
from scheduler.http.observe import observe
from scheduler.http.keys import ROUTES as KEY_ROUTES
from scheduler.http.notifications import ROUTES as NOTIFICATION_ROUTES
from scheduler.http.problem_pages import get_problem_type, get_rules, list_problem_types
from scheduler.http.ratelimit import RateLimits, rate_limiting
from scheduler.http.problems import EXCEPTION_HANDLERS
from scheduler.idempotency import IdempotencyKeys
from scheduler.jobs import BackgroundJobs, course_index_lock, relay_lock
from scheduler.page_sessions import PageSessions
from scheduler.readmodels.course_index import CourseIndexView
from scheduler.settings import Settings
from scheduler.storage import open_store

log = logging.getLogger("kact")
API_VERSION = "1.0.0"
GC_THRESHOLDS = (50_000, 50, 1000)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def server_settings(settings: Settings, application_name: str) -> dict[str, str]:
    return {"search_path": settings.db_schema, "application_name": application_name}


async def open_pool(settings: Settings) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=settings.db_pool_size,
        # While PostgreSQL is unreachable or stuck, a request is answered (503) within about two seconds.
        timeout=1.0,  # connecting
        command_timeout=1.5,  # each statement, client side
        server_settings={**server_settings(settings, "kact-scheduler"), "statement_timeout": "1500",
                         "idle_in_transaction_session_timeout": "5000"},
    )
    return pool


def open_api_keys(settings: Settings, pool: asyncpg.Pool, clock: Callable[[], datetime]) -> ApiKeys:
    """The keys, listening for revocations on a connection of their own (outside the pool)."""
    connect = functools.partial(asyncpg.connect, settings.database_url,
                                server_settings=server_settings(settings, "kact-scheduler-keys"))
    return ApiKeys(pool, settings.operator_token or "", connect=connect, clock=clock)


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="kact scheduler",
        version=API_VERSION,
        description="Scheduling backbone for ketamine-assisted couple therapy: courses, sessions, dose approvals.",
        path="/schema",
        components=Components(
            security_schemes={"apiKey": SecurityScheme(type="http", scheme="bearer", description="API key")}
        ),
        security=[{"apiKey": []}],
        use_handler_docstrings=False,
        render_plugins=[docs_ui.render_plugin()],
    )


def create_app(settings: Settings, clock: Callable[[], datetime] = utcnow) -> Litestar:
    """The API app. Logging is configured by whoever runs it (`kact up`, the ASGI factory); an app run where
    nothing configured it (an ASGI server given only this) logs in kact's format, as the settings say. Traces:
    the process's tracer provider, made here if nobody made it first (`kact_contracts.tracing`)."""
    assert settings.operator_token, "resolve the operator token first"
    if not logs.configured():
        logs.configure("api", settings.log_level, settings.log_format)
    tracing.configure("api")  # once per process; exporting as the OTEL_* variables say

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        env = event_store_env(settings)

        def start_event_store() -> tuple[Courses, CourseIndexView, BackgroundJobs | None]:
            courses, view = open_store(settings, env)
            jobs = BackgroundJobs.start(settings, env, courses, clock) if settings.background_jobs else None
            return courses, view, jobs

        # The library connects and creates its tables synchronously: keep that off the event loop too.
        courses, view, jobs = await anyio.to_thread.run_sync(start_event_store)
        pool = await open_pool(settings)
        keys = open_api_keys(settings, pool, clock)
        await keys.start()
        # This connection backs readiness; the relay keeps a connection of its own.
        bus = await nats.connect(settings.nats_url, name="kact-scheduler", max_reconnect_attempts=-1) \
            if settings.nats_url else None
        # The aggregate cache keeps many objects alive; with the default thresholds a full collection ran
        # every couple of seconds and paused every request for up to 106 ms (bench, gc.callbacks).
        gc.set_threshold(*GC_THRESHOLDS)
        app.state.services = Services(
            courses=courses,
            index=view,
            course_index_lock=course_index_lock(settings),
            directory=Directory(pool, keys),
            notifier=NotifierAdmin(pool, settings.cipher_key or ""),
            idempotency=IdempotencyKeys(pool, settings.cipher_key or "", ttl_seconds=settings.idempotency_ttl_seconds),
            clock=clock,
            partner_key=partner_calendar_key(settings.cipher_key or ""),
            simulated_time=settings.simulated_time,
            bus=bus,
            delivery=DeliveryLimits(settings.nats_stream, relay_lock(settings), settings.relay_max_lag,
                                    settings.notifier_max_silence) if settings.nats_url else None,
            webhook_allow_private=settings.webhook_allow_private,
            page_sessions=PageSessions(pool, hash_key(settings.operator_token or "")),
            chain_audit=ChainAudit.from_settings(settings) if settings.audit_key else None,
        )
        try:
            yield
        finally:
            if jobs is not None:
                await anyio.to_thread.run_sync(jobs.stop)
            await anyio.to_thread.run_sync(courses.close)
            await anyio.to_thread.run_sync(view.datastore.close)
            app.state.services.executor.shutdown(wait=False)
            await keys.close()
            await pool.close()
            if bus is not None:
                await bus.drain()

    app = Litestar(
        route_handlers=[
            ClinicController, ClinicianController, PartnershipController, CourseController, DoseApprovalController,
            HostedSessionController, SharedSessionController, live, ready, delivery,
            read_feed, list_dead_letters, redrive_dead_letter, list_relay_dead_letters, *NOTIFICATION_ROUTES,
            *KEY_ROUTES, *CALENDAR_FEED_ROUTES, *CALENDAR_ROUTES, *AVAILABILITY_ROUTES, *PLANNING_ROUTES, *EXPORT_ROUTES,
            list_problem_types, get_problem_type, get_rules, docs_ui.docs_file,
            metrics_route(settings.operator_token, settings.metrics_public), *AUDIT_ROUTES,
            create_sign_in_link, pages.router(),
        ],
        dependencies={"services": Provide(provide_services, sync_to_thread=False), "principal": Provide(provide_principal),
            "now": Provide(provide_now, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        # Limits first: a refused request costs no body read, no idempotency claim, no handler. Then the body guard:
        # nothing reads a body before it is bounded and checked. Metrics outermost: every answer is counted and timed.
        middleware=[metrics_middleware, rate_limiting(RateLimits.configure(
            settings.rate_limit, settings.rate_burst, settings.operator_rate_limit, settings.operator_rate_burst,
            settings.workers)), body_guard(settings.max_body_bytes), idempotency_middleware],
        request_max_body_size=settings.max_body_bytes,
        lifespan=[lifespan],
        openapi_config=openapi_config(),
        debug=False,
        logging_config=None,  # Litestar's default would replace the root logger's handlers: kact_contracts.logs
    )
    complete_contract(app.openapi_schema, rate_limited=settings.rate_limit > 0)
    observe(app)  # outermost: request ids and the log line of every error answer, the router's own included
    _allow_every_method(app)
    return app


def _allow_every_method(app: Litestar) -> None:
    """Litestar 2 builds a path's OPTIONS answer from the route its first handler made, so `Allow` lacks the
    methods of the path's other handlers (litestar#4169, fixed in Litestar 3): point each at its whole route."""
    for route in app.routes:
        if isinstance(route, HTTPRoute) and "OPTIONS" in route.route_handler_map:
            handler = route.route_handler_map["OPTIONS"][0]
            for cell in getattr(handler.fn, "__closure__", None) or ():
                if isinstance(cell.cell_contents, HTTPRoute) and cell.cell_contents is not route:
                    cell.cell_contents.methods = route.methods
