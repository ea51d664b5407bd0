"""The command API over the event store: load a course, run one domain command, save atomically."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Recording

from scheduler.domain.course import Course
from scheduler.domain.errors import DomainError
from scheduler.settings import DatabaseAddress, Settings

T = TypeVar("T")
CONFLICT_RETRIES = 8


class CourseNotFoundError(DomainError):
    def __init__(self, course_id: UUID) -> None:
        self.course_id = course_id
        super().__init__(f"no course {course_id}")


class ConcurrentUpdateError(DomainError):
    """Other writers kept winning the race for this course; the client may retry."""

    def __init__(self, course_id: UUID) -> None:
        self.course_id = course_id
        super().__init__(f"course {course_id} was changed concurrently, retry the command")


@dataclass(frozen=True)
class Outcome:
    course: Course
    result: Any
    recordings: list[Recording]

    def last_notification_id(self, topics: Sequence[str]) -> int | None:
        """Position of the last recorded event with one of these topics (what a projection must reach)."""
        ids = [r.notification.id for r in self.recordings if r.notification.topic in topics]
        return ids[-1] if ids else None


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
        "CREATE_TABLE": "y",
        "CIPHER_TOPIC": "eventsourcing.cryptography:AESCipher",
        "CIPHER_KEY": settings.cipher_key,
        # Cached aggregates are fast-forwarded from the store, so several processes stay correct.
        "AGGREGATE_CACHE_MAXSIZE": "5000",
        "AGGREGATE_CACHE_FASTFORWARD": "y",
    }


class Courses(Application):
    """Courses as event streams; every command is optimistic and retried when another writer wins."""

    name = "courses"

    def open_course(self, build: Callable[[], Course]) -> Outcome:
        course = build()
        return Outcome(course, None, self.save(course))

    def get_course(self, course_id: UUID, version: int | None = None) -> Course:
        try:
            return self.repository.get(course_id, version=version)
        except AggregateNotFoundError:
            raise CourseNotFoundError(course_id) from None

    def execute(self, course_id: UUID, command: Callable[[Course], T]) -> Outcome:
        """Run `command` on the current course and save its events; on a version conflict, reload and rerun."""
        for _ in range(CONFLICT_RETRIES):
            course = self.get_course(course_id)
            result = command(course)
            try:
                recordings = self.save(course)
            except IntegrityError:
                continue
            return Outcome(course, result, recordings)
        raise ConcurrentUpdateError(course_id)

    def history(self, course_id: UUID) -> list[Any]:
        events = list(self.events.get(course_id))
        if not events:
            raise CourseNotFoundError(course_id)
        return events
