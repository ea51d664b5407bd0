"""Outbound webhooks (asyncpg): the tables of subscriptions per clinic and prescriber and of the delivery log
with every attempt (registered, read and redriven through `notifier.admin`), and the worker that signs each
delivery per Standard Webhooks and sends it with back-off and jitter.

A delivery is queued in the transaction that appends the item to the recipient's feed (`enqueue`), so a
processed event always has its webhooks queued, once. Any number of notifier processes run a
`DeliveryWorker` on the same tables: a worker claims due deliveries under row locks and leases each for the
length of one attempt, so one attempt is never sent by two workers; a worker that dies mid-attempt leaves
the lease to expire and the attempt is made again (receivers deduplicate on `webhook-id`).

Each attempt is a span (a client's) in the trace of the event it delivers (the CloudEvents `traceparent` of the
feed item's event) and sends its W3C `traceparent` header, so a receiver that traces continues that trace."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import os
import random
import secrets
import socket
import ssl
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
import httpcore
import httpx
import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from kact_contracts import access_log, tracing
from standardwebhooks import Webhook

from notifier.metrics import metrics

log = logging.getLogger("kact.notifier.webhooks")

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    id uuid PRIMARY KEY,
    owner_kind text NOT NULL CHECK (owner_kind IN ('clinic', 'prescriber')),
    owner_id text NOT NULL,
    url text NOT NULL,
    event_types text[] NOT NULL DEFAULT '{}',  -- empty: every event type
    secret bytea NOT NULL,  -- the whsec_ signing secret, AES-GCM encrypted: nonce || ciphertext
    created_at timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);
CREATE INDEX IF NOT EXISTS webhook_subscriptions_owner ON webhook_subscriptions (owner_kind, owner_id)
    WHERE disabled_at IS NULL;
CREATE TABLE IF NOT EXISTS deliveries (
    id uuid PRIMARY KEY,
    subscription_id uuid NOT NULL REFERENCES webhook_subscriptions (id),
    recipient_kind text NOT NULL,
    recipient_id text NOT NULL,
    event_id text NOT NULL,
    event_type text NOT NULL,
    feed_position bigint NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts int NOT NULL DEFAULT 0,  -- since the delivery was queued or last redriven
    next_attempt_at timestamptz,  -- while an attempt is in flight: the end of its lease
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_recipient ON deliveries (recipient_kind, recipient_id, created_at DESC);
CREATE INDEX IF NOT EXISTS deliveries_status ON deliveries (status, created_at DESC);
CREATE TABLE IF NOT EXISTS delivery_attempts (
    id bigserial PRIMARY KEY,
    delivery_id uuid NOT NULL REFERENCES deliveries (id),
    attempt int NOT NULL,  -- deliveries.attempts when it was made (counting restarts at a redrive)
    at timestamptz NOT NULL,
    status_code int,
    error text,
    duration_ms int NOT NULL
);
CREATE INDEX IF NOT EXISTS delivery_attempts_delivery ON delivery_attempts (delivery_id, id);
"""

# NOTIFY channels are database-wide: the schema in the name keeps two deployments (or test runs) on one
# server from waking each other's workers.
CHANNEL_SQL = "'kact_deliveries.' || current_schema()"
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the Standard Webhooks spec asks for 24 to 64 random bytes
LEASE_MARGIN_SECONDS = 10.0  # an attempt's lease: the request timeout plus this, for recording the result
IDLE_CHECK_SECONDS = 10.0  # the longest a worker sleeps without a notification (a lost LISTEN connection)
RETRY_SECONDS = 1.0
USER_AGENT = "kact-webhooks/1"
# What a database that went away raises (asyncpg leaves a connection cut mid-operation in an internal state error).
DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


class SecretBox:
    """AES-256-GCM for signing secrets: they must be usable to sign, so they are encrypted, not hashed.

    The key is derived (HKDF) from the deployment's cipher key, so the event store and the webhook secrets
    never share a key; the subscription id is the associated data, so a secret cannot be moved to another
    subscription's row."""

    def __init__(self, cipher_key: str) -> None:
        master = base64.b64decode(cipher_key, validate=True)
        if len(master) < 16:
            raise ValueError("the cipher key must be at least 16 bytes (base64)")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kact webhook secrets").derive(master)
        self._aead = AESGCM(derived)

    def seal(self, secret: str, subscription_id: UUID) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, secret.encode(), subscription_id.bytes)

    def open(self, sealed: bytes, subscription_id: UUID) -> str:
        return self._aead.decrypt(sealed[:12], sealed[12:], subscription_id.bytes).decode()


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, ...): exponential with full jitter,
    uniform in [0, min(cap, base * 2 ** (attempt - 1))], so that retries to a recovering receiver spread out."""
    ceiling = min(cap, base * 2 ** min(max(attempt - 1, 0), 64))
    return (rng or random).uniform(0, ceiling)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""
    return Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())


# Deliveries ------------------------------------------------------------------------------------------------


def not_public(address: str) -> bool:
    """Loopback, private, link-local, shared, reserved, multicast...: anything but a global unicast address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index is not part of the address
    except ValueError:
        return False  # a host name: resolved at delivery time
    return not ip.is_global or ip.is_multicast


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order (an address literal is itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in infos))


class NotPublicAddressError(httpcore.ConnectError):
    """A webhook's host resolved to an address that is not public: nothing was connected to."""


class CheckedAddresses(httpcore.AsyncNetworkBackend):
    """httpcore's network, connecting to exactly the addresses it checked: the host is resolved once, every
    address it resolved to must be public (unless private ones are allowed), and the connection goes to those
    addresses by number. A second lookup by the HTTP client (which a DNS rebinding attacker would answer
    with 127.0.0.1) never happens. httpcore takes the TLS server name (SNI, certificate check) and the Host
    header from the URL, not from here, so both stay the host name's."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._network = httpcore.AnyIOBackend()  # what httpcore picks under asyncio

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
        if not self.allow_private:
            for address in addresses:
                if not_public(address):
                    raise NotPublicAddressError(
                        f"{host} is {address}, not a public address (KACT_WEBHOOK_ALLOW_PRIVATE=1 allows it)")
        failure: Exception = httpcore.ConnectError(f"{host} resolves to no address")
        for address in addresses:
            try:
                return await self._network.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                       socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are not delivered over Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


def delivery_client(timeout: float, concurrency: int, allow_private: bool,
                    verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """The HTTP client webhooks are sent with: connections only to checked addresses, no redirects."""
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=httpx.Limits(max_connections=concurrency))
    # httpx 0.28 takes no network backend (encode/httpx#3749 would add one): its connection pool is rebuilt
    # with ours, as the transport builds it otherwise. The webhook tests fail if a new httpx moves `_pool`.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(verify=verify), max_connections=concurrency,
        network_backend=CheckedAddresses(allow_private),
    )
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False,
                             headers={"user-agent": USER_AGENT})


def queue_deliveries_sql(item: str) -> str:
    """A statement (`WITH queued AS (...) <select>`) inserting one delivery per active webhook of recipient
    ($1 kind, $2 id) that wants the event ($3 id, $4 type), with `feed_position` and `payload` read from the
    relation `item`, once per webhook and event, and waking the delivery workers if any was queued. It selects
    how many were queued. `item` may be a CTE the caller defines first (`... , queued AS`)."""
    return (
        "queued AS ("
        " INSERT INTO deliveries (id, subscription_id, recipient_kind, recipient_id, event_id, event_type,"
        "  feed_position, payload, next_attempt_at)"
        f" SELECT gen_random_uuid(), s.id, $1, $2, $3, $4, i.feed_position, i.payload, now() FROM {item} i,"
        " webhook_subscriptions s"
        " WHERE s.owner_kind = $1 AND s.owner_id = $2 AND s.disabled_at IS NULL"
        "  AND (cardinality(s.event_types) = 0 OR $4 = ANY (s.event_types))"
        " ON CONFLICT (subscription_id, event_id) DO NOTHING RETURNING 1) "
        f"SELECT (SELECT count(*) FROM queued) AS queued,"
        f" (SELECT pg_notify({CHANNEL_SQL}, '') WHERE EXISTS (SELECT 1 FROM queued)) AS woken"
    )


ENQUEUE_SQL = "WITH " + queue_deliveries_sql("(SELECT $5::bigint AS feed_position, $6::jsonb AS payload)")


async def enqueue(
    conn: asyncpg.Connection, *, recipient_kind: str, recipient_id: str, event_id: str, event_type: str,
    feed_position: int, envelope: dict[str, Any],
) -> int:
    """Queue one delivery of `envelope` per active webhook of the recipient that wants `event_type`; call it
    inside the transaction that processes the event. An event queued again is not queued twice. Returns how
    many deliveries were queued; the workers wake when the transaction commits."""
    row = await conn.fetchrow(
        ENQUEUE_SQL, recipient_kind, recipient_id, event_id, event_type, feed_position,
        msgspec.json.encode(envelope).decode(),
    )
    return int(row["queued"])


def _without_secrets(url: str) -> str:
    """A webhook URL as logged: scheme, host, port and path (its user info and query may hold a token)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
    except ValueError:
        return "(unparsable URL)"


def _log_fields(payload: str) -> dict[str, str]:
    """The course and trace of a delivery's feed item, for its log lines."""
    try:
        event = msgspec.json.decode(payload).get("event") or {}
    except (msgspec.DecodeError, AttributeError):
        return {}
    fields = {"course_id": event.get("courseid"), "trace_id": tracing.trace_id_of(_event_traceparent({"event": event}))}
    return {k: v for k, v in fields.items() if isinstance(v, str)}


def _uuid(text: str | None) -> UUID | None:
    try:
        return UUID(text) if text is not None else None
    except ValueError:
        return None


def _event_traceparent(item: Any) -> str | None:
    """The trace context of the event a feed item carries (None: none, or not a feed item)."""
    event = item.get("event") if isinstance(item, dict) else None
    value = event.get("traceparent") if isinstance(event, dict) else None
    return value if isinstance(value, str) else None


class DeliveryWorker:
    """Sends due deliveries until stopped: wakes on NOTIFY (a new or redriven delivery) and at the next
    retry's time, never by tight polling."""

    def __init__(
        self, pool: asyncpg.Pool, *, cipher_key: str | None, timeout: float = 5.0, max_attempts: int = 8,
        base_delay: float = 1.0, max_delay: float = 300.0, concurrency: int = 16,
        client: httpx.AsyncClient | None = None, rng: random.Random | None = None, allow_private: bool = False,
    ) -> None:
        if not cipher_key:
            raise ValueError("webhook deliveries need the cipher key (KACT_CIPHER_KEY) to read signing secrets")
        if max_attempts < 1 or timeout <= 0 or base_delay < 0 or max_delay < 0 or concurrency < 1:
            raise ValueError("webhook settings out of range")
        self.pool = pool
        self.box = SecretBox(cipher_key)
        self.timeout, self.max_attempts = timeout, max_attempts
        self.base_delay, self.max_delay = base_delay, max_delay
        self.concurrency = concurrency
        self.allow_private = allow_private  # else: no webhook to loopback, private or link-local addresses
        self.rng = rng or random.Random()
        self._client = client
        self.attempted = 0  # attempts this worker made (for tests and metrics)
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._done = asyncio.Event()
        self._started = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._listener: Any = None  # the pool connection holding LISTEN, kept out of the pool while listening
        self._listener_lost = False
        self._channel: str | None = None

    async def run(self) -> None:
        """Deliver until `stop()`; attempts in flight then finish and are recorded."""
        self._started = True
        client = self._client or delivery_client(self.timeout, self.concurrency, self.allow_private)
        try:
            while not self._stopping.is_set():
                self._wake.clear()  # before claiming: a notification arriving meanwhile is not lost
                try:
                    await self._listen()
                    free = self.concurrency - len(self._in_flight)
                    claimed = await self._claim(free) if free > 0 else []
                    for row in claimed:
                        task = asyncio.create_task(self._attempt(client, row), name=f"webhook-{row['id']}")
                        self._in_flight.add(task)
                        task.add_done_callback(self._finished)
                    if free > 0 and len(claimed) == free:
                        continue  # more may be due
                    wait = IDLE_CHECK_SECONDS if free <= 0 else await self._seconds_to_next_due()
                except DATABASE_ERRORS as exc:
                    log.warning("webhooks: database unavailable (%s); retrying", exc)
                    await self._unlisten()
                    wait = RETRY_SECONDS
                await self._sleep(wait)
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
        finally:
            await self._unlisten()
            if self._client is None:
                await client.aclose()
            self._done.set()

    async def stop(self) -> None:
        """Stop claiming, let the attempts in flight finish and be recorded, and return once `run` has."""
        self._stopping.set()
        self._wake.set()
        if self._started:
            await self._done.wait()

    # The loop --------------------------------------------------------------------------------------------

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("webhooks: an attempt failed unexpectedly", exc_info=task.exception())

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(seconds, 0.0))

    def _listening(self) -> bool:
        if self._listener is None or self._listener_lost:
            return False
        try:
            return not self._listener.is_closed()
        except asyncpg.InterfaceError:  # the pool took the connection back when it died
            return False

    async def _listen(self) -> None:
        if self._listening():
            return
        await self._unlisten()
        conn = await self.pool.acquire()
        try:
            self._listener_lost = False
            # A lost connection hears no more notifications: wake, and listen again on a new one.
            conn.add_termination_listener(self._terminated)
            self._channel = await conn.fetchval(f"SELECT {CHANNEL_SQL}")
            await conn.add_listener(self._channel, self._notified)
        except BaseException:
            with contextlib.suppress(*DATABASE_ERRORS):
                conn.remove_termination_listener(self._terminated)
                await self.pool.release(conn)
            raise
        self._listener = conn

    async def _unlisten(self) -> None:
        conn, self._listener = self._listener, None
        if conn is None:
            return
        with contextlib.suppress(*DATABASE_ERRORS):
            conn.remove_termination_listener(self._terminated)
            if not conn.is_closed():
                await conn.remove_listener(self._channel, self._notified)
        with contextlib.suppress(*DATABASE_ERRORS):
            await self.pool.release(conn)

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    def _terminated(self, *_: Any) -> None:
        self._listener_lost = True
        self._wake.set()

    async def _claim(self, limit: int) -> list[asyncpg.Record]:
        """Lease up to `limit` due deliveries to this worker, counting the attempt now."""
        lease = self.timeout + LEASE_MARGIN_SECONDS
        async with self.pool.acquire() as conn, conn.transaction():
            # A last attempt whose worker died before recording it: no attempts are left to make.
            failed = await conn.execute(
                "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, "
                "last_error = coalesce(last_error || '; ', '') || 'the last attempt did not complete' "
                "WHERE status = 'pending' AND next_attempt_at <= now() AND attempts >= $1",
                self.max_attempts,
            )
            if failed != "UPDATE 0":
                metrics().webhook_deliveries.labels("failed").inc(int(failed.split()[-1]))
            return await conn.fetch(
                "WITH due AS ("
                " SELECT d.id FROM deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id"
                " WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND s.disabled_at IS NULL"
                " ORDER BY d.next_attempt_at LIMIT $1 FOR UPDATE OF d SKIP LOCKED) "
                "UPDATE deliveries d SET attempts = d.attempts + 1,"
                " next_attempt_at = now() + $2::float8 * interval '1 second' "
                "FROM due, webhook_subscriptions s WHERE d.id = due.id AND s.id = d.subscription_id "
                "RETURNING d.id, d.attempts, d.feed_position, d.event_id, d.event_type, d.payload::text AS payload,"
                " s.id AS subscription_id, s.url, s.secret",
                limit, lease,
            )

    async def _seconds_to_next_due(self) -> float:
        seconds = await self.pool.fetchval(
            "SELECT extract(epoch FROM min(next_attempt_at) - now())::float8 FROM deliveries WHERE status = 'pending'"
        )
        return IDLE_CHECK_SECONDS if seconds is None else min(seconds, IDLE_CHECK_SECONDS)

    # One attempt -----------------------------------------------------------------------------------------

    async def _attempt(self, client: httpx.AsyncClient, row: asyncpg.Record) -> None:
        self.attempted += 1
        started_at, started = datetime.now(UTC), time.monotonic()
        status_code, error = await self._send(client, row)
        duration_ms = round((time.monotonic() - started) * 1000)
        if error:
            log.info("webhooks: attempt %d of delivery %s to %s failed: %s", row["attempts"], row["id"],
                     _without_secrets(row["url"]), error, extra=_log_fields(row["payload"]))
        # The result is known: keep trying to record it while the lease is this worker's (a database blip must
        # not cause a second send). Past the lease, the attempt is made again: at least once, never lost.
        lease_ends = started + self.timeout + LEASE_MARGIN_SECONDS - 1.0
        metrics().webhook_seconds.observe(duration_ms / 1000)
        while True:
            try:
                await self._record(row, started_at, status_code, error, duration_ms)
                state = "delivered" if error is None else "failed" if row["attempts"] >= self.max_attempts \
                    else "retrying"
                metrics().webhook_deliveries.labels(state).inc()
                return
            except DATABASE_ERRORS as exc:
                if time.monotonic() + RETRY_SECONDS >= lease_ends:
                    log.warning("webhooks: could not record attempt %d of %s (%s)", row["attempts"], row["id"], exc)
                    return
                log.info("webhooks: recording attempt %d of %s failed (%s); retrying", row["attempts"], row["id"], exc)
            await asyncio.sleep(RETRY_SECONDS)

    async def _send(self, client: httpx.AsyncClient, row: asyncpg.Record) -> tuple[int | None, str | None]:
        try:
            secret = self.box.open(row["secret"], row["subscription_id"])
        except InvalidTag:
            return None, "the signing secret cannot be decrypted (was the cipher key changed?)"
        # jsonb gives the item back with spaces; the receiver gets it compact. Key order is jsonb's, the
        # same on every attempt.
        item = msgspec.json.decode(row["payload"])
        body = msgspec.json.encode(item)
        msg_id, timestamp = str(row["id"]), int(time.time())
        span = tracing.start("webhook", tracing.context_of(_event_traceparent(item)) or tracing.EMPTY, tracing.CLIENT)
        try:
            return await self._post(client, row, body, msg_id, timestamp, secret, span)
        finally:
            span.end()

    async def _post(self, client: httpx.AsyncClient, row: asyncpg.Record, body: bytes, msg_id: str, timestamp: int,
                    secret: str, span: Any) -> tuple[int | None, str | None]:
        if span.is_recording():
            span.set_attributes({"http.request.method": "POST", "kact.delivery_id": msg_id,
                                 "kact.attempt": row["attempts"], "kact.event_type": row["event_type"]})
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, body),
            "kact-feed-position": str(row["feed_position"]),
            "kact-event-type": row["event_type"],
        }
        traceparent = tracing.traceparent(span)
        if traceparent is not None:
            headers["traceparent"] = traceparent
        try:
            # httpx's timeout bounds each phase; this bounds the whole attempt (a receiver trickling bytes).
            async with asyncio.timeout(self.timeout), client.stream("POST", row["url"], content=body,
                                                                    headers=headers) as response:
                status_code = response.status_code  # the body is not read: a receiver cannot flood the worker
        except (TimeoutError, httpx.TimeoutException):
            return None, f"no response within {self.timeout:g} s"
        except httpx.ConnectError as exc:
            if isinstance(exc.__cause__, NotPublicAddressError):
                return None, f"refused: {exc.__cause__}"
            return None, f"{type(exc).__name__}: {exc}"[:500]
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        if span.is_recording():
            span.set_attribute("http.response.status_code", status_code)
        if 200 <= status_code < 300:
            return status_code, None
        return status_code, f"HTTP {status_code}"

    async def _record(
        self, row: asyncpg.Record, at: datetime, status_code: int | None, error: str | None, duration_ms: int
    ) -> None:
        attempt = row["attempts"]
        async with self.pool.acquire() as conn, conn.transaction():
            # Recorded again after a commit whose answer was lost: still one row.
            recorded = await conn.execute(
                "INSERT INTO delivery_attempts (delivery_id, attempt, at, status_code, error, duration_ms) "
                "SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS (SELECT 1 FROM delivery_attempts "
                "WHERE delivery_id = $1 AND attempt = $2 AND at = $3)",
                row["id"], attempt, at, status_code, error, duration_ms,
            )
            if recorded == "INSERT 0 1":  # the course's data went out to the webhook's owner: the access log's
                course_id = _log_fields(row["payload"]).get("course_id")
                await conn.execute(
                    access_log.INSERT_SQL, f"webhook:{row['subscription_id']}", "deliver_webhook",
                    [_uuid(course_id)], access_log.OK if error is None else access_log.FAILED, str(row["id"]))
            # Only while the lease is this worker's (the same attempt count, still pending).
            if error is None:
                await conn.execute(
                    "UPDATE deliveries SET status = 'delivered', delivered_at = now(), next_attempt_at = NULL "
                    "WHERE id = $1 AND attempts = $2 AND status = 'pending'",
                    row["id"], attempt,
                )
            elif attempt >= self.max_attempts:
                await conn.execute(
                    "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, last_error = $3 "
                    "WHERE id = $1 AND attempts = $2 AND status = 'pending'",
                    row["id"], attempt, error,
                )
            else:
                delay = backoff(attempt, self.base_delay, self.max_delay, self.rng)
                await conn.execute(
                    "UPDATE deliveries SET next_attempt_at = now() + $3::float8 * interval '1 second', last_error = $4 "
                    "WHERE id = $1 AND attempts = $2 AND status = 'pending'",
                    row["id"], attempt, delay, error,
                )
