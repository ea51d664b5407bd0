"""The event store's insert, with its table lock held inside PostgreSQL only (and the time each event was
stored); subscriptions that miss nothing and read in batches."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from eventsourcing.persistence import IntegrityError, InterfaceError, Notification, OperationalError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.postgres import (PostgresAggregateRecorder, PostgresApplicationRecorder, PostgresFactory,
                                   PostgresSubscription)
from psycopg.sql import SQL, Identifier, Literal

T = TypeVar("T")
INSERT_FUNCTION = "kact_insert_events"  # the recorder's own (the library's takes composite values)
# An aggregate a command read and relied on without changing it, and the version it read (0: it did not exist).
Guard = tuple[Any, int]
# How long a read of a course keeps trying while the database is unreachable: a request is answered (503)
# within about 2 s of an outage, instead of after the library's ten attempts of up to a pool timeout each.
READ_RETRY_SECONDS = 0.8
_TRANSIENT = (InterfaceError, OperationalError)


# The event store's own setting (the library has none): milliseconds any statement may run, lock waits included.
STATEMENT_TIMEOUT = "POSTGRES_STATEMENT_TIMEOUT"


class LatestSnapshotRecorder(PostgresAggregateRecorder):
    """The snapshot table (the only aggregate recorder here), which keeps each aggregate's latest snapshot only: a
    busy calendar's grows with its sessions, and one is taken every `snapshots.SNAPSHOT_EVERY` events. A snapshot
    is an aid to loading, never a record (the events are): inserting one that exists already does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        table = SQL("{schema}.{table}").format(schema=Identifier(self.datastore.schema),
                                               table=Identifier(self.events_table_name))
        self._sql_insert_latest = SQL(
            "WITH new AS (INSERT INTO {table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b, %b, %b, %b) ON CONFLICT DO NOTHING RETURNING originator_id, originator_version) "
            "DELETE FROM {table} t USING new WHERE t.originator_id = new.originator_id "
            "AND t.originator_version < new.originator_version").format(table=table)

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """One attempt (the caller drops a snapshot it could not store: the next one will do)."""
        columns = ([e.originator_id for e in stored_events], [e.originator_version for e in stored_events],
                   [e.topic for e in stored_events], [e.state for e in stored_events])
        with self.datastore.transaction(commit=True) as curs:
            # An aid, not a record: its commit need not wait for a flush to disk (a crash loses a snapshot at
            # most, and the next one is taken), so it costs no fsync beside the commands' own.
            curs.execute("SET LOCAL synchronous_commit TO off")
            curs.execute(self._sql_insert_latest, columns, prepare=True)
        return None

    def select_events(self, originator_id: Any, **kwargs: Any) -> Sequence[StoredEvent]:
        """As the event store's (`LockedInsertRecorder.select_events`): retried for `READ_RETRY_SECONDS` only."""
        once = PostgresAggregateRecorder.select_events.__wrapped__  # type: ignore[attr-defined]
        return within(READ_RETRY_SECONDS, lambda: once(self, originator_id, **kwargs))


class TimedPostgresFactory(PostgresFactory):
    """The library's PostgreSQL persistence, with a statement timeout on each of its connections.

    The library sets a lock timeout, and only around its inserts: a read waiting on a lock, or a database that
    accepts connections but does not answer, would hold a request (and its worker thread) for as long as that
    lasts. With the timeout PostgreSQL cancels the statement and rolls it back, and the request is answered 503
    within its bound. Set as a connection option (`-c statement_timeout=...`) on the pool's connection arguments,
    as the library itself sets the password there: every connection the pool opens carries it."""

    aggregate_recorder_class = LatestSnapshotRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        milliseconds = self.env.get(STATEMENT_TIMEOUT)
        if milliseconds:
            assert isinstance(self.datastore.pool.kwargs, dict)
            self.datastore.pool.kwargs["options"] = f"-c statement_timeout={int(milliseconds)}"


def within(seconds: float, attempt: Callable[[], T]) -> T:
    """`attempt()`, tried again after a transient database error while `seconds` have not passed."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return attempt()
        except _TRANSIENT:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05 + random.random() * 0.05)


class LockedInsertRecorder(PostgresApplicationRecorder):
    """Inserts events in one call to a PL/pgSQL function that takes the table lock itself.

    The library locks the events table so that notification ids commit in order (a subscriber never skips
    one); by default it holds that lock across several client round trips. Its own insert function is one
    round trip but takes no lock, which lets a projection miss events. This recorder uses the function with
    the lock inside: ordered ids, and the lock held only while PostgreSQL inserts and commits.

    The same function checks the insert's guards under that lock: aggregates a command read and relied on
    without changing them must still be at the version it read, or nothing is inserted (an IntegrityError,
    as for a version another writer took)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Four arrays of plain columns rather than one array of composite values: psycopg dumps a list of uuids,
        # integers, texts or bytes in a few C calls, a list of composites value by value in Python (it was a
        # tenth of the API's CPU once a command saves a course and its calendars together).
        self.sql_create_pg_function_insert_events = SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{insert_events}(ids {id_type}[], versions bigint[], topics text[], "
            "states bytea[], guard_ids {id_type}[], guard_versions bigint[]) RETURNS SETOF bigint LANGUAGE plpgsql "
            # As its owner: the services' role may insert events but not lock the table, which PostgreSQL allows
            # only with UPDATE, DELETE or TRUNCATE rights (`db_roles`); every name in it is qualified.
            "SECURITY DEFINER SET search_path = pg_catalog, pg_temp "
            "AS $BODY$ BEGIN "
            "SET LOCAL lock_timeout = '{lock_timeout}s'; "
            "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
            # One primary-key probe per guard (a join with the unnested guards may be planned as a scan).
            "FOR i IN 1 .. coalesce(array_length(guard_ids, 1), 0) LOOP "
            "IF EXISTS (SELECT 1 FROM {schema}.{table} WHERE originator_id = guard_ids[i] "
            "AND originator_version > guard_versions[i]) THEN "
            "RAISE EXCEPTION 'an aggregate this command read has changed' USING ERRCODE = 'unique_violation'; "
            "END IF; END LOOP; "
            "NOTIFY {channel}; "
            "RETURN QUERY INSERT INTO {schema}.{table} AS t (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(ids, versions, topics, states) "
            "RETURNING notification_id; "
            "END; $BODY$"
        ).format(
            insert_events=Identifier(INSERT_FUNCTION),
            id_type=SQL(self.datastore.originator_id_type),
            lock_timeout=self.datastore.lock_timeout,
            channel=Identifier(self.channel_name),
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
        )
        # Binary parameters: the states go as they are (as text, bytea is hex: twice the size, escaped).
        self._sql_insert = SQL("SELECT * FROM {schema}.{insert_events}(%b, %b, %b, %b, %b, %b)").format(
            schema=Identifier(self.datastore.schema), insert_events=Identifier(INSERT_FUNCTION))
        self._sql_max_versions = SQL(
            "SELECT originator_id AS id, max(originator_version) AS version FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s) GROUP BY originator_id"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        self.sql_create_statements[self.create_insert_function_statement_index] = (
            self.sql_create_pg_function_insert_events
        )
        # When each event was stored, by the database's clock: how long the oldest event not yet relayed has
        # waited (readiness). Rows stored before the column existed take the time it was added.
        self.sql_create_statements.append(SQL(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = {schema_name} "
            "AND table_name = {table_name} AND column_name = 'recorded_at') THEN "
            "ALTER TABLE {schema}.{table} ADD COLUMN recorded_at timestamptz NOT NULL DEFAULT now(); END IF; END $$"
        ).format(
            schema_name=Literal(self.datastore.schema), table_name=Literal(self.events_table_name),
            schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name),
        ))

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = (),
                  settle_seconds: float | None = None) -> ListenFirstSubscription:
        return ListenFirstSubscription(recorder=self, gt=gt, topics=topics,
                                       settle_seconds=SETTLE_SECONDS if settle_seconds is None else settle_seconds)

    def insert_events(self, stored_events: Sequence[StoredEvent], guards: Sequence[Guard] = (),
                      **kwargs: Any) -> Sequence[int] | None:
        """One attempt, without the library's ten: the group commit decides whether there is time for another
        (a command whose client was told it failed must never be committed by a later retry)."""
        columns = (
            [e.originator_id for e in stored_events], [e.originator_version for e in stored_events],
            [e.topic for e in stored_events], [e.state for e in stored_events],
            [g[0] for g in guards], [g[1] for g in guards],
        )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._sql_insert, columns, prepare=True)
            return [row[INSERT_FUNCTION] for row in curs.fetchall()]

    def max_versions(self, aggregate_ids: Iterable[Any]) -> dict[Any, int]:
        """The version each aggregate is stored at (those never stored are left out), in one query."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._sql_max_versions, (list(aggregate_ids),), prepare=True)
            return {row["id"]: row["version"] for row in curs.fetchall()}

    def select_events(self, originator_id: Any, **kwargs: Any) -> Sequence[StoredEvent]:
        """Read a course's events, retrying transient errors for at most `READ_RETRY_SECONDS`."""
        once = PostgresApplicationRecorder.select_events.__wrapped__  # type: ignore[attr-defined]
        return within(READ_RETRY_SECONDS, lambda: once(self, originator_id, **kwargs))


class GuardedMemoryRecorder(POPOApplicationRecorder):
    """The library's in-memory recorder (use cases tested without a server) with the guards of
    `LockedInsertRecorder.insert_events`, checked under its lock."""

    def insert_events(self, stored_events: Sequence[StoredEvent], guards: Sequence[Guard] = (),
                      **kwargs: Any) -> Sequence[int] | None:
        with self._database_lock:
            for aggregate_id, version in guards:
                if self.select_events(aggregate_id, gt=version, limit=1):
                    raise IntegrityError(f"an aggregate this command read has changed: {aggregate_id}")
            return super().insert_events(stored_events, **kwargs)

    def max_versions(self, aggregate_ids: Iterable[Any]) -> dict[Any, int]:
        with self._database_lock:
            return {i: events[-1].originator_version for i in aggregate_ids
                    if (events := self.select_events(i, desc=True, limit=1))}


# A subscription reads at most once per this many seconds: at a few hundred commits a second one read (and,
# downstream, one relay batch, one index transaction) then serves several of them; a lone commit is read at once.
SETTLE_SECONDS = 0.02


class ListenFirstSubscription(PostgresSubscription):
    """The library's LISTEN/NOTIFY subscription, reading only once its LISTEN is in place, and in batches.

    The library starts its first read and its LISTEN in two threads at once: a commit that lands after that
    read but before the LISTEN is announced to nobody, and its events wait for the next commit (a relay or
    index could sit on them indefinitely). Here the first read waits until the LISTEN is in place, so every
    commit is either in the first read or announced after it. It reads at most once per `SETTLE_SECONDS`,
    so that a busy store is read in batches rather than once per commit.

    Overrides the library's two loops (eventsourcing 9.5): `_listen` says when it listens, `_loop_on_pull`
    waits for that and settles; `take` hands out a whole read at once."""

    def __init__(self, *args: Any, settle_seconds: float = SETTLE_SECONDS, **kwargs: Any) -> None:
        # Set before the library's __init__, which starts both threads.
        self._listening = threading.Event()
        self._settle_seconds = settle_seconds
        super().__init__(*args, **kwargs)

    def stop(self) -> None:
        super().stop()
        self._listening.set()  # a reader still waiting for the LISTEN: stop waiting

    def stop_when(self, event: threading.Event) -> None:
        """Stop once `event` is set (from a daemon thread: a reader blocked in `take` wakes with StopIteration)."""
        threading.Thread(target=lambda: (event.wait(), self.stop()), name="subscription-stopper", daemon=True).start()

    def take(self) -> list[Notification]:
        """The next notification and the rest of the read it came in (waiting for a read if none is left): a
        batch to process at once. Raises StopIteration once stopped, as iterating does."""
        first = next(self)
        rest = self._notifications[self._notifications_index:]
        self._notifications_index = len(self._notifications)
        return [first, *rest]

    def _listen(self) -> None:
        try:
            with self._recorder.datastore.get_connection() as conn:  # autocommit: LISTEN takes effect now
                conn.execute(SQL("LISTEN {0}").format(Identifier(self._recorder.channel_name)))
                self._listening.set()
                while not self._has_been_stopped and not self._thread_error:
                    for _ in conn.notifies(timeout=0.1, stop_after=1):
                        self._has_been_notified.set()
        except BaseException as error:
            if self._thread_error is None:
                self._thread_error = error
            self.stop()

    def _loop_on_pull(self) -> None:
        try:
            self._listening.wait()
            self._pull()  # everything committed before the LISTEN
            pulled = time.monotonic()
            while not self._has_been_stopped:
                self._has_been_notified.wait()
                # At most one read per settle interval: an announcement after a quiet spell is read at once,
                # a busy store's commits gather until the interval has passed.
                time.sleep(max(0.0, pulled + self._settle_seconds - time.monotonic()))
                pulled = time.monotonic()
                self._pull()  # what was announced, and whatever committed meanwhile
        except BaseException as error:
            if self._thread_error is None:
                self._thread_error = error
            self.stop()
