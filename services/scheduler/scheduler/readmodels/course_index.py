"""The course list, the clinicians' and rooms' calendars, the prescribers' approval queue and the open
integration-window deadlines: a projection of the event store kept in PostgreSQL (`changes` says what each event
changes; `indexer.Indexer` writes it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from functools import singledispatch
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InfrastructureFactory, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.utils import Environment
from psycopg.sql import SQL, Composed, Identifier

from scheduler.domain.course import Course
from scheduler.domain.model import Kind

PAGE_SIZE = 50
HOSTED_LIMIT = 500
CALENDAR_LIMIT = 1000  # sessions of one clinician or room in a day or a week: far more than a week can hold
# Tables the index writes, in the order a rebuild moves them into place (`rebuild`): the tracking table last.
TABLES = ("course_index", "calendar_entries", "approval_queue", "integration_deadlines", "hosted_sessions",
          "open_holds")


class CourseIndexView(PostgresTrackingRecorder):
    """Rows per course (clinic, status) and per dose approval, written with their tracking position.

    Only identifiers and scheduling facts live here, in clear; doses and notes stay in the encrypted events."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self._composed: dict[int, tuple[SQL, Composed]] = {}
        schema = Identifier(self.datastore.schema)
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.course_index ("
                "course_id uuid PRIMARY KEY, clinic_id text NOT NULL, status text NOT NULL, "
                "model text NOT NULL, opened_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)"
            ).format(schema),
            SQL(
                "CREATE INDEX IF NOT EXISTS course_index_clinic ON {0}.course_index (clinic_id, status, opened_at)"
            ).format(schema),
            # The phase (assessment, preparation, medicine, completed, discontinued) and the start of the earliest
            # session still booked; an index made before they were kept has them NULL until it is rebuilt
            # (`storage.migrate` starts it again from the first event).
            SQL("ALTER TABLE {0}.course_index ADD COLUMN IF NOT EXISTS phase text").format(schema),
            SQL("ALTER TABLE {0}.course_index ADD COLUMN IF NOT EXISTS next_session_at timestamptz").format(schema),
            SQL(
                "CREATE INDEX IF NOT EXISTS course_index_opened ON {0}.course_index (opened_at DESC, course_id)"
            ).format(schema),
            # One row per session of every course, wherever hosted: the calendars of clinicians and rooms by day
            # and week, and each course's next session. Scheduling facts only (no partners, notes or doses).
            # status: booked | held | missed | cancelled (a discontinued course's booked sessions are cancelled:
            # they no longer hold their time).
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.calendar_entries ("
                "course_id uuid NOT NULL, session_id text NOT NULL, clinic_id text NOT NULL, kind text NOT NULL, "
                "starts_at timestamptz NOT NULL, ends_at timestamptz NOT NULL, room_id text, "
                "clinician_ids text[] NOT NULL, status text NOT NULL, confirmation text NOT NULL, "
                "PRIMARY KEY (course_id, session_id))"
            ).format(schema),
            SQL(
                "CREATE INDEX IF NOT EXISTS calendar_entries_clinicians ON {0}.calendar_entries "
                "USING gin (clinician_ids)"
            ).format(schema),
            SQL(
                "CREATE INDEX IF NOT EXISTS calendar_entries_room ON {0}.calendar_entries (room_id, starts_at) "
                "WHERE room_id IS NOT NULL"
            ).format(schema),
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.approval_queue ("
                "approval_id text PRIMARY KEY, course_id uuid NOT NULL, session_id text NOT NULL, "
                "partner text NOT NULL, prescriber_id text NOT NULL, "
                "status text NOT NULL, requested_at timestamptz NOT NULL, decided_at timestamptz)"
            ).format(schema),
            SQL(
                "CREATE INDEX IF NOT EXISTS approval_queue_prescriber ON {0}.approval_queue (prescriber_id, status)"
            ).format(schema),
            # One row per Dosed medicine session: its integration window closes at `deadline` (I4). status:
            # open -> missed (IntegrationWindowMissed) | checked (the deadline watcher found it kept) | closed.
            # opened_at: when the row was indexed (the database's clock): the watcher lets a new row settle first.
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.integration_deadlines ("
                "course_id uuid NOT NULL, session_id text NOT NULL, deadline timestamptz NOT NULL, "
                "status text NOT NULL, opened_at timestamptz NOT NULL DEFAULT now(), "
                "PRIMARY KEY (course_id, session_id))"
            ).format(schema),
            SQL(
                "CREATE INDEX IF NOT EXISTS integration_deadlines_open ON {0}.integration_deadlines (deadline) "
                "WHERE status = 'open'"
            ).format(schema),
            # One row per session hosted by a clinic other than its course's home clinic: the host's week, and the
            # sessions to rebook when a partnership ends. Scheduling facts only (no partners, notes or doses).
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.hosted_sessions ("
                "course_id uuid NOT NULL, session_id text NOT NULL, home_clinic_id text NOT NULL, "
                "host_clinic_id text NOT NULL, kind text NOT NULL, starts_at timestamptz NOT NULL, "
                "ends_at timestamptz NOT NULL, status text NOT NULL, confirmation text NOT NULL, "
                "PRIMARY KEY (course_id, session_id))"
            ).format(schema),
            SQL(
                "CREATE INDEX IF NOT EXISTS hosted_sessions_host ON {0}.hosted_sessions (host_clinic_id, starts_at)"
            ).format(schema),
            SQL(
                "CREATE INDEX IF NOT EXISTS hosted_sessions_pair ON {0}.hosted_sessions "
                "(home_clinic_id, host_clinic_id, starts_at) WHERE status = 'booked'"
            ).format(schema),
            # One row per open hold, until it is booked, released or recorded expired: what the hold watcher
            # looks at to record each expiry (an expired hold frees its slot without it; the event says so).
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.open_holds ("
                "course_id uuid NOT NULL, hold_id text NOT NULL, expires_at timestamptz NOT NULL, "
                "opened_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (course_id, hold_id))"
            ).format(schema),
            SQL("CREATE INDEX IF NOT EXISTS open_holds_expiry ON {0}.open_holds (expires_at)").format(schema),
        ]

    def apply(self, changes: list[Change], tracking: Tracking) -> None:
        """Write the changes of a batch of events with the position of its last one, in one transaction."""
        with self.datastore.transaction(commit=True) as curs:
            # Derived data, rebuilt from the event store: an index row need not wait for its own fsync.
            # Rows and tracking commit together, so a crash can only lose both, never one of them.
            curs.execute("SET LOCAL synchronous_commit TO off")
            # One round trip for the batch (pipeline mode), not one per statement: a course's sessions each write
            # several rows (calendar entries, the next session, hosted sessions).
            with curs.connection.pipeline():
                for statement, params in once_per_course(changes):
                    curs.execute(self._in_schema(statement), params)
            self._insert_tracking(curs, tracking)

    def _in_schema(self, statement: SQL) -> Composed:
        """The statement with this index's schema (composed once per statement, not once per event)."""
        composed = self._composed.get(id(statement))
        if composed is None or composed[0] is not statement:
            composed = self._composed[id(statement)] = (statement, statement.format(Identifier(self.datastore.schema)))
        return composed[1]

    def due_deadlines(self, now: datetime, limit: int = 500, min_age_seconds: float = 0.0) -> list[dict[str, Any]]:
        """Open deadlines that passed before `now`, earliest first, of rows indexed at least `min_age_seconds` ago."""
        query = SQL(
            "SELECT course_id, session_id, deadline FROM {0}.integration_deadlines "
            "WHERE status = 'open' AND deadline < %(now)s "
            "AND opened_at <= now() - make_interval(secs => %(min_age)s) "
            "ORDER BY deadline, course_id, session_id LIMIT %(limit)s"
        ).format(Identifier(self.datastore.schema))
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, {"now": now, "limit": limit, "min_age": min_age_seconds})
            return [dict(row) for row in curs.fetchall()]

    def next_deadline(self, now: datetime) -> datetime | None:
        """The earliest open deadline not yet passed at `now`."""
        query = SQL(
            "SELECT min(deadline) AS next FROM {0}.integration_deadlines WHERE status = 'open' AND deadline >= %(now)s"
        ).format(Identifier(self.datastore.schema))
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, {"now": now})
            row = curs.fetchone()
            return row["next"] if row else None

    def settle_deadlines(self, course_id: UUID, statuses: dict[str, str]) -> None:
        """Mark open deadlines of a course as the watcher found them ('missed' or 'checked')."""
        query = SQL(
            "UPDATE {0}.integration_deadlines SET status = %(status)s "
            "WHERE course_id = %(course)s AND session_id = %(sid)s AND status = 'open'"
        ).format(Identifier(self.datastore.schema))
        with self.datastore.transaction(commit=True) as curs:
            for sid, status in statuses.items():
                curs.execute(query, {"course": course_id, "sid": sid, "status": status})

    def due_holds(self, now: datetime, limit: int = 500, min_age_seconds: float = 0.0) -> list[dict[str, Any]]:
        """Open holds that expired by `now`, earliest first, of rows indexed at least `min_age_seconds` ago (as
        deadlines: under simulated time a hold taken long ago by the watcher's clock is booked moments later)."""
        query = SQL(
            "SELECT course_id, hold_id, expires_at FROM {0}.open_holds WHERE expires_at <= %(now)s "
            "AND opened_at <= now() - make_interval(secs => %(min_age)s) "
            "ORDER BY expires_at, course_id, hold_id LIMIT %(limit)s"
        ).format(Identifier(self.datastore.schema))
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, {"now": now, "limit": limit, "min_age": min_age_seconds})
            return [dict(row) for row in curs.fetchall()]

    def next_hold_expiry(self, now: datetime) -> datetime | None:
        query = SQL("SELECT min(expires_at) AS next FROM {0}.open_holds WHERE expires_at > %(now)s").format(
            Identifier(self.datastore.schema))
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, {"now": now})
            row = curs.fetchone()
            return row["next"] if row else None

    def deadlines(self, course_id: UUID) -> dict[str, tuple[datetime, str]]:
        """A course's watched deadlines: session id -> (deadline, status)."""
        query = SQL(
            "SELECT session_id, deadline, status FROM {0}.integration_deadlines WHERE course_id = %(course)s"
        ).format(Identifier(self.datastore.schema))
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, {"course": course_id})
            return {row["session_id"]: (row["deadline"], row["status"]) for row in curs.fetchall()}

    def find_courses(self, query: CourseQuery) -> list[dict[str, Any]]:
        """Courses as `query` filters them, newest first (ties by id), from its cursor or page on: `limit` + 1 rows
        at most (one more tells whether another page follows)."""
        sql = SQL(
            "SELECT course_id, clinic_id, status, phase, model, opened_at, updated_at, next_session_at "
            "FROM {0}.course_index c "
            "WHERE (%(clinic)s::text IS NULL OR clinic_id = %(clinic)s) "
            "AND (%(status)s::text IS NULL OR status = %(status)s) "
            "AND (%(phase)s::text IS NULL OR phase = %(phase)s) "
            "AND (%(next_from)s::timestamptz IS NULL OR next_session_at >= %(next_from)s) "
            "AND (%(next_before)s::timestamptz IS NULL OR next_session_at < %(next_before)s) "
            "AND (%(clinician)s::text IS NULL OR EXISTS (SELECT 1 FROM {0}.calendar_entries e "
            "WHERE e.course_id = c.course_id AND e.status = 'booked' AND e.clinician_ids @> ARRAY[%(clinician)s::text])) "
            "AND (%(after_at)s::timestamptz IS NULL OR opened_at < %(after_at)s "
            "OR (opened_at = %(after_at)s AND course_id > %(after_id)s::uuid)) "
            "ORDER BY opened_at DESC, course_id LIMIT %(limit)s OFFSET %(offset)s"
        ).format(Identifier(self.datastore.schema))
        after_at, after_id = query.after if query.after is not None else (None, None)
        params = {"clinic": query.clinic_id, "status": query.status, "phase": query.phase,
                  "next_from": query.next_session_from, "next_before": query.next_session_before,
                  "clinician": query.clinician_id, "after_at": after_at, "after_id": after_id,
                  "limit": query.limit + 1, "offset": query.offset}
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(sql, params)
            return [dict(row) for row in curs.fetchall()]

    def calendar(self, resource: str, resource_id: str, starts_before: datetime, ends_after: datetime,
                 include_cancelled: bool = False, limit: int = CALENDAR_LIMIT) -> list[dict[str, Any]]:
        """The sessions of a clinician or a room (`resource`) that overlap [ends_after, starts_before), by start."""
        held_by = ("clinician_ids @> ARRAY[%(id)s::text]" if resource == "clinician" else "room_id = %(id)s")
        query = SQL(
            "SELECT course_id, session_id, clinic_id, kind, starts_at, ends_at, room_id, clinician_ids, status, "
            "confirmation FROM {0}.calendar_entries WHERE " + held_by + " AND starts_at < %(before)s "
            "AND ends_at > %(after)s AND (%(cancelled)s OR status <> 'cancelled') "
            "ORDER BY starts_at, course_id, session_id LIMIT %(limit)s"
        ).format(Identifier(self.datastore.schema))
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, {"id": resource_id, "before": starts_before, "after": ends_after,
                                 "cancelled": include_cancelled, "limit": limit})
            return [dict(row) for row in curs.fetchall()]

    def hosted_sessions(self, host_clinic_id: str, starts_from: datetime, starts_before: datetime,
                        limit: int = HOSTED_LIMIT) -> list[dict[str, Any]]:
        """The sessions a clinic hosts for other clinics' courses, starting in [starts_from, starts_before)."""
        query = SQL(
            "SELECT * FROM {0}.hosted_sessions WHERE host_clinic_id = %(host)s AND starts_at >= %(from)s "
            "AND starts_at < %(before)s ORDER BY starts_at, course_id, session_id LIMIT %(limit)s"
        ).format(Identifier(self.datastore.schema))
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, {"host": host_clinic_id, "from": starts_from, "before": starts_before, "limit": limit})
            return [dict(row) for row in curs.fetchall()]

    def home_clinic(self, course_id: UUID) -> str | None:
        query = SQL("SELECT clinic_id FROM {0}.course_index WHERE course_id = %(course)s").format(
            Identifier(self.datastore.schema))
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, {"course": course_id})
            row = curs.fetchone()
            return None if row is None else str(row["clinic_id"])

    def booked_between(self, clinic_id: str, partner_clinic_id: str,
                       limit: int = HOSTED_LIMIT) -> list[dict[str, Any]]:
        """The booked sessions one of two clinics hosts for the other's courses (either way), earliest first."""
        query = SQL(
            "SELECT * FROM {0}.hosted_sessions WHERE status = 'booked' AND ("
            "(home_clinic_id = %(one)s AND host_clinic_id = %(other)s) OR "
            "(home_clinic_id = %(other)s AND host_clinic_id = %(one)s)) "
            "ORDER BY starts_at, course_id, session_id LIMIT %(limit)s"
        ).format(Identifier(self.datastore.schema))
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, {"one": clinic_id, "other": partner_clinic_id, "limit": limit})
            return [dict(row) for row in curs.fetchall()]

    def list_approvals(self, prescriber_id: str | None, status: str | None) -> list[dict[str, Any]]:
        query = SQL(
            "SELECT * FROM {0}.approval_queue WHERE (%(rx)s::text IS NULL OR prescriber_id = %(rx)s) "
            "AND (%(status)s::text IS NULL OR status = %(status)s) AND status <> 'closed' "
            "ORDER BY requested_at LIMIT 500"
        ).format(Identifier(self.datastore.schema))
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, {"rx": prescriber_id, "status": status})
            return [dict(row) for row in curs.fetchall()]


@dataclass(frozen=True)
class CourseQuery:
    """What the course list is filtered by (None: not filtered), and where its page starts: after the course of a
    cursor (opened_at, course_id), or `offset` rows in (the older `page` parameter)."""

    clinic_id: str | None = None
    status: str | None = None
    phase: str | None = None
    clinician_id: str | None = None  # courses with a booked session with this clinician
    next_session_from: datetime | None = None  # the next booked session starts at or after this
    next_session_before: datetime | None = None  # ... and before this
    after: tuple[datetime, UUID] | None = None
    offset: int = 0
    limit: int = PAGE_SIZE


# What each indexed event changes ({0} is the schema).
Change = tuple[SQL, dict[str, Any]]
OPEN_COURSE = SQL(
    "INSERT INTO {0}.course_index AS c (course_id, clinic_id, status, model, opened_at, updated_at, phase) "
    "VALUES (%(id)s, %(clinic)s, 'open', %(model)s, %(at)s, %(at)s, 'assessment') "
    # A row indexed before phases were kept, replayed: it starts in assessment too (its milestones follow).
    "ON CONFLICT (course_id) DO UPDATE SET phase = 'assessment' WHERE c.phase IS NULL"
)
CLOSE_COURSE = SQL(
    "UPDATE {0}.course_index SET status = %(status)s, phase = %(status)s, updated_at = %(at)s WHERE course_id = %(id)s"
)
# The milestones that move an open course into its next phase (I1).
ENTER_PHASE = SQL(
    "UPDATE {0}.course_index SET phase = %(phase)s, updated_at = %(at)s WHERE course_id = %(id)s AND status = 'open'"
)
# Written after every change to a course's sessions: the start of its earliest session still booked.
NEXT_SESSION = SQL(
    "UPDATE {0}.course_index SET next_session_at = (SELECT min(starts_at) FROM {0}.calendar_entries "
    "WHERE course_id = %(course)s AND status = 'booked') WHERE course_id = %(course)s"
)
def once_per_course(changes: list[Change]) -> list[Change]:
    """The batch's changes with its courses' next sessions worked out once each, after every other change (it is
    recomputed from the calendar entries: once at the end says what every time would have said last)."""
    later = {params["course"]: (statement, params) for statement, params in changes if statement is NEXT_SESSION}
    return [c for c in changes if c[0] is not NEXT_SESSION] + list(later.values())


# Every session, wherever hosted; a medicine session hosted away waits for its host's confirmation.
ENTER_SESSION = SQL(
    "INSERT INTO {0}.calendar_entries SELECT %(course)s, %(sid)s, %(host)s, %(kind)s, %(starts)s, %(ends)s, "
    "%(room)s, %(clinicians)s, 'booked', CASE WHEN %(kind)s = 'medicine' AND c.clinic_id <> %(host)s "
    "THEN 'pending' ELSE 'not_needed' END FROM {0}.course_index c WHERE c.course_id = %(course)s "
    "ON CONFLICT (course_id, session_id) DO NOTHING"
)
MOVE_SESSION = SQL(
    "UPDATE {0}.calendar_entries SET starts_at = %(starts)s, ends_at = %(ends)s, room_id = %(room)s, "
    "clinician_ids = %(clinicians)s, confirmation = CASE WHEN confirmation = 'not_needed' THEN confirmation "
    "ELSE 'pending' END WHERE course_id = %(course)s AND session_id = %(sid)s"
)
SET_SESSION_STATUS = SQL(
    "UPDATE {0}.calendar_entries SET status = %(status)s WHERE course_id = %(course)s AND session_id = %(sid)s"
)
SET_SESSION_CONFIRMATION = SQL(
    "UPDATE {0}.calendar_entries SET confirmation = %(confirmation)s "
    "WHERE course_id = %(course)s AND session_id = %(sid)s"
)
# A discontinued course's booked sessions no longer hold their time.
CANCEL_BOOKED = SQL(
    "UPDATE {0}.calendar_entries SET status = 'cancelled' WHERE course_id = %(id)s AND status = 'booked'"
)
# A closed course accepts no more commands: nothing of it is left to watch.
CLOSE_DEADLINES = SQL(
    "UPDATE {0}.integration_deadlines SET status = 'closed' WHERE course_id = %(id)s AND status = 'open'"
)
OPEN_DEADLINE = SQL(
    "INSERT INTO {0}.integration_deadlines (course_id, session_id, deadline, status) "
    "VALUES (%(course)s, %(sid)s, %(deadline)s, 'open') ON CONFLICT (course_id, session_id) DO NOTHING"
)
MISS_DEADLINE = SQL(
    "UPDATE {0}.integration_deadlines SET status = 'missed' WHERE course_id = %(course)s AND session_id = %(sid)s"
)
QUEUE_APPROVAL = SQL(
    "INSERT INTO {0}.approval_queue VALUES (%(aid)s, %(course)s, %(sid)s, %(partner)s, %(rx)s, "
    "'pending', %(at)s, NULL) ON CONFLICT (approval_id) DO NOTHING"
)
# A session hosted away gets its row (its course's home clinic from the course's row, written before it).
HOST_SESSION = SQL(
    "INSERT INTO {0}.hosted_sessions SELECT %(course)s, %(sid)s, c.clinic_id, %(host)s, %(kind)s, %(starts)s, "
    "%(ends)s, 'booked', %(confirmation)s FROM {0}.course_index c WHERE c.course_id = %(course)s "
    "AND c.clinic_id <> %(host)s ON CONFLICT (course_id, session_id) DO NOTHING"
)
MOVE_HOSTED = SQL(
    "UPDATE {0}.hosted_sessions SET starts_at = %(starts)s, ends_at = %(ends)s, confirmation = CASE "
    "WHEN confirmation = 'not_needed' THEN confirmation ELSE 'pending' END "
    "WHERE course_id = %(course)s AND session_id = %(sid)s"
)
SET_HOSTED_STATUS = SQL(
    "UPDATE {0}.hosted_sessions SET status = %(status)s WHERE course_id = %(course)s AND session_id = %(sid)s"
)
SET_HOSTED_CONFIRMATION = SQL(
    "UPDATE {0}.hosted_sessions SET confirmation = %(confirmation)s "
    "WHERE course_id = %(course)s AND session_id = %(sid)s"
)
# A closed course's booked sessions will not take place.
CLOSE_HOSTED = SQL(
    "UPDATE {0}.hosted_sessions SET status = 'cancelled' WHERE course_id = %(id)s AND status = 'booked'"
)
# A closed course's undecided approvals leave the prescribers' queue: nobody can be dosed in it any more.
CLOSE_APPROVALS = SQL(
    "UPDATE {0}.approval_queue SET status = 'closed' WHERE course_id = %(id)s AND status = 'pending'"
)
DECIDE_APPROVAL = SQL(
    "UPDATE {0}.approval_queue SET status = %(status)s, decided_at = %(at)s WHERE approval_id = %(aid)s"
)


@singledispatch
def changes(event: Any) -> list[Change]:
    """What the event changes in the index (nothing, for an event it does not index)."""
    return []


@changes.register
def _(event: Course.Created) -> list[Change]:
    return [(OPEN_COURSE, {"id": event.originator_id, "clinic": event.home_clinic_id, "model": event.model,
                           "at": event.timestamp})]


@changes.register
def _(event: Course.Completed) -> list[Change]:
    params = {"id": event.originator_id, "status": "completed", "at": event.timestamp}
    return [(CLOSE_COURSE, params), (CLOSE_DEADLINES, params), (CLOSE_APPROVALS, params)]


@changes.register
def _(event: Course.Discontinued) -> list[Change]:
    params = {"id": event.originator_id, "status": "discontinued", "at": event.timestamp}
    return [(CLOSE_COURSE, params), (CLOSE_DEADLINES, params), (CLOSE_HOSTED, params), (CLOSE_APPROVALS, params),
            (CANCEL_BOOKED, params), (NEXT_SESSION, {"course": event.originator_id})]


@changes.register(Course.Assessed)
@changes.register(Course.Prepared)
def _(event: Course.Event) -> list[Change]:
    phase = "preparation" if isinstance(event, Course.Assessed) else "medicine"
    return [(ENTER_PHASE, {"id": event.originator_id, "phase": phase, "at": event.timestamp})]


@changes.register
def _(event: Course.SessionBooked) -> list[Change]:
    session = event.session
    confirmation = "pending" if session["kind"] == Kind.MEDICINE.value else "not_needed"
    course = {"course": event.originator_id}
    return [(ENTER_SESSION, {**course, "sid": session["id"], "host": session["clinic_id"], "kind": session["kind"],
                             "starts": session["starts_at"], "ends": session["ends_at"],
                             "room": session.get("room_id"), "clinicians": list(session.get("clinician_ids", ()))}),
            (NEXT_SESSION, course),
            (HOST_SESSION, {**course, "sid": session["id"], "host": session["clinic_id"],
                            "kind": session["kind"], "starts": session["starts_at"], "ends": session["ends_at"],
                            "confirmation": confirmation})]


@changes.register
def _(event: Course.SessionRescheduled) -> list[Change]:
    moved = {"course": event.originator_id, "sid": event.session_id, "starts": event.starts_at, "ends": event.ends_at}
    return [(MOVE_SESSION, {**moved, "room": event.room_id, "clinicians": list(event.clinician_ids)}),
            (NEXT_SESSION, moved), (MOVE_HOSTED, moved)]


# A held session's record is decrypted with it (the calendars show it held); among the hosted sessions a held
# medicine session is marked by Dosed, and one of another kind keeps 'booked' (the course itself says it was held).
@changes.register(Course.SessionCancelled)
@changes.register(Course.SessionMissed)
@changes.register(Course.SessionHeld)
def _(event: Course.Event) -> list[Change]:
    status = {Course.SessionCancelled: "cancelled", Course.SessionMissed: "missed"}.get(type(event), "held")
    params = {"course": event.originator_id, "sid": event.session_id, "status": status}  # type: ignore[attr-defined]
    hosted = [] if status == "held" else [(SET_HOSTED_STATUS, params)]
    return [(SET_SESSION_STATUS, params), (NEXT_SESSION, params), *hosted]


@changes.register(Course.SessionConfirmed)
@changes.register(Course.SessionDeclined)
def _(event: Course.Event) -> list[Change]:
    confirmation = "confirmed" if isinstance(event, Course.SessionConfirmed) else "declined"
    params = {"course": event.originator_id, "sid": event.session_id,  # type: ignore[attr-defined]
              "confirmation": confirmation}
    return [(SET_SESSION_CONFIRMATION, params), (SET_HOSTED_CONFIRMATION, params)]


@changes.register
def _(event: Course.DoseApprovalRequested) -> list[Change]:
    return [(QUEUE_APPROVAL, {"aid": event.approval_id, "course": event.originator_id, "sid": event.session_id,
                              "partner": event.partner, "rx": event.prescriber_id, "at": event.requested_at})]


@changes.register
def _(event: Course.DoseApprovalDecided) -> list[Change]:
    return [(DECIDE_APPROVAL, {"aid": event.approval_id, "status": event.decision, "at": event.decided_at})]


@changes.register
def _(event: Course.DoseApprovalWithdrawn) -> list[Change]:  # it leaves the prescriber's queue
    return [(DECIDE_APPROVAL, {"aid": event.approval_id, "status": "withdrawn", "at": event.timestamp})]


@changes.register
def _(event: Course.Dosed) -> list[Change]:
    return [(OPEN_DEADLINE, {"course": event.originator_id, "sid": event.session_id,
                             "deadline": event.integration_deadline}),
            (SET_HOSTED_STATUS, {"course": event.originator_id, "sid": event.session_id, "status": "held"})]


@changes.register
def _(event: Course.IntegrationWindowMissed) -> list[Change]:
    return [(MISS_DEADLINE, {"course": event.originator_id, "sid": event.session_id})]


OPEN_HOLD = SQL(
    "INSERT INTO {0}.open_holds (course_id, hold_id, expires_at) VALUES (%(course)s, %(hold)s, %(expires)s) "
    "ON CONFLICT (course_id, hold_id) DO NOTHING"
)
END_HOLD = SQL("DELETE FROM {0}.open_holds WHERE course_id = %(course)s AND hold_id = %(hold)s")


@changes.register
def _(event: Course.SlotHeld) -> list[Change]:
    return [(OPEN_HOLD, {"course": event.originator_id, "hold": event.hold["id"],
                         "expires": event.hold["expires_at"]})]


@changes.register(Course.HoldReleased)
@changes.register(Course.HoldExpired)
def _(event: Course.Event) -> list[Change]:
    return [(END_HOLD, {"course": event.originator_id, "hold": event.hold_id})]  # type: ignore[attr-defined]


# The events the index reads (the store selects only these: those `changes` knows), and the name its position
# is tracked under.
INDEXED_TOPICS = tuple(cls.TOPIC for cls in changes.registry if cls is not object)
INDEX_NAME = "course_index"


def course_index_view(env: dict[str, str]) -> CourseIndexView:
    """The view (its tables named for the index): the indexer writes it, every process reads it."""
    environment = Environment(INDEX_NAME, {**os.environ, **env})
    return InfrastructureFactory[CourseIndexView].construct(env=environment).tracking_recorder(CourseIndexView)
