"""The chain keeper: follows the notification log, appends each stored event's link to `event_chain`, and signs
the chain's head every `KACT_AUDIT_SIGN_SECONDS` and when it stops.

Off the command path: a command's insert is unchanged; the keeper reads what was committed, in notification order
(the event store commits notification ids in order, under its table lock), at most a second after it, in batches.
The rows it appends are its position: the chain's last row, written in the same statement as the rest of the
batch, is where it resumes, so a crash neither skips an event nor chains one twice (a row chained already is a
conflict, and the keeper starts again from the table). One process keeps the chain at a time (a `Singleton`).

A head is signed with the audit key (never in the database), appended to the head log in the data dir first, then
recorded in `chain_heads`. It signs the link the keeper computed itself, not one read back from the table."""

from __future__ import annotations

import base64
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from scheduler.background import BackgroundThread
from scheduler.chain import links
from scheduler.chain.store import HEADS_FILE, ChainTables, HeadLog, append, last_link, record_head, stored_row
from scheduler.settings import Settings
from scheduler.singleton import Singleton

log = logging.getLogger("kact.chain")
POLL_SECONDS = 1.0
BATCH = 2000
FINAL_CATCH_UP_SECONDS = 10.0  # on stopping: chain what was committed before the last head is signed
STATEMENT_TIMEOUT_MS = 30_000


class HeadSigner:
    """Signs heads with the audit key and keeps them in the head log and the heads table."""

    def __init__(self, key: bytes, heads: HeadLog) -> None:
        self.key, self.heads = key, heads

    def sign(self, conn: psycopg.Connection[Any], tables: ChainTables, position: int, link: bytes) -> links.Head:
        head = links.Head.sign(self.key, tables.schema, position, link, datetime.now(UTC))
        try:
            self.heads.append(head)
        except OSError as error:  # a read-only or full disk: the table still holds the head
            log.error("event chain: head %s not written to %s: %s", position, self.heads.path, error)
        record_head(conn, tables, head)
        return head


class ChainKeeper(BackgroundThread):
    def __init__(self, database_url: str, tables: ChainTables, signer: HeadSigner | None,
                 sign_seconds: float = 60.0) -> None:
        self.database_url, self.tables, self.signer, self.sign_seconds = database_url, tables, signer, sign_seconds
        self.position, self.link = 0, links.GENESIS
        self.signed = 0  # the position of the last head signed
        self.error: BaseException | None = None  # what stopped it, if anything did
        super().__init__("event-chain")

    def _run(self) -> None:
        try:
            # A stuck statement ends the job (the singleton starts it again) rather than holding it unnoticed.
            with psycopg.connect(self.database_url, autocommit=True, application_name="kact-event-chain",
                                 connect_timeout=5, options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}") as conn:
                self.position, self.link = last_link(conn, self.tables)
                row = conn.execute(self.tables.last_signed).fetchone()
                self.signed = (row[0] if row else None) or 0
                log.info("event chain: at event %d", self.position)
                due = time.monotonic() + self.sign_seconds
                while not self._stopping.is_set():
                    chained = self.catch_up(conn)
                    if time.monotonic() >= due:
                        self.sign(conn)
                        due = time.monotonic() + self.sign_seconds
                    if chained < BATCH:
                        self._stopping.wait(POLL_SECONDS)
                until = time.monotonic() + FINAL_CATCH_UP_SECONDS
                while self.catch_up(conn) == BATCH and time.monotonic() < until:
                    pass
                self.sign(conn)
        except BaseException as error:  # the singleton sees the thread end and starts it again
            self.error = error
            log.exception("event chain keeper stopped")
        finally:
            self._stopping.set()

    def catch_up(self, conn: psycopg.Connection[Any]) -> int:
        """Chains the next batch of stored events; returns how many."""
        with conn.cursor(binary=True) as cursor:
            events = [stored_row(r) for r in cursor.execute(self.tables.events_after, (self.position, BATCH))]
        if not events:
            return 0
        rows = links.extend(self.link, events)
        append(conn, self.tables, rows)
        self.position, self.link = rows[-1].notification_id, rows[-1].link
        return len(rows)

    def sign(self, conn: psycopg.Connection[Any]) -> links.Head | None:
        """Signs the head if the chain grew since the last one (without a key, nothing is signed)."""
        if self.signer is None or self.position <= self.signed:
            return None
        head = self.signer.sign(conn, self.tables, self.position, self.link)
        self.signed = self.position
        log.debug("event chain: signed the head at event %d", self.position)
        return head


def chain_lock(settings: Settings) -> str:
    return f"{settings.db_schema}.event_chain"


def head_signer(settings: Settings) -> HeadSigner | None:
    """The signer of this process's settings: none without an audit key (the chain is kept, its heads unsigned)."""
    if not settings.audit_key:
        return None
    return HeadSigner(base64.b64decode(settings.audit_key), HeadLog(Path(settings.data_dir) / HEADS_FILE))


def chain_singleton(settings: Settings, events_table: str) -> Singleton:
    """The chain keeper, run by one scheduler process at a time."""
    assert settings.database_url
    database_url = settings.database_url
    tables = ChainTables(settings.db_schema, events_table)
    signer = head_signer(settings)
    if signer is None:
        log.warning("event chain: no audit key (KACT_AUDIT_KEY): its heads are not signed")

    def start() -> ChainKeeper:
        return ChainKeeper(database_url, tables, signer, settings.audit_sign_seconds).start()

    return Singleton(database_url, chain_lock(settings), start=start, stop=lambda job: job.stop(),
                     healthy=lambda job: job.alive)
