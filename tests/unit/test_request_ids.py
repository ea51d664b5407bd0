"""The ids of what a request creates: derived from its Idempotency-Key, so that a request run a second time (its
first answer lost) names the same resources, which the store refuses; random for anything else."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID, uuid4

import pytest
from builders import BY, HOME
from scheduler.application.courses import Courses
from scheduler.application.errors import AlreadyCreatedError
from scheduler.application.ids import new_id, request_seed, seeded
from scheduler.domain.course import Course
from scheduler.domain.protocol import Protocol


def test_a_seeded_request_names_each_purpose_alike_every_time_it_runs() -> None:
    seed = request_seed("clinic:1", "key-1", "hash-1")
    with seeded(seed):
        first = new_id("course"), new_id("session")
    with seeded(request_seed("clinic:1", "key-1", "hash-1")):
        again = new_id("course"), new_id("session")
    assert first == again and first[0] != first[1]
    others = {request_seed("clinic:2", "key-1", "hash-1"), request_seed("clinic:1", "key-2", "hash-1"),
              request_seed("clinic:1", "key-1", "hash-2")}
    assert seed not in others and len(others) == 3  # another principal, key or request: other ids


def test_outside_a_seeded_request_ids_are_random() -> None:
    assert new_id("course") != new_id("course")
    with seeded(uuid4()):
        pass
    assert new_id("course") != new_id("course")  # the seed ends with its request


def test_a_thread_given_the_request_context_names_alike() -> None:
    # what the API's Services.run does for the eventsourcing calls it hands to its threads
    async def in_thread() -> tuple[UUID, UUID]:
        with ThreadPoolExecutor(1) as pool, seeded(uuid4()):
            on_loop = new_id("course")
            off_loop = await asyncio.get_running_loop().run_in_executor(
                pool, functools.partial(contextvars.copy_context().run, new_id, "course"))
            return on_loop, off_loop

    on_loop, off_loop = asyncio.run(in_thread())
    assert on_loop == off_loop


def opened(course_id: UUID) -> Course:
    return Course.open(course_id=course_id, home_clinic_id=HOME, model="together", protocol=Protocol(),
                       partners={"a": "ref-a", "b": "ref-b"}, by=BY)


@pytest.mark.parametrize("cached", [True, False], ids=["this process holds it", "another process saved it"])
def test_a_course_opened_again_under_its_id_is_refused_never_saved_twice(cached: bool) -> None:
    env = {"PERSISTENCE_MODULE": "eventsourcing.popo", **({"AGGREGATE_CACHE_MAXSIZE": "100"} if cached else {})}
    app = Courses(env=env)
    try:
        course_id = uuid4()
        app.open_course(lambda: opened(course_id))
        with pytest.raises(AlreadyCreatedError) as refused:
            app.open_course(lambda: opened(course_id))
        assert (refused.value.kind, refused.value.id) == ("course", course_id)
        assert [type(e).__name__ for e in app.events.get(course_id)] == ["Created"]
    finally:
        app.close()
