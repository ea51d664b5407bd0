"""Rebuilding the course index from the event store, while the system runs.

The index is written again from the first event into fresh tables in a schema of their own (`<schema>_rebuild`),
then, in one transaction that locks the live tables (the live indexer waits, or fails and is started again by its
singleton), caught up to the head and moved into place: readers see the old index or the new one, never a mix.
What only the deadline watcher writes (an integration deadline found kept) is carried over from the old rows."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from eventsourcing.persistence import Tracking
from psycopg import sql

from scheduler import db_roles
from scheduler.application.courses import Courses
from scheduler.readmodels.course_index import INDEXED_TOPICS, TABLES, CourseIndexView, changes, course_index_view
from scheduler.readmodels.freshness import TRACKING_TABLE, IndexLag, lag_sql

BATCH = 500
SWAP_ATTEMPTS = 5
Progress = Callable[[int, int, int], None]  # (position, head, events applied so far)


@dataclass(frozen=True)
class Rebuilt:
    events: int  # indexed events applied
    position: int  # the last event the new index holds
    seconds: float
    rows: dict[str, int]  # table -> rows in the new index


def shadow_schema(schema: str) -> str:
    return f"{schema}_rebuild"[:63]


def apply_until(courses: Courses, view: CourseIndexView, position: int, head: int, progress: Progress,
                applied: int = 0) -> tuple[int, int]:
    """Write into `view` every indexed event after `position` up to `head`, a batch a transaction with its
    tracking position; returns (the position reached: `head`, events applied so far)."""
    while position < head:
        batch = courses.recorder.select_notifications(position, BATCH, stop=head, topics=INDEXED_TOPICS,
                                                      inclusive_of_start=False)
        if not batch:
            break
        events = [courses.mapper.to_domain_event(n) for n in batch]
        view.apply([c for e in events for c in changes(e)], Tracking(courses.name, batch[-1].id))
        position, applied = batch[-1].id, applied + len(batch)
        progress(position, head, applied)
    progress(head, head, applied)
    return max(position, head), applied


def rebuild(database_url: str, schema: str, env: dict[str, str], courses: Courses, progress: Progress) -> Rebuilt:
    """Rebuild the index of `schema` from the event store of `courses`, reporting progress as it goes."""
    started = time.monotonic()
    shadow = shadow_schema(schema)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}").format(sql.Identifier(shadow)))
    view = course_index_view({**env, "POSTGRES_SCHEMA": shadow, "CREATE_TABLE": "y",
                              "POSTGRES_POOL_SIZE": "2", "POSTGRES_MAX_OVERFLOW": "2"})
    try:
        head = courses.recorder.max_notification_id() or 0
        position, applied = apply_until(courses, view, 0, head, progress)
        for attempt in range(SWAP_ATTEMPTS):
            try:
                position, applied = _swap(database_url, schema, shadow, courses, view, position, applied, progress)
                break
            except (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable):
                if attempt == SWAP_ATTEMPTS - 1:
                    raise
                time.sleep(0.2)
    finally:
        view.datastore.close()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {0} CASCADE").format(sql.Identifier(shadow)))
        rows = {t: conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(t))).fetchone()[0] for t in TABLES}  # type: ignore[index]
    return Rebuilt(events=applied, position=position, seconds=time.monotonic() - started, rows=rows)


def _swap(database_url: str, schema: str, shadow: str, courses: Courses, view: CourseIndexView, position: int,
          applied: int, progress: Progress) -> tuple[int, int]:
    live, new = sql.Identifier(schema), sql.Identifier(shadow)
    tables = [*TABLES, TRACKING_TABLE]
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '10s'")
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
            sql.SQL(", ").join(sql.SQL("{}.{}").format(live, sql.Identifier(t)) for t in tables)))
        # Nobody writes the live index now: what was stored meanwhile goes into the new one, then it takes over.
        head = courses.recorder.max_notification_id() or 0
        position, applied = apply_until(courses, view, position, head, progress, applied)
        conn.execute(sql.SQL(
            "UPDATE {new}.integration_deadlines n SET status = o.status, opened_at = o.opened_at "
            "FROM {live}.integration_deadlines o WHERE n.course_id = o.course_id AND n.session_id = o.session_id "
            "AND n.status = 'open' AND o.status = 'checked'").format(new=new, live=live))
        grants = db_roles.table_grants(conn, schema, tables)
        for table in tables:
            conn.execute(sql.SQL("DROP TABLE {}.{}").format(live, sql.Identifier(table)))
            conn.execute(sql.SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(new, sql.Identifier(table), live))
        db_roles.copy_grants(conn, schema, grants)  # the services' role writes the new tables as it wrote the old
    return position, applied


def index_lag(database_url: str, schema: str, courses: Courses) -> IndexLag:
    """How far the index of `schema` is behind the event store."""
    with psycopg.connect(database_url, options=f"-c search_path={schema}") as conn:
        row = conn.execute(lag_sql(courses.recorder.events_table_name, ("%s", "%s")),
                           (courses.name, list(INDEXED_TOPICS))).fetchone()
    assert row is not None
    return IndexLag(position=row[0], head=row[1], waiting=row[2])
