"""The read audit: every read of course data is logged (who, when, which course, which action, the outcome), and
the operator queries that log.

A use case that reads course data wraps the read in `reading(...)`, whatever edge calls it (the API, pages,
exports): one INSERT when the read ends, a row per course it showed (`Read.show`), or a row for the course it
named, or one row without a course. A read refused (a course another clinic's, a principal of the wrong kind) is
logged `denied` with what it asked for; one that failed otherwise (invalid input, the database) `failed`. A read
is answered only once its row is written: if the log cannot be written, the read fails."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from kact_contracts import logs
from kact_contracts.access_log import DENIED, FAILED, OK, OUTCOMES

from scheduler.api_keys import Principal
from scheduler.application.errors import CourseNotFoundError, ForbiddenError, NotFoundError
from scheduler.domain.errors import InvalidCommandError, NotAddressedError, NotHostingError

log = logging.getLogger("kact.audit")
Row = dict[str, Any]
# Refusals of who asks (404 for what the principal may not see, 403 for a principal of the wrong kind).
DENIALS = (CourseNotFoundError, NotFoundError, ForbiddenError, NotHostingError, NotAddressedError)
MAX_LIMIT = 1000
FIRST_YEAR, LAST_YEAR = 2000, 2099
CURSOR_VERSION = 1


class ReadLog(Protocol):
    async def log_reads(self, principal: Principal, action: str, course_ids: Sequence[UUID | None], *,
                        outcome: str = OK, request_id: str | None = None) -> None: ...


@dataclass
class Read:
    """One read in progress: the course it names (None: a list), and the courses it showed once known."""

    course_id: UUID | None
    shown: list[UUID] | None = None

    def show(self, course_ids: Iterable[UUID]) -> None:
        """The courses whose data the read answers with (each once; none: a row without a course)."""
        self.shown = list(dict.fromkeys(course_ids))

    def rows(self) -> list[UUID | None]:
        if self.shown is None:
            return [self.course_id]
        return list(self.shown) or [None]


@asynccontextmanager
async def reading(read_log: ReadLog, principal: Principal, action: str,
                  course_id: UUID | None = None) -> AsyncIterator[Read]:
    """Log the read done inside the block, with its outcome (`ok`, `denied`, `failed`), in one INSERT."""
    read = Read(course_id)
    try:
        yield read
    except Exception as error:
        outcome = DENIED if isinstance(error, DENIALS) else FAILED
        try:
            await read_log.log_reads(principal, action, [course_id], outcome=outcome, request_id=logs.request_id())
        except Exception as unlogged:  # the read's own error is the answer; this one is the operator's to see
            log.error("a %s read (%s, %s by %s) was not logged: %s", outcome, action, course_id, principal.ref,
                      unlogged)
        raise
    await read_log.log_reads(principal, action, read.rows(), outcome=OK, request_id=logs.request_id())


# ------------------------------------------------------------------------------------------ the operator's query


@dataclass(frozen=True)
class AccessQuery:
    """Which rows: of a course, of a principal (`clinic:<id>`, `operator:root`, ...), with an outcome, in a time
    range (`since` included, `until` not)."""

    course_id: UUID | None = None
    principal: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AccessLogStore(Protocol):
    async def entries(self, where: AccessQuery, after: tuple[datetime, int] | None, limit: int) -> list[Row]: ...


@dataclass(frozen=True)
class AccessLogPage:
    rows: list[Row]
    next_cursor: str | None


def encode_cursor(at: datetime, row_id: int) -> str:
    raw = json.dumps({"v": CURSOR_VERSION, "at": at.isoformat(), "id": row_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(text: str) -> tuple[datetime, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION or not isinstance(data.get("id"), int):
            raise ValueError("unknown cursor")
        at = datetime.fromisoformat(data["at"])
        if at.tzinfo is None:
            raise ValueError("a cursor's instant has an offset")
        return at, data["id"]
    except (binascii.Error, ValueError, UnicodeDecodeError, KeyError, TypeError):
        raise InvalidCommandError(["cursor is not one this API answered with (use next_cursor as given)"]) from None


class AccessLogReads:
    """The operator reads the access log; to anyone else it does not exist."""

    def __init__(self, store: AccessLogStore) -> None:
        self.store = store

    async def entries(self, principal: Principal, where: AccessQuery, *, cursor: str | None,
                      limit: int) -> AccessLogPage:
        """A page of the rows `where` asks for, newest first (by time, then id); `next_cursor` continues it."""
        if principal.kind != "operator":
            raise NotFoundError("access log for", principal.ref)
        problems = []
        if not 1 <= limit <= MAX_LIMIT:
            problems.append(f"limit must be from 1 to {MAX_LIMIT}")
        for at in (where.since, where.until):
            if at is not None and (at.tzinfo is None or not FIRST_YEAR <= at.year <= LAST_YEAR):
                problems.append(f"from and to are instants with a UTC offset, in the years {FIRST_YEAR} to "
                                f"{LAST_YEAR}")
        if where.outcome is not None and where.outcome not in OUTCOMES:
            problems.append(f"outcome is one of {', '.join(OUTCOMES)}")
        if problems:
            raise InvalidCommandError(list(dict.fromkeys(problems)))
        after = decode_cursor(cursor) if cursor is not None else None
        rows = await self.store.entries(where, after, limit + 1)
        shown = rows[:limit]
        more = len(rows) > limit
        return AccessLogPage(shown, encode_cursor(shown[-1]["at"], shown[-1]["id"]) if more else None)
