"""The scheduler's tables in PostgreSQL: created once, by whichever process starts first."""

from __future__ import annotations

import psycopg
from kact_contracts.locks import migration_lock
from notifier import schema as notifier_schema

from scheduler import calendar_feeds, directory, idempotency, page_sessions
from scheduler.application.courses import Courses
from scheduler.chain import store as chain_store
from scheduler.readmodels.course_index import CourseIndexView, course_index_view
from scheduler.readmodels.freshness import TRACKING_TABLE
from scheduler.relay import relay_tracking
from scheduler.settings import Settings


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
        conn.execute(directory.SCHEMA_SQL + calendar_feeds.SCHEMA_SQL + idempotency.SCHEMA_SQL
                     + page_sessions.SCHEMA_SQL + notifier_schema.all_sql() + chain_store.SCHEMA_SQL)
        # An index made before it kept calendars (and phases) is written again from the first event: every change
        # is idempotent in effect, so replaying onto its rows converges on what a fresh index holds.
        outdated = conn.execute("SELECT to_regclass('course_index') IS NOT NULL "
                                "AND to_regclass('calendar_entries') IS NULL").fetchone()
        courses, view = Courses(env=env), course_index_view({**projection_env(env), "CREATE_TABLE": "y"})
        if outdated and outdated[0]:
            conn.execute(f"DELETE FROM {TRACKING_TABLE} WHERE application_name = %s", (courses.name,))
        relay_tracking({**projection_env(env), "CREATE_TABLE": "y"}).datastore.close()
    return courses, view


def open_store(settings: Settings, env: dict[str, str]) -> tuple[Courses, CourseIndexView]:
    """The event store and the course index of a service: migrated first, unless the schema's owner did that
    (KACT_DB_MIGRATE=0) and this process may run as a role that changes no table's definition."""
    if settings.db_migrate:
        return migrate(settings, env)
    return Courses(env={**env, "CREATE_TABLE": "n"}), course_index_view(projection_env(env))
