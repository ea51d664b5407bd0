"""Scheduler API processes of their own over the session server's database, as `kact up` runs its workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from conftest import LiveServer

from scheduler.embedded import free_port


@contextmanager
def api_process(live_server: LiveServer, log_path: Path) -> Iterator[str]:
    """Another API process (uvicorn, as `kact up` runs a worker) over the session server's database; its URL.
    Stopped gracefully (SIGTERM), so it records the last uses of keys as it would in production."""
    port = free_port()
    env = {**os.environ, **live_server.settings.as_env(), "KACT_HTTP_PORT": str(port), "KACT_BACKGROUND_JOBS": "0"}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "scheduler.asgi:create_from_env", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(base_url):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield base_url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            # uvicorn shuts down (lifespan included), then re-raises the signal it caught
            assert process.wait(30) in (0, -signal.SIGTERM), log_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def _ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
