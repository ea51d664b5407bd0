"""The notifier's tables, in the kact schema beside the scheduler's (the search_path selects it).

Both services apply this DDL under the shared migration lock, so either may start first."""

from __future__ import annotations

import asyncpg
from kact_contracts import access_log
from kact_contracts.locks import migration_lock

from notifier import webhooks

HEARTBEAT_TABLE = "notifier_heartbeats"
SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS notifier_inbox (
    event_id text PRIMARY KEY,
    processed bigserial NOT NULL,  -- the order of processing
    stream_seq bigint NOT NULL,
    type text NOT NULL,
    course_id uuid NOT NULL,
    course_version int NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS notifier_courses (
    course_id uuid PRIMARY KEY,
    home_clinic_id text NOT NULL,
    facts jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS feed_heads (
    recipient text PRIMARY KEY,
    position bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS feed (
    recipient text NOT NULL,
    position bigint NOT NULL,
    event_id text NOT NULL,
    event_type text NOT NULL,
    notice text NOT NULL,
    item jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recipient, position),
    UNIQUE (recipient, event_id)
);
CREATE TABLE IF NOT EXISTS notifier_timers (
    key text PRIMARY KEY,
    due_at timestamptz NOT NULL,
    course_id uuid NOT NULL,
    recipient text NOT NULL,
    reason text NOT NULL,
    message jsonb NOT NULL,
    expires_at timestamptz,
    state text NOT NULL DEFAULT 'pending',  -- pending | fired | cancelled | expired
    fired_at timestamptz
);
CREATE INDEX IF NOT EXISTS notifier_timers_due ON notifier_timers (due_at) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS dead_letters (
    id bigserial PRIMARY KEY,
    stream_seq bigint,
    subject text NOT NULL,
    event_id text,
    payload text NOT NULL,
    error text NOT NULL,
    deliveries int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    redrive_requested_at timestamptz,
    redriven_at timestamptz
);
-- The consuming notifier of each stream reports here while it fetches (the scheduler's delivery health).
CREATE TABLE IF NOT EXISTS notifier_heartbeats (
    stream text PRIMARY KEY,
    consumer text NOT NULL,
    beat_at timestamptz NOT NULL
);
"""


def all_sql() -> str:
    # The access log is the scheduler's, but the notifier writes it too (each webhook it delivers): either may
    # create it first.
    return SCHEMA_SQL + webhooks.SCHEMA_SQL + access_log.SCHEMA_SQL


async def migrate(conn: asyncpg.Connection, schema: str) -> None:
    """Create the schema and the notifier's tables, one process at a time."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", migration_lock(schema))
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET LOCAL search_path TO "{schema}"')
        await conn.execute(all_sql())
