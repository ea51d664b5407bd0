"""The command API over the event store: load a course, run one domain command, save atomically."""

from __future__ import annotations

import functools
import queue
import random
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import Future
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg_pool
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError, StoredEvent

from scheduler.domain.course import Course
from scheduler.domain.errors import DomainError
from scheduler.settings import DatabaseAddress, Settings

CONFLICT_RETRIES = 8
# A command's events are saved within this many seconds of being decided, or not at all: while the database is
# unreachable every command is refused within about two seconds (attempts end by the pool's timeout), and none
# is committed after its client was told it failed.
COMMIT_DEADLINE_SECONDS = 1.0


class CourseNotFoundError(DomainError):
    def __init__(self, course_id: UUID) -> None:
        self.course_id = course_id
        super().__init__(f"no course {course_id}")


class StoreUnavailableError(Exception):
    """The event store could not be reached in time; nothing of the command was saved."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the event store is unavailable ({reason}); nothing was saved")


class OutcomeUnknownError(StoreUnavailableError):
    """The connection broke while the command was being saved, and the database stayed unreachable: it may or may
    not have been saved (read the course, or retry with the same Idempotency-Key)."""

    def __init__(self, reason: str) -> None:
        Exception.__init__(self, f"the event store became unreachable while saving ({reason}); the command may or "
                                 "may not have been saved")


class ConcurrentUpdateError(DomainError):
    """Other writers kept winning the race for this course; the client may retry."""

    def __init__(self, course_id: UUID) -> None:
        self.course_id = course_id
        super().__init__(f"course {course_id} was changed concurrently, retry the command")


def event_store_env(settings: Settings) -> dict[str, str]:
    """The eventsourcing library's settings for PostgreSQL with AES-GCM encryption at rest."""
    assert settings.database_url and settings.cipher_key, "resolve the database and cipher key first"
    db = DatabaseAddress.from_url(settings.database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_HOST": db.host,
        "POSTGRES_PORT": str(db.port),
        "POSTGRES_USER": db.user,
        "POSTGRES_PASSWORD": db.password,
        "POSTGRES_DBNAME": db.dbname,
        "POSTGRES_SCHEMA": settings.db_schema,
        "POSTGRES_POOL_SIZE": str(settings.db_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.db_pool_size),
        "POSTGRES_LOCK_TIMEOUT": "5",
        # The longest a statement waits for a pooled connection: with the database gone, a command or read gives
        # up within about a second instead of the library's 30 (and its ten retries).
        "POSTGRES_CONNECT_TIMEOUT": "1",
        "CREATE_TABLE": "y",
        "POSTGRES_ENABLE_DB_FUNCTIONS": "y",
        "APPLICATION_RECORDER_TOPIC": "scheduler.event_store:LockedInsertRecorder",
        "CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher",
        "CIPHER_KEY": settings.cipher_key,
        # Cached aggregates are fast-forwarded from the store, so several processes stay correct.
        "AGGREGATE_CACHE_MAXSIZE": "5000",
        "AGGREGATE_CACHE_FASTFORWARD": "y",
    }


class GroupCommit:
    """Saves the courses of concurrent commands together, in one transaction.

    The event store takes a table lock for each transaction (to keep the notification log gap-free), so one
    transaction per command would cap the whole system at one commit, one fsync, per command. One writer thread
    saves whatever commands are waiting as one batch instead. A batch holds at most one command per course;
    if a course in it lost a race, the batch is saved again course by course, and only the loser reloads.

    Each command's events are encoded and encrypted in its own thread before it joins the queue: the writer,
    which every command waits for, only inserts.

    Each command has a deadline: the writer tries again after a transient error (a connection lost) while there
    is time, and fails the commands whose deadline passed before it tries again, so a command is either saved
    soon or never (an attempt in flight when its deadline passes still decides it)."""

    def __init__(self, app: Application, max_batch: int = 64, deadline_seconds: float = COMMIT_DEADLINE_SECONDS) -> None:
        self.app, self.max_batch, self.deadline_seconds = app, max_batch, deadline_seconds
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._last_error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def save(self, course: Course) -> None:
        self.submit(course).result()

    def submit(self, course: Course) -> Future[None]:
        """Queue the course's new events; the future is done once they are committed (or failed)."""
        pending = _Pending(course.id, [self.app.mapper.to_stored_event(e) for e in course.collect_events()],
                           deadline=time.monotonic() + self.deadline_seconds)
        self._queue.put(pending)
        return pending.done

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        carried: list[_Pending] = []
        stopping = False
        while not (stopping and not carried):
            waiting = carried or []
            carried = []
            if not waiting:
                item = self._queue.get()
                if item is None:
                    return
                waiting = [item]
            while len(waiting) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                waiting.append(item)
            batch, seen = [], set()
            for pending in waiting:
                (carried if pending.course_id in seen else batch).append(pending)
                seen.add(pending.course_id)
            self._save(batch)

    def _save(self, batch: list[_Pending]) -> None:
        doubtful = False  # the last attempt may have committed (the connection broke while it ran)
        while batch := self._in_time(batch, doubtful):
            try:
                if doubtful:  # find out first: saving the same events again would be a conflict with ourselves
                    batch = self._unsaved(batch)
                    doubtful = False
                    if not batch:
                        return
                self.app.recorder.insert_events([event for pending in batch for event in pending.events])
            except (InterfaceError, OperationalError) as error:  # again, for those still in time
                self._last_error = error
                doubtful = doubtful or not _never_sent(error)
                time.sleep(0.05)
                continue
            except IntegrityError:
                if len(batch) == 1:
                    batch[0].done.set_exception(IntegrityError("the course changed concurrently"))
                    return
                # One course lost a race: save each on its own, so only that command reloads and runs again.
                for pending in batch:
                    self._save([pending])
                return
            except BaseException as error:  # every waiting command gets the error, so none is lost or hidden
                for pending in batch:
                    pending.done.set_exception(error)
                return
            self._last_error = None
            for pending in batch:
                pending.done.set_result(None)
            return

    def _in_time(self, batch: list[_Pending], doubtful: bool) -> list[_Pending]:
        """The commands whose deadline has not passed; the others fail: unsaved, or (`doubtful`) not known to be."""
        now = time.monotonic()
        reason = str(self._last_error).splitlines()[0] if self._last_error else "no attempt in time"
        for pending in batch:
            if pending.deadline <= now:
                pending.done.set_exception(OutcomeUnknownError(reason) if doubtful else StoreUnavailableError(reason))
        return [pending for pending in batch if pending.deadline > now]

    def _unsaved(self, batch: list[_Pending]) -> list[_Pending]:
        """After an attempt whose outcome is unknown: the commands whose events are not in the store. Those that
        are were saved (done); those whose version another writer took lost a race (IntegrityError)."""
        found = {}  # every look-up first: one failing leaves every command undecided
        for pending in batch:
            first = pending.events[0]
            found[id(pending)] = self.app.recorder.select_events(
                first.originator_id, gt=first.originator_version - 1, lte=first.originator_version)
        unsaved = []
        for pending in batch:
            stored = found[id(pending)]
            if not stored:
                unsaved.append(pending)
            elif stored[0].state == pending.events[0].state:  # the very bytes sent (each encryption has its nonce)
                pending.done.set_result(None)
            else:
                pending.done.set_exception(IntegrityError("the course changed concurrently"))
        return unsaved


def _never_sent(error: Exception) -> bool:
    """Whether a failed attempt never reached the database (no connection to be had), so it saved nothing."""
    return isinstance(error.__cause__, psycopg_pool.PoolTimeout)


@dataclass
class _Pending:
    """One command's events, encoded for the store, and the future its thread waits on."""

    course_id: UUID
    events: list[StoredEvent]
    deadline: float  # time.monotonic(): no attempt to save these events starts later
    done: Future[None] = field(default_factory=Future)


@dataclass(frozen=True)
class Call:
    """Run `fn` (CPU work: load the course, run the command, encode its events) and send back its result."""

    fn: Callable[[], Any]


@dataclass(frozen=True)
class Commit:
    """Wait until the group commit saved these events (raises IntegrityError if another writer won)."""

    future: Future[None]


@dataclass(frozen=True)
class Pause:
    seconds: float


Step = Call | Commit | Pause


@dataclass(frozen=True)
class _Decided:
    course: Course
    committed: Future[None] | None  # None: nothing to save
    doubtful: bool = False  # decided on a cached copy without saving anything: decide again


class Courses(Application):
    """Courses as event streams; every command is optimistic and retried when another writer wins."""

    name = "courses"

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env=env)
        self._group_commit: GroupCommit | None = None
        self._group_commit_lock = threading.Lock()
        self._cache_lock = threading.Lock()

    def _save_grouped(self, course: Course) -> None:
        self._submit(course).result()

    def _submit(self, course: Course) -> Future[None]:
        with self._group_commit_lock:  # started on first use: a process that only reads never starts it
            if self._group_commit is None:
                self._group_commit = GroupCommit(self)
        return self._group_commit.submit(course)

    def close(self) -> None:
        if self._group_commit is not None:
            self._group_commit.close()
        super().close()

    def open_course(self, build: Callable[[], Course]) -> Course:
        course, committed = self.submit_new_course(build)
        committed.result()
        self.remember(course)
        return course

    def submit_new_course(self, build: Callable[[], Course]) -> tuple[Course, Future[None]]:
        """A new course and the future of its commit (then `remember` it)."""
        course = build()
        return course, self._submit(course)

    def get_course(self, course_id: UUID, version: int | None = None) -> Course:
        try:
            return self.repository.get(course_id, version=version)
        except AggregateNotFoundError:
            raise CourseNotFoundError(course_id) from None

    def execute(self, course_id: UUID, command: Callable[[Course], Any]) -> Course:
        """Run `command` on the current course and save its events (see `execution`), in this thread."""
        steps = self.execution(course_id, command)
        advance: Callable[[], Step] = functools.partial(next, steps)
        while True:
            try:
                step = advance()
            except StopIteration as done:
                return done.value
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

    def execution(self, course_id: UUID, command: Callable[[Course], Any]) -> Generator[Step, Any, Course]:
        """Running `command` on the current course and saving its events, as steps for a driver to carry out
        (`execute` here in a thread; the API awaits the commit without holding a thread): `Call` loads the
        course from the store and runs the command (in a worker thread), `Commit` waits for the group commit,
        `Pause` backs off. The result of each step is sent back; a step's exception is thrown back in. A command
        on the cached copy touches only memory (copy, decide, encode the events for the writer) and runs where
        the driver runs, on the event loop in the API: a hand-off to a thread would cost more than it does.

        The command first runs on this process's cached copy of the course as it stands, without asking the
        database for newer events: any events it leads to are saved only if no other writer got there first
        (the store's version constraint), so a stale copy costs a conflict and a rerun, never a wrong write.
        What a stale copy could get wrong is a refusal or a no-op: those are decided again on the course
        fast-forwarded from the store. On a version conflict the command runs again on the current course.
        Returns the course as saved."""
        trust_cache, conflicts = True, 0
        while True:
            cached = self._cached(course_id) if trust_cache else None
            decided: _Decided
            if cached is not None:  # memory only: done right here, wherever the driver runs
                decided = self._decide_on(cached, command, from_cache=True)
            else:  # reads the store: in a worker thread
                decided = yield Call(functools.partial(self._decide, course_id, command))
            if decided.doubtful:
                trust_cache = False  # a refusal or a no-op on a cached copy: decide again on the current course
                continue
            if decided.committed is not None:
                try:
                    yield Commit(decided.committed)
                except IntegrityError:
                    conflicts += 1
                    if conflicts >= CONFLICT_RETRIES:
                        raise ConcurrentUpdateError(course_id) from None
                    trust_cache = False
                    # another writer won: let the winners through before reloading (jittered backoff)
                    yield Pause(random.uniform(0, 0.002 * 2**conflicts))
                    continue
                self.remember(decided.course)
            return decided.course

    def _decide(self, course_id: UUID, command: Callable[[Course], Any]) -> _Decided:
        """Run the command on the current course, loaded from the store, and queue its events."""
        return self._decide_on(self.get_course(course_id), command, from_cache=False)

    def _decide_on(self, course: Course, command: Callable[[Course], Any], from_cache: bool) -> _Decided:
        """Run the command on `course` and queue its events; on a cached copy, a refusal or a no-op is only
        `doubtful` (the copy may be stale)."""
        try:
            command(course)
        except Exception:
            if from_cache:
                return _Decided(course, None, doubtful=True)
            raise
        if not course.pending_events:
            return _Decided(course, None, doubtful=from_cache)
        return _Decided(course, self._submit(course))

    def _cached(self, course_id: UUID) -> Course | None:
        """A copy of the cached course (commands mutate what they get), or None if it is not cached."""
        cache = self.repository.cache
        if cache is None:
            return None
        try:
            return deepcopy(cache.get(course_id))
        except KeyError:
            return None

    def remember(self, course: Course) -> None:
        """Cache the course as just saved, unless the cache already holds a later version."""
        cache = self.repository.cache
        if cache is None:
            return
        with self._cache_lock:
            try:
                if cache.get(course.id).version >= course.version:
                    return
            except KeyError:
                pass
            # Shared with the caller, who only reads it (for its answer); commands run on copies (`_cached`).
            cache.put(course.id, course)

    def history(self, course_id: UUID) -> list[Any]:
        events = list(self.events.get(course_id))
        if not events:
            raise CourseNotFoundError(course_id)
        return events
