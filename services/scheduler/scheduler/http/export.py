"""`GET /v1/audit/courses/{course_id}/export`: the operator's audit export of a course (NDJSON, HTML or FHIR R4)."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from litestar import Response, get
from litestar.params import Parameter

from scheduler.application.export import MEDIA_TYPES
from scheduler.directory import Principal
from scheduler.http.deps import Services


@get("/v1/audit/courses/{course_id:uuid}/export", operation_id="exportCourse", tags=["audit"],
     media_type=MEDIA_TYPES["ndjson"], summary="A course's history for an auditor: NDJSON, an HTML timeline or FHIR R4")
async def export_course(
    course_id: UUID, principal: Principal, services: Services,
    format: Literal["ndjson", "html", "fhir"] = Parameter(
        default="ndjson",
        description="`ndjson`: one event a line; `html`: a timeline to read; `fhir`: a FHIR R4 collection Bundle"),
) -> Response[bytes]:
    [export] = await services.exports.export(principal, course_id, [format])
    # Litestar appends "; charset=utf-8" to a text/* type itself (it would say it twice).
    media_type = export.media_type.split(";")[0] if export.media_type.startswith("text/") else export.media_type
    return Response(export.body, media_type=media_type, headers={
        "Content-Disposition": f'inline; filename="course-{course_id}-{export.file_name}"'})


ROUTES = [export_course]
