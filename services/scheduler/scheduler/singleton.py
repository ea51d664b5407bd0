"""One instance of a background job across every scheduler process: the holder of a PostgreSQL advisory lock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg
from kact_contracts.locks import lock_key

from scheduler.background import BackgroundThread

log = logging.getLogger("kact.singleton")
HEARTBEAT_SECONDS = 1.0


class Singleton(BackgroundThread):
    """Runs `start()` in the one process that holds the lock, and `stop(job)` when it loses or gives it up.

    The lock lives on a dedicated connection: if the process dies or the connection breaks, PostgreSQL
    releases the lock and another process takes the job over within `retry_seconds`."""

    def __init__(
        self,
        database_url: str,
        name: str,
        start: Callable[[], Any],
        stop: Callable[[Any], None],
        healthy: Callable[[Any], bool] = lambda job: True,
        retry_seconds: float = 1.0,
    ) -> None:
        self.database_url, self.name = database_url, name
        self._start, self._stop, self._healthy = start, stop, healthy
        self.retry_seconds = retry_seconds
        self.is_leader = False
        super().__init__(f"singleton-{name}")

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.database_url, autocommit=True, application_name=f"kact-{self.name}") as conn:
                    self._contend(conn)
            except psycopg.OperationalError as exc:
                log.warning("singleton %s lost its database connection: %s", self.name, exc)
            self._stopping.wait(self.retry_seconds)

    def _contend(self, conn: psycopg.Connection[Any]) -> None:
        key = lock_key(self.name)
        while not self._stopping.is_set():
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if row and row[0]:
                self._lead(conn, key)
                return
            self._stopping.wait(self.retry_seconds)

    def _lead(self, conn: psycopg.Connection[Any], key: int) -> None:
        job = self._start()
        self.is_leader = True
        log.info("singleton %s: this process leads", self.name)
        try:
            while not self._stopping.wait(HEARTBEAT_SECONDS):
                conn.execute("SELECT 1")  # a broken connection has lost the lock: stop before another starts
                if not self._healthy(job):
                    log.error("singleton %s: the job stopped; handing the lock over", self.name)
                    break
        finally:
            self.is_leader = False
            self._stop(job)
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
