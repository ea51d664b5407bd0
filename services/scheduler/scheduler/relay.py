"""The relay: every stored course event, in order, to NATS JetStream; the event store is the outbox.

It follows the notification log through the library's LISTEN/NOTIFY subscription, publishes each public
event as a CloudEvents message with `Nats-Msg-Id` = the event id, waits for the stream's acks, and only then
records its position in the `relay_tracking` table. A crash or an outage re-publishes at most the
unrecorded tail, which the stream's duplicate window drops. One process relays at a time (`Singleton`).

Each publication is a span (a producer's), child of the trace context the event was stored with; the message
carries it on in its `traceparent` header, and the event's own in its CloudEvents `traceparent` attribute.

An event that can never be published as it is stored (it does not map, breaks its contract's bounds, is
larger than the server's max_payload, or the stream refuses that message) is a dead letter: recorded in
`relay_dead_letters` in the same transaction as the position past it, so that the events after it flow and a
restart neither skips a good event nor stops at the bad one again. Outages (NATS away, no ack in time, the
database away) and failures to decrypt or decode a stored event (a wrong cipher key, a topic this code does
not know: the whole log would fail alike) are retried from the recorded position instead."""

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
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.utils import Environment
from kact_contracts import tracing
from kact_contracts.bus import StreamSettings, subject
from kact_contracts.envelope import event_id
from kact_contracts.events import BY_TYPE
from kact_contracts.jetstream import ensure_stream
from nats.js.errors import BadRequestError
from psycopg.sql import SQL, Identifier

from scheduler.application.courses import Courses
from scheduler.background import BackgroundThread
from scheduler.domain.course import Course
from scheduler.event_store import ListenFirstSubscription
from scheduler.metrics import RELAY_DEAD_LETTERED, RELAY_PUBLISHED
from scheduler.publishing import UnpublishableError, public_message

# Only courses' events are read: a calendar's stay internal (the course's own events say what happened, to
# whom it concerns), and each transaction ends with a course's event (`application.courses.Work.changed`).
COURSE_EVENT_TOPICS = tuple(
    cls.TOPIC for cls in vars(Course).values()
    if isinstance(cls, type) and issubclass(cls, Course.Event) and "TOPIC" in vars(cls))
log = logging.getLogger("kact.relay")
RETRY_SECONDS = 1.0
CONNECT_SECONDS = 5.0
HOME_CLINIC_CACHE = 50_000
TRACKING_TABLE = "relay_tracking"
DEAD_LETTERS_TABLE = "relay_dead_letters"
# Room for a message's headers (`Nats-Msg-Id`, `Nats-Expected-Stream`): the server's max_payload bounds headers
# and payload together, and a message over it would make the server close the connection (an endless retry).
HEADER_ROOM = 1024
# JetStream's error codes for a message the stream refuses for what it is (over the stream's maximum message or
# header size). Other refusals (a stream that does not match, limits reached) would refuse every message alike:
# those are retried, and delivery health reports the relay stuck.
REFUSED_MESSAGE_CODES = frozenset({10054, 10097})


@dataclass(frozen=True)
class DeadLetter:
    """A stored event the relay could not publish: which one and why (never its data)."""

    notification_id: int
    course_id: UUID
    course_version: int
    topic: str
    event_id: str
    error: str

    @classmethod
    def of(cls, notification: Notification, error: str) -> DeadLetter:
        return cls(notification.id, notification.originator_id, notification.originator_version,
                   notification.topic, event_id(notification.originator_id, notification.originator_version), error)


class RelayRecorder(PostgresTrackingRecorder):
    """The relay's position (`relay_tracking`) and its dead letters (`relay_dead_letters`), written together."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        table = Identifier(self.datastore.schema, DEAD_LETTERS_TABLE)
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {} (notification_id bigint PRIMARY KEY, course_id uuid NOT NULL, "
            "course_version bigint NOT NULL, topic text NOT NULL, event_id text NOT NULL, error text NOT NULL, "
            "created_at timestamptz NOT NULL DEFAULT now())"
        ).format(table))
        self.insert_dead_letter_statement = SQL(
            "INSERT INTO {} (notification_id, course_id, course_version, topic, event_id, error) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (notification_id) DO NOTHING"
        ).format(table)

    def record(self, tracking: Tracking, dead_letters: list[DeadLetter]) -> None:
        """The position reached and the dead letters up to it, in one transaction (a dead letter recorded again
        after a crash is kept once)."""
        with self.datastore.transaction(commit=True) as curs:
            if dead_letters:
                curs.executemany(self.insert_dead_letter_statement, [
                    (d.notification_id, d.course_id, d.course_version, d.topic, d.event_id, d.error)
                    for d in dead_letters
                ])
            self._insert_tracking(curs, tracking)


def relay_tracking(env: dict[str, str]) -> RelayRecorder:
    """The relay's position and dead letter tables (`relay_tracking`, `relay_dead_letters`), created if missing."""
    factory = InfrastructureFactory[PostgresTrackingRecorder].construct(env=Environment("relay", env))
    return factory.tracking_recorder(RelayRecorder)


@dataclass
class RelayStats:
    published: int = 0
    duplicates: int = 0
    position: int = 0
    restarts: int = 0
    dead_letters: int = 0
    last_error: str | None = None
    connected: bool = False


class Relay(BackgroundThread):
    def __init__(
        self,
        app: Courses,
        tracking: RelayRecorder,
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
        # nats-py (2.16) retries a refused first connection for ever, whatever the options: bounded here, so that
        # an outage shows as restarts and a stop is noticed.
        nc = await asyncio.wait_for(nats.connect(
            self.nats_url, name="kact-relay", allow_reconnect=False, connect_timeout=2, max_reconnect_attempts=0
        ), CONNECT_SECONDS)
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
                        await self._publish(js, nc.max_payload, batch)
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
            with self.app.recorder.subscribe(gt=position, topics=COURSE_EVENT_TOPICS) as subscription:
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

    async def _publish(self, js: Any, max_payload: int, batch: list[Notification]) -> None:
        dead: list[DeadLetter] = []
        published_before = self.stats.published
        sent: list[tuple[Notification, str, bytes, dict[str, str], asyncio.Future[Any]]] = []
        spans: list[Any] = []
        try:
            await self._publish_batch(js, max_payload, batch, dead, sent, spans)
        finally:
            for span in spans:
                span.end()
        last = batch[-1].id
        await asyncio.to_thread(self.tracking.record, Tracking(self.app.name, last), dead)
        RELAY_PUBLISHED.inc(self.stats.published - published_before)  # counted once their position is recorded
        RELAY_DEAD_LETTERED.inc(len(dead))
        self.stats.dead_letters += len(dead)
        self.stats.position = last

    async def _publish_batch(self, js: Any, max_payload: int, batch: list[Notification], dead: list[DeadLetter],
                             sent: list[tuple[Notification, str, bytes, dict[str, str], asyncio.Future[Any]]],
                             spans: list[Any]) -> None:
        for notification in batch:
            # Decrypting and decoding is not guarded: failing here, every event would (wrong key, unknown topic).
            event = self.app.mapper.to_domain_event(notification)
            try:
                prepared = public_message(event, self._home_clinic(event), notification.id)
                if prepared is None:
                    continue
                message, payload = prepared
                if len(payload) + HEADER_ROOM > max_payload:
                    raise UnpublishableError(
                        f"the message takes {len(payload)} bytes; the server's max_payload is {max_payload}")
                to = subject(self.stream.prefix, event.originator_id, BY_TYPE[message.type])
                span = tracing.start(f"publish {message.type}", tracing.context_of(event.traceparent) or tracing.EMPTY,
                                     tracing.PRODUCER)
                spans.append(span)
                headers = {"Nats-Msg-Id": message.id}
                traceparent = tracing.traceparent(span)
                if traceparent is not None:
                    headers["traceparent"] = traceparent  # the trace context goes on, and nothing else
                if span.is_recording():
                    span.set_attributes({"messaging.system": "nats", "messaging.destination.name": to,
                                         "messaging.message.id": message.id, "kact.course_id": str(event.originator_id)})
                # Published in log order over one connection, so the stream keeps each course's order.
                ack = await js.publish_async(to, payload, headers=headers, stream=self.stream.name)
                sent.append((notification, to, payload, headers, ack))
            except (UnpublishableError, nats.errors.MaxPayloadError) as exc:
                dead.append(self._dead_letter(notification, exc))
        with contextlib.suppress(TimeoutError):  # the messages still without an ack are cancelled: see below
            await asyncio.wait_for(asyncio.gather(*(ack for *_, ack in sent), return_exceptions=True),
                                   self.ack_timeout)
        for notification, to, payload, headers, ack in sent:
            if ack.cancelled():
                # No answer in time. nats-py (2.16) never resolves publish_async's future when the stream refuses
                # a message (its reply handler raises instead), so ask once more and wait for this one's answer:
                # an ack (a duplicate if the first was stored), a refusal, or an outage that raises.
                result = await self._publish_alone(js, to, payload, headers)
            else:
                result = ack.exception() or ack.result()
            if isinstance(result, BadRequestError) and result.err_code in REFUSED_MESSAGE_CODES:
                dead.append(self._dead_letter(notification, result))
            elif isinstance(result, BaseException):  # unavailable, no stream, a timeout: retry the batch
                raise result
            else:
                self.stats.published += 1
                self.stats.duplicates += bool(result.duplicate)

    async def _publish_alone(self, js: Any, to: str, payload: bytes, headers: dict[str, str]) -> Any:
        """Publish one message and wait for its ack; the stream's refusal is returned, any other failure raised."""
        try:
            return await js.publish(to, payload, timeout=self.ack_timeout, stream=self.stream.name,
                                    headers=headers)
        except BadRequestError as refused:
            return refused

    def _dead_letter(self, notification: Notification, exc: BaseException) -> DeadLetter:
        error = str(exc) if isinstance(exc, UnpublishableError) else f"{type(exc).__name__}: {exc}"
        log.error("relay: event %s of course %s (%s) cannot be published and becomes a dead letter: %s",
                  notification.id, notification.originator_id, notification.topic, error,
                  extra={"course_id": str(notification.originator_id)})
        return DeadLetter.of(notification, error[:1000])

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
