"""The one step driver: a command's execution is a generator of steps, carried out in a thread or on the loop."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """Run `fn` (CPU work or a read of the store: load, decide, encode the events) and send back its result."""

    fn: Callable[[], Any]


@dataclass(frozen=True)
class Commit:
    """Wait until the group commit saved these events (raises IntegrityError if another writer won)."""

    future: Future[None]


@dataclass(frozen=True)
class Pause:
    seconds: float


Step = Call | Commit | Pause
Steps = Generator[Step, Any, T]


def run_steps(steps: Steps[T]) -> T:
    """Carry out the steps in this thread (jobs, tests)."""
    advance: Callable[[], Step] = functools.partial(next, steps)
    while True:
        try:
            step = advance()
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        try:
            match step:
                case Call(fn):
                    result = fn()
                case Commit(future):
                    result = future.result()
                case Pause(seconds):
                    result = time.sleep(seconds)
        except Exception as error:  # noqa: BLE001 - thrown back into the execution, which decides
            advance = functools.partial(steps.throw, error)
        else:
            advance = functools.partial(steps.send, result)


async def run_steps_async(steps: Steps[T], in_thread: Callable[[Callable[[], Any]], Awaitable[Any]]) -> T:
    """Carry out the steps on the event loop: `Call` in a worker thread (`in_thread`), the wait for the group
    commit without holding a thread (so a few threads serve every command in flight)."""
    advance: Callable[[], Step] = functools.partial(next, steps)
    while True:
        try:
            step = advance()
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        try:
            match step:
                case Call(fn):
                    result = await in_thread(fn)
                case Commit(future):
                    result = await to_the_end(asyncio.wrap_future(future))
                case Pause(seconds):
                    result = await asyncio.sleep(seconds)
        except Exception as error:  # noqa: BLE001 - thrown back into the execution, which decides
            advance = functools.partial(steps.throw, error)
        else:
            advance = functools.partial(steps.send, result)


async def to_the_end(future: asyncio.Future[T]) -> T:
    """Await a future that stands for work in another thread; cancelled, still wait for that work to end (a
    command commits or not) before the cancellation goes on."""
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise
