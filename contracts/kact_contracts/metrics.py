"""The metrics server of a helper process (the scheduler's jobs, the notifier): Prometheus text on a loopback port."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server


def serve_metrics(port: int, registry: CollectorRegistry = REGISTRY) -> tuple[int, Callable[[], None]]:
    """Serve `registry` on 127.0.0.1:`port` (0: a free port) from a thread; returns the port and a stop."""
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return server.server_port, stop
