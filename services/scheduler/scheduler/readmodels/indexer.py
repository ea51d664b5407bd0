"""The indexer: keeps the course index (`course_index.CourseIndexView`) up to date with the event store.

It reads only the events the index needs, in batches (whatever one read of the store returns), and writes each
batch with the position of its last event in one transaction: a busy store costs one index transaction per read,
not one per event. After a crash it resumes from the recorded position; each change is idempotent in effect
(an insert that exists does nothing, an update sets the same values), so a batch written twice does no harm.
One process keeps the index at a time (`jobs.indexer_singleton`)."""

from __future__ import annotations

import logging
from uuid import UUID

from eventsourcing.persistence import Tracking

from scheduler.application.courses import Courses
from scheduler.background import BackgroundThread
from scheduler.event_store import ListenFirstSubscription
from scheduler.domain.course import Course
from scheduler.readmodels.course_index import HOST_SESSION, INDEXED_TOPICS, Change, CourseIndexView, changes

log = logging.getLogger("kact.indexer")


# The index is read by people (a clinic's list, a host's week, a prescriber's queue) and the deadline watcher, not
# by commands: it reads the store at most ten times a second, so that under load one index transaction serves
# many commits (at 20 ms, as the relay does, it wrote a transaction for every few commands).
SETTLE_SECONDS = 0.1
HOMES_KEPT = 200_000  # course -> home clinic, for telling sessions hosted away; forgotten (re-read) beyond


class Indexer(BackgroundThread):
    def __init__(self, courses: Courses, view: CourseIndexView) -> None:
        self.courses, self.view = courses, view
        self.error: BaseException | None = None  # what stopped it, if anything did
        self._homes: dict[UUID, str] = {}
        super().__init__("course-indexer")

    def _changes(self, event: Course.Event) -> list[Change]:
        """The event's changes, without the statements that would change nothing: a session booked at its
        course's home clinic (most are) has no row among the hosted sessions."""
        if isinstance(event, Course.Created):
            if len(self._homes) >= HOMES_KEPT:
                self._homes.clear()
            self._homes[event.originator_id] = event.home_clinic_id
        elif isinstance(event, Course.SessionBooked):
            home = self._homes.get(event.originator_id) or self.view.home_clinic(event.originator_id)
            if home == event.session["clinic_id"]:
                return [c for c in changes(event) if c[0] is not HOST_SESSION]
        return changes(event)

    def _run(self) -> None:
        try:
            position = self.view.max_tracking_id(self.courses.name) or 0
            subscription = self.courses.recorder.subscribe(gt=position, topics=INDEXED_TOPICS,
                                                       settle_seconds=SETTLE_SECONDS)
            assert isinstance(subscription, ListenFirstSubscription)
            with subscription:
                subscription.stop_when(self._stopping)
                while not self._stopping.is_set():
                    try:
                        batch = subscription.take()
                    except StopIteration:
                        break
                    events = [self.courses.mapper.to_domain_event(n) for n in batch]
                    self.view.apply([c for e in events for c in self._changes(e)],
                                    Tracking(self.courses.name, batch[-1].id))
        except BaseException as error:  # the singleton sees the thread end and starts it again
            self.error = error
            log.exception("course indexer stopped")
        finally:
            self._stopping.set()
