"""One writer thread that saves the aggregates of concurrent commands together, in one transaction."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from uuid import UUID

import psycopg
import psycopg_pool
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError, StoredEvent

from scheduler.application.errors import OutcomeUnknownError, StoreUnavailableError
from scheduler.event_store import Guard
from scheduler.metrics import GROUP_COMMIT_BATCH, GROUP_COMMIT_SECONDS

# A command's events are saved within this many seconds of being decided, or not at all: while the database is
# unreachable every command is refused within about two seconds (attempts end by the pool's timeout), and none
# is committed after its client was told it failed.
COMMIT_DEADLINE_SECONDS = 1.0
# While the store answers (the last attempt did not fail), a command waits this much longer for its turn: a
# burst of commands queued behind slow batches is no outage, and is not told the database is unavailable.
BUSY_GRACE_SECONDS = 4.0


class GroupCommit:
    """Saves the aggregates of concurrent commands together, in one transaction.

    The event store takes a table lock for each transaction (to keep the notification log gap-free), so one
    transaction per command would cap the whole system at one commit, one fsync, per command. One writer thread
    saves whatever commands are waiting as one batch instead. A command saves every aggregate it changed (a
    course and the calendars of the resources its session holds) in the same transaction. A batch holds at most
    one command per aggregate it changes (course or calendar; several may guard one, as a guard holds only
    against the versions stored before its batch). If one in it lost a race, one look-up of the stored versions
    finds the losers, which fail (and reload), and the others are saved together again; a command waiting behind
    a batch that changed what it read fails at once, without a round trip.

    Each command's events are encoded and encrypted in its own thread before it joins the queue: the writer,
    which every command waits for, only inserts.

    Each command has a deadline: the writer tries again after a transient error (a connection lost) while there
    is time, and fails the commands whose deadline passed before it tries again, so a command is either saved
    soon or never (an attempt in flight when its deadline passes still decides it). While the store answers,
    a command queued behind slow batches gets `BUSY_GRACE_SECONDS` more."""

    def __init__(self, app: Application, max_batch: int = 64, deadline_seconds: float = COMMIT_DEADLINE_SECONDS) -> None:
        self.app, self.max_batch, self.deadline_seconds = app, max_batch, deadline_seconds
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._last_error: Exception | None = None
        self._committed: dict[UUID, int] = {}  # the versions the last batch saved, by aggregate
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def save(self, *aggregates: Aggregate) -> None:
        self.submit(aggregates).result()

    def submit(self, aggregates: Sequence[Aggregate], guards: Sequence[Guard] = ()) -> Future[None]:
        """Queue the aggregates' new events, to be saved together, provided the guarded aggregates are still at
        the versions given; the future is done once they are committed (or failed)."""
        events = [self.app.mapper.to_stored_event(e) for a in aggregates for e in a.collect_events()]
        pending = _Pending(frozenset(e.originator_id for e in events), frozenset(g[0] for g in guards), events,
                           deadline=time.monotonic() + self.deadline_seconds, guards=tuple(guards))
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
            batch, changing, guarding = [], set[UUID](), set[UUID]()
            for pending in waiting:  # in order: one carried holds back those after it on the same aggregates
                clash = pending.changes & (changing | guarding) or pending.guarded & changing
                (carried if clash else batch).append(pending)
                changing |= pending.changes
                guarding |= pending.guarded
            self._committed = {}
            self._save(batch)
            carried = [pending for pending in carried if not self._lost(pending, self._committed)]

    def _save(self, batch: list[_Pending]) -> None:
        doubtful = False  # the last attempt may have committed (the connection broke while it ran)
        contested = False  # the last attempt lost a race: some command in it is a loser
        while batch := self._in_time(batch, doubtful):
            try:
                if doubtful:  # find out first: saving the same events again would be a conflict with ourselves
                    batch = self._unsaved(batch)
                    doubtful = False
                    if not batch:
                        return
                if contested:
                    contested = False
                    stored = self.app.recorder.max_versions({i for pending in batch for i in pending.ids})
                    winners = [pending for pending in batch if not self._lost(pending, stored)]
                    if len(winners) == len(batch):  # no loser to be seen: each on its own finds it
                        for pending in batch:
                            self._save([pending])
                        return
                    batch = winners
                    if not batch:
                        return
                started = time.perf_counter()
                self.app.recorder.insert_events([event for pending in batch for event in pending.events],
                                                guards=[g for pending in batch for g in pending.guards])
                GROUP_COMMIT_SECONDS.observe(time.perf_counter() - started)
                GROUP_COMMIT_BATCH.observe(len(batch))
            except (InterfaceError, OperationalError) as error:  # again, for those still in time
                self._last_error = error
                doubtful = doubtful or not _never_sent(error)
                time.sleep(0.05)
                continue
            except IntegrityError:
                if len(batch) == 1:
                    batch[0].done.set_exception(IntegrityError("an aggregate changed concurrently"))
                    return
                contested = True  # some command lost a race: only the losers reload and run again
                continue
            except BaseException as error:  # every waiting command gets the error, so none is lost or hidden
                for pending in batch:
                    pending.done.set_exception(error)
                return
            self._last_error = None
            for pending in batch:
                for event in pending.events:
                    self._committed[event.originator_id] = event.originator_version
                pending.done.set_result(None)
            return

    @staticmethod
    def _lost(pending: _Pending, stored: dict[UUID, int]) -> bool:
        """Whether the command lost a race to the `stored` versions (some of them: an aggregate absent is not
        known to be stored), and if so fail it: a version of its events is taken, or a guarded aggregate moved
        on."""
        lost = any(e.originator_version <= stored.get(e.originator_id, 0) for e in pending.events) or any(
            version < stored.get(aggregate_id, 0) for aggregate_id, version in pending.guards)
        if lost:
            pending.done.set_exception(IntegrityError("an aggregate changed concurrently"))
        return lost

    def _in_time(self, batch: list[_Pending], doubtful: bool) -> list[_Pending]:
        """The commands whose deadline has not passed; the others fail: unsaved, or (`doubtful`) not known to be."""
        if self._last_error is None:
            now, reason = time.monotonic() - BUSY_GRACE_SECONDS, "the event store is busy: no attempt in time"
        else:
            now, reason = time.monotonic(), str(self._last_error).splitlines()[0]
        for pending in batch:
            if pending.deadline <= now:
                pending.done.set_exception(OutcomeUnknownError(reason) if doubtful else StoreUnavailableError(reason))
        return [pending for pending in batch if pending.deadline > now]

    def _unsaved(self, batch: list[_Pending]) -> list[_Pending]:
        """After an attempt whose outcome is unknown: the commands whose events are not in the store. Those that
        are were saved (done); those whose version another writer took lost a race (IntegrityError). A command's
        events are saved in one transaction, so its first event tells for all of them."""
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
                pending.done.set_exception(IntegrityError("an aggregate changed concurrently"))
        return unsaved


# Failures that leave nothing saved: no connection to be had (the attempt never reached the database), or the
# database refused the statement, which it then rolled back: it ran past the statement timeout (cancelled before
# its commit, which the timeout does not interrupt), or its wait for the table lock did.
_NOTHING_SAVED = (psycopg_pool.PoolTimeout, psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable)


def _never_sent(error: Exception) -> bool:
    """Whether a failed attempt certainly saved nothing (so its commands are refused, not of unknown outcome)."""
    return isinstance(error.__cause__, _NOTHING_SAVED)


@dataclass
class _Pending:
    """One command's events, encoded for the store, and the future its thread waits on."""

    changes: frozenset[UUID]  # the aggregates the events belong to
    guarded: frozenset[UUID]  # those relied on without changing them
    events: list[StoredEvent]
    deadline: float  # time.monotonic(): no attempt to save these events starts later
    guards: tuple[Guard, ...] = ()  # what the command relied on without changing it, at the versions it read
    done: Future[None] = field(default_factory=Future)

    @property
    def ids(self) -> frozenset[UUID]:
        return self.changes | self.guarded
