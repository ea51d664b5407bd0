"""ASGI middleware for `Idempotency-Key` on POST: replay the first response, refuse a different body."""

from __future__ import annotations

import json
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from scheduler.http.deps import AUTHENTICATED, bearer_token
from scheduler.idempotency import Claim, Stored, request_hash

MAX_KEY_LENGTH = 255


def _problem(status: int, slug: str, title: str, detail: str) -> tuple[int, bytes]:
    body = {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail}
    return status, json.dumps(body).encode()


async def _send_stored(send: Send, status: int, body: bytes, media_type: bytes, replayed: bool) -> None:
    headers = [(b"content-type", media_type), (b"content-length", str(len(body)).encode())]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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
        problem_type = b"application/problem+json"
        if len(key) > MAX_KEY_LENGTH:
            await _send_stored(send, *_problem(422, "invalid-input", "The request is not valid",
                                               f"Idempotency-Key is longer than {MAX_KEY_LENGTH}"), problem_type, False)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        digest = request_hash("POST", scope["path"], body)
        claim, stored = await services.idempotency.claim(principal.ref, key, digest)
        if claim is Claim.MISMATCH:
            await _send_stored(send, *_problem(422, "idempotency-key-reused", "Idempotency-Key reused",
                                               "this Idempotency-Key was used with a different request"),
                               problem_type, False)
            return
        if claim is Claim.IN_PROGRESS:
            await _send_stored(send, *_problem(409, "idempotency-in-progress", "Request in progress",
                                               "a request with this Idempotency-Key is still running; retry later"),
                               problem_type, False)
            return
        if claim is Claim.REPLAY:
            assert stored is not None
            status, _, rest = stored.body.partition(b"\n")
            await _send_stored(send, stored.status_code, rest, status, True)
            return

        replayed = False

        async def replay_body() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        response: dict[str, Any] = {"status": 500, "media": b"application/json", "body": []}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        response["media"] = value
            elif message["type"] == "http.response.body":
                response["body"].append(message.get("body", b""))
            await send(message)

        try:
            await app(scope, replay_body, capture)
        finally:
            status = response["status"]
            # Successes and final refusals are remembered; conflicts and server errors may be retried.
            if status < 400 or (status < 500 and status != 409):
                body_bytes = response["media"] + b"\n" + b"".join(response["body"])
                await services.idempotency.finish(principal.ref, key, Stored(status, body_bytes))
            else:
                await services.idempotency.release(principal.ref, key)

    return middleware
