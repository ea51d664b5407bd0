"""Dead letters: course events the notifier could not process, for the operator to inspect and redrive; and
stored events the relay could not publish at all."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import get, post
from litestar.params import Parameter

from scheduler.directory import Principal
from scheduler.http.deps import Services
from scheduler.http.schemas import MAX_ID

PAGE_SIZE = 50


class DeadLetter(msgspec.Struct, kw_only=True):
    id: int
    subject: str
    event_id: str | None
    error: str
    deliveries: int
    created_at: datetime
    redrive_requested_at: datetime | None
    redriven_at: datetime | None
    payload: str


@get("/v1/dead-letters", operation_id="listDeadLetters", tags=["notifications"],
     summary="Messages the notifier could not process (operator)")
async def list_dead_letters(
    services: Services, principal: Principal, page: Annotated[int, Parameter(ge=1, le=100000)] = 1,
    pending: Annotated[bool, Parameter(description="only those not redriven yet")] = True,
) -> list[DeadLetter]:
    found = await services.notifications.dead_letters(principal, pending, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    return [DeadLetter(**vars(dead_letter)) for dead_letter in found]


@post("/v1/dead-letters/{dead_letter_id:int}/redrive", operation_id="redriveDeadLetter", tags=["notifications"],
      summary="Ask the notifier to process a dead letter again (operator)", status_code=202)
async def redrive_dead_letter(
    services: Services, principal: Principal,
    dead_letter_id: Annotated[int, Parameter(ge=1, le=MAX_ID, description="The dead letter's id")],
) -> DeadLetter:
    return DeadLetter(**vars(await services.notifications.redrive_dead_letter(principal, dead_letter_id)))


class RelayDeadLetter(msgspec.Struct, kw_only=True):
    """A stored event the relay could not publish (it stays in the event store; the events after it flowed)."""

    notification_id: int
    course_id: UUID
    course_version: int
    topic: str
    event_id: str
    error: str
    created_at: datetime


@get("/v1/relay/dead-letters", operation_id="listRelayDeadLetters", tags=["notifications"],
     summary="Stored events the relay could not publish, newest first (operator)")
async def list_relay_dead_letters(
    services: Services, principal: Principal,
    page: Annotated[int, Parameter(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Parameter(ge=1, le=500)] = PAGE_SIZE,
) -> list[RelayDeadLetter]:
    rows = await services.notifications.relay_dead_letters(principal, per_page, (page - 1) * per_page)
    return [RelayDeadLetter(**dict(row)) for row in rows]
