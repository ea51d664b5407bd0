"""The relay: every stored course event, in order, to NATS JetStream; the event store is the outbox.

It follows the notification log through the library's LISTEN/NOTIFY subscription, publishes each public
event as a CloudEvents message with `Nats-Msg-Id` = the event id, waits for the stream's acks, and only then
records its position in the `relay_tracking` table. A crash or an outage re-publishes at most the
unrecorded tail, which the stream's duplicate window drops. One process relays at a time (`Singleton`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import nats
import uvloop
from eventsourcing.persistence import InfrastructureFactory, Notification, Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.utils import Environment
from kact_contracts.bus import StreamSettings, subject
from kact_contracts.envelope import encode, envelope
from kact_contracts.jetstream import ensure_stream

from scheduler.application import Courses
from scheduler.background import BackgroundThread
from scheduler.domain.course import Course
from scheduler.event_store import ListenFirstSubscription
from scheduler.publishing import to_public

log = logging.getLogger("kact.relay")
RETRY_SECONDS = 1.0
HOME_CLINIC_CACHE = 50_000


def relay_tracking(env: dict[str, str]) -> PostgresTrackingRecorder:
    """The relay's position table (`relay_tracking`), created if missing."""
    factory = InfrastructureFactory[PostgresTrackingRecorder].construct(env=Environment("relay", env))
    return factory.tracking_recorder()


@dataclass
class RelayStats:
    published: int = 0
    duplicates: int = 0
    position: int = 0
    restarts: int = 0
    last_error: str | None = None
    connected: bool = False


class Relay(BackgroundThread):
    def __init__(
        self,
        app: Courses,
        tracking: PostgresTrackingRecorder,
        nats_url: str,
        stream: StreamSettings,
        batch_size: int = 500,
        ack_timeout: float = 5.0,
    ) -> None:
        self.app, self.tracking, self.nats_url, self.stream = app, tracking, nats_url, stream
        self.batch_size, self.ack_timeout = batch_size, ack_timeout
        self.stats = RelayStats()
        self._home_clinics: OrderedDict[UUID, str] = OrderedDict()
        super().__init__("relay")

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    runner.run(self._relay())
            except Exception as exc:  # noqa: BLE001 - any failure: start again from the recorded position
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                self.stats.restarts += 1
                log.warning("relay stopped (%s); resuming from the recorded position", self.stats.last_error)
            finally:
                self.stats.connected = False
            self._stopping.wait(RETRY_SECONDS)

    async def _relay(self) -> None:
        nc = await nats.connect(
            self.nats_url, name="kact-relay", allow_reconnect=False, connect_timeout=2, max_reconnect_attempts=0
        )
        try:
            js = nc.jetstream(timeout=self.ack_timeout)
            await ensure_stream(js, self.stream)
            self.stats.connected = True
            position = self.tracking.max_tracking_id(self.app.name) or 0
            self.stats.position = position
            # Whole reads of the store (at most 500 notifications each); bounded, so a relay that falls behind
            # holds the reader back.
            notifications: queue.Queue[list[Notification]] = queue.Queue(maxsize=4)
            done = threading.Event()
            arrived = asyncio.Event()
            loop = asyncio.get_running_loop()

            def wake() -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed: this run of the relay is over
                    loop.call_soon_threadsafe(arrived.set)

            reader = threading.Thread(
                target=self._read, args=(position, notifications, done, wake), name="relay-reader", daemon=True
            )
            reader.start()
            try:
                while not self._stopping.is_set():
                    arrived.clear()  # before taking: a notification put after this sets it again
                    batch = self._take(notifications)
                    if batch:
                        await self._publish(js, batch)
                    elif done.is_set():
                        raise RuntimeError("the event store subscription ended")
                    else:
                        with contextlib.suppress(TimeoutError):  # now and then: to notice stopping
                            async with asyncio.timeout(0.2):
                                await arrived.wait()
            finally:
                done.set()
                reader.join(5)
        finally:
            await nc.close()

    def _read(
        self, position: int, out: queue.Queue[list[Notification]], done: threading.Event, wake: Callable[[], object]
    ) -> None:
        """Feeds the reads of the LISTEN/NOTIFY subscription after `position` (each a list of notifications) until
        `done`, calling `wake` after each."""
        try:
            with self.app.recorder.subscribe(gt=position) as subscription:
                assert isinstance(subscription, ListenFirstSubscription)
                subscription.stop_when(done)
                while not done.is_set():
                    try:
                        read = subscription.take()
                    except StopIteration:
                        return
                    while not done.is_set():
                        try:
                            out.put(read, timeout=0.2)
                            wake()
                            break
                        except queue.Full:
                            continue
        except Exception as exc:  # noqa: BLE001
            log.warning("relay subscription failed: %s", exc)
        finally:
            done.set()
            wake()

    def _take(self, notifications: queue.Queue[list[Notification]]) -> list[Notification]:
        """The notifications waiting (whole reads, up to about a batch), without waiting."""
        batch: list[Notification] = []
        while len(batch) < self.batch_size:
            try:
                batch.extend(notifications.get_nowait())
            except queue.Empty:
                break
        return batch

    async def _publish(self, js: Any, batch: list[Notification]) -> None:
        acks = []
        for notification in batch:
            event = self.app.mapper.to_domain_event(notification)
            home = self._home_clinic(event)
            public = to_public(event, home)
            if public is None:
                continue
            message = envelope(
                public, course_id=event.originator_id, version=event.originator_version, time=event.timestamp,
                clinic_id=home, position=notification.id,
            )
            # Published in log order over one connection, so the stream keeps each course's order.
            acks.append(await js.publish_async(
                subject(self.stream.prefix, event.originator_id, public), encode(message),
                headers={"Nats-Msg-Id": message.id}, stream=self.stream.name,
            ))
        for ack in await asyncio.wait_for(asyncio.gather(*acks), self.ack_timeout):
            self.stats.published += 1
            self.stats.duplicates += bool(ack.duplicate)
        last = batch[-1].id
        await asyncio.to_thread(self.tracking.insert_tracking, Tracking(self.app.name, last))
        self.stats.position = last

    def _home_clinic(self, event: Course.Event) -> str:
        course_id = event.originator_id
        if isinstance(event, Course.Created):
            home = event.home_clinic_id
        elif course_id in self._home_clinics:
            self._home_clinics.move_to_end(course_id)
            return self._home_clinics[course_id]
        else:
            home = self.app.repository.get(course_id, version=1).home_clinic_id
        self._home_clinics[course_id] = home
        if len(self._home_clinics) > HOME_CLINIC_CACHE:
            self._home_clinics.popitem(last=False)
        return home
