"""A real scheduler server (uvicorn on a free loopback port) over the session's PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from eventsourcing.cryptography import AESCipher
from bus_support import delete_stream
from kact_contracts.bus import StreamSettings
from notifier.flows import Policy
from notifier.service import Notifier
from notifier.settings import NotifierSettings
from psycopg import sql
from scheduler.bootstrap import create_app, utcnow
from scheduler.embedded import free_port
from scheduler.settings import Settings


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    operator_token: str
    settings: Settings


# Every stream a test server was given: deleted when the session ends (a shared NATS keeps them otherwise).
STREAMS: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
def delete_test_streams(nats_url: str) -> Iterator[None]:
    yield
    for name in sorted(STREAMS):
        asyncio.run(delete_stream(nats_url, name))


def server_settings(database_url: str, nats_url: str, db_schema: str) -> Settings:
    token = secrets.token_hex(4)
    STREAMS.add(f"T_{token}")
    return Settings(
        database_url=database_url,
        nats_url=nats_url,
        nats_stream=f"T_{token}",  # a NATS server shared with other runs never mixes their events
        nats_prefix=f"t{token}",
        db_schema=db_schema,
        operator_token=secrets.token_urlsafe(24),
        cipher_key=AESCipher.create_key(32),
        http_port=free_port(),
        db_pool_size=4,  # several servers share the machine's PostgreSQL (max_connections 100) in CI
        simulated_time=True,
        webhook_allow_private=True,  # the stand-in clinic and prescriber systems listen on loopback
        # Some tests drive one key as fast as they can from several threads (well over the default 100/s);
        # the limiter stays in the path with room to spare, and test_rate_limits sets limits of its own.
        rate_limit=2000.0,
        rate_burst=4000,
    )


@contextmanager
def serve(settings: Settings, clock: Callable[[], datetime] = utcnow) -> Iterator[LiveServer]:
    """The scheduler app under uvicorn in a thread (its deadline watcher following `clock`), ready when this yields."""
    config = uvicorn.Config(create_app(settings, clock=clock), host="127.0.0.1", port=settings.http_port,
                            log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{settings.http_port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the scheduler did not become ready")
        time.sleep(0.1)
    try:
        yield LiveServer(base_url, settings.operator_token or "", settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def live_server(database_url: str, db_schema: str, nats_url: str) -> Iterator[LiveServer]:
    with serve(server_settings(database_url, nats_url, db_schema)) as server:
        yield server


@pytest.fixture
def schema(database_url: str) -> Iterator[str]:
    """A PostgreSQL schema name of this test's own (its processes see no other test's data), dropped after."""
    name = f"t_own_{secrets.token_hex(5)}"
    yield name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client of the session's server (a module may define its own for another server)."""
    with httpx.Client(base_url=live_server.base_url, timeout=30) as client:
        yield client


# Short follow-up times, so that tests see reminders, escalations and retries within seconds.
TEST_POLICY = Policy(remind_after=timedelta(seconds=3), escalate_after=timedelta(seconds=6),
                     warn_before_window_closes=timedelta(hours=24))


def notifier_settings(settings: Settings, **overrides: Any) -> NotifierSettings:
    values: dict[str, Any] = {
        "database_url": settings.database_url or "", "nats_url": settings.nats_url or "",
        "db_schema": settings.db_schema, "cipher_key": settings.cipher_key,
        "stream": StreamSettings(name=settings.nats_stream, prefix=settings.nats_prefix),
        "policy": TEST_POLICY, "webhook_timeout": 2.0, "webhook_max_attempts": 4, "webhook_base_delay": 0.2,
        "webhook_max_delay": 1.0, "webhook_allow_private": True,
    }
    return NotifierSettings(**{**values, **overrides})


class NotifierThread:
    """A notifier running on an event loop of its own, as its own process would."""

    def __init__(self, settings: NotifierSettings) -> None:
        self.notifier = Notifier(settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.notifier.run(),), daemon=True)

    def start(self) -> NotifierThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.notifier.stop)
        self.thread.join(timeout=30)
        if self.thread.is_alive():
            stacks = []
            for task in asyncio.all_tasks(self.loop):
                chain, coro = [], task.get_coro()
                while coro is not None and hasattr(coro, "cr_frame") and coro.cr_frame is not None:
                    chain.append(f"{coro.cr_code.co_name}:{coro.cr_frame.f_lineno}")
                    coro = coro.cr_await
                stacks.append(f"{task.get_name()}: " + " -> ".join(chain))
            raise AssertionError("the notifier did not drain and stop:\n" + "\n".join(stacks))


@pytest.fixture(scope="session")
def notifier(live_server: LiveServer) -> Iterator[Notifier]:
    running = NotifierThread(notifier_settings(live_server.settings)).start()
    yield running.notifier
    running.stop()
