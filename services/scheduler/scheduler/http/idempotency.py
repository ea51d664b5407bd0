"""ASGI middleware for `Idempotency-Key` on POST: replay the first response, refuse a different body.

It runs after the body guard, so the body it compares is bounded and already parsed. The response is held back
until it is stored: a retry that arrives the moment the client has its answer finds the answer, not a claim.

A claimed request is seeded: the ids of what it creates derive from its key and body (`scheduler.application.ids`),
so a request run again once its claim's lease ran out (the first answer lost) names the same resources, which
exist: the store refuses them (409 already-created) and nothing is created twice."""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from scheduler.application.ids import request_seed, seeded
from scheduler.http.body_guard import NO_BODY, parsed_body
from scheduler.http import observe
from scheduler.http.problems import MEDIA_TYPE, OUTCOME_HEADER, send_problem
from scheduler.http.deps import AUTHENTICATED, bearer_token
from scheduler.idempotency import Claim, Stored, request_hash

log = logging.getLogger("kact.idempotency")
MAX_KEY_LENGTH = 255


async def _send_stored(send: Send, status: int, body: bytes, media_type: bytes, replayed: bool) -> None:
    if status >= 400 and media_type == MEDIA_TYPE.encode():  # the replayed problem's type, for its log line
        try:
            observe.note(json.loads(body).get("type"))
        except (ValueError, AttributeError):
            pass
    headers = [(b"content-type", media_type), (b"content-length", str(len(body)).encode())]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _remembered(status: int) -> bool:
    """Successes and final refusals are remembered; conflicts, throttling and server errors may be retried."""
    return status < 400 or (status < 500 and status not in (409, 429))


def idempotency_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key = headers.get(b"idempotency-key", b"").decode("latin-1").strip()
        if not key:
            await app(scope, receive, send)
            return
        services = scope["app"].state.services
        principal = scope.get(AUTHENTICATED)  # the rate limiter, outside this middleware, authenticated it
        if principal is None and (token := bearer_token(scope["headers"])) is not None:
            principal = await services.directory.authenticate(token)
        if principal is None:  # unauthenticated: the handler answers 401
            await app(scope, receive, send)
            return
        if len(key) > MAX_KEY_LENGTH or not key.isprintable():
            await send_problem(send, 422, "invalid-input", "The request is not valid",
                               f"Idempotency-Key must be at most {MAX_KEY_LENGTH} printable characters")
            return
        body = parsed_body(scope)
        digest = request_hash("POST", scope["path"], None if body is NO_BODY else body)
        claimed = await services.idempotency.claim(principal.ref, key, digest)
        if claimed.claim is Claim.MISMATCH:
            await send_problem(send, 422, "idempotency-key-reused", "Idempotency-Key reused",
                               "this Idempotency-Key was used with a different request")
            return
        if claimed.claim is Claim.IN_PROGRESS:
            await send_problem(send, 409, "idempotency-in-progress", "Request in progress",
                               "a request with this Idempotency-Key is still running; retry later",
                               headers=[(b"retry-after", b"1")])
            return
        if claimed.claim is Claim.REPLAY:
            stored = claimed.stored
            status, _, rest = stored.body.partition(b"\n")
            await _send_stored(send, stored.status_code, rest, status, True)
            return

        held: list[Message] = []  # the response, sent once it is stored

        async def hold(message: Message) -> None:
            held.append(message)

        try:
            with seeded(request_seed(principal.ref, key, digest)):  # a rerun creates nothing anew: ids.new_id
                await app(scope, receive, hold)
        finally:
            await _settle(services.idempotency, principal.ref, key, claimed.lease, held)
        for message in held:
            await send(message)

    return middleware


async def _settle(keys: Any, principal: str, key: str, lease: Any, held: list[Message]) -> None:
    """Store the response (or release the claim, if it may be retried). A failure here loses no request: an
    unstored claim runs out its lease, and the client gets the response the command produced."""
    start = next((m for m in held if m["type"] == "http.response.start"), None)
    status = start["status"] if start is not None else 500
    headers = dict(start.get("headers", [])) if start is not None else {}
    if headers.get(OUTCOME_HEADER.encode()) == b"unknown":
        # It may have been saved: a retry within the lease is told "in progress", not run a second time.
        return
    try:
        if _remembered(status):
            media = next((v for n, v in start.get("headers", []) if n.lower() == b"content-type"), b"application/json")
            body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
            await keys.finish(principal, key, lease, Stored(status, media + b"\n" + body))
        else:
            await keys.release(principal, key, lease)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        log.warning("Idempotency-Key %r of %s not settled (its lease will run out): %s", key, principal, error)
