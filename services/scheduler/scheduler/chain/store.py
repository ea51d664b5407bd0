"""Where the event chain is kept: the `event_chain` and `chain_heads` tables beside the event store, and the head
log, an append-only file in the data dir that the database cannot alter."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from scheduler.application.courses import Courses
from scheduler.chain.links import GENESIS, HEAD_LOG_DAMAGED, Break, ChainRow, Head, StoredRow
from scheduler.secretfile import open_private, private_dir

log = logging.getLogger("kact.chain")
CHAIN_TABLE = "event_chain"
HEADS_TABLE = "chain_heads"
HEADS_FILE = "audit-heads.log"
# The library names an application's events table after it (`PostgresFactory.application_recorder`); the audit
# reads it without constructing the application, so without the cipher key.
EVENTS_TABLE = f"{Courses.name}_events"

# Created by `storage.migrate` (search_path: the schema). The originator index serves one course's check and the
# naming of an event found out of order.
SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} (
    notification_id bigint PRIMARY KEY,
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    digest bytea NOT NULL,
    link bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS {CHAIN_TABLE}_originator_idx ON {CHAIN_TABLE} (originator_id, originator_version);
CREATE TABLE IF NOT EXISTS {HEADS_TABLE} (
    position bigint PRIMARY KEY,
    link bytea NOT NULL,
    signed_at timestamptz NOT NULL,
    mac bytea NOT NULL
);
"""


class ChainTables:
    """The statements on one schema's chain and events tables."""

    def __init__(self, schema: str, events_table: str = EVENTS_TABLE) -> None:
        self.schema = schema
        chain, heads = sql.Identifier(schema, CHAIN_TABLE), sql.Identifier(schema, HEADS_TABLE)
        events = sql.Identifier(schema, events_table)
        columns = sql.SQL("notification_id, originator_id, originator_version, topic, state")
        chain_columns = sql.SQL("notification_id, originator_id, originator_version, digest, link")
        self.events_after = sql.SQL("SELECT {} FROM {} WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
                                    ).format(columns, events)
        self.append = sql.SQL("INSERT INTO {} ({}) SELECT * FROM unnest(%b::bigint[], %b::uuid[], %b::bigint[], "
                              "%b::bytea[], %b::bytea[])").format(chain, chain_columns)
        self.last_link = sql.SQL("SELECT notification_id, link FROM {} ORDER BY notification_id DESC LIMIT 1"
                                 ).format(chain)
        self.link_before = sql.SQL("SELECT link FROM {} WHERE notification_id < %s ORDER BY notification_id DESC "
                                   "LIMIT 1").format(chain)
        self.chain_end = sql.SQL("SELECT max(notification_id) FROM {}").format(chain)
        self.store_end = sql.SQL("SELECT max(notification_id) FROM {}").format(events)
        self.all_events = sql.SQL("SELECT {} FROM {} ORDER BY notification_id").format(columns, events)
        self.all_chain = sql.SQL("SELECT {} FROM {} ORDER BY notification_id").format(chain_columns, chain)
        self.chain_between = sql.SQL("SELECT {} FROM {} WHERE notification_id BETWEEN %s AND %s "
                                     "ORDER BY notification_id").format(chain_columns, chain)
        self.originator_events = sql.SQL("SELECT {} FROM {} WHERE originator_id = %s ORDER BY notification_id"
                                         ).format(columns, events)
        self.originator_chain = sql.SQL("SELECT {} FROM {} WHERE originator_id = %s ORDER BY notification_id"
                                        ).format(chain_columns, chain)
        self.chained_at = sql.SQL("SELECT notification_id FROM {} WHERE originator_id = %s AND "
                                  "originator_version = %s").format(chain)
        self.stored_at = sql.SQL("SELECT notification_id FROM {} WHERE originator_id = %s AND "
                                 "originator_version = %s").format(events)
        self.insert_head = sql.SQL("INSERT INTO {} (position, link, signed_at, mac) VALUES (%s, %s, %s, %s) "
                                   "ON CONFLICT (position) DO NOTHING").format(heads)
        self.heads = sql.SQL("SELECT position, link, signed_at, mac FROM {} ORDER BY position").format(heads)
        self.last_signed = sql.SQL("SELECT max(position) FROM {}").format(heads)


def stored_row(row: tuple[Any, ...]) -> StoredRow:
    return StoredRow(row[0], row[1], row[2], row[3] or "", bytes(row[4] or b""))


def chain_row(row: tuple[Any, ...]) -> ChainRow:
    return ChainRow(row[0], row[1], row[2], bytes(row[3]), bytes(row[4]))


def last_link(conn: psycopg.Connection[Any], tables: ChainTables) -> tuple[int, bytes]:
    """The chain's end: the last notification id chained and its link (0 and GENESIS for an empty chain)."""
    row = conn.execute(tables.last_link).fetchone()
    return (row[0], bytes(row[1])) if row else (0, GENESIS)


def append(conn: psycopg.Connection[Any], tables: ChainTables, rows: list[ChainRow]) -> None:
    """One statement: the rows are chained together or not at all (a row chained already is a conflict)."""
    conn.execute(tables.append, ([r.notification_id for r in rows], [r.originator_id for r in rows],
                                 [r.originator_version for r in rows], [r.digest for r in rows],
                                 [r.link for r in rows]))


def record_head(conn: psycopg.Connection[Any], tables: ChainTables, head: Head) -> None:
    conn.execute(tables.insert_head, (head.position, head.link, head.signed_at, head.mac))


def table_heads(conn: psycopg.Connection[Any], tables: ChainTables) -> list[Head]:
    return [Head(tables.schema, position, bytes(link), signed_at, bytes(mac), HEADS_TABLE)
            for position, link, signed_at, mac in conn.execute(tables.heads)]


class HeadLog:
    """The signed heads, one JSON line each, appended to a file (0600) of the data dir and flushed to disk."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, head: Head) -> None:
        private_dir(self.path.parent)
        with open_private(self.path) as file:  # one write of one line, appended (O_APPEND)
            file.write((head.to_line() + "\n").encode())
            file.flush()
            os.fsync(file.fileno())

    def read(self, schema: str) -> tuple[list[Head], list[Break]]:
        """The heads this file holds for `schema`, and a break for each line that is no signed head."""
        heads: list[Head] = []
        damaged: list[Break] = []
        if not self.path.exists():
            return heads, damaged
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                head = Head.from_line(line, f"{self.path.name} line {number}")
            except ValueError as error:
                damaged.append(Break(None, HEAD_LOG_DAMAGED, f"{self.path.name} line {number}: {error}"))
                continue
            if head.schema == schema:
                heads.append(head)
        return heads, damaged

