"""What the read access log costs a read: blocks of sequential `GET /v1/courses/{id}` (cached courses, the cheapest
read), alternating with the log's INSERT switched off in the same process, then 8 clients at once.

    python bench/read_audit.py [--rounds 4] [--requests 1000]

Embedded PostgreSQL in a temporary folder, no NATS; the API in this process (uvicorn in a thread)."""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from eventsourcing.cryptography import AESCipher

from scheduler import directory
from scheduler.bootstrap import create_app
from scheduler.embedded import EmbeddedPostgres, free_port
from scheduler.settings import Settings

LOGGING = {"on": True}
_log_reads = directory.Directory.log_reads


async def _switchable(self: directory.Directory, *args: Any, **kwargs: Any) -> None:
    if LOGGING["on"]:
        await _log_reads(self, *args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    directory.Directory.log_reads = _switchable  # type: ignore[method-assign]
    with EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="kact-bench-"))) as postgres:
        settings = Settings(database_url=postgres.url, nats_url=None, db_schema="bench",
                            operator_token=secrets.token_urlsafe(24), cipher_key=AESCipher.create_key(32),
                            http_port=free_port(), rate_limit=0.0, log_level="WARNING")
        server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.http_port,
                                               log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        base = f"http://127.0.0.1:{settings.http_port}"
        _wait_until_ready(base)
        headers, paths = _courses(base, settings.operator_token or "")
        _sequential(base, headers, paths, 300)  # warm up: every course cached
        results: dict[bool, dict[str, list[float]]] = {on: {"p50": [], "p99": [], "mean": [], "per_s": []}
                                                       for on in (True, False)}
        for round_ in range(args.rounds):
            for on in (True, False) if round_ % 2 == 0 else (False, True):
                LOGGING["on"] = on
                took = sorted(_sequential(base, headers, paths, args.requests))
                results[on]["p50"].append(took[len(took) // 2] * 1000)
                results[on]["p99"].append(took[int(len(took) * 0.99)] * 1000)
                results[on]["mean"].append(statistics.mean(took) * 1000)
                results[on]["per_s"].append(_concurrent(base, headers, paths, args.requests))
        for on, figures in results.items():
            print("with the log   " if on else "without the log",
                  "  ".join(f"{name} {', '.join(f'{v:.2f}' for v in values)}" for name, values in figures.items()))
        server.should_exit = True
        time.sleep(1)


def _wait_until_ready(base: str) -> None:
    while True:
        try:
            if httpx.get(f"{base}/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)


def _courses(base: str, operator: str) -> tuple[dict[str, str], list[str]]:
    with httpx.Client(base_url=base, timeout=30) as client:
        clinic = client.post("/v1/clinics", json={"name": "Bench", "timezone": "Europe/Berlin"},
                             headers={"Authorization": f"Bearer {operator}"}).json()
        headers = {"Authorization": f"Bearer {clinic['api_key']}"}
        ids = [client.post("/v1/courses", json={"model": "taking_turns", "partners": {"a": f"a{i}", "b": f"b{i}"}},
                           headers=headers).json()["id"] for i in range(20)]
    return headers, [f"/v1/courses/{course_id}" for course_id in ids]


def _sequential(base: str, headers: dict[str, str], paths: list[str], n: int) -> list[float]:
    took = []
    with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
        for i in range(n):
            started = time.perf_counter()
            response = client.get(paths[i % len(paths)])
            took.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
    return took


def _concurrent(base: str, headers: dict[str, str], paths: list[str], n: int, clients: int = 8) -> float:
    def client_loop(k: int) -> None:
        with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
            for i in range(n // clients):
                assert client.get(paths[(i + k) % len(paths)]).status_code == 200

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_loop, range(clients)))
    return n / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
