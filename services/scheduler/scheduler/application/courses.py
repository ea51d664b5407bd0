"""The event store's application: courses and calendars as event streams, and the execution of one command over
the aggregates it changes (load, decide, save together, retry on a lost race)."""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Callable, Generator
from concurrent.futures import Future
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import project_aggregate, AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import ApplicationRecorder, IntegrityError
from eventsourcing.popo import POPOApplicationRecorder
from kact_contracts import logs, tracing
from opentelemetry import trace

from scheduler.application.errors import AlreadyCreatedError, ConcurrentUpdateError, CourseNotFoundError
from scheduler.application.group_commit import GroupCommit
from scheduler.application.runner import Call, Commit, Pause, Step, run_steps
from scheduler.application.snapshots import CalendarSnapshots
from scheduler.domain.calendar import Calendar, Resource
from scheduler.domain.course import Course, Origin
from scheduler.event_store import STATEMENT_TIMEOUT, GuardedMemoryRecorder, LockedInsertRecorder
from scheduler.settings import DatabaseAddress, Settings

T = TypeVar("T")
CONFLICT_RETRIES = 8
STATEMENT_TIMEOUT_MS = 1500  # as the directory's pool (bootstrap.open_pool)


def event_store_env(settings: Settings) -> dict[str, str]:
    """The eventsourcing library's settings for PostgreSQL with AES-GCM encryption at rest."""
    assert settings.database_url and settings.cipher_key, "resolve the database and cipher key first"
    db = DatabaseAddress.from_url(settings.database_url)
    return {
        "PERSISTENCE_MODULE": "scheduler.event_store:TimedPostgresFactory",
        "POSTGRES_HOST": db.host,
        "POSTGRES_PORT": str(db.port),
        "POSTGRES_USER": db.user,
        "POSTGRES_PASSWORD": db.password,
        "POSTGRES_DBNAME": db.dbname,
        "POSTGRES_SCHEMA": settings.db_schema,
        "POSTGRES_POOL_SIZE": str(settings.db_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.db_pool_size),
        "POSTGRES_LOCK_TIMEOUT": "5",
        # Any statement, a lock wait included (so the insert's 5 s lock timeout is never reached): a read or a
        # commit gives up within 1.5 s of a stuck database or lock, and the request is answered (503) within 2 s.
        STATEMENT_TIMEOUT: str(STATEMENT_TIMEOUT_MS),
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


class _NotCached(Exception):
    """A command needs an aggregate this process does not hold: decide it again where the store can be read."""


class Work:
    """The aggregates one command reads and changes, each loaded once; what they record is saved together."""

    def __init__(self, load: Callable[[UUID, bool], Aggregate | None], now: datetime | None = None,
                 origin: Origin | None = None) -> None:
        self._load = load  # (id, whether it may be new) -> the aggregate, or None if there is none yet
        self.now = now  # the command's clock: every course event it records happened then
        self.origin = origin  # the command's trace context and request id: every course event it records keeps them
        self._aggregates: dict[UUID, Aggregate] = {}
        self._relied_on: set[UUID] = set()

    def course(self, course_id: UUID) -> Course:
        course = self._get(course_id)
        if not isinstance(course, Course):  # a calendar's id is no course either
            raise CourseNotFoundError(course_id)
        course.occurring(self.now, self.origin)
        return course

    def calendar(self, calendar_id: UUID, resource: Resource, likely_new: bool = False) -> Calendar:
        """The resource's calendar, opened (empty) when first needed. One `likely_new` (a partner's, as their
        course opens) is taken to be new when this process holds no copy, without reading the store: opening it
        again is a version conflict if it exists, and the command is decided again."""
        calendar = self._get(calendar_id, may_be_new=likely_new)
        if calendar is None:
            calendar = self._aggregates[calendar_id] = Calendar.open(calendar_id, resource)
        assert isinstance(calendar, Calendar), f"{calendar_id} is not a calendar"
        return calendar

    def add(self, aggregate: Aggregate) -> None:
        """A new aggregate (a course being opened). One that exists was created by an earlier run of the same
        request, whose ids derive from its Idempotency-Key (`ids.new_id`): refused, never saved twice. (On cached
        copies this finds only what this process holds, without a read; one it does not hold is a version
        conflict on saving, and the rerun reads the store.)"""
        if self._load(aggregate.id, True) is not None:
            raise AlreadyCreatedError(type(aggregate).__name__.lower(), aggregate.id)
        self._aggregates[aggregate.id] = aggregate
        if isinstance(aggregate, Course):
            aggregate.occurring(self.now, self.origin)

    def done(self) -> None:
        """The command ran: its clock is no part of the courses it ran on."""
        for aggregate in self._aggregates.values():
            if isinstance(aggregate, Course):
                aggregate.done()

    def rely_on(self, aggregate: Aggregate) -> None:
        """The command's outcome depends on `aggregate` as read: what it records is saved only if nobody changed
        the aggregate since (whether or not the command changes it too)."""
        self._relied_on.add(aggregate.id)

    @property
    def guards(self) -> list[tuple[UUID, int]]:
        """The aggregates relied on and left unchanged, at the versions read (one changed is guarded by its own
        new version)."""
        return [(i, self._aggregates[i].version) for i in self._relied_on if not self._aggregates[i].pending_events]

    def _get(self, aggregate_id: UUID, may_be_new: bool = False) -> Aggregate | None:
        if aggregate_id not in self._aggregates:
            aggregate = self._load(aggregate_id, may_be_new)
            if aggregate is None:
                return None
            self._aggregates[aggregate_id] = aggregate
        return self._aggregates[aggregate_id]

    @property
    def changed(self) -> list[Aggregate]:
        """What the command changed, calendars first: a course's events end every transaction, so the relay,
        which reads only courses' events, has relayed a transaction whole once it has relayed its last event."""
        changed = [a for a in self._aggregates.values() if a.pending_events]
        return sorted(changed, key=lambda a: isinstance(a, Course))


@dataclass(frozen=True)
class _Decided:
    result: Any
    changed: list[Aggregate]  # what the command changed (their events are being saved)
    committed: Future[None] | None  # None: nothing to save
    doubtful: bool = False  # decided on cached copies without saving anything: decide again


class Courses(Application):
    """Courses and the calendars of clinicians, rooms and partners; every command is optimistic and retried when
    another writer wins."""

    name = "courses"
    is_snapshotting_enabled = True  # calendars' (`snapshots`): the `courses_snapshots` table

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env=env)
        assert self.snapshots is not None
        self.calendar_snapshots = CalendarSnapshots(self.snapshots)
        self._group_commit: GroupCommit | None = None
        self._group_commit_lock = threading.Lock()
        self._cache_lock = threading.Lock()

    def _submit(self, aggregates: list[Aggregate], guards: list[tuple[UUID, int]]) -> Future[None]:
        with self._group_commit_lock:  # started on first use: a process that only reads never starts it
            if self._group_commit is None:
                self._group_commit = GroupCommit(self)
        due = self.calendar_snapshots.due([a for a in aggregates if isinstance(a, Calendar)])
        committed = self._group_commit.submit(aggregates, guards)
        if due:
            self.calendar_snapshots.after_commit(due, committed)
        return committed

    def construct_recorder(self) -> ApplicationRecorder:
        recorder = super().construct_recorder()
        if type(recorder) is POPOApplicationRecorder:  # in memory (tests): with guards, as in PostgreSQL
            return GuardedMemoryRecorder()
        assert isinstance(recorder, (LockedInsertRecorder, GuardedMemoryRecorder)), "the recorder must keep guards"
        return recorder

    def close(self) -> None:
        if self._group_commit is not None:
            self._group_commit.close()
        self.calendar_snapshots.close()
        super().close()

    def get_course(self, course_id: UUID, version: int | None = None) -> Course:
        try:
            course = self.repository.get(course_id, version=version, projector_func=self.calendar_snapshots.replay)
        except AggregateNotFoundError:
            raise CourseNotFoundError(course_id) from None
        if not isinstance(course, Course):
            raise CourseNotFoundError(course_id)
        return course

    def course_at(self, course_id: UUID, at: datetime) -> Course:
        """The course replayed from the events recorded at or before `at` (not found: it had not been opened)."""
        events = [e for e in self.events.get(course_id) if e.timestamp <= at]
        if not events or not isinstance(events[0], Course.Created):
            raise CourseNotFoundError(course_id)
        course = project_aggregate(None, events)
        assert isinstance(course, Course)
        return course

    def peek(self, course_id: UUID) -> Course:
        """The course as this process last saw it (from the store if it holds none): for what never changes
        once recorded (its home clinic, where a session is hosted)."""
        cached = self._cached(course_id)
        return cached if isinstance(cached, Course) else self.get_course(course_id)

    def get_calendar(self, calendar_id: UUID) -> Calendar | None:
        try:
            calendar = self.repository.get(calendar_id, projector_func=self.calendar_snapshots.replay)
        except AggregateNotFoundError:
            return None
        return calendar if isinstance(calendar, Calendar) else None

    def history(self, course_id: UUID) -> list[Any]:
        events = list(self.events.get(course_id))
        if not events or not isinstance(events[0], Course.Created):
            raise CourseNotFoundError(course_id)
        return events

    def execute(self, course_id: UUID, command: Callable[[Course], Any], now: datetime | None = None) -> Course:
        """Run `command` on one course, in this thread (jobs, tests), at `now` by its clock; returns the course as
        saved."""
        def on_course(work: Work) -> Course:
            course = work.course(course_id)
            command(course)
            return course

        return run_steps(self.execution(on_course, now))

    def open_course(self, build: Callable[[], Course]) -> Course:
        """Save a new course, in this thread (jobs, tests)."""
        def opening(work: Work) -> Course:
            course = build()
            work.add(course)
            return course

        return run_steps(self.execution(opening))

    def execution(self, command: Callable[[Work], T], now: datetime | None = None,
                  acting_clinic_id: str | None = None) -> Generator[Step, Any, T]:
        """Running `command` on the aggregates it asks its `Work` for and saving what they record, together, as
        steps for a driver (`runner`): `Call` reads the store and decides (in a worker thread), `Commit` waits
        for the group commit, `Pause` backs off. Returns the command's result once saved.

        The command first runs on this process's cached copies, without asking the database for newer events,
        right where the driver runs (on the event loop in the API: memory only, a hand-off to a thread would
        cost more). Any events it leads to are saved only if no other writer got there first (the store's
        version constraint), so a stale copy costs a conflict and a rerun, never a wrong write. What a stale
        copy could get wrong is a refusal or a no-op: those are decided again on aggregates fast-forwarded from
        the store. A command that needs an aggregate not cached runs in a worker thread on the cached copies
        and that one read from the store. On a version conflict the command runs again on the current
        aggregates, after a jittered pause that lets the winners through. `now` is the command's clock, which
        every course event it records keeps as `occurred_at`.

        The command is a span (child of the request's), and so is each wait for the group commit; while traces are
        not exported, neither is made (nothing would see them) unless the command has no trace yet (a job's): its
        events then keep the request's trace context. Every event keeps it, the request's id and the acting
        principal's clinic (`acting_clinic_id`: a prescriber's, whose own id alone is in `by`) as its `Origin`."""
        span = None
        if tracing.exporting() or not trace.get_current_span().get_span_context().is_valid:
            span = tracing.start(_command_name(command))
        origin = Origin(tracing.traceparent(span) if span is not None else tracing.current_traceparent(),
                        logs.request_id(), acting_clinic_id)
        try:
            return (yield from self._execution(command, now, origin, span))
        finally:
            if span is not None:
                span.end()

    def _execution(self, command: Callable[[Work], T], now: datetime | None, origin: Origin,
                   span: trace.Span | None) -> Generator[Step, Any, T]:
        trust_cache, conflicts = True, 0
        while True:
            decided: _Decided
            if trust_cache:
                try:
                    decided = self._decide(command, self._cached_or_missing, from_cache=True, now=now, origin=origin)
                except _NotCached:  # what is cached, as it is, and the rest from the store
                    decided = yield Call(functools.partial(self._decide, command, self._cached_or_stored,
                                                           from_cache=True, now=now, origin=origin))
            else:
                decided = yield Call(functools.partial(self._decide, command, self._current, from_cache=False,
                                                       now=now, origin=origin))
            if decided.doubtful:
                trust_cache = False
                continue
            if decided.committed is not None:
                waiting = tracing.start("commit", trace.set_span_in_context(span)) \
                    if span is not None and tracing.exporting() else None
                try:
                    yield Commit(decided.committed)
                except IntegrityError:
                    if waiting is not None:
                        waiting.set_attribute("kact.conflict", True)
                        waiting.end()
                        waiting = None
                    conflicts += 1
                    if conflicts >= CONFLICT_RETRIES:
                        courses = [a.id for a in decided.changed if isinstance(a, Course)]
                        raise ConcurrentUpdateError(courses[0] if courses else None) from None
                    trust_cache = False
                    yield Pause(random.uniform(0, 0.002 * 2**conflicts))
                    continue
                finally:
                    if waiting is not None:
                        waiting.end()
                for aggregate in decided.changed:
                    self.remember(aggregate)
            return decided.result  # type: ignore[no-any-return]

    def _decide(self, command: Callable[[Work], T], load: Callable[[UUID, bool], Aggregate | None],
                from_cache: bool, now: datetime | None = None, origin: Origin | None = None) -> _Decided:
        """Run the command on aggregates from `load` and queue what they record; on cached copies, a refusal or a
        no-op is only `doubtful` (a copy may be stale)."""
        work = Work(load, now, origin)
        try:
            result = command(work)
        except _NotCached:
            raise
        except Exception:
            if from_cache:
                return _Decided(None, [], None, doubtful=True)
            raise
        finally:
            work.done()
        changed, guards = work.changed, work.guards  # before the group commit collects their pending events
        if not changed:
            return _Decided(result, [], None, doubtful=from_cache)
        return _Decided(result, changed, self._submit(changed, guards))

    def _cached_or_missing(self, aggregate_id: UUID, may_be_new: bool) -> Aggregate | None:
        """The cached copy; for one likely to be new (`Work.calendar`), none means new: opening it again is a
        version conflict if another command or process already did, and the rerun reads the store. (Opening a
        course costs no read of its partners' calendars and no worker thread.)"""
        cached = self._cached(aggregate_id)
        if cached is None and not may_be_new:
            raise _NotCached
        return cached

    def _cached_or_stored(self, aggregate_id: UUID, may_be_new: bool = False) -> Aggregate | None:
        cached = self._cached(aggregate_id)
        return cached if cached is not None else self._current(aggregate_id)

    def _current(self, aggregate_id: UUID, may_be_new: bool = False) -> Aggregate | None:
        """The aggregate as stored now (the cached copy fast-forwarded), or None if it was never saved."""
        try:
            return self.repository.get(aggregate_id, projector_func=self.calendar_snapshots.replay)
        except AggregateNotFoundError:
            return None

    def _cached(self, aggregate_id: UUID) -> Aggregate | None:
        """A copy of the cached aggregate (commands mutate what they get), or None if it is not cached."""
        cache = self.repository.cache
        if cache is None:
            return None
        try:
            return deepcopy(cache.get(aggregate_id))
        except KeyError:
            return None

    def remember(self, aggregate: Aggregate) -> None:
        """Cache the aggregate as just saved, unless the cache already holds a later version."""
        cache = self.repository.cache
        if cache is None:
            return
        with self._cache_lock:
            try:
                if cache.get(aggregate.id).version >= aggregate.version:
                    return
            except KeyError:
                pass
            # Shared with the caller, who only reads it (for its answer); commands run on copies (`_cached`).
            cache.put(aggregate.id, aggregate)


def _command_name(command: Callable[..., Any]) -> str:
    """A command's span name: the use case that made it (`Scheduling.book_session`), not its inner function."""
    name = getattr(command, "__qualname__", None) or type(command).__name__
    return name.split(".<locals>", 1)[0]
