"""Calendar feeds of clinicians and rooms: issued (the subscription URL shown once), listed (never a token) and
revoked by the operator or the clinic of the clinician or room; fetched as iCalendar by calendar clients with the
URL alone (no key: the token in it is the credential)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, Response, delete, get, post
from litestar.params import Parameter

from scheduler.calendar_feeds import TOKEN_PATTERN
from scheduler.directory import Principal
from scheduler.http.deps import Services, request_now
from scheduler.http.examples import body
from scheduler.http.ics import MEDIA_TYPE, render
from scheduler.http.schemas import CalendarFeed, CalendarFeedCreate, IssuedCalendarFeed

TAGS = ["calendar feeds"]
FEED_PATH = "/calendar-feeds"
CLINICIAN = "/v1/clinicians/{clinician_id:uuid}/calendar-feeds"
ROOM = "/v1/clinics/{clinic_id:uuid}/rooms/{room_id:uuid}/calendar-feeds"
ISSUED = ("The new feed with its subscription URL (`url`), shown only in this response: subscribe to it in Google "
          "Calendar (Other calendars, From URL) or Outlook (Add calendar, Subscribe from web). The token in it is "
          "stored only as a hash; revoke the feed to end the subscription.")

Token = Annotated[str, Parameter(pattern=TOKEN_PATTERN, max_length=52,
                                 description="The feed's token, from the URL its creation answered")]


def _view(row: dict[str, Any], cls: type[CalendarFeed] = CalendarFeed, **extra: Any) -> Any:
    return cls(id=row["id"], resource=row["resource"], resource_id=row["resource_id"], clinic_id=row["clinic_id"],
               label=row["label"], created_at=row["created_at"], created_by=row["created_by"],
               revoked_at=row["revoked_at"], revoked_by=row["revoked_by"], **extra)


def _issued(request: Request[Any, Any, Any], row: dict[str, Any], token: str) -> IssuedCalendarFeed:
    base = str(request.base_url).rstrip("/")  # behind a proxy, as uvicorn's forwarded headers say
    return _view(row, IssuedCalendarFeed, url=f"{base}{FEED_PATH}/{token}/calendar.ics")  # type: ignore[no-any-return]


@post(CLINICIAN, operation_id="createClinicianCalendarFeed", tags=TAGS, status_code=201,
      summary="A calendar feed of the clinician's sessions (operator or its clinic); its URL is shown only here",
      description=ISSUED)
async def create_clinician_feed(request: Request[Any, Any, Any], clinician_id: UUID, data: body(CalendarFeedCreate),
                                principal: Principal, services: Services) -> IssuedCalendarFeed:
    row, token = await services.calendar_feeds.issue(principal, "clinician", clinician_id, None, data.label)
    return _issued(request, row, token)


@get(CLINICIAN, operation_id="listClinicianCalendarFeeds", tags=TAGS,
     summary="The clinician's calendar feeds, revoked ones included (never their URLs)")
async def list_clinician_feeds(clinician_id: UUID, principal: Principal, services: Services) -> list[CalendarFeed]:
    return [_view(row) for row in await services.calendar_feeds.of(principal, "clinician", clinician_id, None)]


@delete(CLINICIAN + "/{feed_id:uuid}", operation_id="revokeClinicianCalendarFeed", tags=TAGS,
        summary="Revoke a calendar feed of the clinician: its URL answers 404 from now on")
async def revoke_clinician_feed(clinician_id: UUID, feed_id: UUID, principal: Principal, services: Services) -> None:
    await services.calendar_feeds.revoke(principal, "clinician", clinician_id, None, feed_id)


@post(ROOM, operation_id="createRoomCalendarFeed", tags=TAGS, status_code=201,
      summary="A calendar feed of the room's sessions (operator or its clinic); its URL is shown only here",
      description=ISSUED)
async def create_room_feed(request: Request[Any, Any, Any], clinic_id: UUID, room_id: UUID,
                           data: body(CalendarFeedCreate), principal: Principal,
                           services: Services) -> IssuedCalendarFeed:
    row, token = await services.calendar_feeds.issue(principal, "room", room_id, clinic_id, data.label)
    return _issued(request, row, token)


@get(ROOM, operation_id="listRoomCalendarFeeds", tags=TAGS,
     summary="The room's calendar feeds, revoked ones included (never their URLs)")
async def list_room_feeds(clinic_id: UUID, room_id: UUID, principal: Principal,
                          services: Services) -> list[CalendarFeed]:
    return [_view(row) for row in await services.calendar_feeds.of(principal, "room", room_id, clinic_id)]


@delete(ROOM + "/{feed_id:uuid}", operation_id="revokeRoomCalendarFeed", tags=TAGS,
        summary="Revoke a calendar feed of the room: its URL answers 404 from now on")
async def revoke_room_feed(clinic_id: UUID, room_id: UUID, feed_id: UUID, principal: Principal,
                           services: Services) -> None:
    await services.calendar_feeds.revoke(principal, "room", room_id, clinic_id, feed_id)


@get(FEED_PATH + "/{token:str}/calendar.ics", operation_id="getCalendarFeed", tags=TAGS, media_type=MEDIA_TYPE,
     summary="The feed's sessions as iCalendar (RFC 5545), for calendar clients: no key, the URL is the credential")
async def get_calendar_feed(request: Request[Any, Any, Any], token: Token, services: Services) -> Response[str]:
    now = request_now(request, services)
    feed = await services.calendar_feeds.feed(token, now)
    return Response(render(feed.name, feed.entries, feed.locations, now).decode(), media_type=MEDIA_TYPE,
                    headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"})


ROUTES = [create_clinician_feed, list_clinician_feeds, revoke_clinician_feed, create_room_feed, list_room_feeds,
          revoke_room_feed, get_calendar_feed]
