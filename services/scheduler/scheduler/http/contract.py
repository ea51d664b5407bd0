"""What the OpenAPI document says beyond what Litestar derives from the routes: every operation's real problem
responses (and no 400, which this API never answers), an example of every success response, request bodies that
refuse unknown fields, and the health routes without authentication. Applied once to the document the app serves
(and `contracts/openapi.json`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.openapi.spec import (
    BaseSchemaObject,
    Components,
    Example,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    Schema,
)

from scheduler.http import schemas
from scheduler.http.descriptions import DESCRIPTIONS
from scheduler.http.examples import MEDIA_RESPONSES, RESPONSES, UNHEALTHY
from scheduler.http.problems import MEDIA_TYPE

_STRING, _INTEGER, _OBJECT, _ARRAY = OpenAPIType.STRING, OpenAPIType.INTEGER, OpenAPIType.OBJECT, OpenAPIType.ARRAY

PROBLEM_SCHEMA = Schema(
    type=_OBJECT,
    description="An RFC 9457 problem. `type` names the rule or refusal; its page (`GET /problems/<name>`) explains it.",
    required=["type", "title", "status", "detail"],
    properties={
        "type": Schema(type=_STRING, description="/problems/<name>, stable per rule or refusal"),
        "title": Schema(type=_STRING),
        "status": Schema(type=_INTEGER, minimum=400, maximum=599),
        "detail": Schema(type=_STRING),
        "violations": Schema(type=_ARRAY, description="409: every course rule the command breaks", items=Schema(
            type=_OBJECT, required=["invariant", "detail"],
            properties={"invariant": Schema(type=_STRING, description="I1..I11, or a state rule such as "
                                                                       "course-closed"),
                        "detail": Schema(type=_STRING)})),
        "errors": Schema(type=_ARRAY, description="422: what is wrong with which part of the request",
                         items=Schema(type=_OBJECT)),
    },
)
_RETRY_AFTER = OpenAPIHeader(description="Seconds to wait before trying again", schema=Schema(type=_INTEGER))

# status: (component name, description, example type, example detail, headers)
PROBLEMS: dict[int, tuple[str, str, str, str, dict[str, OpenAPIHeader]]] = {
    401: ("Unauthorized", "No valid API key: send `Authorization: Bearer <api key>`.", "unauthorized",
          "the API key is not valid", {"WWW-Authenticate": OpenAPIHeader(schema=Schema(type=_STRING))}),
    403: ("Forbidden", "The key's principal may see the resource but not do this (a prescriber opening a course, "
                       "a clinic asking for the dose-approval queue, a clinic onboarding a clinic). A principal that "
                       "may not see the resource gets 404 instead (a clinic deciding a dose: only the prescriber it "
                       "is addressed to sees the approval).", "forbidden",
          "only a clinic's key can change a course", {}),
    404: ("NotFound", "No such resource, or not one this principal may see (another clinic's course does not exist "
                      "for you).", "not-found",
          "no course 6a1f7a58-5a43-4c55-9a0e-3c1f0c6c2d10", {}),
    409: ("Conflict", "The command breaks the course's rules (`violations` lists every one, I1..I11), the course "
                      "changed concurrently, a request with the same Idempotency-Key is still running, or an "
                      "earlier attempt of it already created the resource.",
          "rule-violations", "medicine sessions must start at least 7 days apart", {"Retry-After": _RETRY_AFTER}),
    413: ("PayloadTooLarge", "The body is larger than the server accepts (KACT_MAX_BODY_BYTES); refused before it "
                             "is read whole.", "body-too-large", "the body may have at most 1048576 bytes", {}),
    415: ("UnsupportedMediaType", "The body is not sent as `application/json`.", "unsupported-media-type",
          "send the body as JSON with 'Content-Type: application/json'", {}),
    422: ("InvalidInput", "The request is malformed or breaks an input rule (bounds, formats, an instant outside "
                          "2000-2099, ends before it starts, a clinic, room or clinician that is unknown, an "
                          "Idempotency-Key reused with another body).",
          "invalid-input", "ends_at must be after starts_at", {}),
    429: ("TooManyRequests", "This API key (or calendar feed) was used more often than its rate limit allows; "
                             "wait `Retry-After` "
                             "seconds. Every authenticated response carries `RateLimit-Policy` and `RateLimit` "
                             "(draft-ietf-httpapi-ratelimit-headers).", "rate-limited",
          "more than 60 requests at once or 20 per second with this key; retry after 1 s",
          {"Retry-After": _RETRY_AFTER,
           "RateLimit-Policy": OpenAPIHeader(description='e.g. "default";q=60;w=3', schema=Schema(type=_STRING)),
           "RateLimit": OpenAPIHeader(description='e.g. "default";r=0;t=1', schema=Schema(type=_STRING))}),
    503: ("Unavailable", "The database is unreachable: nothing was saved (`/problems/unavailable`), or the "
                         "connection broke while saving and the outcome is unknown (`/problems/outcome-unknown`).",
          "unavailable", "the database is unavailable; retry shortly", {"Retry-After": _RETRY_AFTER}),
}

# Operations with a 403 (a principal of the wrong kind) or a 404 without an id in their path.
FORBIDDEN = {
    "createClinic", "consentToPartnership", "endPartnership", "openCourse", "recordScreening", "bookSession", "rescheduleSession",
    "cancelSession", "confirmSession", "recordSession", "reportAdverseEvent", "withdrawDoseApproval", "recordDischarge", "requestDoseApproval", "acknowledgeMissedWindow",
    "completeCourse", "discontinueCourse", "listDoseApprovals", "redriveDelivery", "listSharedSessions",
    "holdSlot", "bookHold", "releaseHold", "listNextSlots", "planCourse", "holdPlan", "bookPlan",
    "createSignInLink",
}
NOT_FOUND_WITHOUT_ID = {"readFeed", "listDeadLetters", "listRelayDeadLetters", "listAccessLog"}
UNAUTHENTICATED = {"live", "ready", "deliveryHealth", "listProblemTypes", "getProblemType", "getRules",
                   "getCalendarFeed"}
# Operations without a key that still answer problems: a calendar feed's URL holds its credential (its token).
PUBLIC_PROBLEMS = {"getCalendarFeed": {404, 422, 503}}


# Operations that answer in one of several media types (a query parameter chooses): the schema of each.
MEDIA_SCHEMAS: dict[str, dict[str, Schema]] = {"exportCourse": {
    "application/x-ndjson": Schema(type=_STRING, description="One JSON object per line, one line per event"),
    "text/html; charset=utf-8": Schema(type=_STRING, description="An HTML page"),
    "application/fhir+json": Schema(type=_OBJECT, required=["resourceType", "type", "entry"], properties={
        "resourceType": Schema(type=_STRING, const="Bundle"), "type": Schema(type=_STRING, const="collection"),
        "entry": Schema(type=_ARRAY, items=Schema(type=_OBJECT, required=["fullUrl", "resource"]))},
        description="A FHIR R4 Bundle (https://hl7.org/fhir/R4/bundle.html)"),
}}


def _media_alternatives(operation_id: str, responses: dict[str, Any]) -> None:
    """The success response of an operation with several media types: each with its schema and its example."""
    media = MEDIA_SCHEMAS.get(operation_id)
    success = responses.get("200")
    if media is None or not isinstance(success, OpenAPIResponse):
        return
    success.description = "The export, in the media type of the format asked for"
    success.headers = {"Content-Disposition": OpenAPIHeader(
        description='inline; filename="course-<id>-history.ndjson" (timeline.html, fhir-bundle.json)',
        schema=Schema(type=_STRING))}
    success.content = {name: OpenAPIMediaType(schema=schema, examples={"success": Example(
        summary="A short course: opened, its medicine session booked, approved and held",
        value=Verbatim(MEDIA_RESPONSES[operation_id][name]))}) for name, schema in media.items()}


def problem_statuses(operation_id: str, method: str, path: str, has_parameters: bool, has_body: bool,
                     rate_limited: bool) -> set[int]:
    """The problem statuses an operation really answers."""
    if operation_id in PUBLIC_PROBLEMS:
        return PUBLIC_PROBLEMS[operation_id] | ({429} if rate_limited else set())
    if operation_id in UNAUTHENTICATED:
        return set()
    statuses = {401, 503}
    if rate_limited:
        statuses.add(429)
    if has_parameters or has_body or method == "post":
        statuses.add(422)
    if method == "post":  # an Idempotency-Key still running
        statuses.add(409)
    if method in ("post", "put"):  # a body of another type or size
        statuses |= {413, 415}
    if "{" in path or operation_id in NOT_FOUND_WITHOUT_ID:
        statuses.add(404)
    if operation_id in FORBIDDEN:
        statuses.add(403)
    return statuses


def _input_schemas() -> set[str]:
    return {name for name, value in vars(schemas).items()
            if isinstance(value, type) and issubclass(value, schemas.Input) and value is not schemas.Input}


NO_NUL = "^[^\\u0000]*$"


def _no_nul(schema: Schema) -> None:
    """Every free-text string of a request: no NUL character (the body guard refuses it)."""
    if schema.type == _STRING and not (schema.pattern or schema.format or schema.enum or schema.const):
        schema.pattern = NO_NUL
    for child in [*(schema.properties or {}).values(), *(schema.one_of or []), *(schema.any_of or []),
                  *([schema.items] if isinstance(schema.items, Schema) else [])]:
        if isinstance(child, Schema):
            _no_nul(child)


@dataclass
class Verbatim(BaseSchemaObject):
    """A JSON value written into the document as it is. Litestar drops every None from the dictionaries it writes,
    even inside an example's value, where a null is data (`"decided_at": null`): an example wrapped in this keeps
    them."""

    value: Any

    def to_schema(self) -> Any:
        return self.value


def _success_examples(operation_id: str, responses: dict[str, Any], has_body: bool) -> None:
    """The example of the operation's success response (examples.RESPONSES), on each of its media types."""
    summary = "The answer to the example request" if has_body else "An example answer"
    for status, response in responses.items():
        if not status.startswith("2") or not isinstance(response, OpenAPIResponse) or not response.content:
            continue
        if operation_id not in RESPONSES:
            continue  # a contract test names the operation
        for media in response.content.values():
            media.examples = {"success": Example(summary=summary, value=Verbatim(RESPONSES[operation_id]))}


def complete(doc: OpenAPI, rate_limited: bool = False) -> OpenAPI:
    components = doc.components if isinstance(doc.components, Components) else Components()
    doc.components = components
    components.schemas = {**(components.schemas or {}), "Problem": PROBLEM_SCHEMA}
    components.responses = {**(components.responses or {}), **{
        name: OpenAPIResponse(description=description, headers=headers or None, content={MEDIA_TYPE: OpenAPIMediaType(
            schema=Reference(ref="#/components/schemas/Problem"),
            examples={slug: Example(summary=description.split(".")[0], value={
                "type": f"/problems/{slug}", "title": name, "status": status, "detail": detail})})})
        for status, (name, description, slug, detail, headers) in PROBLEMS.items()}}
    for name in _input_schemas() & set(components.schemas):
        schema = components.schemas[name]
        if isinstance(schema, Schema):
            schema.additional_properties = False
            _no_nul(schema)
    for path, item in (doc.paths or {}).items():
        for method in ("get", "post", "put", "patch", "delete"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            if not operation.description:
                operation.description = DESCRIPTIONS.get(operation.operation_id or "")
            responses = dict(operation.responses or {})
            responses.pop("400", None)
            if operation.operation_id in UNAUTHENTICATED:
                operation.security = []
            if operation.operation_id == "getProblemType":
                responses["404"] = Reference(ref="#/components/responses/NotFound")
                responses["422"] = Reference(ref="#/components/responses/InvalidInput")
            if operation.operation_id in ("ready", "deliveryHealth") and "503" not in responses:
                health = responses["200"].content["application/json"].schema  # type: ignore[union-attr,index]
                responses["503"] = OpenAPIResponse(
                    description="Not healthy: a check failed (each check says which)",
                    content={"application/json": OpenAPIMediaType(schema=health, examples={
                        "unhealthy": Example(summary="A check failed",
                                             value=Verbatim(UNHEALTHY[operation.operation_id]))})})
            _success_examples(operation.operation_id or "", responses, operation.request_body is not None)
            _media_alternatives(operation.operation_id or "", responses)
            for status in sorted(problem_statuses(operation.operation_id or "", method, path,
                                                  bool(operation.parameters), operation.request_body is not None,
                                                  rate_limited)):
                responses[str(status)] = Reference(ref=f"#/components/responses/{PROBLEMS[status][0]}")
            operation.responses = responses
    return doc
