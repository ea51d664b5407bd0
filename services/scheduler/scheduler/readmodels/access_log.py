"""The access log of one course, as the operator's audit page shows it: who read or changed it, how, when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

MAX_ROWS = 200


@dataclass(frozen=True)
class AccessRow:
    at: datetime
    principal: str  # kind:id
    action: str
    outcome: str | None  # a column of later schemas (allowed, refused, ...); None where the log has none


async def course_access_log(pool: asyncpg.Pool, course_id: UUID, limit: int = MAX_ROWS) -> list[AccessRow]:
    """The newest `limit` rows for the course, newest first. `SELECT *`: a log with an `outcome` column shows it,
    one without it still reads."""
    rows = await pool.fetch("SELECT * FROM access_log WHERE course_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
                            course_id, limit)
    return [AccessRow(r["at"], r["principal"], r["action"],
                      str(r["outcome"]) if "outcome" in r.keys() and r["outcome"] is not None else None)
            for r in rows]
