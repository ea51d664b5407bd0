"""The scheduler's background jobs: the course index projection, the relay to JetStream, the deadline
watcher and the event chain (tamper evidence). Each runs in one process at a time (a `Singleton`: whoever holds
its advisory lock), so any number of scheduler processes may run them and one takes over when another dies.

`kact up` runs them in a process of their own (`python -m scheduler.jobs`) so that the API processes spend
their interpreter on requests; an API process started alone (tests, `create_app` with the default
`KACT_BACKGROUND_JOBS=1`) runs them itself."""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType

import psycopg
from kact_contracts import logs, tracing
from kact_contracts.bus import StreamSettings
from kact_contracts.environment import SettingError
from kact_contracts.lifecycle import follow_supervisor
from kact_contracts.metrics import serve_metrics
from prometheus_client import REGISTRY

from scheduler.application.courses import Courses, event_store_env
from scheduler.chain.keeper import chain_singleton
from scheduler.deadlines import deadline_singleton
from scheduler.metrics import RelayLagCollector
from scheduler.readmodels.delivery import relay_lag_sql
from scheduler.readmodels.course_index import CourseIndexView, course_index_view
from scheduler.readmodels.indexer import Indexer
from scheduler.relay import DEAD_LETTERS_TABLE, Relay, RelayRecorder, relay_tracking
from scheduler.settings import Settings
from scheduler.singleton import Singleton
from scheduler.storage import open_store, projection_env

log = logging.getLogger("kact.jobs")


def course_index_lock(settings: Settings) -> str:
    return f"{settings.db_schema}.course_index"


def relay_lock(settings: Settings) -> str:
    return f"{settings.db_schema}.relay"


def indexer_singleton(settings: Settings, env: dict[str, str], courses: Courses) -> Singleton:
    """The course index, kept up to date by one scheduler process at a time; every process reads it."""

    def start() -> tuple[Indexer, CourseIndexView]:
        view = course_index_view(projection_env(env))
        return Indexer(courses, view).start(), view

    def stop(job: tuple[Indexer, CourseIndexView]) -> None:
        job[0].stop()
        job[1].datastore.close()

    return Singleton(settings.database_url or "", course_index_lock(settings), start=start, stop=stop,
                     healthy=lambda job: job[0].alive)


def relay_singleton(settings: Settings, env: dict[str, str], courses: Courses) -> Singleton:
    """The relay to JetStream, run by one scheduler process at a time."""
    assert settings.nats_url and settings.database_url
    stream = StreamSettings(name=settings.nats_stream, prefix=settings.nats_prefix)

    def start() -> tuple[Relay, RelayRecorder]:
        tracking = relay_tracking(projection_env(env))
        return Relay(courses, tracking, settings.nats_url or "", stream).start(), tracking

    def stop(job: tuple[Relay, RelayRecorder]) -> None:
        job[0].stop()
        job[1].datastore.close()

    return Singleton(settings.database_url, relay_lock(settings), start=start, stop=stop,
                     healthy=lambda job: job[0].alive)


@dataclass
class BackgroundJobs:
    indexer: Singleton
    relay: Singleton | None  # without NATS, nothing to relay to
    watcher: Singleton | None  # KACT_DEADLINE_CHECK_SECONDS=0 turns it off
    chain: Singleton | None = None  # the event chain: every stored event hashed into it, its head signed

    @classmethod
    def start(
        cls, settings: Settings, env: dict[str, str], courses: Courses, clock: Callable[[], datetime]
    ) -> BackgroundJobs:
        """Contend for every job; call once the tables exist (`storage.migrate`). Integration windows pass by `clock`."""
        indexer = indexer_singleton(settings, env, courses).start()
        relay = relay_singleton(settings, env, courses).start() if settings.nats_url else None
        watcher = deadline_singleton(
            settings.database_url or "", f"{settings.db_schema}.deadlines", courses, projection_env(env), clock,
            settings.deadline_check_seconds,
        ).start() if settings.deadline_check_seconds > 0 else None
        chain = chain_singleton(settings, courses.recorder.events_table_name).start()
        return cls(indexer, relay, watcher, chain)

    def stop(self) -> None:
        # The watcher reads what the indexer writes; the chain, stopping, signs its head last.
        for job in (self.watcher, self.relay, self.indexer, self.chain):
            if job is not None:
                job.stop()


def read_relay_lag(settings: Settings, courses: Courses) -> tuple[int, int, float | None, int]:
    """The relay's position, the store's head, the oldest waiting event's age and the relay's dead letters, read
    as `/health/delivery` reads them (on a connection of its own, once per scrape)."""
    with psycopg.connect(settings.database_url or "", connect_timeout=2, autocommit=True,
                         options=f"-c search_path={settings.db_schema} -c statement_timeout=1500",
                         application_name="kact-jobs-metrics") as conn:
        row = conn.execute(relay_lag_sql(courses.recorder.events_table_name, "%s"), (courses.name,)).fetchone()
        dead = conn.execute(f"SELECT count(*) FROM {DEAD_LETTERS_TABLE}").fetchone()
    assert row is not None and dead is not None
    return row[0], row[1], row[2], dead[0]


def main() -> None:
    """`python -m scheduler.jobs`: run the background jobs until SIGTERM or SIGINT (settings resolved, as
    `kact up` hands them over in the environment)."""
    try:
        settings = Settings.from_env()
    except SettingError as error:
        for line in str(error).splitlines():  # every bad setting, a line each
            print(f"scheduler.jobs: {line}", file=sys.stderr)
        raise SystemExit(2) from None
    logs.configure("jobs", settings.log_level, settings.log_format)
    tracing.configure("jobs")
    stopping = threading.Event()

    def ask_to_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, ask_to_stop)
    follow_supervisor()
    env = event_store_env(settings)
    courses, view = open_store(settings, env)
    view.datastore.close()
    jobs = BackgroundJobs.start(settings, env, courses, lambda: datetime.now(UTC))
    log.info("background jobs started (schema %s)", settings.db_schema)
    stop_metrics = None
    if settings.jobs_metrics_port is not None:
        if settings.nats_url:
            REGISTRY.register(RelayLagCollector(functools.partial(read_relay_lag, settings, courses)))
        try:
            port, stop_metrics = serve_metrics(settings.jobs_metrics_port)
            log.info("metrics on http://127.0.0.1:%d/metrics", port)
        except OSError as exc:  # the port taken: the jobs matter more than their metrics
            log.error("metrics not served on 127.0.0.1:%d: %s", settings.jobs_metrics_port, exc)
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        if stop_metrics is not None:
            stop_metrics()
        jobs.stop()
        courses.close()
        log.info("background jobs stopped")


if __name__ == "__main__":
    main()
