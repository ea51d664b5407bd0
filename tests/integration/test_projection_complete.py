"""Under concurrent writers the course index misses nothing: notification ids commit in order.

Two more writers (each an application with its own group-commit thread, as in another process) insert
alongside the server, so inserts really race for notification ids."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from uuid import uuid4

import httpx
import pytest

from api_support import Tenant, eventually, ok
from scheduler.application.courses import Courses, event_store_env
from scheduler.domain.course import Course
from scheduler.domain.protocol import Protocol

pytestmark = pytest.mark.integration
COURSES = 120


def test_every_course_opened_concurrently_reaches_the_list(live_server) -> None:
    with httpx.Client(base_url=live_server.base_url, timeout=60) as client:
        home = Tenant.onboard(client, live_server.operator_token)

    writers = [Courses(env=event_store_env(live_server.settings)) for _ in range(2)]

    def open_one(n: int) -> str:
        if n % 3 == 2:
            with httpx.Client(base_url=live_server.base_url, timeout=60) as client:
                body = {"model": "together", "partners": {"a": "x", "b": "y"}}
                return ok(client.post("/v1/courses", json=body, headers=home.headers), 201)["id"]
        writer = writers[n % 3]
        course = writer.open_course(lambda: Course.open(
            course_id=uuid4(), home_clinic_id=home.clinic["id"], model="together", protocol=Protocol(),
            partners={"a": "x", "b": "y"}, by="clinic:test"))
        return str(course.id)

    try:
        with ThreadPoolExecutor(24) as pool:
            opened = set(pool.map(open_one, range(COURSES)))
    finally:
        for writer in writers:
            writer.close()
    assert len(opened) == COURSES

    def listed() -> set[str]:
        ids: set[str] = set()
        page = 1
        with httpx.Client(base_url=live_server.base_url, timeout=60) as client:
            while page:
                body = ok(client.get(f"/v1/courses?page={page}", headers=home.headers), 200)
                ids |= {c["id"] for c in body["items"]}
                page = body["next_page"]
        return ids

    assert eventually(listed, lambda ids: opened <= ids, timeout=20) >= opened
