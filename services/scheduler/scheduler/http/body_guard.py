"""The first thing every request meets: a body too large is refused before it is buffered (413), a body that is
not JSON is refused by its content type (415), and JSON that is malformed, nested too deeply or carries a NUL
character is refused (422) before anything parses it again.

The body is read here once, bounded, and decoded strictly as the route's body type (what the OpenAPI document
says is what is accepted: no 0 for false, no "1" for 1). The result is handed on: to Litestar, which takes the
struct as it is instead of parsing the body again, and to the idempotency middleware, which compares requests by
what they parse to.

The HTML pages (under /pages/) post forms: a form body is bounded the same way and handed on as it is.

GET, HEAD, DELETE and OPTIONS requests take no body here: one sent with them is not read or judged (no 413, 415 or
422 for it), and nothing reads it after."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

from scheduler.http.problems import allowed_value_errors, send_problem

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
PARSED_JSON = "kact.json"  # scope key: the request's parsed JSON body (absent: no body)
NO_BODY = object()
SCHEMA_MISMATCH = "the body does not match its schema: "
# A JSON escape of NUL that is not itself an escaped backslash followed by "u0000".
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_JSON_TYPES = ("application/json",)
FORM_PREFIX = "/pages/"  # the HTML pages post forms (bounded here like any body, parsed by their handlers)
_FORM_TYPE = "application/x-www-form-urlencoded"
_WITHOUT_BODY = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})  # no route of these methods takes a body


def parsed_body(scope: Scope) -> Any:
    """The parsed JSON body the guard let through, or `NO_BODY`."""
    return scope.get(PARSED_JSON, NO_BODY)


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests containers deeper than `limit` (iteratively: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
    return media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


def _is_form(content_type: bytes) -> bool:
    return content_type.split(b";", 1)[0].strip().lower().decode("latin-1") == _FORM_TYPE


def body_guard(max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The middleware factory (Litestar calls it with the next app)."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def guard(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["method"] in _WITHOUT_BODY:
                await app(scope, receive, send)
                return
            headers = dict(scope["headers"])
            length_header = headers.get(b"content-length")
            chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
            try:
                length = int(length_header) if length_header is not None else None
            except ValueError:
                await send_problem(send, 422, "invalid-input", "The request is not valid",
                                   "Content-Length is not a number")
                return
            if length is not None and length > max_body_bytes:
                await send_problem(send, 413, "body-too-large", "Request body too large",
                                   f"the body may have at most {max_body_bytes} bytes")
                return
            if not length and not chunked:  # no body: nothing to read or check
                await app(scope, receive, send)
                return
            form = scope["path"].startswith(FORM_PREFIX) and _is_form(headers.get(b"content-type", b""))
            if not form and not _is_json(headers.get(b"content-type", b"")):
                await send_problem(send, 415, "unsupported-media-type", "Unsupported media type",
                                   "send the body as JSON with 'Content-Type: application/json'")
                return
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > max_body_bytes:  # refused as it arrives: never buffered whole
                    await send_problem(send, 413, "body-too-large", "Request body too large",
                                       f"the body may have at most {max_body_bytes} bytes")
                    return
                chunks.append(chunk)
                if not message.get("more_body"):
                    break
            body = b"".join(chunks)
            if body and not form:
                body_type = _body_type(scope.get("route_handler"))
                problem = _invalid_json(body, max_depth, body_type)
                if isinstance(problem, str):
                    # A value outside a closed set: the problem names the values the field takes.
                    named = allowed_value_errors(problem.removeprefix(SCHEMA_MISMATCH), body_type)
                    await send_problem(send, 422, "invalid-input", "The request is not valid",
                                       "; ".join([problem, *(e["message"] for e in named)]),
                                       **({"errors": named} if named else {}))
                    return
                scope[PARSED_JSON] = problem[0]  # type: ignore[literal-required]
                state = ScopeState.from_scope(scope)
                state.body, state.json = body, problem[0]  # Litestar takes the struct as it is

            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await app(scope, replay, send)

        return guard

    return middleware


_BODY_TYPE = "kact.body_type"  # the handler's `opt` key: its body type, found once and kept with the handler


def _body_type(handler: Any) -> Any:
    """The type a route handler takes its body as (its `data` parameter), or None."""
    if handler is None:
        return None
    if _BODY_TYPE not in handler.opt:
        data = handler.parsed_fn_signature.parameters.get("data")
        handler.opt[_BODY_TYPE] = data.annotation if data is not None else None
    return handler.opt[_BODY_TYPE]


def _invalid_json(body: bytes, max_depth: int, body_type: Any = None) -> str | tuple[Any]:
    """Why the body is refused, or (the parsed JSON,): as the handler's body type where it has one, strictly (no
    0 for false, no "1" for 1: what the OpenAPI document says is what is accepted)."""
    try:
        if body_type is None:
            value = msgspec.json.decode(body)
        else:
            value = msgspec.json.decode(body, type=body_type, strict=True)
    except RecursionError:
        return f"the JSON body is nested more than {max_depth} levels deep"
    except UnicodeDecodeError:
        return "the body is not valid UTF-8"
    except msgspec.ValidationError as error:
        return f"{SCHEMA_MISMATCH}{error}"
    except msgspec.DecodeError as error:
        return f"the body is not valid JSON: {error}"
    # Cheap first: a body with few brackets cannot nest deeply (a typed body nests only as its types do).
    if body_type is None and body.count(b"[") + body.count(b"{") > max_depth and _depth_exceeds(value, max_depth):
        return f"the JSON body is nested more than {max_depth} levels deep"
    if b"\\u0000" in body and _ESCAPED_NUL.search(body):
        return "strings must not contain the NUL character (\\u0000)"
    return (value,)
