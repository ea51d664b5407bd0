"""The access log, for the operator: every read of course data (who, when, which course, which action, with which
outcome), newest first, by cursor. To anyone else it does not exist (404)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from litestar import get
from litestar.params import Parameter, QueryParameter

from scheduler.application.audit import MAX_LIMIT, AccessQuery
from scheduler.directory import Principal
from scheduler.http.deps import Services

TAGS = ["audit"]
Outcome = Literal["ok", "denied", "failed"]
PRINCIPAL_PATTERN = "^[a-z][a-z-]{0,31}:[A-Za-z0-9_-]{1,64}$"


class AccessLogEntry(msgspec.Struct, kw_only=True):
    """One read: a row per course it showed, or one without a course (a list that showed none, a read refused
    before it named one)."""

    id: int
    at: datetime  # when it was logged, by the database's clock (also under simulated time)
    principal: str  # clinic:<id>, prescriber:<id>, operator:root, calendar-feed:<feed id>, webhook:<webhook id>
    action: str  # read_course, replay_course (?as_of), read_history, list_courses, read_feed, ...
    course_id: UUID | None
    outcome: Outcome  # ok; denied: 404 to a principal that may not see it, 403; failed: any other error
    request_id: str | None  # the request's X-Request-Id (a webhook's: its delivery id)


class AccessLogPage(msgspec.Struct, kw_only=True):
    items: list[AccessLogEntry]
    next_cursor: str | None  # pass it as `cursor` for the next (older) page; null on the last


@get("/v1/audit/access-log", operation_id="listAccessLog", tags=TAGS,
     summary="Every read of course data: who, when, which course, which action, the outcome (operator)")
async def list_access_log(
    services: Services, principal: Principal,
    course_id: Annotated[UUID | None, Parameter(description="Only reads of this course")] = None,
    reader: Annotated[str | None, QueryParameter(
        name="principal", pattern=PRINCIPAL_PATTERN, max_length=97,
        description="Only reads by this principal: `clinic:<id>`, `prescriber:<id>`, `operator:root`, "
                    "`calendar-feed:<id>`, `webhook:<id>`")] = None,
    since: Annotated[datetime | None, QueryParameter(
        name="from", description="Only reads at or after this instant (RFC 3339, with its offset)")] = None,
    until: Annotated[datetime | None, QueryParameter(
        name="to", description="Only reads before this instant")] = None,
    outcome: Annotated[Outcome | None, Parameter(description="Only reads with this outcome")] = None,
    cursor: Annotated[str | None, Parameter(max_length=200, pattern="^[A-Za-z0-9_-]+$",
                                            description="`next_cursor` of the previous page")] = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="Rows per page")] = 100,
) -> AccessLogPage:
    where = AccessQuery(course_id=course_id, principal=reader, outcome=outcome, since=since, until=until)
    page = await services.audit.entries(principal, where, cursor=cursor, limit=limit)
    return AccessLogPage(items=[AccessLogEntry(**row) for row in page.rows], next_cursor=page.next_cursor)


ROUTES = [list_access_log]
