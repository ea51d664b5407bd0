"""A real scheduler server (uvicorn on a free loopback port) over the session's PostgreSQL."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from eventsourcing.cryptography import AESCipher

from scheduler.bootstrap import create_app
from scheduler.embedded import free_port
from scheduler.settings import Settings


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    operator_token: str
    settings: Settings


@pytest.fixture(scope="session")
def live_server(database_url: str, db_schema: str, nats_url: str) -> Iterator[LiveServer]:
    settings = Settings(
        database_url=database_url,
        nats_url=nats_url,
        db_schema=db_schema,
        operator_token=secrets.token_urlsafe(24),
        cipher_key=AESCipher.create_key(32),
        http_port=free_port(),
        db_pool_size=20,
        simulated_time=True,
    )
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.http_port, log_level="warning")
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
    yield LiveServer(base_url, settings.operator_token or "", settings)
    server.should_exit = True
    thread.join(timeout=30)
