"""The event store's subscription: it reads once its LISTEN is in place, so no commit is announced to nobody."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.cryptography import AESCipher
from eventsourcing.persistence import Notification
from scheduler.application.courses import Courses, event_store_env
from scheduler.domain.course import Course
from scheduler.domain.protocol import Protocol
from scheduler.event_store import ListenFirstSubscription
from scheduler.settings import Settings
from scheduler.storage import migrate

pytestmark = pytest.mark.integration


@pytest.fixture
def courses(database_url: str, schema: str) -> Iterator[Courses]:
    settings = Settings(database_url=database_url, db_schema=schema, cipher_key=AESCipher.create_key(32))
    courses, view = migrate(settings, event_store_env(settings))
    view.datastore.close()
    yield courses
    courses.close()


def _open(courses: Courses) -> Course:
    return courses.open_course(lambda: Course.open(
        course_id=uuid4(), home_clinic_id="home", model="together", protocol=Protocol(),
        partners={"a": "x", "b": "y"}, by="clinic:home"))


def _read(subscription: ListenFirstSubscription, count: int, within: float = 5.0) -> list[Notification]:
    """The next `count` notifications, or as many as came within `within` seconds (then the subscription stops)."""
    stopper = threading.Timer(within, subscription.stop)
    stopper.start()
    try:
        return [notification for _, notification in zip(range(count), subscription, strict=False)]
    finally:
        stopper.cancel()


class SlowToListen(ListenFirstSubscription):
    """Its LISTEN takes half a second to be in place (a busy database, a slow pool)."""

    def _listen(self) -> None:
        time.sleep(0.5)
        super()._listen()


def test_a_commit_before_the_listen_is_in_place_is_still_read(courses: Courses) -> None:
    """The library's own subscription reads at once, so a commit in this window was announced to nobody and
    its events waited for the next commit; here the first read waits for the LISTEN."""
    with SlowToListen(recorder=courses.recorder, gt=0) as subscription:
        time.sleep(0.2)  # the subscription has started, its LISTEN is not in place yet
        course = _open(courses)
        read = _read(subscription, 1)
    assert [n.originator_id for n in read] == [course.id]


def test_a_burst_of_commits_is_read_whole_and_in_order(courses: Courses) -> None:
    with courses.recorder.subscribe(gt=0) as subscription:
        assert isinstance(subscription, ListenFirstSubscription)
        opened = [_open(courses).id for _ in range(25)]  # 25 commits, many while the subscription settles
        read = _read(subscription, 25)
    assert [n.originator_id for n in read] == opened
    ids = [n.id for n in read]
    assert ids == sorted(ids) and len(set(ids)) == 25


class NeverListens(ListenFirstSubscription):
    def _listen(self, *args: Any) -> None:
        while not self._has_been_stopped:
            time.sleep(0.01)


def test_a_subscription_stopped_before_it_listens_ends(courses: Courses) -> None:
    with NeverListens(recorder=courses.recorder, gt=0) as subscription:
        time.sleep(0.1)
        started = time.monotonic()
        subscription.stop()
    # leaving the block joined both threads
    assert time.monotonic() - started < 2.0
    assert not subscription._pull_thread.is_alive()  # noqa: SLF001
