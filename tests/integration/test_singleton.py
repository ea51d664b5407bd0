"""Exactly one process leads a singleton job; when it goes, another takes over."""

from __future__ import annotations

import secrets
import threading
import time

import pytest

from scheduler.singleton import Singleton

pytestmark = pytest.mark.integration


def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_one_leader_at_a_time_and_fail_over(database_url: str) -> None:
    name = f"test-{secrets.token_hex(4)}"
    running: list[str] = []
    lock = threading.Lock()

    def member(tag: str) -> Singleton:
        def start() -> str:
            with lock:
                running.append(tag)
            return tag

        def stop(job: str) -> None:
            with lock:
                running.remove(job)

        return Singleton(database_url, name, start=start, stop=stop, retry_seconds=0.2)

    first, second = member("first").start(), member("second").start()
    try:
        wait_for(lambda: len(running) == 1)
        time.sleep(1.0)
        assert len(running) == 1 and first.is_leader != second.is_leader
        leader, follower = (first, second) if first.is_leader else (second, first)
        leader.stop()
        wait_for(lambda: follower.is_leader)
        assert running == ["second" if follower is second else "first"]
    finally:
        first.stop()
        second.stop()
    assert running == []


def test_a_job_that_fails_hands_the_lock_over(database_url: str) -> None:
    name = f"test-{secrets.token_hex(4)}"
    starts: list[str] = []
    broken = threading.Event()

    def member(tag: str) -> Singleton:
        def start() -> str:
            starts.append(tag)
            return tag

        return Singleton(database_url, name, start=start, stop=lambda job: None,
                         healthy=lambda job: not (job == "a" and broken.is_set()), retry_seconds=0.2)

    a = member("a").start()
    wait_for(lambda: a.is_leader)
    b = member("b").start()
    try:
        broken.set()
        wait_for(lambda: b.is_leader)
        assert starts[:2] == ["a", "b"]
    finally:
        a.stop()
        b.stop()
