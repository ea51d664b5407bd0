"""The audit export of one course (operators only): its history as NDJSON, one line per event with its link in the
hash chain; a readable HTML timeline; FHIR R4 resources in a collection Bundle. The renderings are pure functions of
the course's events (as the event store gives them, decrypted); `Exports` is the use case that reads them, checks
who asks and logs the access first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from scheduler.api_keys import Principal
from scheduler.application.attribution import actor_of, event_data, event_type
from scheduler.application.courses import Courses
from scheduler.application.errors import CourseNotFoundError
from scheduler.application.export_fhir import fhir_bundle
from scheduler.application.export_html import html_timeline

ACTION = "export_course"  # the access log's action for every export, whatever its format
MEDIA_TYPES = {"ndjson": "application/x-ndjson", "html": "text/html; charset=utf-8", "fhir": "application/fhir+json"}
FILE_NAMES = {"ndjson": "history.ndjson", "html": "timeline.html", "fhir": "fhir-bundle.json"}
FORMATS = tuple(MEDIA_TYPES)

ChainLinks = Callable[[UUID], Mapping[int, Any]]


def chain_links(course_id: UUID) -> dict[int, Any]:
    """Each event's link in the course's hash chain, by version. THE ONE PLACE the hash chain is wired in (issue 14,
    `kact audit verify`): until it is, no event has a link, and every NDJSON line says `"chain": null`."""
    return {}


@dataclass(frozen=True)
class Export:
    format: str
    media_type: str
    file_name: str
    body: bytes


def render(fmt: str, course_id: UUID, events: list[Any], links: Mapping[int, Any], generated_at: datetime) -> Export:
    if fmt == "ndjson":
        body = ndjson(course_id, events, links)
    elif fmt == "html":
        body = html_timeline(course_id, events, links, generated_at).encode()
    elif fmt == "fhir":
        body = msgspec.json.encode(fhir_bundle(course_id, events, generated_at))
    else:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    return Export(fmt, MEDIA_TYPES[fmt], FILE_NAMES[fmt], body)


def ndjson_line(course_id: UUID, event: Any, link: Any) -> dict[str, Any]:
    """An event as `GET /v1/courses/{id}/events` shows it (`time`: when it was recorded; `occurred_at`: when it
    happened), with the course it belongs to and its link in the hash chain (None: not linked)."""
    data = event_data(event)
    return {"course_id": str(course_id), "version": event.originator_version, "type": event_type(event),
            "topic": type(event).TOPIC, "time": event.timestamp, "occurred_at": event.occurred_at,
            "principal": event.by, "actor": asdict(actor_of(event, data)), "data": data, "chain": link}


def ndjson(course_id: UUID, events: list[Any], links: Mapping[int, Any]) -> bytes:
    return b"".join(msgspec.json.encode(ndjson_line(course_id, e, links.get(e.originator_version))) + b"\n"
                    for e in events)


class Exports:
    """Exports a course for the operator; to anyone else no course exists (404), as it does not in any other read of
    a course they may not see. The access is logged (once per export, whatever its formats) before anything is
    rendered."""

    def __init__(self, courses: Courses, log_access: Callable[[Principal, str, UUID | None], Awaitable[None]],
                 in_thread: Callable[[Callable[[], Any]], Awaitable[Any]], clock: Callable[[], datetime],
                 links: ChainLinks = chain_links) -> None:
        self.courses, self.log_access, self.in_thread, self.clock, self.links = (
            courses, log_access, in_thread, clock, links)

    async def export(self, principal: Principal, course_id: UUID, formats: Sequence[str]) -> list[Export]:
        if principal.kind != "operator":
            raise CourseNotFoundError(course_id)
        events: list[Any] = await self.in_thread(lambda: self.courses.history(course_id))
        await self.log_access(principal, ACTION, course_id)
        links: Mapping[int, Any] = await self.in_thread(lambda: self.links(course_id))
        now = self.clock()
        return await self.in_thread(lambda: [render(fmt, course_id, events, links, now) for fmt in formats])
