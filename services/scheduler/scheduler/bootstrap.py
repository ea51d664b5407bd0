"""The scheduler's composition root: connects the event store, projections, directory and HTTP app."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone

import anyio.to_thread
import asyncpg
import nats
import psycopg
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import ProjectionRunner
from kact_contracts.bus import StreamSettings
from kact_contracts.locks import migration_lock
from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from notifier import schema as notifier_schema
from notifier.webhooks import SecretBox

from scheduler import directory, idempotency
from scheduler.application import Courses, event_store_env
from scheduler.deadlines import deadline_singleton
from scheduler.directory import Directory
from scheduler.http.courses import CourseController, DoseApprovalController
from scheduler.http.dead_letters import list_dead_letters, redrive_dead_letter
from scheduler.http.deps import Services, provide_now, provide_principal, provide_services
from scheduler.http.directory import ClinicController, PartnershipController
from scheduler.http.feed import read_feed
from scheduler.http.health import live, ready
from scheduler.http.idempotency import idempotency_middleware
from scheduler.http.notifications import ROUTES as NOTIFICATION_ROUTES
from scheduler.http.problems import EXCEPTION_HANDLERS
from scheduler.idempotency import IdempotencyKeys
from scheduler.readmodels.course_index import CourseIndex, CourseIndexView, course_index_view
from scheduler.relay import Relay, relay_tracking
from scheduler.singleton import Singleton
from scheduler.settings import Settings

log = logging.getLogger("kact")
API_VERSION = "1.0.0"
GC_THRESHOLDS = (50_000, 50, 1000)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def projection_env(env: dict[str, str]) -> dict[str, str]:
    """The course index reads and writes little: a small pool keeps connections for the commands. Its tables
    exist once `migrate` ran; creating them again while another process migrates would collide."""
    return {**env, "POSTGRES_POOL_SIZE": "2", "POSTGRES_MAX_OVERFLOW": "2", "CREATE_TABLE": "n"}


def migrate(settings: Settings, env: dict[str, str]) -> tuple[Courses, CourseIndexView]:
    """Create the schema and every table, one process at a time (concurrent CREATE ... IF NOT EXISTS collide)."""
    assert settings.database_url
    schema = psycopg.sql.Identifier(settings.db_schema)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (migration_lock(settings.db_schema),))
        conn.execute(psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        conn.execute(psycopg.sql.SQL("SET search_path TO {}").format(schema))
        conn.execute(directory.SCHEMA_SQL + idempotency.SCHEMA_SQL + notifier_schema.all_sql())
        courses, view = Courses(env=env), course_index_view({**projection_env(env), "CREATE_TABLE": "y"})
        relay_tracking({**projection_env(env), "CREATE_TABLE": "y"}).datastore.close()
    return courses, view


def relay_singleton(settings: Settings, env: dict[str, str], courses: Courses) -> Singleton:
    """The relay to JetStream, run by one scheduler process at a time."""
    assert settings.nats_url and settings.database_url
    stream = StreamSettings(name=settings.nats_stream, prefix=settings.nats_prefix)

    def start() -> tuple[Relay, PostgresTrackingRecorder]:
        tracking = relay_tracking(projection_env(env))
        return Relay(courses, tracking, settings.nats_url or "", stream).start(), tracking

    def stop(job: tuple[Relay, PostgresTrackingRecorder]) -> None:
        job[0].stop()
        job[1].datastore.close()

    return Singleton(settings.database_url, f"{settings.db_schema}.relay", start=start, stop=stop,
                     healthy=lambda job: job[0].alive)


async def open_pool(settings: Settings) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=settings.db_pool_size,
        server_settings={"search_path": settings.db_schema, "application_name": "kact-scheduler"},
    )
    return pool


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
    )


def create_app(settings: Settings, clock: Callable[[], datetime] = utcnow) -> Litestar:
    assert settings.operator_token, "resolve the operator token first"

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        env = event_store_env(settings)

        def start_event_store() -> tuple[Courses, CourseIndexView, Singleton, Singleton | None]:
            courses, view = migrate(settings, env)
            # Every process serves the index; exactly one (the advisory lock holder) keeps it up to date.
            projection = Singleton(
                settings.database_url or "",
                f"{settings.db_schema}.course_index",
                start=lambda: ProjectionRunner(
                    application_class=Courses, projection_class=CourseIndex, view_class=CourseIndexView,
                    env=projection_env(env),
                ),
                stop=lambda runner: runner.stop(),
                healthy=lambda runner: not runner.is_interrupted.is_set(),
            ).start()
            relay = relay_singleton(settings, env, courses).start() if settings.nats_url else None
            return courses, view, projection, relay

        # The library connects and creates its tables synchronously: keep that off the event loop too.
        courses, view, projection, relay = await anyio.to_thread.run_sync(start_event_store)
        watcher = deadline_singleton(
            settings.database_url or "", f"{settings.db_schema}.deadlines", courses, projection_env(env), clock,
            settings.deadline_check_seconds,
        ).start() if settings.deadline_check_seconds > 0 else None  # integration windows pass by `clock`
        pool = await open_pool(settings)
        # This connection backs readiness; the relay keeps a connection of its own.
        bus = await nats.connect(settings.nats_url, name="kact-scheduler", max_reconnect_attempts=-1) \
            if settings.nats_url else None
        # The aggregate cache keeps many objects alive; with the default thresholds a full collection ran
        # every couple of seconds and paused every request for up to 106 ms (bench, gc.callbacks).
        gc.set_threshold(*GC_THRESHOLDS)
        app.state.services = Services(
            courses=courses,
            index=view,
            projection=projection,
            directory=Directory(pool, settings.operator_token or ""),
            idempotency=IdempotencyKeys(pool, settings.cipher_key or ""),
            clock=clock,
            simulated_time=settings.simulated_time,
            bus=bus,
            webhook_secrets=SecretBox(settings.cipher_key or ""),
        )
        try:
            yield
        finally:
            if watcher is not None:
                await anyio.to_thread.run_sync(watcher.stop)
            if relay is not None:
                await anyio.to_thread.run_sync(relay.stop)
            await anyio.to_thread.run_sync(projection.stop)
            await anyio.to_thread.run_sync(courses.close)
            await pool.close()
            if bus is not None:
                await bus.drain()

    return Litestar(
        route_handlers=[
            ClinicController, PartnershipController, CourseController, DoseApprovalController, live, ready,
            read_feed, list_dead_letters, redrive_dead_letter, *NOTIFICATION_ROUTES,
        ],
        dependencies={"services": Provide(provide_services, sync_to_thread=False), "principal": Provide(provide_principal),
            "now": Provide(provide_now, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        middleware=[idempotency_middleware],
        lifespan=[lifespan],
        openapi_config=openapi_config(),
        debug=False,
    )
