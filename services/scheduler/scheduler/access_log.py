"""The access log's store (asyncpg): one INSERT per read, and the operator's query, newest first.

The table is declared in `kact_contracts.access_log` (the notifier writes it too)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from kact_contracts.access_log import INSERT_ASYNC_COMMIT_SQL

from scheduler.application.audit import AccessQuery

Row = dict[str, Any]
COLUMNS = "id, at, principal, action, course_id, outcome, request_id"


class AccessLog:
    """The access log of one pool (`application.audit.AccessLogStore`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def entries(self, where: AccessQuery, after: tuple[datetime, int] | None, limit: int) -> list[Row]:
        return await entries(self.pool, where, after, limit)


async def insert(db: asyncpg.Pool | asyncpg.Connection, principal: str, action: str,
                 course_ids: Sequence[UUID | None], outcome: str, request_id: str | None) -> None:
    """One read's rows, in a transaction of their own (asynchronously committed: `INSERT_ASYNC_COMMIT_SQL`)."""
    await db.execute(INSERT_ASYNC_COMMIT_SQL, principal, action, list(course_ids), outcome, request_id)


async def entries(db: asyncpg.Pool | asyncpg.Connection, where: AccessQuery, after: tuple[datetime, int] | None,
                  limit: int) -> list[Row]:
    """Up to `limit` rows, newest first (by `at`, then id), after the row `after` (`at`, id) of an earlier page."""
    conditions, values = [], []
    for column, value in (("course_id = ", where.course_id), ("principal = ", where.principal),
                          ("outcome = ", where.outcome), ("at >= ", where.since), ("at < ", where.until)):
        if value is not None:
            values.append(value)
            conditions.append(f"{column}${len(values)}")
    if after is not None:
        values += list(after)
        conditions.append(f"(at, id) < (${len(values) - 1}, ${len(values)})")
    values.append(limit)
    sql = (f"SELECT {COLUMNS} FROM access_log {'WHERE ' + ' AND '.join(conditions) if conditions else ''} "
           f"ORDER BY at DESC, id DESC LIMIT ${len(values)}")
    return [dict(row) for row in await db.fetch(sql, *values)]
