"""Liveness and readiness: ready when PostgreSQL answers, NATS is connected and a process (this one or another)
keeps the course index up to date. Delivery: whether events reach the bus and the notifier consumes them.

Delivery has an endpoint of its own rather than being part of readiness: readiness decides whether this process
gets requests, and it serves commands correctly while delivery is stuck (the event store is the outbox, the
relay catches up), so taking every API process out of service would turn a delivery delay into an outage."""

from __future__ import annotations

from typing import Literal

import asyncpg
import msgspec
from kact_contracts.locks import LOCK_HELD_SQL, lock_key, lock_parts
from litestar import Response, get

from scheduler.http.deps import Services
from scheduler.http.schemas import Health
from scheduler.readmodels.delivery import relay_lag


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


class RelayHealth(msgspec.Struct, kw_only=True):
    status: Literal["ok", "stuck"]
    running: bool  # some process holds the relay's lock
    position: int  # the last stored event the relay dealt with
    head: int  # the last stored event
    behind: int  # notification ids between the two
    oldest_waiting_seconds: float | None  # since the oldest event not yet relayed was stored
    max_lag_seconds: float


class NotifierHealth(msgspec.Struct, kw_only=True):
    status: Literal["ok", "stuck"]
    seconds_since_heartbeat: float | None  # None: no notifier has consumed this stream yet
    max_silence_seconds: float


class DeliveryHealth(msgspec.Struct, kw_only=True):
    status: Literal["ok", "unavailable", "off"]  # off: no NATS configured, nothing is relayed
    relay: RelayHealth | None = None
    notifier: NotifierHealth | None = None


@get("/health/delivery", operation_id="deliveryHealth", tags=["health"],
     summary="Events reach NATS and the notifier consumes them (503 when the relay or the notifier is stuck)")
async def delivery(services: Services) -> Response[DeliveryHealth]:
    limits = services.delivery
    if limits is None:
        return Response(DeliveryHealth(status="off"))
    pool = services.directory.pool
    lag = await relay_lag(pool, services.courses.recorder.events_table_name, services.courses.name)
    running = await pool.fetchval(LOCK_HELD_SQL, *lock_parts(lock_key(limits.relay_lock)))
    waiting = lag.oldest_waiting_seconds
    lagging = waiting is not None and waiting > limits.relay_max_lag
    relay = RelayHealth(
        status="ok" if running and not lagging else "stuck", running=running,
        position=lag.position, head=lag.head, behind=lag.behind, oldest_waiting_seconds=waiting,
        max_lag_seconds=limits.relay_max_lag,
    )
    silence = await services.notifier.seconds_since_heartbeat(limits.stream)
    # Never heard from: stuck once something was relayed for it (a fresh system has nothing to consume yet).
    silent = lag.position > 0 if silence is None else silence > limits.notifier_max_silence
    notifier = NotifierHealth(status="stuck" if silent else "ok", seconds_since_heartbeat=silence,
                              max_silence_seconds=limits.notifier_max_silence)
    healthy = relay.status == notifier.status == "ok"
    return Response(DeliveryHealth(status="ok" if healthy else "unavailable", relay=relay, notifier=notifier),
                    status_code=200 if healthy else 503)
