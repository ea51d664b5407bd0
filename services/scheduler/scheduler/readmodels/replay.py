"""Replaying the event store into every read model, while the system runs (`kact replay`; `kact projections
rebuild` is the same).

What is derived from the course events is written again from the first event into fresh tables in a schema of
their own (`<schema>_replay`): the course index (`course_index.TABLES`: the course list, calendars, approval queue,
deadlines, hosted sessions, open holds) and the notifier's course facts (`notifier_courses`: what the notifier
remembers of each course to decide who is told what, folded with its own `flows.remember` from the public events
the relay makes of the course events). The events are read a page of the notification log at a time (course
events only: a calendar's events are derived from the same commands) and each page is decoded once for both.

The new tables are then compared with the live ones, row by row (`Difference`), and, unless only checking, moved
into place in one transaction that locks the live tables: the live indexer and notifier wait (or fail and are
started again), the new index is caught up to the head, and readers see the old read models or the new ones,
never a mix. The notifier's facts of a course are those of the events its inbox says it processed (the notifier
follows the stream, and may be behind the store): a course it is behind on is folded again up to there.

What only the jobs write is carried over from the live rows: an integration deadline the watcher found kept.
Times the database stamps (when a deadline or hold was indexed) are not compared."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import Tracking
from notifier import flows
from notifier.store import facts_to_json
from psycopg import sql

from scheduler import db_roles
from scheduler.application.courses import Courses
from scheduler.domain.course import Course
from scheduler.event_store import STATEMENT_TIMEOUT
from scheduler.publishing import MAPPING_ERRORS, to_public
from scheduler.readmodels.course_index import INDEXED_TOPICS, TABLES, CourseIndexView, changes, course_index_view
from scheduler.readmodels.freshness import TRACKING_TABLE, IndexLag, lag_sql
from scheduler.relay import COURSE_EVENT_TOPICS

PAGE = 5000  # notifications read per transaction (their course events decoded and written)
# Every course event (the relay's selection): the index reads some, the notifier's facts may follow from any.
COURSE_TOPICS = frozenset(COURSE_EVENT_TOPICS)
SWAP_ATTEMPTS = 5
FACTS_TABLE = "notifier_courses"
INBOX_TABLE = "notifier_inbox"
# Columns not compared: stamped by the database's clock when a row was written.
STAMPED = {"integration_deadlines": {"opened_at"}, "open_holds": {"opened_at"}}
Progress = Callable[[int, int, int], None]  # (position, head, events read so far)


@dataclass(frozen=True)
class Difference:
    table: str
    only_live: int  # rows the live table holds and the replay does not
    only_replayed: int


@dataclass(frozen=True)
class Replayed:
    events: int  # course events read and applied
    position: int  # the last event the new read models hold
    seconds: float
    rows: dict[str, int]  # table -> rows in the replayed read models
    differences: list[Difference]  # of the live tables, before the swap (empty: they agreed)
    swapped: bool

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass
class NotifierFacts:
    """The notifier's course facts, folded from course events as the relay publishes them and the notifier
    remembers them (`notifier.flows.remember`), with the version of each course's last published event."""

    facts: dict[UUID, flows.CourseFacts] = field(default_factory=dict)
    published: dict[UUID, int] = field(default_factory=dict)
    homes: dict[UUID, str] = field(default_factory=dict)

    def add(self, event: Course.Event) -> None:
        course_id = event.originator_id
        if isinstance(event, Course.Created):
            self.homes[course_id] = event.home_clinic_id
        home = self.homes.get(course_id)
        if home is None:  # the course was opened before the page this fold began at: not followed here
            return
        try:
            public = to_public(event, home)
        except MAPPING_ERRORS:  # the relay dead-letters it: the notifier never sees it
            return
        if public is None:
            return
        facts = self.facts.get(course_id)
        if facts is None:
            facts = self.facts[course_id] = flows.CourseFacts(home)
        flows.remember(public, facts)
        self.published[course_id] = event.originator_version

    def rows(self, processed: dict[UUID, int], courses: Courses) -> list[tuple[UUID, str, str]]:
        """The facts table as the notifier would hold it having processed each course up to the version its inbox
        says (`processed`); a course folded further (or less far) than that is folded again from its events."""
        rows = []
        for course_id, version in processed.items():
            facts = self.facts.get(course_id) if self.published.get(course_id) == version else None
            if facts is None:
                again = NotifierFacts()
                for event in courses.events.get(course_id, lte=version):
                    again.add(event)
                facts = again.facts.get(course_id)
            if facts is not None:
                rows.append((course_id, facts.home_clinic_id, facts_to_json(facts)))
        return rows


def shadow_schema(schema: str) -> str:
    return f"{schema}_replay"[:63]


def read_pages(courses: Courses, position: int, head: int, progress: Progress, read: int = 0,
               ) -> Iterable[tuple[list[Course.Event], int, int]]:
    """Every course event after `position` up to `head`, a page at a time, decoded: (events, the page's last
    notification id, events read so far)."""
    while position < head:
        # Every event of the page, by notification id (a primary-key range), calendars' skipped here: asked to
        # filter by topic over the whole log, PostgreSQL sorted the table (3-20 s a page at 2 million events).
        page = courses.recorder.select_notifications(position, PAGE, stop=head, inclusive_of_start=False)
        if not page:
            break
        to_event = courses.mapper.to_domain_event
        events = [to_event(n) for n in page if n.topic in COURSE_TOPICS]
        position, read = page[-1].id, read + len(events)
        yield events, position, read
        progress(position, head, read)
    progress(head, head, read)


def apply_until(courses: Courses, view: CourseIndexView, facts: NotifierFacts, position: int, head: int,
                progress: Progress, read: int = 0) -> tuple[int, int]:
    """Write into `view` and fold into `facts` every course event after `position` up to `head`; returns (the
    position reached: `head`, events read so far)."""
    indexed = frozenset(INDEXED_TOPICS)
    for events, position, read in read_pages(courses, position, head, progress, read):
        view.apply([c for e in events if type(e).TOPIC in indexed for c in changes(e)],
                   Tracking(courses.name, position))
        for event in events:
            facts.add(event)
    return max(position, head), read


def replay_env(env: dict[str, str]) -> dict[str, str]:
    """The event store's settings for a replay: a batch read, without the services' statement timeout (which
    bounds a request's wait, not a page of a long read)."""
    return {**env, STATEMENT_TIMEOUT: "0"}


def replay(database_url: str, schema: str, env: dict[str, str], courses: Courses, progress: Progress,
           swap: bool = True) -> Replayed:
    """Replay the event store of `courses` (in `schema`) into fresh read models, compare them with the live
    ones, and (`swap`) move them into place."""
    started = time.monotonic()
    shadow = shadow_schema(schema)
    live, new = sql.Identifier(schema), sql.Identifier(shadow)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}").format(new))
        conn.execute(sql.SQL("CREATE TABLE {}.{} (LIKE {}.{} INCLUDING ALL)").format(
            new, sql.Identifier(FACTS_TABLE), live, sql.Identifier(FACTS_TABLE)))
    view = course_index_view({**env, "POSTGRES_SCHEMA": shadow, "CREATE_TABLE": "y",
                              "POSTGRES_POOL_SIZE": "2", "POSTGRES_MAX_OVERFLOW": "2"})
    facts = NotifierFacts()
    try:
        head = courses.recorder.max_notification_id() or 0
        position, read = apply_until(courses, view, facts, 0, head, progress)
        with psycopg.connect(database_url) as conn, conn.transaction():
            _write_facts(conn, schema, shadow, facts, courses)
            _carry_over(conn, schema, shadow)
            differences = _compare(conn, schema, shadow)
        swapped = False
        if swap:
            for attempt in range(SWAP_ATTEMPTS):
                try:
                    position, read = _swap(database_url, schema, shadow, courses, view, facts, position, read,
                                           progress)
                    swapped = True
                    break
                except (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable):
                    if attempt == SWAP_ATTEMPTS - 1:
                        raise
                    time.sleep(0.2)
    finally:
        view.datastore.close()
    with psycopg.connect(database_url, autocommit=True) as conn:
        counted = live if swapped else new
        rows = {t: conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
            counted, sql.Identifier(t))).fetchone()[0] for t in (*TABLES, FACTS_TABLE)}  # type: ignore[index]
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {0} CASCADE").format(new))
    return Replayed(events=read, position=position, seconds=time.monotonic() - started, rows=rows,
                    differences=differences, swapped=swapped)


def _processed(conn: psycopg.Connection[Any], schema: str) -> dict[UUID, int]:
    """The last course version the notifier processed, by course (its inbox)."""
    return dict(conn.execute(sql.SQL("SELECT course_id, max(course_version) FROM {}.{} GROUP BY course_id").format(
        sql.Identifier(schema), sql.Identifier(INBOX_TABLE))).fetchall())


def _write_facts(conn: psycopg.Connection[Any], schema: str, shadow: str, facts: NotifierFacts,
                 courses: Courses) -> None:
    table = sql.SQL("{}.{}").format(sql.Identifier(shadow), sql.Identifier(FACTS_TABLE))
    rows = facts.rows(_processed(conn, schema), courses)  # before the copy, which holds the connection
    conn.execute(sql.SQL("DELETE FROM {}").format(table))
    with conn.cursor().copy(sql.SQL("COPY {} (course_id, home_clinic_id, facts) FROM STDIN").format(table)) as copy:
        for row in rows:
            copy.write_row(row)


def _carry_over(conn: psycopg.Connection[Any], schema: str, shadow: str) -> None:
    """What the jobs alone write: an open deadline the watcher found kept."""
    conn.execute(sql.SQL(
        "UPDATE {new}.integration_deadlines n SET status = o.status, opened_at = o.opened_at "
        "FROM {live}.integration_deadlines o WHERE n.course_id = o.course_id AND n.session_id = o.session_id "
        "AND n.status = 'open' AND o.status = 'checked'").format(new=sql.Identifier(shadow), live=sql.Identifier(schema)))


def _compare(conn: psycopg.Connection[Any], schema: str, shadow: str) -> list[Difference]:
    """Each table's rows the live one holds and the replayed one does not, and the other way round."""
    differences = []
    for table in (*TABLES, FACTS_TABLE):
        names = [row[0] for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "ORDER BY ordinal_position", (shadow, table)).fetchall() if row[0] not in STAMPED.get(table, ())]
        columns = sql.SQL(", ").join(map(sql.Identifier, names))
        live = sql.SQL("SELECT {} FROM {}.{}").format(columns, sql.Identifier(schema), sql.Identifier(table))
        new = sql.SQL("SELECT {} FROM {}.{}").format(columns, sql.Identifier(shadow), sql.Identifier(table))
        row = conn.execute(sql.SQL("SELECT (SELECT count(*) FROM ({0} EXCEPT ALL {1}) a), "
                                   "(SELECT count(*) FROM ({1} EXCEPT ALL {0}) b)").format(live, new)).fetchone()
        assert row is not None
        if row[0] or row[1]:
            differences.append(Difference(table, row[0], row[1]))
    return differences


def _swap(database_url: str, schema: str, shadow: str, courses: Courses, view: CourseIndexView,
          facts: NotifierFacts, position: int, read: int, progress: Progress) -> tuple[int, int]:
    live, new = sql.Identifier(schema), sql.Identifier(shadow)
    tables = [*TABLES, TRACKING_TABLE]
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '10s'")
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
            sql.SQL(", ").join(sql.SQL("{}.{}").format(live, sql.Identifier(t))
                               for t in (*tables, FACTS_TABLE, INBOX_TABLE))))
        # Nobody writes the live read models now: what was stored meanwhile goes into the new ones, then they
        # take over.
        head = courses.recorder.max_notification_id() or 0
        position, read = apply_until(courses, view, facts, position, head, progress, read)
        _carry_over(conn, schema, shadow)
        _write_facts(conn, schema, shadow, facts, courses)
        conn.execute(sql.SQL("DELETE FROM {0}.{1}; INSERT INTO {0}.{1} SELECT * FROM {2}.{1}").format(
            live, sql.Identifier(FACTS_TABLE), new))
        grants = db_roles.table_grants(conn, schema, tables)
        for table in tables:
            conn.execute(sql.SQL("DROP TABLE {}.{}").format(live, sql.Identifier(table)))
            conn.execute(sql.SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(new, sql.Identifier(table), live))
        db_roles.copy_grants(conn, schema, grants)  # the services' role writes the new tables as it wrote the old
    return position, read


def index_lag(database_url: str, schema: str, courses: Courses) -> IndexLag:
    """How far the index of `schema` is behind the event store."""
    with psycopg.connect(database_url, options=f"-c search_path={schema}") as conn:
        row = conn.execute(lag_sql(courses.recorder.events_table_name, ("%s", "%s")),
                           (courses.name, list(INDEXED_TOPICS))).fetchone()
    assert row is not None
    return IndexLag(position=row[0], head=row[1], waiting=row[2])
