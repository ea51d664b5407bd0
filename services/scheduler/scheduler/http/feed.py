"""`GET /v1/feed`: everything the notifier addressed to the caller, from any position, without gaps.

Each clinic and each prescriber has a feed of its own, numbered 1, 2, 3, ... (the notifier appends in the
same transaction as it processes the event). Every webhook carries the same item with its position, so a
partner that was down asks for `?after=<the last position it saw>` and catches up."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.params import Parameter

from scheduler.directory import Principal
from scheduler.http.deps import Services
from scheduler.http.schemas import MAX_ID, UUID_PATTERN

MAX_LIMIT = 500


class FeedPage(msgspec.Struct, kw_only=True):
    recipient: str
    items: list[dict[str, Any]]
    next_after: int
    has_more: bool


@get("/v1/feed", operation_id="readFeed", tags=["notifications"],
     summary="Everything addressed to the caller after a position (the webhook items, gap-free)")
async def read_feed(
    services: Services,
    principal: Principal,
    after: Annotated[int, Parameter(ge=0, le=MAX_ID,
                                    description="the last position already seen (0: from the start)")] = 0,
    limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = 100,
    recipient: Annotated[str | None, Parameter(
        pattern=f"^(clinic|prescriber):{UUID_PATTERN[1:]}", max_length=47,
        description="operator only: clinic:<id> or prescriber:<id>")] = None,
) -> FeedPage:
    feed, page = await services.notifications.feed(principal, recipient, after, limit)
    return FeedPage(
        recipient=feed.ref, items=page.items, next_after=page.items[-1]["position"] if page.items else after,
        has_more=page.has_more,
    )
