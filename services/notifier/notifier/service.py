"""The notifier process: consumes course events from JetStream, keeps feeds and timers, sends webhooks.

One notifier consumes at a time (PostgreSQL advisory lock; the others wait as hot standbys), so each
course's events are processed in stream order. Every process runs the webhook delivery worker, which
shares the pending deliveries through row locks.

Each message is processed under a span of its own (a consumer's), child of the trace context in its `traceparent`
header (the relay's publication); the webhooks it causes carry the event's trace on (`webhooks`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import nats
from kact_contracts import tracing
from kact_contracts.envelope import decode
from kact_contracts.jetstream import ensure_consumer, ensure_stream
from kact_contracts.metrics import serve_metrics
from kact_contracts.locks import lock_key

from notifier import schema, store, webhooks
from notifier.metrics import metrics
from notifier.settings import NotifierSettings

log = logging.getLogger("kact.notifier")
RETRY_SECONDS = 1.0
TIMER_TICK_SECONDS = 1.0
HEARTBEAT_SECONDS = 1.0  # at most one heartbeat row update per this many seconds


class Notifier:
    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings
        self._stopping = asyncio.Event()
        self.processed = 0
        self.duplicates = 0
        self.dead_letters = 0
        self.is_leader = False
        self._timers_changed = asyncio.Event()
        # Follow-ups go out only when the consumer has nothing older waiting: a reminder must not overtake
        # the decision that cancels it.
        self._caught_up = False
        self.metrics_port: int | None = None  # where its metrics are served, once they are (settings.metrics_port)

    def stop(self) -> None:
        """Ask for a drain: the message in hand is finished and acked, then everything closes."""
        self._stopping.set()

    async def run(self) -> None:
        stop_metrics = None
        if self.settings.metrics_port is not None:
            metrics()  # every series from the start
            try:
                self.metrics_port, stop_metrics = serve_metrics(self.settings.metrics_port)
                log.info("notifier: metrics on http://127.0.0.1:%d/metrics", self.metrics_port)
            except OSError as exc:  # the port taken: notifications matter more than their metrics
                log.error("notifier: metrics not served on 127.0.0.1:%d: %s", self.settings.metrics_port, exc)
        try:
            await self._run()
        finally:
            if stop_metrics is not None:
                await asyncio.to_thread(stop_metrics)

    async def _run(self) -> None:
        s = self.settings
        pool = await asyncpg.create_pool(
            s.database_url, min_size=1, max_size=8,
            server_settings={"search_path": s.db_schema, "application_name": "kact-notifier"},
        )
        try:
            if s.db_migrate:
                async with pool.acquire() as conn:
                    await schema.migrate(conn, s.db_schema)
            worker = webhooks.DeliveryWorker(
                pool, cipher_key=s.cipher_key, timeout=s.webhook_timeout, max_attempts=s.webhook_max_attempts,
                base_delay=s.webhook_base_delay, max_delay=s.webhook_max_delay,
                allow_private=s.webhook_allow_private,
            )
            delivering = asyncio.create_task(worker.run(), name="webhook-deliveries")
            try:
                await self._lead(pool)
            finally:
                await worker.stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await delivering
        finally:
            await pool.close()

    async def _lead(self, pool: asyncpg.Pool) -> None:
        """Wait for the consumer lock, then consume and fire timers until stopped."""
        key = lock_key(f"{self.settings.db_schema}.notifier")
        while not self._stopping.is_set():
            try:
                conn = await asyncpg.connect(self.settings.database_url)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("notifier: no database (%s); retrying", exc)
                await self._sleep(RETRY_SECONDS)
                continue
            try:
                while not self._stopping.is_set():
                    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                        self.is_leader = True
                        log.info("notifier: this process consumes")
                        try:
                            await self._consume_and_fire(pool, conn)
                        finally:
                            self.is_leader = False
                        break
                    await self._sleep(RETRY_SECONDS)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("notifier: lost the database (%s); retrying", exc)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)
            await self._sleep(RETRY_SECONDS)

    async def _consume_and_fire(self, pool: asyncpg.Pool, lock_conn: asyncpg.Connection) -> None:
        nc = await nats.connect(
            self.settings.nats_url, name="kact-notifier", max_reconnect_attempts=-1, reconnect_time_wait=0.5,
        )
        try:
            js = nc.jetstream()
            done = asyncio.Event()
            timers = asyncio.create_task(self._fire_timers(pool, done), name="timers")
            try:
                await self._consume(pool, js, lock_conn)
            finally:
                # Asked to end, not cancelled: a cancel can be lost in a wait_for that completes at that moment.
                done.set()
                self._timers_changed.set()
                await timers
        finally:
            # Every message in hand was acked or nak'ed: close (a drain waits out the pending pull requests).
            with contextlib.suppress(Exception):
                await nc.close()

    async def _consume(self, pool: asyncpg.Pool, js: Any, lock_conn: asyncpg.Connection) -> None:
        s = self.settings
        subscription = None
        beaten = -HEARTBEAT_SECONDS

        async def beat() -> None:
            """A fetch found nothing waiting, or what it brought was handled: alive and consuming."""
            nonlocal beaten
            if time.monotonic() - beaten >= HEARTBEAT_SECONDS:
                await store.beat(pool, s.stream.name, s.consumer.durable_name)
                beaten = time.monotonic()

        while not self._stopping.is_set():
            try:
                if subscription is None:
                    await ensure_stream(js, s.stream)
                    await ensure_consumer(js, s.stream, s.consumer)
                    subscription = await js.pull_subscribe_bind(durable=s.consumer.durable_name, stream=s.stream.name)
                messages = await subscription.fetch(100, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                metrics().inbox_pending.set(0)
                self._caught_up = True
                self._timers_changed.set()
                await lock_conn.fetchval("SELECT 1")  # still holding the lock (raises if the connection broke)
                await beat()
                continue
            except nats.errors.Error as exc:
                log.warning("notifier: NATS unavailable (%s); retrying", exc)
                subscription = None
                await self._sleep(RETRY_SECONDS)
                continue
            if self._stopping.is_set():
                for message in messages:  # let the next notifier have them at once
                    with contextlib.suppress(Exception):
                        await message.nak()
                return
            await self._handle(pool, messages)
            if messages:
                metrics().inbox_pending.set(messages[-1].metadata.num_pending)
            await beat()

    async def _handle(self, pool: asyncpg.Pool, messages: list[Any]) -> None:
        """Process a fetched batch in one transaction, then ack it. If the batch fails, each message is
        processed alone, so that one poison message delays only itself."""
        spans = [_consuming(message) for message in messages]
        try:
            await self._handle_batch(pool, messages)
        finally:
            for span in spans:
                span.end()

    async def _handle_batch(self, pool: asyncpg.Pool, messages: list[Any]) -> None:
        batch: list[tuple[Any, store.Received]] = []
        for message in messages:
            try:
                batch.append((message, store.Received.of(decode(message.data), message.metadata.sequence.stream)))
            except (msgspec.ValidationError, msgspec.DecodeError, KeyError) as exc:
                # Malformed: no retry can help. Kept as a dead letter, visible and redrivable.
                await self._dead_letter(pool, message, f"undecodable: {exc}", None)
                await message.ack()
        if not batch:
            return
        try:
            fresh = await self._process_holding(pool, batch)
        except Exception as exc:  # noqa: BLE001 - any failure: one by one, then nak or dead letter
            if len(batch) > 1:
                log.warning("notifier: a batch of %d failed (%s); processing one by one", len(batch), exc)
                for message, _ in batch:
                    await self._handle_batch(pool, [message])
                return
            await self._refuse(pool, batch[0], exc)
            return
        for (message, _), new in zip(batch, fresh, strict=True):
            await message.ack()
            if new:
                self.processed += 1
            else:
                self.duplicates += 1
            metrics().messages.labels("processed" if new else "duplicate").inc()
        self._caught_up = batch[-1][0].metadata.num_pending == 0

    async def _process_holding(self, pool: asyncpg.Pool, batch: list[tuple[Any, store.Received]]) -> list[bool]:
        """`store.process_batch`; while the database is away, holds the messages (and with them each course's
        order), telling JetStream they are in progress, and keeps trying."""
        while True:
            try:
                async with pool.acquire() as conn:
                    return await store.process_batch(conn, [received for _, received in batch], self.settings.policy)
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                    asyncpg.CannotConnectNowError) as exc:
                log.warning("notifier: database unavailable (%s); holding %d message(s)", exc, len(batch))
                for message, _ in batch:
                    with contextlib.suppress(Exception):
                        await message.in_progress()
                await asyncio.sleep(RETRY_SECONDS)

    async def _refuse(self, pool: asyncpg.Pool, item: tuple[Any, store.Received], exc: Exception) -> None:
        """A message whose processing failed: redelivered after a back-off, a dead letter after the last try."""
        message, received = item
        meta = message.metadata
        log.error("notifier: processing %s failed (delivery %d)", received.message.id, meta.num_delivered, exc_info=exc,
                  extra={"course_id": received.message.courseid,
                         "trace_id": tracing.trace_id_of(_traceparent(message))})
        if meta.num_delivered >= self.settings.consumer.max_deliver:
            await self._dead_letter(pool, message, f"{type(exc).__name__}: {exc}", received.message.id)
            await message.ack()
        else:
            backoff = self.settings.consumer.backoff_seconds
            await message.nak(delay=backoff[min(meta.num_delivered, len(backoff)) - 1])
            metrics().messages.labels("retried").inc()

    async def _dead_letter(self, pool: asyncpg.Pool, message: Any, error: str, event_id: str | None) -> None:
        meta = message.metadata
        await store.dead_letter(
            pool, subject=message.subject, payload=message.data, error=error,
            deliveries=meta.num_delivered, stream_seq=meta.sequence.stream, event_id=event_id,
        )
        self.dead_letters += 1
        metrics().dead_letters.inc()
        metrics().messages.labels("dead_letter").inc()

    async def _fire_timers(self, pool: asyncpg.Pool, done: asyncio.Event) -> None:
        """Send reminders, escalations and warnings when due, and redrive the dead letters an operator
        released: sleeps until the next timer (at most a tick)."""
        while not done.is_set():
            try:
                now = datetime.now(UTC)
                while self._caught_up and await store.fire_due_timers(pool, now):
                    now = datetime.now(UTC)
                await store.redrive_dead_letters(pool, self.settings.policy)
                due = await store.next_timer_due(pool)
                wait = TIMER_TICK_SECONDS if due is None else min(TIMER_TICK_SECONDS, (due - now).total_seconds())
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("notifier: timers paused (%s)", exc)
                wait = RETRY_SECONDS
            self._timers_changed.clear()
            if not done.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(wait, 0.01)):
                        await self._timers_changed.wait()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()


def _traceparent(message: Any) -> str | None:
    headers = getattr(message, "headers", None)
    return headers.get("traceparent") if headers else None


def _consuming(message: Any) -> Any:
    """The span one message is processed under: child of the publication its `traceparent` header names."""
    span = tracing.start("process", tracing.context_of(_traceparent(message)) or tracing.EMPTY, tracing.CONSUMER)
    if span.is_recording():
        span.set_attributes({"messaging.system": "nats", "messaging.destination.name": message.subject})
    return span
