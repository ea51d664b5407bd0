"""Liveness and readiness: ready when PostgreSQL answers, NATS is connected and a process (this one or another)
keeps the course index up to date."""

from __future__ import annotations

import asyncpg
from kact_contracts.locks import LOCK_HELD_SQL, lock_key, lock_parts
from litestar import Response, get

from scheduler.http.deps import Services
from scheduler.http.schemas import Health


@get("/health/live", operation_id="live", tags=["health"], summary="The process is up")
async def live() -> Health:
    return Health(status="ok", checks={})


@get("/health/ready", operation_id="ready", tags=["health"], summary="PostgreSQL answers and projections run")
async def ready(services: Services) -> Response[Health]:
    checks = {}
    try:
        await services.directory.pool.fetchval("SELECT 1")
        checks["postgres"] = "ok"
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        checks["postgres"] = f"error: {exc}"
    if services.bus is not None:
        checks["nats"] = "ok" if services.bus.is_connected else "error: disconnected"
    try:
        kept = await services.directory.pool.fetchval(LOCK_HELD_SQL, *lock_parts(lock_key(services.course_index_lock)))
        checks["course_index"] = "ok" if kept else "error: no process keeps it up to date"
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        checks["course_index"] = f"error: {exc}"
    healthy = all(v == "ok" for v in checks.values())
    return Response(Health(status="ok" if healthy else "unavailable", checks=checks), status_code=200 if healthy else 503)
