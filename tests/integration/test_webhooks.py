"""Outbound webhooks against real PostgreSQL and a real local HTTP receiver: signed per Standard Webhooks,
retried with back-off, failed after the last attempt, redriven, each attempt sent by one worker only, and
visible only to the recipient's tenant."""

from __future__ import annotations

import asyncio
import inspect
import random
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpcore
import httpx
import psycopg
import pytest
from api_support import Tenant, bearer, ok
from bus_support import delete_stream
from conftest import LiveServer, serve, server_settings
from eventsourcing.cryptography import AESCipher
from kact_contracts.feed import Recipient
from notifier import schema, webhooks
from notifier.admin import NotifierAdmin
from notifier.webhooks import DeliveryWorker
from psycopg import sql
from receiver import Receiver
from scheduler.embedded import free_port
from standardwebhooks import Webhook, WebhookVerificationError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
BOOKED = "kact.course.session.booked.v1"
HELD = "kact.course.session.held.v1"


class Ceiling(random.Random):
    """Jitter that always picks the upper bound, so the test sees the exponential envelope itself."""

    def uniform(self, a: float, b: float) -> float:
        return b


@dataclass
class Calls:
    """What each path of the receiver answers (a script of statuses, then a default), and every call."""

    scripts: dict[str, list[int]] = field(default_factory=dict)
    defaults: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0
    log: list[tuple[str, float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, path: str) -> int:
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            script = self.scripts.get(path)
            status = script.pop(0) if script else self.defaults.get(path, 204)
            self.log.append((path, time.monotonic(), status))
        return status

    def at(self, path: str) -> list[tuple[float, int]]:
        with self.lock:
            return [(at, status) for p, at, status in self.log if p == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, Calls]]:
    with Receiver() as receiver:
        receiver.respond = calls = Calls()
        yield receiver, calls


async def until(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.05) -> Any:
    """Wait until `check()` (a value or an awaitable) is true, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(every)


@asynccontextmanager
async def running(pool: asyncpg.Pool, cipher_key: str, **settings: Any) -> AsyncIterator[DeliveryWorker]:
    values = {"timeout": 2.0, "max_attempts": 4, "base_delay": 0.05, "max_delay": 0.2, "allow_private": True,
              **settings}
    worker = DeliveryWorker(pool, cipher_key=cipher_key, **values)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        await asyncio.wait_for(worker.stop(), 30)
        await task


def item(recipient: str, position: int, event_id: str, event_type: str = BOOKED) -> dict[str, Any]:
    """A feed item as the notifier passes it (the webhook body)."""
    return {"position": position, "recipient": recipient, "notice": "update",
            "event": {"id": event_id, "type": event_type, "specversion": "1.0",
                      "data": {"session_id": str(uuid4()), "partners": ["a", "b"]}}}


async def enqueue(pool: asyncpg.Pool, kind: str, owner: str, position: int = 1, event_type: str = BOOKED,
                  event_id: str | None = None) -> int:
    event_id = event_id or str(uuid4())
    async with pool.acquire() as conn, conn.transaction():
        return await webhooks.enqueue(
            conn, recipient_kind=kind, recipient_id=owner, event_id=event_id, event_type=event_type,
            feed_position=position, envelope=item(f"{kind}:{owner}", position, event_id, event_type),
        )


async def delivery_rows(pool: asyncpg.Pool, url: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT d.* FROM deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id WHERE s.url = $1 "
        "ORDER BY d.feed_position", url,
    )


# The worker on a schema of its own ---------------------------------------------------------------------


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    name = f"wh_{secrets.token_hex(4)}"
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10, server_settings={"search_path": name})
    async with pool.acquire() as conn:
        await schema.migrate(conn, name)
    yield pool
    await pool.close()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def cipher_key() -> str:
    return AESCipher.create_key(32)


async def subscribe(pool: asyncpg.Pool, cipher_key: str, url: str, kind: str = "clinic", owner: str | None = None,
                    event_types: list[str] | None = None) -> tuple[str, str]:
    owner = owner or str(uuid4())
    _, secret = await NotifierAdmin(pool, cipher_key).create_webhook(Recipient(kind, owner), url, event_types or [])
    return owner, secret


async def test_a_delivery_is_signed_carries_its_feed_position_and_goes_out_at_once(
    pool: asyncpg.Pool, cipher_key: str, receiver: tuple[Receiver, Calls]
) -> None:
    hooks, _ = receiver
    path = f"/signed-{secrets.token_hex(3)}"
    owner, secret = await subscribe(pool, cipher_key, hooks.url + path)
    async with running(pool, cipher_key):
        await asyncio.sleep(0.5)  # the worker is idle, listening
        queued_at = time.time()
        assert await enqueue(pool, "clinic", owner, position=17) == 1
        await until(lambda: hooks.at(path))
    (received,) = hooks.at(path)
    assert received.at - queued_at < 1, "woken by NOTIFY, not by a poll"
    # The body is the feed item as queued, compact; the headers are Standard Webhooks' plus the position.
    assert Webhook(secret).verify(received.body, received.headers) == received.item
    assert received.item["position"] == 17 and received.headers["kact-feed-position"] == "17"
    assert b" " not in received.body and received.headers["content-type"] == "application/json"
    (row,) = await delivery_rows(pool, hooks.url + path)
    assert received.headers["webhook-id"] == str(row["id"]) and received.headers["kact-event-type"] == BOOKED
    assert row["status"] == "delivered" and row["attempts"] == 1 and row["delivered_at"] is not None
    # An altered body, or another secret, does not verify.
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(received.body.replace(b'"position":17', b'"position":18'), received.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(received.body, received.headers)


async def test_an_event_queued_twice_is_delivered_once_and_only_to_matching_active_webhooks(
    pool: asyncpg.Pool, cipher_key: str
) -> None:
    url = "http://127.0.0.1:9/never-called"
    owner, _ = await subscribe(pool, cipher_key, url + "/all")
    await subscribe(pool, cipher_key, url + "/held-only", owner=owner, event_types=[HELD])
    await subscribe(pool, cipher_key, url + "/other-recipient", kind="prescriber", owner=owner)
    event_id = str(uuid4())
    assert await enqueue(pool, "clinic", owner, event_id=event_id) == 1  # BOOKED: only the catch-all
    assert await enqueue(pool, "clinic", owner, event_id=event_id) == 0  # the same event again: nothing new
    assert await enqueue(pool, "clinic", owner, position=2, event_type=HELD) == 2
    assert await enqueue(pool, "clinic", str(uuid4())) == 0  # nobody registered
    # Queued in the caller's transaction: rolled back, nothing is queued.
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await webhooks.enqueue(conn, recipient_kind="clinic", recipient_id=owner, event_id=str(uuid4()),
                                   event_type=BOOKED, feed_position=3, envelope={"position": 3})
            raise RuntimeError("the event's processing failed")
    counts = {r["url"]: r["n"] for r in await pool.fetch(
        "SELECT s.url, count(*) AS n FROM deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id "
        "GROUP BY s.url")}
    assert counts == {url + "/all": 2, url + "/held-only": 1}


async def test_a_receiver_failing_twice_then_succeeding_gets_one_delivery_after_three_growing_waits(
    pool: asyncpg.Pool, cipher_key: str, receiver: tuple[Receiver, Calls]
) -> None:
    hooks, calls = receiver
    path = f"/flaky-{secrets.token_hex(3)}"
    calls.scripts[path] = [500, 503]
    owner, secret = await subscribe(pool, cipher_key, hooks.url + path)
    async with running(pool, cipher_key, base_delay=0.4, max_delay=5.0, max_attempts=5, rng=Ceiling()):
        await enqueue(pool, "clinic", owner)
        await until(lambda: hooks.at(path))
        await asyncio.sleep(1.5)  # nothing more arrives
    (received,) = hooks.at(path)
    Webhook(secret).verify(received.body, received.headers)
    (row,) = await delivery_rows(pool, hooks.url + path)
    assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 3, "HTTP 503")
    attempts = await pool.fetch("SELECT * FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id", row["id"])
    assert [(a["attempt"], a["status_code"], a["error"]) for a in attempts] == [
        (1, 500, "HTTP 500"), (2, 503, "HTTP 503"), (3, 204, None)]
    # Waits of base * 2 ** (n - 1): 0.4 s, then 0.8 s; woken at the retry's time, not by a slow poll.
    at = [t for t, _ in calls.at(path)]
    first, second = at[1] - at[0], at[2] - at[1]
    assert 0.4 <= first < 1.4 and 0.8 <= second < 1.8 and second > first, (first, second)


async def test_two_workers_on_one_database_never_send_the_same_attempt_twice(
    pool: asyncpg.Pool, database_url: str, cipher_key: str, receiver: tuple[Receiver, Calls]
) -> None:
    hooks, calls = receiver
    path = f"/shared-{secrets.token_hex(3)}"
    owner, _ = await subscribe(pool, cipher_key, hooks.url + path)
    search_path = await pool.fetchval("SELECT current_schema()")
    other = await asyncpg.create_pool(database_url, min_size=1, max_size=10,
                                      server_settings={"search_path": search_path})
    calls.delay = 0.01
    try:
        async with running(pool, cipher_key, concurrency=4) as one, running(other, cipher_key, concurrency=4) as two:
            for position in range(1, 201):
                await enqueue(pool, "clinic", owner, position=position)
            await until(lambda: len(hooks.at(path)) >= 200, timeout=60)
            await asyncio.sleep(0.5)
    finally:
        calls.delay = 0.0
        await other.close()
    ids = [r.headers["webhook-id"] for r in hooks.at(path)]
    assert len(ids) == len(set(ids)) == 200
    assert one.attempted > 0 and two.attempted > 0 and one.attempted + two.attempted == 200
    assert await pool.fetchval("SELECT count(*) FROM delivery_attempts") == 200
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'delivered' AND attempts = 1") == 200


async def test_stop_lets_the_attempt_in_flight_finish_and_records_it(
    pool: asyncpg.Pool, cipher_key: str, receiver: tuple[Receiver, Calls]
) -> None:
    hooks, calls = receiver
    path = f"/slow-{secrets.token_hex(3)}"
    owner, _ = await subscribe(pool, cipher_key, hooks.url + path)
    worker = DeliveryWorker(pool, cipher_key=cipher_key, timeout=5.0, allow_private=True)
    task = asyncio.create_task(worker.run())
    calls.delay = 1.0
    try:
        await enqueue(pool, "clinic", owner)
        await until(lambda: worker.attempted == 1)  # the receiver takes a second to answer
        stopping = time.monotonic()
        await asyncio.wait_for(worker.stop(), 10)
    finally:
        calls.delay = 0.0
    assert time.monotonic() - stopping > 0.5, "stop() waited for the attempt in flight"
    assert task.done() and len(hooks.at(path)) == 1
    (row,) = await delivery_rows(pool, hooks.url + path)
    assert row["status"] == "delivered"
    assert await pool.fetchval("SELECT count(*) FROM delivery_attempts WHERE delivery_id = $1", row["id"]) == 1


async def test_a_timeout_counts_as_a_failed_attempt(
    pool: asyncpg.Pool, cipher_key: str, receiver: tuple[Receiver, Calls]
) -> None:
    hooks, calls = receiver
    path = f"/hung-{secrets.token_hex(3)}"
    owner, _ = await subscribe(pool, cipher_key, hooks.url + path)
    calls.delay = 1.0
    try:
        async with running(pool, cipher_key, timeout=0.3, max_attempts=1):
            await enqueue(pool, "clinic", owner)
            await until(lambda: _failed(pool, hooks.url + path))
    finally:
        calls.delay = 0.0
    (row,) = await delivery_rows(pool, hooks.url + path)
    assert row["status"] == "failed" and row["last_error"] == "no response within 0.3 s"
    (attempt,) = await pool.fetch("SELECT * FROM delivery_attempts WHERE delivery_id = $1", row["id"])
    assert attempt["status_code"] is None and 250 <= attempt["duration_ms"] < 1000


async def test_a_webhook_to_a_host_that_is_not_public_is_refused_at_delivery(
    pool: asyncpg.Pool, cipher_key: str, receiver: tuple[Receiver, Calls]
) -> None:
    """Without KACT_WEBHOOK_ALLOW_PRIVATE, a host name that resolves to a loopback (or private) address is
    refused when the delivery is attempted, whatever it resolved to when it was registered."""
    hooks, _ = receiver
    path = f"/private-{secrets.token_hex(3)}"
    url = hooks.url.replace("127.0.0.1", "localhost") + path
    owner, _ = await subscribe(pool, cipher_key, url)
    async with running(pool, cipher_key, max_attempts=1, allow_private=False):
        await enqueue(pool, "clinic", owner)
        await until(lambda: _failed(pool, url))
    (row,) = await delivery_rows(pool, url)
    assert row["last_error"].startswith("refused: localhost is ") and "not a public address" in row["last_error"]
    assert hooks.at(path) == []


class Resolver:
    """Stands in for DNS (`webhooks.resolve`): answers each host's lookups from a script, one answer per
    lookup (the last one repeated), and counts them."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers, self.lookups = answers, 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups += 1
        script = self.answers[host]
        return script.pop(0) if len(script) > 1 else script[0]


async def test_a_host_that_rebinds_to_loopback_after_the_check_is_never_connected_to(
    pool: asyncpg.Pool, cipher_key: str, receiver: tuple[Receiver, Calls], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name answers a public address to the check, then 127.0.0.1. The delivery resolves
    once and connects to the address it checked, so the second answer is never used and the local receiver
    (which would answer 204) never hears of it."""
    hooks, _ = receiver
    port = hooks.url.rsplit(":", 1)[1]
    path = f"/rebind-{secrets.token_hex(3)}"
    url = f"http://rebind.kact.test:{port}{path}"
    resolver = Resolver({"rebind.kact.test": [["8.8.8.8"], ["127.0.0.1"]]})
    monkeypatch.setattr(webhooks, "resolve", resolver)
    connected_to: list[tuple[str, int]] = []

    async def no_internet(self: Any, host: str, port: int, **_: Any) -> Any:  # the test sends nothing outside
        connected_to.append((host, port))
        raise httpcore.ConnectError("no route in this test")

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", no_internet)
    owner, _ = await subscribe(pool, cipher_key, url)
    async with running(pool, cipher_key, max_attempts=1, allow_private=False, timeout=1.0):
        await enqueue(pool, "clinic", owner)
        await until(lambda: _failed(pool, url))
    (row,) = await delivery_rows(pool, url)
    assert row["last_error"] == "ConnectError: no route in this test"
    assert connected_to == [("8.8.8.8", int(port))] and resolver.lookups == 1 and hooks.at(path) == []
    # The other way round, the check is what refuses: nothing is connected to.
    rebound = Resolver({"rebind.kact.test": [["127.0.0.1"], ["8.8.8.8"]]})
    monkeypatch.setattr(webhooks, "resolve", rebound)
    connected_to.clear()
    url2 = url + "-2"
    owner, _ = await subscribe(pool, cipher_key, url2)
    async with running(pool, cipher_key, max_attempts=1, allow_private=False):
        await enqueue(pool, "clinic", owner)
        await until(lambda: _failed(pool, url2))
    (row,) = await delivery_rows(pool, url2)
    assert row["last_error"] == ("refused: rebind.kact.test is 127.0.0.1, not a public address "
                                 "(KACT_WEBHOOK_ALLOW_PRIVATE=1 allows it)")
    assert rebound.lookups == 1 and connected_to == [] and hooks.at(path + "-2") == []


async def test_a_delivery_goes_to_the_resolved_address_with_the_host_name_in_host(
    pool: asyncpg.Pool, cipher_key: str, receiver: tuple[Receiver, Calls], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With private addresses allowed, a name that only our resolver knows reaches the local receiver: the
    connection goes to the resolved address, and the request still names the host."""
    hooks, _ = receiver
    port = hooks.url.rsplit(":", 1)[1]
    path = f"/pinned-{secrets.token_hex(3)}"
    monkeypatch.setattr(webhooks, "resolve", Resolver({"hooks.kact.test": [["127.0.0.1"]]}))
    owner, secret = await subscribe(pool, cipher_key, f"http://hooks.kact.test:{port}{path}")
    async with running(pool, cipher_key, allow_private=True):
        await enqueue(pool, "clinic", owner)
        await until(lambda: hooks.at(path))
    (received,) = hooks.at(path)
    assert received.headers["host"] == f"hooks.kact.test:{port}"
    Webhook(secret).verify(received.body, received.headers)


def _certificate(host: str, directory: Any) -> tuple[str, str]:
    """A self-signed certificate for `host`: (certificate path, key path)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


async def test_over_https_the_pinned_connection_verifies_the_host_names_certificate(
    pool: asyncpg.Pool, cipher_key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """TLS to the resolved address still sends the host name (SNI) and checks the certificate against it: a
    certificate for the name verifies although the connection goes to 127.0.0.1; another name's does not."""
    import ssl

    host = "secure.kact.test"
    cert, key = _certificate(host, tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    trusted = ssl.create_default_context(cafile=cert)
    monkeypatch.setattr(webhooks, "resolve", Resolver({host: [["127.0.0.1"]], "other.kact.test": [["127.0.0.1"]]}))
    with Receiver() as hooks:
        hooks.server.socket = server_context.wrap_socket(hooks.server.socket, server_side=True)
        port = hooks.url.rsplit(":", 1)[1]
        good, bad = f"https://{host}:{port}/tls", f"https://other.kact.test:{port}/tls-other"
        owner, _ = await subscribe(pool, cipher_key, good)
        other, _ = await subscribe(pool, cipher_key, bad)
        client = webhooks.delivery_client(2.0, 4, allow_private=True, verify=trusted)
        try:
            async with running(pool, cipher_key, client=client, max_attempts=1):
                await enqueue(pool, "clinic", owner)
                await enqueue(pool, "clinic", other)
                await until(lambda: hooks.at("/tls"))
                await until(lambda: _failed(pool, bad))
        finally:
            await client.aclose()
        assert len(hooks.at("/tls")) == 1 and hooks.at("/tls-other") == []
    (row,) = await delivery_rows(pool, bad)
    assert "certificate" in row["last_error"].lower() or "hostname" in row["last_error"].lower(), row["last_error"]


async def test_the_worker_survives_a_database_blip_and_listens_again(
    pool: asyncpg.Pool, database_url: str, cipher_key: str, receiver: tuple[Receiver, Calls],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hooks, _ = receiver
    monkeypatch.setattr(webhooks, "LEASE_MARGIN_SECONDS", 3.0)  # a lost claim is claimed again within 5 s
    path = f"/blip-{secrets.token_hex(3)}"
    owner, _ = await subscribe(pool, cipher_key, hooks.url + path)
    name = f"kact-wh-blip-{secrets.token_hex(3)}"
    search_path = await pool.fetchval("SELECT current_schema()")
    own = await asyncpg.create_pool(database_url, min_size=1, max_size=4,
                                    server_settings={"search_path": search_path, "application_name": name})

    async def kill() -> int:
        return await pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", name)

    try:
        async with running(own, cipher_key) as worker:
            await enqueue(pool, "clinic", owner, position=1)
            await until(lambda: len(hooks.at(path)) == 1)
            # The database drops every connection of the worker, again and again for a second, while an
            # event is queued: the worker keeps retrying instead of crashing.
            killed, flapping_until = 0, time.monotonic() + 1.0
            await enqueue(pool, "clinic", owner, position=2)
            while time.monotonic() < flapping_until:
                killed += await kill()
                await asyncio.sleep(0.05)
            assert killed > 0
            await until(lambda: len(hooks.at(path)) == 2, timeout=20)
            # Once it is back, the worker listens again: a new event is sent at once, not at the next idle check.
            await until(lambda: own.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                                             "AND query ILIKE 'LISTEN%'", name), timeout=20)
            queued_at = time.time()
            await enqueue(pool, "clinic", owner, position=3)
            await until(lambda: len(hooks.at(path)) == 3, timeout=20)
            assert hooks.at(path)[2].at - queued_at < 1.5, "woken by NOTIFY after the blip"
            assert worker.attempted == 3  # and `running` awaits the worker's run(): it did not crash
    finally:
        await own.close()
    # Each sent once. A claim whose commit's answer was lost in the blip leaves its lease to run out (the
    # delivery is then claimed again), so the one queued during the blip may count two claims for one send.
    ids = [r.headers["webhook-id"] for r in hooks.at(path)]
    assert len(ids) == len(set(ids)) == 3
    rows = await delivery_rows(pool, hooks.url + path)
    assert [(r["feed_position"], r["status"]) for r in rows] == [(1, "delivered"), (2, "delivered"), (3, "delivered")]
    assert rows[0]["attempts"] == rows[2]["attempts"] == 1 and rows[1]["attempts"] in (1, 2)
    assert await pool.fetchval("SELECT count(*) FROM delivery_attempts") == 3


async def _failed(pool: asyncpg.Pool, url: str) -> bool:
    rows = await delivery_rows(pool, url)
    return bool(rows) and all(r["status"] == "failed" for r in rows)


# Through the API, on a scheduler of its own ------------------------------------------------------------


@pytest.fixture(scope="module")
def server(database_url: str, nats_url: str) -> Iterator[LiveServer]:
    settings = server_settings(database_url, nats_url, f"whapi_{secrets.token_hex(4)}")
    with serve(settings) as server:
        yield server
    asyncio.run(delete_stream(nats_url, settings.nats_stream))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(settings.db_schema)))


@pytest.fixture
async def api_pool(server: LiveServer) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(server.settings.database_url, min_size=1, max_size=10,
                                     server_settings={"search_path": server.settings.db_schema})
    yield pool
    await pool.close()


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


async def call(server: LiveServer, method: str, path: str, key: str, **kwargs: Any) -> httpx.Response:
    """The API from an async test, without blocking the loop the worker runs on."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        return await client.request(method, path, headers=bearer(key), **kwargs)


async def test_a_receiver_that_keeps_failing_ends_failed_is_listed_and_a_redrive_delivers_it(
    server: LiveServer, api_pool: asyncpg.Pool, client: httpx.Client, receiver: tuple[Receiver, Calls]
) -> None:
    hooks, calls = receiver
    home = await asyncio.to_thread(Tenant.onboard, client, server.operator_token)
    other = await asyncio.to_thread(Tenant.onboard, client, server.operator_token, "Another clinic")
    clinic_id, key, other_key = home.clinic["id"], home.clinic["api_key"], other.clinic["api_key"]
    path = f"/down-{secrets.token_hex(3)}"
    calls.defaults[path] = 503
    created = ok(await call(server, "POST", f"/v1/clinics/{clinic_id}/webhooks", key,
                            json={"url": hooks.url + path, "event_types": []}), 201)
    # 1. Three attempts, all refused: the delivery fails.
    async with running(api_pool, server.settings.cipher_key or "", max_attempts=3):
        await enqueue(api_pool, "clinic", clinic_id, position=5)
        await until(lambda: _failed(api_pool, hooks.url + path))
    assert [s for _, s in calls.at(path)] == [503, 503, 503] and hooks.at(path) == []
    page = ok(await call(server, "GET", "/v1/deliveries", key, params={"status": "failed"}), 200)
    (failed,) = page["items"]
    assert (failed["webhook_id"], failed["recipient"], failed["feed_position"]) == (
        created["id"], f"clinic:{clinic_id}", 5)
    assert (failed["status"], failed["attempts"], failed["last_error"]) == ("failed", 3, "HTTP 503")
    assert page["next_page"] is None
    assert ok(await call(server, "GET", "/v1/deliveries", key, params={"status": "delivered"}), 200)["items"] == []
    operator_view = ok(await call(server, "GET", "/v1/deliveries", server.operator_token,
                                  params={"status": "failed"}), 200)
    assert failed["id"] in [d["id"] for d in operator_view["items"]]
    detail = ok(await call(server, "GET", f"/v1/deliveries/{failed['id']}", key), 200)
    assert [(a["attempt"], a["status_code"], a["error"]) for a in detail["attempt_log"]] == [
        (1, 503, "HTTP 503"), (2, 503, "HTTP 503"), (3, 503, "HTTP 503")]
    # 2. Another clinic neither sees nor redrives it.
    assert ok(await call(server, "GET", "/v1/deliveries", other_key, params={"status": "failed"}), 200)["items"] == []
    for method, suffix in (("GET", ""), ("POST", "/redrive")):
        response = await call(server, method, f"/v1/deliveries/{failed['id']}{suffix}", other_key)
        assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
    # 3. The receiver recovers; the clinic redrives; it is delivered once, and cannot be redriven again.
    calls.defaults[path] = 204
    async with running(api_pool, server.settings.cipher_key or "", max_attempts=3):
        redriven = ok(await call(server, "POST", f"/v1/deliveries/{failed['id']}/redrive", key), 202)
        assert (redriven["status"], redriven["attempts"]) in (("pending", 0), ("pending", 1), ("delivered", 1))
        await until(lambda: hooks.at(path))
        await until(lambda: api_pool.fetchval("SELECT status = 'delivered' FROM deliveries WHERE id = $1",
                                              UUID(failed["id"])))
    (received,) = hooks.at(path)
    Webhook(created["secret"]).verify(received.body, received.headers)
    again = await call(server, "POST", f"/v1/deliveries/{failed['id']}/redrive", key)
    assert again.status_code == 409 and again.json()["type"] == "/problems/delivery-not-failed"
    detail = ok(await call(server, "GET", f"/v1/deliveries/{failed['id']}", server.operator_token), 200)
    assert detail["status"] == "delivered" and [a["status_code"] for a in detail["attempt_log"]] == [503, 503, 503, 204]


def test_webhooks_and_deliveries_belong_to_their_tenant(server: LiveServer, client: httpx.Client) -> None:
    home = Tenant.onboard(client, server.operator_token)
    other = Tenant.onboard(client, server.operator_token, "Another clinic")
    clinic, rx = home.clinic["id"], home.prescriber["id"]
    hook = {"url": "http://127.0.0.1:9/nobody-listens", "event_types": [BOOKED]}
    # 1. The clinic registers for itself and for its prescriber; the secret is shown once.
    own = ok(client.post(f"/v1/clinics/{clinic}/webhooks", json=hook, headers=home.headers), 201)
    for_rx = ok(client.post(f"/v1/prescribers/{rx}/webhooks", json=hook, headers=home.headers), 201)
    by_rx = ok(client.post(f"/v1/prescribers/{rx}/webhooks", json={**hook, "event_types": []},
                           headers=home.rx_headers), 201)
    assert own["secret"].startswith("whsec_") and own["owner"] == f"clinic:{clinic}"
    assert own["event_types"] == [BOOKED] and by_rx["owner"] == f"prescriber:{rx}"
    listed = ok(client.get(f"/v1/clinics/{clinic}/webhooks", headers=home.headers), 200)
    assert [w["id"] for w in listed] == [own["id"]] and listed[0]["secret"] is None
    rx_list = ok(client.get(f"/v1/prescribers/{rx}/webhooks", headers=home.rx_headers), 200)
    assert {w["id"] for w in rx_list} == {for_rx["id"], by_rx["id"]}
    assert ok(client.get(f"/v1/clinics/{clinic}/webhooks", headers=bearer(server.operator_token)), 200) == listed
    # 2. Another clinic, and the prescriber for the clinic's own webhooks: not found.
    for path in (f"/v1/clinics/{clinic}/webhooks", f"/v1/prescribers/{rx}/webhooks"):
        assert client.get(path, headers=other.headers).status_code == 404
        assert client.post(path, json=hook, headers=other.headers).status_code == 404
    assert client.delete(f"/v1/clinics/{clinic}/webhooks/{own['id']}", headers=other.headers).status_code == 404
    assert client.get(f"/v1/clinics/{clinic}/webhooks", headers=home.rx_headers).status_code == 404
    assert client.get(f"/v1/prescribers/{other.prescriber['id']}/webhooks", headers=home.rx_headers).status_code == 404
    assert client.get(f"/v1/prescribers/{home.therapist['id']}/webhooks", headers=home.headers).status_code == 404
    assert client.get(f"/v1/clinics/{uuid4()}/webhooks", headers=bearer(server.operator_token)).status_code == 404
    # 3. Deliveries: the clinic sees its own and its prescriber's, the prescriber only its own.
    asyncio.run(_enqueue_for(server, [("clinic", clinic), ("prescriber", rx), ("clinic", other.clinic["id"])]))
    seen = {d["recipient"] for d in ok(client.get("/v1/deliveries", headers=home.headers), 200)["items"]}
    assert seen == {f"clinic:{clinic}", f"prescriber:{rx}"}
    rx_seen = ok(client.get("/v1/deliveries", headers=home.rx_headers), 200)["items"]
    assert {d["recipient"] for d in rx_seen} == {f"prescriber:{rx}"} and len(rx_seen) == 2
    assert {d["recipient"] for d in ok(client.get("/v1/deliveries", headers=other.headers), 200)["items"]} == set()
    # A prescriber sees a delivery but does not redrive it; a pending one is no redrive for the clinic either.
    forbidden = client.post(f"/v1/deliveries/{rx_seen[0]['id']}/redrive", headers=home.rx_headers)
    assert forbidden.status_code == 403
    pending = client.post(f"/v1/deliveries/{rx_seen[0]['id']}/redrive", headers=home.headers)
    assert pending.status_code == 409 and pending.json()["type"] == "/problems/delivery-not-failed"
    # 4. Disabling a webhook: gone from the list, its pending deliveries fail, new events are not queued.
    assert client.delete(f"/v1/prescribers/{rx}/webhooks/{for_rx['id']}", headers=home.headers).status_code == 204
    assert client.delete(f"/v1/prescribers/{rx}/webhooks/{for_rx['id']}", headers=home.headers).status_code == 404
    assert [w["id"] for w in ok(client.get(f"/v1/prescribers/{rx}/webhooks", headers=home.rx_headers), 200)] == [
        by_rx["id"]]
    rx_seen = ok(client.get("/v1/deliveries", headers=home.rx_headers, params={"status": "failed"}), 200)["items"]
    assert [(d["webhook_id"], d["last_error"]) for d in rx_seen] == [(for_rx["id"], "the webhook was disabled")]
    disabled = client.post(f"/v1/deliveries/{rx_seen[0]['id']}/redrive", headers=home.headers)
    assert disabled.status_code == 409 and disabled.json()["type"] == "/problems/webhook-disabled"


async def _enqueue_for(server: LiveServer, recipients: list[tuple[str, str]]) -> None:
    pool = await asyncpg.create_pool(server.settings.database_url, min_size=1, max_size=2,
                                     server_settings={"search_path": server.settings.db_schema})
    try:
        for kind, owner in recipients:
            await enqueue(pool, kind, owner)
    finally:
        await pool.close()


def test_the_signing_secret_is_not_stored_in_clear(server: LiveServer, client: httpx.Client) -> None:
    home = Tenant.onboard(client, server.operator_token)
    created = ok(client.post(f"/v1/clinics/{home.clinic['id']}/webhooks", headers=home.headers,
                             json={"url": "https://clinic.example/hook", "event_types": []}), 201)
    secret = created["secret"]
    with psycopg.connect(server.settings.database_url or "") as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(server.settings.db_schema)))
        (row,) = conn.execute("SELECT secret FROM webhook_subscriptions WHERE id = %s", (created["id"],)).fetchall()
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (server.settings.db_schema,))]
        dump = "".join(r[0] for table in tables for r in conn.execute(
            sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(table))))
    sealed = bytes(row[0])
    assert secret.encode() not in sealed and secret[len("whsec_"):].encode() not in sealed
    assert "webhook_subscriptions" in tables and secret[len("whsec_"):] not in dump
    # ... and yet the worker can sign with it.
    assert webhooks.SecretBox(server.settings.cipher_key or "").open(sealed, UUID(created["id"])) == secret


def test_a_secret_in_a_replayable_response_is_not_stored_in_clear(server: LiveServer, client: httpx.Client) -> None:
    home = Tenant.onboard(client, server.operator_token)
    headers = {**home.headers, "Idempotency-Key": "register-hook-1"}
    body = {"url": "https://clinic.example/hook", "event_types": []}
    created = ok(client.post(f"/v1/clinics/{home.clinic['id']}/webhooks", headers=headers, json=body), 201)
    replayed = ok(client.post(f"/v1/clinics/{home.clinic['id']}/webhooks", headers=headers, json=body), 201)
    assert replayed == created  # the retry gets the first response, secret included
    with psycopg.connect(server.settings.database_url or "") as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(server.settings.db_schema)))
        stored = [bytes(r[0]) for r in conn.execute(
            "SELECT body FROM idempotency_keys WHERE key = 'register-hook-1'").fetchall()]
    assert len(stored) == 1
    assert created["secret"].encode() not in stored[0] and b"clinic.example" not in stored[0]


@pytest.fixture(scope="module")
def tenant(server: LiveServer) -> Iterator[Tenant]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield Tenant.onboard(client, server.operator_token)


@pytest.mark.parametrize("body", [
    {"url": "ftp://clinic.example/hook", "event_types": []},
    {"url": "clinic.example/hook", "event_types": []},
    {"url": "https://", "event_types": []},
    {"url": "http://clinic.example:99999/hook", "event_types": []},
    {"url": "http://[::1/hook", "event_types": []},
    {"url": "https://clinic.example/a b", "event_types": []},
    {"url": "https://clinic.example/hook", "event_types": ["kact.course.nonsense.v1"]},
    {"url": "https://clinic.example/hook", "event_types": [""]},
    {"url": "https://clinic.example/hook"},
    {"url": "https://clinic.example/hook", "event_types": [], "secret": "mine"},
    {"url": 42, "event_types": []},
    {"url": "https://clinic.example/hook", "event_types": "all"},
])
def test_an_invalid_webhook_is_a_422_problem(tenant: Tenant, client: httpx.Client, body: dict) -> None:
    for owner in (f"clinics/{tenant.clinic['id']}", f"prescribers/{tenant.prescriber['id']}"):
        response = client.post(f"/v1/{owner}/webhooks", json=body, headers=tenant.headers)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "/problems/invalid-input"


def test_a_webhook_to_an_address_that_is_not_public_is_refused_unless_allowed(server: LiveServer) -> None:
    strict = replace(server.settings, http_port=free_port(), webhook_allow_private=False, background_jobs=False)
    with serve(strict) as api, httpx.Client(base_url=api.base_url, timeout=30) as client:
        tenant = Tenant.onboard(client, api.operator_token)
        hooks = f"/v1/clinics/{tenant.clinic['id']}/webhooks"
        for url in ("http://127.0.0.1:9/hook", "http://localhost/hook", "https://10.1.2.3/hook",
                    "http://[::1]:8080/hook", "http://169.254.169.254/latest/meta-data", "http://192.168.0.7/"):
            response = client.post(hooks, json={"url": url, "event_types": []}, headers=tenant.headers)
            assert response.status_code == 422, url
            assert "not a public address" in response.json()["detail"]
        ok(client.post(hooks, json={"url": "https://clinic.example/hook", "event_types": []},
                       headers=tenant.headers), 201)


def test_bad_delivery_queries_are_problems_not_errors(server: LiveServer, client: httpx.Client) -> None:
    operator = bearer(server.operator_token)
    for params in ({"status": "lost"}, {"page": 0}, {"page": "x"}):
        response = client.get("/v1/deliveries", params=params, headers=operator)
        assert response.status_code == 422 and response.json()["type"] == "/problems/invalid-input"
    assert client.get(f"/v1/deliveries/{uuid4()}", headers=operator).status_code == 404
    assert client.get("/v1/deliveries/not-a-uuid", headers=operator).status_code == 404
    assert client.post(f"/v1/deliveries/{uuid4()}/redrive", headers=operator).status_code == 404
    assert client.get("/v1/deliveries").status_code == 401
