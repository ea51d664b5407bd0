"""Checking the event chain: the whole notification log (`kact audit verify`), or one course (the operator's audit
page), against the stored events and the signed heads.

Read-only, in one snapshot (REPEATABLE READ), without the cipher key. The head log is read before the snapshot
is taken: the keeper writes a head only after the rows it covers committed, so every head read is covered by the
snapshot. The heads are those of the head log and of the `chain_heads` table; the database can delete its own but
not forge one, and a head whose signature fails is itself a break."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from scheduler.chain import links
from scheduler.chain.store import (EVENTS_TABLE, HEADS_FILE, ChainTables, HeadLog, chain_row, stored_row,
                                   table_heads)
from scheduler.settings import Settings

FETCH = 5000  # rows per round trip of a server-side cursor


class _Located:
    """Where an event is, asked of the snapshot (on a break only: the chain's look-up uses its originator index)."""

    def __init__(self, conn: psycopg.Connection[Any], tables: ChainTables) -> None:
        self.conn, self.tables = conn, tables

    def chained_at(self, originator_id: UUID, version: int) -> int | None:
        return self._one(self.tables.chained_at, originator_id, version)

    def stored_at(self, originator_id: UUID, version: int) -> int | None:
        return self._one(self.tables.stored_at, originator_id, version)

    def _one(self, statement: sql.Composed, originator_id: UUID, version: int) -> int | None:
        row = self.conn.execute(statement, (originator_id, version)).fetchone()
        return row[0] if row else None


class ChainAudit:
    """Checks one schema's event chain with the audit key and the head log (`from_settings`: as the settings
    say). Each call opens a connection of its own; blocking: run it in a worker thread from async code."""

    def __init__(self, database_url: str, schema: str, key: bytes, heads: HeadLog,
                 events_table: str = EVENTS_TABLE) -> None:
        self.database_url, self.key, self.heads = database_url, key, heads
        self.tables = ChainTables(schema, events_table)

    @classmethod
    def from_settings(cls, settings: Settings) -> ChainAudit:
        assert settings.database_url and settings.audit_key, "resolve the database and the audit key first"
        return cls(settings.database_url, settings.db_schema, base64.b64decode(settings.audit_key),
                   HeadLog(Path(settings.data_dir) / HEADS_FILE))

    def verify(self, progress: Callable[[int, int], None] | None = None) -> links.Verdict:
        """The whole log: every stored event recomputed into the chain, every signed head matched.
        `progress(notification id, last id)` is called now and then."""
        file_heads, damaged = self.heads.read(self.tables.schema)
        with self._snapshot() as conn, _server_cursor(conn, "events") as events, \
                _server_cursor(conn, "chain") as chain:
            heads, forged = self._heads(conn, file_heads)
            store_end = _scalar(conn, self.tables.store_end)
            chain_end = _scalar(conn, self.tables.chain_end)
            events.execute(self.tables.all_events)
            chain.execute(self.tables.all_chain)
            result = links.walk(
                (stored_row(r) for r in events), (chain_row(r) for r in chain), heads, _Located(conn, self.tables),
                chained_until=max([chain_end, *(h.position for h in heads)]),
                progress=(lambda nid: progress(nid, store_end)) if progress is not None else None)
        if progress is not None:
            progress(store_end, store_end)
        return _verdict(result, [*damaged, *forged])

    def verify_course(self, course_id: UUID) -> links.Verdict:
        """One course's events (any aggregate's, in fact): each as chained, and the chain from the course's first
        event to the latest signed head recomputed, with the course's digests from its stored events and the
        others' from the chain rows (the head's link vouches for them). Reads the course's events and the chain
        rows since it opened, not the other events. `events`, `unchained` and `unsigned` count the course's;
        `events` 0 and no break: nothing is stored or chained under that id. (An event removed from the store
        together with its chain row is found by the chain's links, as in `verify`, once a head covers it.)"""
        file_heads, damaged = self.heads.read(self.tables.schema)
        with self._snapshot() as conn, _server_cursor(conn, "chain") as chain:
            heads, forged = self._heads(conn, file_heads)
            with conn.cursor(binary=True) as cursor:
                events = [stored_row(r) for r in cursor.execute(self.tables.originator_events, (course_id,))]
                own = [chain_row(r) for r in cursor.execute(self.tables.originator_chain, (course_id,))]
            if not events and not own:
                return _verdict(links.Walk(), [*damaged, *forged])
            first = min(x.notification_id for x in [*events[:1], *own[:1]])
            last = max(x.notification_id for x in [*events[-1:], *own[-1:]])
            before = conn.execute(self.tables.link_before, (first,)).fetchone()
            later = [h for h in heads if h.position >= first]
            chain.execute(self.tables.chain_between, (first, max([last, *(h.position for h in later)])))
            result = links.walk(
                events, (chain_row(r) for r in chain), later, _Located(conn, self.tables),
                start=bytes(before[0]) if before else links.GENESIS,
                complete=lambda originator: originator == course_id,
                chained_until=max([_scalar(conn, self.tables.chain_end), *(h.position for h in heads)]))
        return _verdict(result, [*damaged, *forged])

    def links_of(self, course_id: UUID) -> dict[int, str]:
        """Each chained event of the course (any aggregate): its link in the chain (hex), by version."""
        with self._snapshot() as conn, conn.cursor(binary=True) as cursor:
            rows = [chain_row(r) for r in cursor.execute(self.tables.originator_chain, (course_id,))]
        return {r.originator_version: r.link.hex() for r in rows}

    def status_of(self, course_id: UUID) -> tuple[bool, str, int]:
        """`verify_course`, told as the audit page shows it: verified or not, what it found, events checked."""
        verdict = self.verify_course(course_id)
        if not verdict.ok:
            return False, str(verdict.first_broken), verdict.events
        head = f"up to the head signed at {verdict.head.signed_at.isoformat()}" if verdict.head else \
            "(no signed head covers it yet)"
        pending = f"; {verdict.unchained} not chained yet, {verdict.unsigned} chained after the last head" \
            if verdict.unchained or verdict.unsigned else ""
        return True, f"{verdict.events} events link to the chain {head}{pending}", verdict.events

    def _heads(self, conn: psycopg.Connection[Any], file_heads: list[links.Head]
               ) -> tuple[list[links.Head], list[links.Break]]:
        """The valid heads (the file's and the table's, each once) and a break for each forged one."""
        every = list(dict.fromkeys([*file_heads, *table_heads(conn, self.tables)]))
        return [h for h in every if h.valid(self.key)], links.forged(every, self.key)

    def _snapshot(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.database_url, application_name="kact-audit")
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        return conn


def _verdict(result: links.Walk, breaks: list[links.Break]) -> links.Verdict:
    found = [*breaks, result.broken] if result.broken is not None else breaks
    return links.Verdict(result.checked, result.head, links.in_order(found), result.unchained, result.unsigned)


def _scalar(conn: psycopg.Connection[Any], statement: sql.Composed) -> int:
    row = conn.execute(statement).fetchone()
    return (row[0] if row else None) or 0


def _server_cursor(conn: psycopg.Connection[Any], name: str) -> psycopg.ServerCursor[Any]:
    """A server-side cursor: the log is read in slices, never held in memory at once."""
    cursor = conn.cursor(f"kact_chain_{name}", binary=True)
    cursor.itersize = FETCH
    return cursor
