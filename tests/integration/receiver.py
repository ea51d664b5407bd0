"""A real local HTTP server standing in for a clinic's or prescriber's system: records every webhook."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def item(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """Answers 204 to every POST (or what `respond(path)` says) and keeps what arrived, in order."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.respond: Callable[[str], int] = lambda path: 204
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request: a real server never sees it as a request
                    self.close_connection = True
                    return
                status = receiver.respond(self.path)
                if 200 <= status < 300:
                    with receiver._lock:
                        receiver.received.append(
                            Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                        )
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, predicate: Callable[[dict[str, Any]], bool], count: int = 1,
                 timeout: float = 30.0) -> list[Received]:
        """The webhooks at `path` whose item satisfies `predicate`, once there are `count` of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.at(path) if predicate(r.item)]
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, f"{count} webhook(s) at {path} did not arrive: {found}"
            time.sleep(0.05)
