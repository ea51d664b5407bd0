"""The rate-limiting middleware on its own (a stand-in directory and app): who is answered when, and how."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace
from typing import Any

import pytest
from scheduler.directory import Principal
from scheduler.http.deps import AUTHENTICATED
from scheduler.http.ratelimit import RateLimits, rate_limiting

pytestmark = pytest.mark.timeout(30)


class Directory:
    def __init__(self) -> None:
        self.lookups = 0

    def known(self, key: str) -> Principal | None:
        return Principal("clinic", key, key) if key.startswith("good") else None

    async def authenticate(self, key: str) -> Principal | None:
        self.lookups += 1
        return self.known(key)


class Stack:
    """The middleware in front of an app that answers 200 and notes when, and whom it served."""

    def __init__(self, rate: float, burst: int) -> None:
        self.directory = Directory()
        self.served: list[tuple[float, Any]] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            self.served.append((time.monotonic(), scope.get(AUTHENTICATED)))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        self.app = rate_limiting(RateLimits.configure(rate, burst, 1000, 1000))(app)
        self.state = SimpleNamespace(state=SimpleNamespace(services=SimpleNamespace(directory=self.directory)))

    async def request(self, key: str | None) -> tuple[int, dict[str, str], Any]:
        headers = [(b"authorization", f"Bearer {key}".encode())] if key else []
        scope = {"type": "http", "method": "GET", "path": "/v1/courses", "headers": headers, "app": self.state,
                 "client": ("192.0.2.7", 40000)}
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, None, send)  # type: ignore[arg-type]
        start, body = sent
        return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, json.loads(body["body"])


async def test_a_flood_is_served_at_the_rate_in_turn_after_one_refusal_and_never_all_at_once() -> None:
    stack = Stack(rate=20, burst=5)
    started = time.monotonic()
    answers = await asyncio.gather(*(stack.request("good-flood") for _ in range(30)))
    statuses = [status for status, _, _ in answers]
    assert statuses.count(429) <= 2 and statuses.count(200) >= 28
    refused = next(a for a in answers if a[0] == 429)
    assert refused[1]["retry-after"] == "1" and refused[2]["type"] == "/problems/rate-limited"
    times = sorted(at - started for at, _ in stack.served)
    assert all(t < 0.1 for t in times[:5]), "the burst is served at once"
    later = times[5:]
    assert later[0] >= 0.95, "the rest waited for the Retry-After the first refusal gave"
    gaps = [b - a for a, b in zip(later, later[1:])]
    assert min(gaps) >= 1 / 20 - 0.01, "then one per 1/rate seconds, not all at once"
    for i, t in enumerate(times):  # never more than burst + rate * t
        assert i + 1 <= 5 + 20 * t + 1
    assert all(principal == Principal("clinic", "good-flood", "good-flood") for _, principal in stack.served)


async def test_headers_on_every_served_request_and_none_without_a_key() -> None:
    stack = Stack(rate=10, burst=20)
    status, headers, _ = await stack.request("good-a")
    assert status == 200
    assert headers["ratelimit-policy"] == '"default";q=20;w=2' and headers["ratelimit"] == '"default";r=19;t=1'
    status, headers, _ = await stack.request(None)
    assert status == 200 and "ratelimit" not in headers and stack.served[-1][1] is None


async def test_unknown_keys_are_401_then_429_without_a_lookup() -> None:
    stack = Stack(rate=10, burst=20)
    statuses = [(await stack.request(f"bad-{n}"))[0] for n in range(61)]
    assert statuses[:60] == [401] * 60 and statuses[60] == 429
    assert stack.directory.lookups == 60  # the 61st was refused before the database
    # Inside its Retry-After: held until then, and then looked up (a token came back meanwhile): once.
    sent = time.monotonic()
    assert (await stack.request("bad-again"))[0] == 401 and time.monotonic() - sent >= 0.9
    assert stack.directory.lookups == 61
    assert (await stack.request("good-b"))[0] == 200  # known keys from that address are not affected
