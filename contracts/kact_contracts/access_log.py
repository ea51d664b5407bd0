"""The access log: every read of course data, by whom, when, of which course, with which outcome. Append-only:
the services' database role may insert and select its rows, never update or delete them.

Both services write it (the scheduler its reads, the notifier the webhooks it delivers), and either may create the
schema first, so the table is declared here once. The migration works on every earlier database: the table as it
was first made, then each later column added if it is missing (rows from before outcomes were kept were reads that
succeeded: the old code logged only those)."""

from __future__ import annotations

OK, DENIED, FAILED = "ok", "denied", "failed"
OUTCOMES = (OK, DENIED, FAILED)

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS access_log (
    id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), principal text NOT NULL,
    action text NOT NULL, course_id uuid);
ALTER TABLE access_log ADD COLUMN IF NOT EXISTS outcome text NOT NULL DEFAULT 'ok'
    CHECK (outcome IN ('ok', 'denied', 'failed'));
ALTER TABLE access_log ADD COLUMN IF NOT EXISTS request_id text;
CREATE INDEX IF NOT EXISTS access_log_course ON access_log (course_id, at);
CREATE INDEX IF NOT EXISTS access_log_principal ON access_log (principal, at);
CREATE INDEX IF NOT EXISTS access_log_at ON access_log (at);
"""

# One statement per read, a row per course (a NULL among the ids: a row without a course). Parameters: principal,
# action, course ids (uuid[]), outcome, request id (asyncpg's $n).
INSERT_SQL = (
    "INSERT INTO access_log (principal, action, course_id, outcome, request_id) "
    "SELECT $1, $2, unnest($3::uuid[]), $4, $5"
)
# The same as a statement of its own (its own transaction), committed asynchronously: the row is written and
# visible before the read is answered, but the commit does not wait for the WAL to reach the disk (the flush a read
# would otherwise wait for: a millisecond or more, several times a read's own cost). A crash of PostgreSQL itself (not
# of a service) may lose the rows of its last moments, at most three `wal_writer_delay`s (600 ms by default).
INSERT_ASYNC_COMMIT_SQL = (
    "INSERT INTO access_log (principal, action, course_id, outcome, request_id) "
    "SELECT $1, $2, c, $4, $5 FROM unnest($3::uuid[]) AS c, "
    "(SELECT set_config('synchronous_commit', 'off', true)) AS commit_without_waiting"
)
