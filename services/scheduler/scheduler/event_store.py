"""The event store's insert, with its table lock held inside PostgreSQL only; subscriptions that miss nothing."""

from __future__ import annotations

import threading
import time
from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier


class LockedInsertRecorder(PostgresApplicationRecorder):
    """Inserts events in one call to a PL/pgSQL function that takes the table lock itself.

    The library locks the events table so that notification ids commit in order (a subscriber never skips
    one); by default it holds that lock across several client round trips. Its own insert function is one
    round trip but takes no lock, which lets a projection miss events. This recorder uses the function with
    the lock inside: ordered ids, and the lock held only while PostgreSQL inserts and commits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sql_create_pg_function_insert_events = SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{insert_events}(events {schema}.{event}[]) "
            "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ BEGIN "
            "SET LOCAL lock_timeout = '{lock_timeout}s'; "
            "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
            "NOTIFY {channel}; "
            "RETURN QUERY INSERT INTO {schema}.{table} AS t (originator_id, originator_version, topic, state) "
            "SELECT originator_id, originator_version, topic, state FROM unnest(events) "
            "RETURNING notification_id; "
            "END; $BODY$"
        ).format(
            insert_events=Identifier(self.pg_function_name_insert_events),
            lock_timeout=self.datastore.lock_timeout,
            channel=Identifier(self.channel_name),
            event=Identifier(self.stored_event_type_name),
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
        )
        self.sql_create_statements[self.create_insert_function_statement_index] = (
            self.sql_create_pg_function_insert_events
        )


# The library's subscription reads what is stored before its LISTEN is in place (another thread sets it up):
# a commit in between is announced to nobody, and its events would wait for the next commit. So a new
# subscription looks again this many seconds after it starts, by which time it listens.
LOOK_AGAIN_AFTER = (0.5, 2.0, 5.0)


def look_again_after_start(subscription: Any, stop: threading.Event | None = None) -> None:
    """Makes a subscription that just started pull again at `LOOK_AGAIN_AFTER` (unless `stop` is set first),
    as a NOTIFY would. Blocks for about five seconds: call it from a thread of its own."""
    started = time.monotonic()
    for at in LOOK_AGAIN_AFTER:
        wait = max(0.0, started + at - time.monotonic())
        if stop.wait(wait) if stop is not None else time.sleep(wait):
            return
        subscription._has_been_notified.set()  # noqa: SLF001 - the library's own wake-up
