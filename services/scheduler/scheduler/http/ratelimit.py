"""Rate limits per API key: a token bucket per principal, checked before the body is read (ASGI middleware).

Every authenticated response carries the limit as draft-ietf-httpapi-ratelimit-headers-11 describes it:
`RateLimit-Policy: "default";q=<burst>;w=<seconds to refill it>` and `RateLimit: "default";r=<requests left
now>;t=<seconds until the full burst is back>`; a refused request is a 429 problem with `Retry-After` (and
there `t` is the same number: the draft asks that Retry-After not end before the effective window).

A client that sends again while the Retry-After it was given is still running is not answered at once: its
requests queue and are let through one per 1/rate seconds once that time is up (see `take`). A client that
honours Retry-After never waits; a flood over many connections gets the key's rate and no more of the
event loop than that.

A calendar feed (`/calendar-feeds/<token>/...`) is fetched without a key: each feed has a bucket of its own
(keyed by its token's hash: a burst of 10, then one every 5 s, far more than calendar clients poll), and a
token that turns out not to exist (404) is charged to the client's address like an unknown key, so guessing
tokens reaches the database at most as often as guessing keys.

Requests without a key pass untouched (the handler answers 401 or serves a public route; neither reads the
database), and so does every request to a route that needs no key (`is_public`: health, the problem pages, the
OpenAPI document and its docs page), whatever key it carries: such a route never answers 401 or 429. A key this
process has not seen costs a database lookup, so unknown keys are charged to the client's address: once an
address has spent its allowance on keys that do not exist, its unknown keys are refused with 429 without a
lookup. The buckets live in the process: with several workers each gets an equal
share of every limit, so a client spread over all of them gets the configured total."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from scheduler.api_keys import hash_key
from scheduler.directory import Principal
from scheduler.http.deps import AUTHENTICATED, bearer_token
from scheduler.http.problems import send_problem

PRUNE_ABOVE = 10_000  # buckets kept before full ones are forgotten (a full bucket is the same as none)
MAX_HELD = 1_000  # refusals held back at once (each a sleeping task); beyond that they are answered at once


@dataclass(frozen=True)
class Limit:
    """`rate` requests per second sustained, `burst` at once."""

    name: str
    rate: float
    burst: int

    def share(self, workers: int) -> Limit:
        """This process's part of the limit when `workers` processes serve the same clients."""
        return Limit(self.name, self.rate / workers, max(1, math.ceil(self.burst / workers)))

    @property
    def policy(self) -> bytes:
        window = max(1, math.ceil(self.burst / self.rate))
        return f'"{self.name}";q={self.burst};w={window}'.encode()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    tokens: float  # left after this request
    limit: Limit

    @property
    def retry_after(self) -> int:
        """Whole seconds until a request would be allowed (at least 1: Retry-After has no fractions)."""
        return max(1, math.ceil((1 - self.tokens) / self.limit.rate))

    @property
    def header(self) -> bytes:
        if self.allowed:
            refill = max(0, math.ceil((self.limit.burst - self.tokens) / self.limit.rate - 1e-9))
            return f'"{self.limit.name}";r={math.floor(self.tokens)};t={refill}'.encode()
        return f'"{self.limit.name}";r=0;t={self.retry_after}'.encode()


class TokenBuckets:
    """One bucket per key: `burst` tokens, refilled at `rate` per second, a request takes one. Time is passed
    in (seconds on a monotonic clock); one event loop calls it, so there is nothing to lock. Each bucket also
    remembers until when its last refusal told the client to wait (`Retry-After`)."""

    def __init__(self) -> None:
        # key -> (tokens, at, full again at, told to wait until)
        self._buckets: dict[str, tuple[float, float, float, float]] = {}
        self._pruned_at = 0.0

    def take(self, key: str, limit: Limit, now: float) -> Decision:
        bucket = self._buckets.get(key)
        if bucket is None:
            tokens, waiting_until = float(limit.burst), 0.0
        else:
            tokens, waiting_until = min(limit.burst, bucket[0] + (now - bucket[1]) * limit.rate), bucket[3]
        allowed = tokens >= 1 - 1e-9  # a client exactly at the rate is not refused for a rounding error
        if allowed:
            tokens = max(0.0, tokens - 1)
        self._buckets[key] = (tokens, now, now + (limit.burst - tokens) / limit.rate, waiting_until)
        if len(self._buckets) > PRUNE_ABOVE and now - self._pruned_at > 1.0:
            self._prune(now)
        return Decision(allowed, tokens, limit)

    def tell_to_wait(self, key: str, until: float) -> None:
        """A refusal told the client of `key` to wait until `until` (after a `take`, so the bucket exists)."""
        tokens, at, full_at, waiting_until = self._buckets[key]
        self._buckets[key] = (tokens, at, full_at, max(waiting_until, until))

    def told_to_wait(self, key: str, now: float) -> float:
        """Seconds left of the last Retry-After this key was given (0 if none is running)."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else max(0.0, bucket[3] - now)

    def has_token(self, key: str, limit: Limit, now: float) -> bool:
        bucket = self._buckets.get(key)
        return bucket is None or bucket[0] + (now - bucket[1]) * limit.rate >= 1

    def __len__(self) -> int:
        return len(self._buckets)

    def _prune(self, now: float) -> None:
        self._pruned_at = now
        self._buckets = {key: bucket for key, bucket in self._buckets.items() if max(bucket[2], bucket[3]) > now}


# One calendar feed's fetches (clients poll every 15 minutes to a day; a person may press refresh a few times).
FEED_RATE = 0.2
FEED_BURST = 10


@dataclass(frozen=True)
class RateLimits:
    """The limits of one process: per key, for the operator key, for unknown keys (and calendar feeds) per client
    address, and per calendar feed."""

    key: Limit
    operator: Limit
    unknown_key: Limit
    feed: Limit = Limit("calendar-feed", FEED_RATE, FEED_BURST)

    @classmethod
    def configure(cls, rate: float, burst: int, operator_rate: float, operator_burst: int,
                  workers: int = 1) -> RateLimits | None:
        """None when `rate` is 0 (limits off)."""
        if rate <= 0:
            return None
        workers = max(1, workers)
        return cls(
            Limit("default", rate, burst).share(workers),
            Limit("operator", operator_rate, operator_burst).share(workers),
            Limit("unknown-key", UNKNOWN_KEY_RATE, UNKNOWN_KEY_BURST).share(workers),
            Limit("calendar-feed", FEED_RATE, FEED_BURST).share(workers),
        )

    def for_principal(self, principal: Principal) -> Limit:
        return self.operator if principal.kind == "operator" else self.key


# Lookups of keys that turn out not to exist, per client address: plenty for a mistyped key or a test suite,
# and a flood of made-up keys reaches the database at most this often.
UNKNOWN_KEY_RATE = 10.0
UNKNOWN_KEY_BURST = 60


# The routes that need no key (their operations have `security: []` in the OpenAPI document, a contract test
# checks that the two agree): a key sent to them is neither looked up nor charged. `/metrics` too (it is out of
# the document): it compares the operator key itself, without the database, unless KACT_METRICS_PUBLIC=1.
PUBLIC_PATHS = ("/problems", "/rules", "/schema", "/metrics")
FEED_PREFIX = "/calendar-feeds/"
PUBLIC_PREFIXES = ("/health/", "/problems/", "/schema/", FEED_PREFIX)


METRICS_PATH = "/metrics"
# The pages' sign-in forms (a key, or a one-time link's token) check a credential as a key does: each failure (401)
# costs the client's address, so guessing through a form is as slow as through the API.
PAGE_SIGN_IN_PREFIX = "/pages/sign-in"


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def rate_limiting(limits: RateLimits | None, clock: Callable[[], float] = time.monotonic) -> Callable[[ASGIApp], ASGIApp]:
    """The middleware: authenticate (from the directory's cache where the key is known), take a token from
    the principal's bucket, refuse with 429 or pass on with the principal in the scope and the headers added."""
    buckets = TokenBuckets()
    held = 0
    turns: dict[str, float] = {}  # key -> the moment its last held request may try again

    async def take(key: str, limit: Limit) -> Decision:
        """A token for `key`, or a refusal. A client that sends again before the Retry-After it was given ran
        out (one that ignores it, or floods over many connections) is held back instead of refused at once:
        its requests queue, one turn per 1/rate seconds from that moment, and each then takes a token or is
        refused; while some are queued, its new requests queue behind them. Refusing at once, however
        cheaply, lets a flood take the event loop from everyone else (the sooner it is answered, the sooner
        it asks again), and letting the queue go all at once would be a burst of its own."""
        nonlocal held
        now = clock()
        wait = buckets.told_to_wait(key, now)
        if key not in turns or held >= MAX_HELD:
            decision = buckets.take(key, limit, now)
            if decision.allowed or wait <= 0 or held >= MAX_HELD:
                if not decision.allowed:
                    buckets.tell_to_wait(key, now + decision.retry_after)
                return decision
        turn = max(now + wait, turns.get(key, now) + 1 / limit.rate)
        turns[key] = turn
        held += 1
        try:
            await asyncio.sleep(turn - now)
        finally:
            held -= 1
            if turns.get(key) == turn:
                del turns[key]  # the last one queued: the next request starts afresh
        decision = buckets.take(key, limit, clock())
        if not decision.allowed:
            buckets.tell_to_wait(key, clock() + decision.retry_after)
        return decision

    async def admit_address(scope: Scope, send: Send) -> tuple[str, bool] | None:
        """Before a credential that may not exist is looked up: the client's address, and whether admitting it took
        a token of its unknown-key allowance (spent on keys or tokens that did not exist, so it waited for one);
        None once refused (429 sent)."""
        assert limits is not None
        client = scope.get("client")
        address = f"address:{client[0] if client else '?'}"
        if buckets.has_token(address, limits.unknown_key, clock()):
            return address, False
        decision = await take(address, limits.unknown_key)
        if not decision.allowed:
            await _refuse(send, decision)
            return None
        return address, True

    def middleware_factory(app: ASGIApp) -> ASGIApp:
        async def address_checked(scope: Scope, receive: Receive, send: Send, failure: int,
                                  own: tuple[str, Limit] | None = None) -> None:
            """A request whose credential the route checks itself: a calendar feed's token (a `failure` 404, and
            the feed's `own` bucket), the operator key at `GET /metrics` (a 401, without the directory). Each
            failure costs the client's address a token, like a key that does not exist, so guessing is as slow
            there as anywhere."""
            admitted = await admit_address(scope, send)
            if admitted is None:
                return
            address, charged = admitted
            if own is not None:
                decision = await take(*own)
                if not decision.allowed:
                    await _refuse(send, decision)
                    return
            status = 0

            async def watching(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            await app(scope, receive, watching)
            if status == failure and not charged:
                assert limits is not None
                buckets.take(address, limits.unknown_key, clock())

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            if limits is not None and scope["path"].startswith(FEED_PREFIX):
                token = scope["path"][len(FEED_PREFIX):].split("/", 1)[0]
                await address_checked(scope, receive, send, 404, (f"feed:{hash_key(token)}", limits.feed))
                return
            if limits is not None and scope["path"] == METRICS_PATH:
                await address_checked(scope, receive, send, 401)
                return
            if limits is not None and scope["method"] == "POST" and scope["path"].startswith(PAGE_SIGN_IN_PREFIX):
                await address_checked(scope, receive, send, 401)
                return
            key = None if is_public(scope["path"]) else bearer_token(scope["headers"])
            if key is None:
                await app(scope, receive, send)
                return
            directory = scope["app"].state.services.directory
            principal = directory.known(key)
            if principal is None:
                admitted = None  # a lookup that finds nothing costs the address a token
                if limits is not None:
                    admitted = await admit_address(scope, send)
                    if admitted is None:
                        return
                principal = await directory.authenticate(key)
                if principal is None:
                    if admitted is not None and not admitted[1]:
                        buckets.take(admitted[0], limits.unknown_key, clock())
                    await send_problem(send, 401, "unauthorized", "Unauthorized", "the API key is not valid",
                                       headers=[(b"www-authenticate", b"Bearer")])
                    return
            scope[AUTHENTICATED] = principal  # type: ignore[literal-required]
            if limits is None:
                await app(scope, receive, send)
                return
            limit = limits.for_principal(principal)
            decision = await take(principal.ref, limit)
            if not decision.allowed:
                await _refuse(send, decision)
                return
            headers = [(b"ratelimit-policy", limit.policy), (b"ratelimit", decision.header)]

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), *headers]
                await send(message)

            await app(scope, receive, send_with_headers)

        return middleware

    return middleware_factory


async def _refuse(send: Send, decision: Decision) -> None:
    limit = decision.limit
    if limit.name == "unknown-key":
        detail = "too many requests with API keys or calendar feeds that do not exist from this address"
    elif limit.name == "calendar-feed":
        detail = f"this calendar feed was fetched more than {limit.burst} times at once or {limit.rate:g} per second"
    else:
        detail = f"more than {limit.burst} requests at once or {limit.rate:g} per second with this key"
    await send_problem(
        send, 429, "rate-limited", "Too many requests", f"{detail}; retry after {decision.retry_after} s",
        headers=[(b"retry-after", str(decision.retry_after).encode()), (b"ratelimit-policy", limit.policy),
                 (b"ratelimit", decision.header)],
        **{"violated-policies": [limit.name]},
    )
