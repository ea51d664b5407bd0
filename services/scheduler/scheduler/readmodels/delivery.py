"""How event delivery is doing, read for the HTTP API: the relay's position against the head of the event store,
the relay's dead letters (the notifier's heartbeat is read through `notifier.admin`). A few indexed lookups
each: health is polled."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from scheduler.relay import DEAD_LETTERS_TABLE, TRACKING_TABLE


@dataclass(frozen=True)
class RelayLag:
    position: int  # the last notification the relay has dealt with (published, kept internal or dead-lettered)
    head: int  # the last notification stored
    oldest_waiting_seconds: float | None  # since the first notification after `position` was stored

    @property
    def behind(self) -> int:
        return self.head - self.position


def relay_lag_sql(events_table: str, parameter: str = "$1") -> str:
    """The relay's position, the head of the store and the wait of the oldest event not yet relayed, for the
    application named by `parameter` (asyncpg's `$1`, psycopg's `%s`: the jobs process's metrics read it too)."""
    return (
        f"WITH tracked AS (SELECT coalesce(max(notification_id), 0) AS position FROM {TRACKING_TABLE} "
        f"WHERE application_name = {parameter}) "
        f"SELECT position, (SELECT coalesce(max(notification_id), 0) FROM {_quoted(events_table)}) AS head, "
        f"(SELECT extract(epoch FROM now() - recorded_at)::float8 FROM {_quoted(events_table)} "
        "WHERE notification_id > position ORDER BY notification_id LIMIT 1) AS waiting FROM tracked"
    )


async def relay_lag(pool: asyncpg.Pool, events_table: str, application_name: str) -> RelayLag:
    row = await pool.fetchrow(relay_lag_sql(events_table), application_name)
    return RelayLag(position=row["position"], head=row["head"], oldest_waiting_seconds=row["waiting"])


async def relay_dead_letters(pool: asyncpg.Pool, limit: int, offset: int) -> list[asyncpg.Record]:
    """The newest first (the columns of http.dead_letters.RelayDeadLetter)."""
    rows = await pool.fetch(
        "SELECT notification_id, course_id, course_version, topic, event_id, error, created_at "
        f"FROM {DEAD_LETTERS_TABLE} ORDER BY notification_id DESC LIMIT $1 OFFSET $2", limit, offset,
    )
    return rows


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
