"""The relay: stored course events reach JetStream in order, valid, once, across restarts and fail-over."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg.rows
import pytest
from builders import BY, HOME, HOME_HOST, completed_course, hours, open_course
from bus_support import check_message, delete_stream, read_stream
from eventsourcing.cryptography import AESCipher
from kact_contracts.bus import StreamSettings
from psycopg import sql
from scheduler.application.courses import Courses, event_store_env
from scheduler.domain.course import Course
from scheduler.embedded import EmbeddedNats
from scheduler.jobs import relay_singleton
from scheduler.publishing import to_public
from scheduler.relay import Relay, relay_tracking
from scheduler.settings import Settings
from scheduler.storage import migrate, projection_env

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(database_url: str, nats_url: str) -> Iterator[Settings]:
    token = secrets.token_hex(4)
    settings = Settings(
        database_url=database_url, db_schema=f"relay_{token}", cipher_key=AESCipher.create_key(32),
        nats_url=nats_url, nats_stream=f"RELAY_{token}", nats_prefix=f"relay{token}",
    )
    yield settings
    asyncio.run(delete_stream(nats_url, settings.nats_stream))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(settings.db_schema)))


@pytest.fixture
def store(settings: Settings) -> Iterator[tuple[Courses, dict[str, str]]]:
    env = event_store_env(settings)
    courses, view = migrate(settings, env)
    yield courses, env
    courses.close()
    view.datastore.close()


def stream_of(settings: Settings) -> StreamSettings:
    return StreamSettings(name=settings.nats_stream, prefix=settings.nats_prefix)


def relay(courses: Courses, env: dict[str, str], settings: Settings) -> Relay:
    return Relay(courses, relay_tracking(projection_env(env)), settings.nats_url or "", stream_of(settings)).start()


def save_courses(courses: Courses, n: int) -> list[Course]:
    saved = []
    for _ in range(n):
        course = completed_course()
        courses.save(course)
        saved.append(course)
    return saved


def public_events(courses: Courses, saved: list[Course]) -> dict[str, list[int]]:
    """Each course's published stream versions, as the contract mapping says they should be."""
    expected: dict[str, list[int]] = {}
    for course in saved:
        events = courses.repository.event_store.get(course.id)
        expected[str(course.id)] = [e.originator_version for e in events if to_public(e, course.home_clinic_id)]
    return expected


def published(messages: list[Any], stream: StreamSettings) -> dict[str, list[int]]:
    versions: dict[str, list[int]] = defaultdict(list)
    for message in messages:
        envelope = check_message(message.subject, dict(message.headers or {}), message.data, stream)
        versions[envelope.courseid].append(envelope.streamversion)
    return dict(versions)


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_stored_and_live_events_reach_the_stream_valid_and_in_course_order(
    store: tuple[Courses, dict[str, str]], settings: Settings
) -> None:
    courses, env = store
    saved = save_courses(courses, 3)  # before the relay starts: read from the log
    running = relay(courses, env, settings)
    try:
        saved += save_courses(courses, 3)  # while it runs: woken by NOTIFY
        expected = public_events(courses, saved)
        total = sum(map(len, expected.values()))
        messages = asyncio.run(read_stream(settings.nats_url or "", stream_of(settings), total))
        assert published(messages, stream_of(settings)) == expected
        assert len(messages) == total
        last = courses.recorder.max_notification_id()
        wait_for(lambda: running.stats.position == last)
        tracked = relay_tracking(projection_env(env))
        assert tracked.max_tracking_id(courses.name) == last
        tracked.datastore.close()
    finally:
        running.stop()


def test_a_restarted_relay_leaves_no_gap_and_the_stream_drops_its_repeats(
    store: tuple[Courses, dict[str, str]], settings: Settings
) -> None:
    courses, env = store
    saved: list[Course] = []
    writing = threading.Thread(target=lambda: saved.extend(save_courses(courses, 8)))
    first = relay(courses, env, settings)
    writing.start()
    wait_for(lambda: first.stats.published > 40)
    first.stop()  # mid-stream
    # As if it had crashed after the acks but before recording them: it must publish the tail again.
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        table = sql.Identifier(settings.db_schema, "relay_tracking")
        conn.execute(sql.SQL("DELETE FROM {}").format(table))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(table), (courses.name, 5))
    second = relay(courses, env, settings)
    try:
        writing.join()
        expected = public_events(courses, saved)
        total = sum(map(len, expected.values()))
        messages = asyncio.run(read_stream(settings.nats_url or "", stream_of(settings), total))
        assert published(messages, stream_of(settings)) == expected  # each event once, in course order
        wait_for(lambda: second.stats.position == courses.recorder.max_notification_id())
        assert second.stats.duplicates > 0  # the repeats were sent and dropped by the stream
    finally:
        second.stop()


def test_two_scheduler_processes_run_one_relay_and_the_other_takes_over(
    store: tuple[Courses, dict[str, str]], settings: Settings
) -> None:
    courses, env = store
    one = relay_singleton(settings, env, courses).start()
    other = relay_singleton(settings, env, Courses(env=env)).start()
    try:
        wait_for(lambda: one.is_leader or other.is_leader)
        leader, follower = (one, other) if one.is_leader else (other, one)
        saved = save_courses(courses, 2)
        leader.stop()  # the leading process goes away
        wait_for(lambda: follower.is_leader)
        saved += save_courses(courses, 2)
        expected = public_events(courses, saved)
        total = sum(map(len, expected.values()))
        messages = asyncio.run(read_stream(settings.nats_url or "", stream_of(settings), total))
        assert published(messages, stream_of(settings)) == expected
        assert not (one.is_leader and other.is_leader)
    finally:
        one.stop()
        other.stop()


def dead_letters(settings: Settings) -> list[dict[str, Any]]:
    with psycopg.connect(settings.database_url or "", autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(sql.SQL("SELECT * FROM {} ORDER BY notification_id").format(
            sql.Identifier(settings.db_schema, "relay_dead_letters"))).fetchall()


def notification_of(courses: Courses, course: Course, version: int) -> int:
    return next(n.id for n in courses.recorder.select_notifications(start=1, limit=10_000)
                if n.originator_id == course.id and n.originator_version == version)


def course_with_booking(**booking: Any) -> Course:
    """An open course whose second event books a session with these overrides (the domain checks none of them)."""
    course = open_course()
    course.book_session(session_id="s1", kind="assessment", partners=("a", "b"), starts_at=hours(24),
                        ends_at=hours(25), clinic_id=HOME, host=HOME_HOST, by=BY, **booking)
    return course


def test_an_event_that_cannot_be_published_is_a_dead_letter_and_the_events_after_it_flow(
    store: tuple[Courses, dict[str, str]], settings: Settings
) -> None:
    courses, env = store
    # A booking stored with a 2 MB time zone (as the API once accepted): over its contract's bound and over
    # NATS's max_payload. Then other courses' events after it.
    bad = course_with_booking(timezone="Europe/" + "X" * 2_000_000)
    courses.save(bad)
    bad_position = notification_of(courses, bad, 2)
    saved = save_courses(courses, 2)
    running = relay(courses, env, settings)
    try:
        expected = public_events(courses, saved)
        expected[str(bad.id)] = [1]  # its opening is published, its booking is not
        total = sum(map(len, expected.values()))
        messages = asyncio.run(read_stream(settings.nats_url or "", stream_of(settings), total))
        assert published(messages, stream_of(settings)) == expected
        wait_for(lambda: running.stats.position == courses.recorder.max_notification_id())
    finally:
        running.stop()
    [letter] = dead_letters(settings)
    assert (letter["notification_id"], letter["course_id"], letter["course_version"]) == (bad_position, bad.id, 2)
    assert letter["topic"].endswith("SessionBooked.v1") and "timezone" in letter["error"]
    assert "XXXX" not in letter["error"]  # ids and the reason only, never the event's data
    assert running.stats.restarts == 0 and running.stats.dead_letters == 1

    # As if it had crashed after publishing but before recording: it goes through the bad event again, records
    # it once, and reaches the head; the repeats of the good events are dropped by the stream.
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        table = sql.Identifier(settings.db_schema, "relay_tracking")
        conn.execute(sql.SQL("UPDATE {} SET notification_id = %s").format(table), (bad_position - 1,))
    again = relay(courses, env, settings)
    try:
        wait_for(lambda: again.stats.position == courses.recorder.max_notification_id())
        later = save_courses(courses, 1)
        expected |= public_events(courses, later)
        total = sum(map(len, expected.values()))
        messages = asyncio.run(read_stream(settings.nats_url or "", stream_of(settings), total))
        assert published(messages, stream_of(settings)) == expected
        assert again.stats.duplicates > 0 and again.stats.restarts == 0
    finally:
        again.stop()
    assert [d["notification_id"] for d in dead_letters(settings)] == [bad_position]


def test_a_message_over_the_servers_max_payload_is_a_dead_letter(
    store: tuple[Courses, dict[str, str]], settings: Settings, tmp_path: Path
) -> None:
    courses, env = store
    # Within its contract (16 clinicians of 64 characters), but not within this server's 2 KiB.
    big = course_with_booking(clinician_ids=[f"{i:02d}" + "c" * 62 for i in range(16)])
    courses.save(big)
    saved = save_courses(courses, 1)
    with EmbeddedNats(tmp_path, max_payload=2048) as small:
        running = Relay(courses, relay_tracking(projection_env(env)), small.url, stream_of(settings)).start()
        try:
            expected = public_events(courses, saved) | {str(big.id): [1]}
            total = sum(map(len, expected.values()))
            messages = asyncio.run(read_stream(small.url, stream_of(settings), total))
            assert published(messages, stream_of(settings)) == expected
            wait_for(lambda: running.stats.position == courses.recorder.max_notification_id())
        finally:
            running.stop()
    [letter] = dead_letters(settings)
    assert letter["notification_id"] == notification_of(courses, big, 2)
    assert "max_payload is 2048" in letter["error"]
    assert running.stats.restarts == 0


def test_a_message_the_stream_refuses_is_a_dead_letter_and_an_outage_is_not(
    store: tuple[Courses, dict[str, str]], settings: Settings, tmp_path: Path
) -> None:
    courses, env = store
    # A stream that takes messages of at most 1200 bytes: a booking with many clinicians is within the contract
    # and the server's max_payload, and the stream refuses it (JetStream error 10054).
    stream = StreamSettings(name=settings.nats_stream, prefix=settings.nats_prefix, max_msg_size=1200)
    big = course_with_booking(clinician_ids=[f"{i:02d}" + "c" * 62 for i in range(16)])
    courses.save(big)
    nats_server = EmbeddedNats(tmp_path).start()
    try:
        running = Relay(courses, relay_tracking(projection_env(env)), nats_server.url, stream).start()
        try:
            wait_for(lambda: running.stats.position == courses.recorder.max_notification_id())
            [letter] = dead_letters(settings)
            assert letter["notification_id"] == notification_of(courses, big, 2) and "10054" in letter["error"]
            # NATS goes away: what is stored meanwhile waits (no dead letter), and flows once it is back.
            nats_server.stop()
            saved = save_courses(courses, 1)
            wait_for(lambda: running.stats.restarts >= 2)
            assert running.stats.position < courses.recorder.max_notification_id()
            assert len(dead_letters(settings)) == 1
        finally:
            running.stop()
        nats_server.start()  # the same store, on new ports
        running = Relay(courses, relay_tracking(projection_env(env)), nats_server.url, stream).start()
        try:
            wait_for(lambda: running.stats.position == courses.recorder.max_notification_id())
            expected = public_events(courses, saved) | {str(big.id): [1]}
            messages = asyncio.run(read_stream(nats_server.url, stream, sum(map(len, expected.values()))))
            assert published(messages, stream) == expected
            assert len(dead_letters(settings)) == 1
        finally:
            running.stop()
    finally:
        nats_server.stop()
