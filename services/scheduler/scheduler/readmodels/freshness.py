"""Read your writes: a read of the course index first waits (bounded) until the index holds every event the store
had committed when the read began, so a list or a calendar read right after a command, in any process, shows it.

The index tracks the last event it wrote, and it reads only the topics it indexes: it is caught up with a head when
no indexed event lies between its position and that head (events of other topics, or calendars', never move it).
Both checks are a primary-key range of the events table, as long as the index lags; caught up, one probe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from scheduler.readmodels.course_index import INDEX_NAME

TRACKING_TABLE = f"{INDEX_NAME}_tracking"  # the library names a tracking recorder's table after its environment
WAIT_SECONDS = 2.0  # longer than the indexer's settle interval and a busy batch; beyond it the index is stuck
POLL_SECONDS = 0.01


class IndexBehindError(Exception):
    """The course index did not reach the event store's head in time: no process keeps it, or it is stuck."""

    def __init__(self, position: int, head: int) -> None:
        self.position, self.head = position, head
        super().__init__(f"the course index is at event {position} of {head} and did not catch up within "
                         f"{WAIT_SECONDS:g} s")


@dataclass(frozen=True)
class IndexLag:
    position: int  # the last event the index wrote
    head: int  # the last event stored
    waiting: int  # indexed events stored after `position` (and up to `head`)

    @property
    def behind(self) -> int:
        """Notification ids between the index's position and the head (events of every topic)."""
        return self.head - self.position


def lag_sql(events_table: str, p: Sequence[str] = ("$1", "$2")) -> str:
    """The index's position, the head and the indexed events waiting, for the application `p[0]` and the topics
    `p[1]` (asyncpg's `$n`, psycopg's `%s`: `kact projections status` reads it too)."""
    events = '"' + events_table.replace('"', '""') + '"'
    return (
        f"WITH tracked AS (SELECT coalesce(max(notification_id), 0) AS position FROM {TRACKING_TABLE} "
        f"WHERE application_name = {p[0]}), head AS (SELECT coalesce(max(notification_id), 0) AS head FROM {events}) "
        f"SELECT position, head, (SELECT count(*) FROM {events} WHERE notification_id > position "
        f"AND notification_id <= head AND topic = ANY({p[1]})) AS waiting FROM tracked, head"
    )


def _behind_sql(events_table: str) -> str:
    events = '"' + events_table.replace('"', '""') + '"'
    return (
        f"SELECT p.position, EXISTS (SELECT 1 FROM {events} WHERE notification_id > p.position "
        "AND notification_id <= $2 AND topic = ANY($3)) AS behind FROM (SELECT coalesce(max(notification_id), 0) "
        f"AS position FROM {TRACKING_TABLE} WHERE application_name = $1) p"
    )


async def index_lag(pool: asyncpg.Pool, events_table: str, application: str, topics: Sequence[str]) -> IndexLag:
    row = await pool.fetchrow(lag_sql(events_table), application, list(topics))
    return IndexLag(position=row["position"], head=row["head"], waiting=row["waiting"])


async def caught_up(pool: asyncpg.Pool, events_table: str, application: str, topics: Sequence[str],
                    wait_seconds: float = WAIT_SECONDS) -> None:
    """Return once the index holds every indexed event stored when this was called; IndexBehindError if it does
    not within `wait_seconds`."""
    head = await pool.fetchval(f'SELECT coalesce(max(notification_id), 0) FROM "{events_table}"')
    query, deadline = _behind_sql(events_table), time.monotonic() + wait_seconds
    while True:
        row = await pool.fetchrow(query, application, head, list(topics))
        if not row["behind"]:
            return
        if time.monotonic() >= deadline:
            raise IndexBehindError(row["position"], head)
        await asyncio.sleep(POLL_SECONDS)
