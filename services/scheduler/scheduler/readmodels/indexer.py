"""The indexer: keeps the course index (`course_index.CourseIndexView`) up to date with the event store.

It reads only the events the index needs, in batches (whatever one read of the store returns), and writes each
batch with the position of its last event in one transaction: a busy store costs one index transaction per read,
not one per event. After a crash it resumes from the recorded position; each change is idempotent in effect
(an insert that exists does nothing, an update sets the same values), so a batch written twice does no harm.
One process keeps the index at a time (`jobs.indexer_singleton`)."""

from __future__ import annotations

import logging

from eventsourcing.persistence import Tracking

from scheduler.application.courses import Courses
from scheduler.background import BackgroundThread
from scheduler.event_store import ListenFirstSubscription
from scheduler.readmodels.course_index import INDEXED_TOPICS, CourseIndexView, changes

log = logging.getLogger("kact.indexer")


class Indexer(BackgroundThread):
    def __init__(self, courses: Courses, view: CourseIndexView) -> None:
        self.courses, self.view = courses, view
        self.error: BaseException | None = None  # what stopped it, if anything did
        super().__init__("course-indexer")

    def _run(self) -> None:
        try:
            position = self.view.max_tracking_id(self.courses.name) or 0
            subscription = self.courses.recorder.subscribe(gt=position, topics=INDEXED_TOPICS)
            assert isinstance(subscription, ListenFirstSubscription)
            with subscription:
                subscription.stop_when(self._stopping)
                while not self._stopping.is_set():
                    try:
                        batch = subscription.take()
                    except StopIteration:
                        break
                    events = [self.courses.mapper.to_domain_event(n) for n in batch]
                    self.view.apply([c for e in events for c in changes(e)], Tracking(self.courses.name, batch[-1].id))
        except BaseException as error:  # the singleton sees the thread end and starts it again
            self.error = error
            log.exception("course indexer stopped")
        finally:
            self._stopping.set()
