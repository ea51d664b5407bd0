"""Snapshots of calendars, so that loading one costs the same however long its history.

A clinician's calendar gains an event for every session booked, moved or cancelled with them, for years: loaded
from its first event, a busy one took 13-25 ms at 300 sessions (bench/booking_scale.py), paid by the first request
that needs it in each process. A snapshot is taken whenever a calendar's version passes a multiple of
`SNAPSHOT_EVERY` (from the copy just saved: no read), and whenever a calendar was loaded by replaying that many
events or more since its latest snapshot (a calendar recorded before snapshots were kept, or one whose snapshot
was not stored). Loading then reads the latest snapshot and the events after it. Snapshots are written by one
background thread per process, after the command's commit, never in its way; one that fails to be stored is
dropped (the next will do), and the table keeps each calendar's latest only (`event_store.LatestSnapshotRecorder`).

Courses are not snapshotted: a course's history is bounded by its protocol (tens of events).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from copy import deepcopy
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import EventStore

from scheduler.domain.calendar import Calendar

log = logging.getLogger("kact.snapshots")
SNAPSHOT_EVERY = 20  # events: loading reads fewer than this many after the snapshot
QUEUE_LIMIT = 1000  # calendars waiting to be snapshotted; beyond it one is dropped (the next crossing takes it)


def due_after_save(calendar: Calendar, saved: int) -> bool:
    """Whether saving `saved` events took the calendar's version past a multiple of `SNAPSHOT_EVERY`."""
    return calendar.version // SNAPSHOT_EVERY > (calendar.version - saved) // SNAPSHOT_EVERY


class CalendarSnapshots:
    """Takes and stores calendars' snapshots in a background thread (started on first use)."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._queue: queue.Queue[Calendar | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.stored = 0  # how many this process stored (tests, benchmarks)

    def keep(self, calendar: Calendar, copied: bool = False) -> None:
        """Snapshot `calendar` as it is now: a copy is taken here, unless it is one already (`copied`), as the
        caller's may be fast-forwarded in place later (a cached aggregate is)."""
        if self._queue.qsize() >= QUEUE_LIMIT:
            return
        self._start()
        self._queue.put(calendar if copied else deepcopy(calendar))

    @staticmethod
    def due(calendars: Iterable[Calendar]) -> list[Calendar]:
        """Copies of the calendars, about to be saved, whose version their pending events take past a multiple of
        `SNAPSHOT_EVERY` (copies: once saved, a cached calendar may be fast-forwarded in place)."""
        return [deepcopy(c) for c in calendars if due_after_save(c, len(c.pending_events))]

    def after_commit(self, copies: list[Calendar], committed: Future[None]) -> None:
        """Snapshot the copies (from `due`) once their events are committed (not if they are not)."""
        def kept(done: Future[None]) -> None:
            if done.exception() is None:
                for copy in copies:
                    self.keep(copy, copied=True)

        committed.add_done_callback(kept)

    def replay(self, aggregate: Aggregate | None, events: Iterable[Any]) -> Aggregate | None:
        """The aggregate with `events` applied in order (from its latest snapshot, if the first is one): the
        library's `project_aggregate` without its assertion that each event is an instance of a runtime-checkable
        Protocol (on Python 3.11 that check alone took a third of the time of loading a busy calendar); every
        event stored here has `mutate`. A calendar that took `SNAPSHOT_EVERY` events or more is snapshotted."""
        replayed = 0
        for event in events:
            aggregate = event.mutate(aggregate)
            replayed += 1
            if isinstance(event, Calendar.Snapshot):
                replayed = 0
        if replayed >= SNAPSHOT_EVERY and isinstance(aggregate, Calendar):
            self.keep(aggregate)
        return aggregate

    def wait(self) -> None:
        """Until every snapshot asked for so far is stored or dropped (tests)."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="calendar-snapshots", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            calendar = self._queue.get()
            try:
                if calendar is None:
                    return
                self._store.put([Calendar.Snapshot.take(calendar)])
                self.stored += 1
            except Exception as error:  # an aid to loading, not a record: the next snapshot will do
                log.warning("calendar %s: snapshot at version %s not stored: %s", calendar.id if calendar else "-",
                            calendar.version if calendar else "-", error)
            finally:
                self._queue.task_done()
