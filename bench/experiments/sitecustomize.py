"""What-if patches for profiling the server, NOT fixes: loaded only when this folder is on PYTHONPATH.

    python bench/http_load.py --server-env PYTHONPATH=bench/experiments \\
        --server-env KACT_BENCH_PATCHES=asyncpg_no_reset,fast_projection_wait

Each patch imitates a change suggested in the benchmark report, so its effect can be measured before
anyone edits services/:

- asyncpg_no_reset: asyncpg pools skip the per-release reset query (`SELECT pg_advisory_unlock_all();
  CLOSE ALL; UNLISTEN *; RESET ALL`), i.e. `asyncpg.create_pool(..., reset=<no-op>)`.
- fast_projection_wait: ProjectionRunner.wait() polls every 2 ms (up to 20 ms) instead of sleeping
  100, 200, 400, 800 ms, imitating a wake-up from the in-process projection runner.
- locked_insert_function: the event store inserts through eventsourcing's PL/pgSQL function
  (POSTGRES_ENABLE_DB_FUNCTIONS=y: one round trip, autocommit) with `LOCK TABLE ... IN EXCLUSIVE MODE`
  added inside it, so notification ids still commit in order (without the lock, a projection skips
  events: seen as 404s on dose decisions) while the lock is held only inside the server, never across a
  client round trip or a wait for the GIL.

And one that only measures:

- yappi_cpu: profile CPU time of every thread with yappi (needs yappi importable, e.g. `pip install
  --target DIR yappi` and DIR on PYTHONPATH too); at exit, writes per-function stats to
  $KACT_BENCH_YAPPI_OUT (default /tmp/kact-yappi.txt). Slows the server down: use it for shares, not rates.
"""

from __future__ import annotations

import os
import sys

PATCHES = {p.strip() for p in os.environ.get("KACT_BENCH_PATCHES", "").split(",") if p.strip()}


def _asyncpg_no_reset() -> None:
    import asyncpg

    original = asyncpg.create_pool

    async def _keep(conn: object) -> None:  # the pool still rolls back an open transaction itself
        return None

    def create_pool(*args: object, **kwargs: object) -> object:
        kwargs.setdefault("reset", _keep)
        return original(*args, **kwargs)

    asyncpg.create_pool = create_pool  # type: ignore[assignment]


def _fast_projection_wait() -> None:
    from time import monotonic, sleep

    from eventsourcing import persistence

    def wait(self, application_name, notification_id, timeout=1.0, interrupt=None):  # type: ignore[no-untyped-def]
        deadline = monotonic() + timeout
        interval = 0.002
        while True:
            if self.has_tracking_id(application_name, notification_id):
                return
            if interrupt is not None and interrupt.is_set():
                raise persistence.WaitInterruptedError
            if monotonic() > deadline:
                raise TimeoutError(f"Timed out waiting for notification {notification_id} of '{application_name}'")
            sleep(interval)
            interval = min(interval * 2, 0.02)

    persistence.TrackingRecorder.wait = wait  # type: ignore[method-assign]


def _locked_insert_function() -> None:
    from eventsourcing.postgres import PostgresApplicationRecorder
    from psycopg.sql import SQL, Identifier

    os.environ.setdefault("POSTGRES_ENABLE_DB_FUNCTIONS", "y")
    original_init = PostgresApplicationRecorder.__init__

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original_init(self, *args, **kwargs)
        schema, table = Identifier(self.datastore.schema), Identifier(self.events_table_name)
        self.sql_create_pg_function_insert_events = SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{insert_events}(events {schema}.{event}[]) "
            "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ BEGIN "
            "SET LOCAL lock_timeout = '{lock_timeout}s'; "
            "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
            "NOTIFY {channel}; "
            "RETURN QUERY INSERT INTO {schema}.{table} AS t (originator_id, originator_version, topic, state) "
            "SELECT originator_id, originator_version, topic, state FROM unnest(events) "
            "RETURNING notification_id; "
            "END; $BODY$"
        ).format(
            insert_events=Identifier(self.pg_function_name_insert_events),
            lock_timeout=self.datastore.lock_timeout,
            channel=Identifier(self.channel_name),
            event=Identifier(self.stored_event_type_name),
            schema=schema,
            table=table,
        )
        self.sql_create_statements[self.create_insert_function_statement_index] = (
            self.sql_create_pg_function_insert_events
        )

    PostgresApplicationRecorder.__init__ = __init__  # type: ignore[method-assign]


def _yappi_cpu() -> None:
    import atexit

    import yappi

    yappi.set_clock_type("cpu")
    yappi.start(builtins=False, profile_threads=True)

    def dump() -> None:
        yappi.stop()
        out = os.environ.get("KACT_BENCH_YAPPI_OUT", "/tmp/kact-yappi.txt")
        stats = yappi.get_func_stats()
        with open(out, "w", encoding="utf-8") as f:
            f.write("# name\tmodule:line\tncall\ttsub_s\tttot_s\n")
            f.writelines(f"{s.name}\t{s.module}:{s.lineno}\t{s.ncall}\t{s.tsub:.6f}\t{s.ttot:.6f}\n" for s in stats)
        with open(out + ".threads", "w", encoding="utf-8") as f:
            f.writelines(f"{t.name}\t{t.id}\t{t.ttot:.6f}\t{t.sched_count}\n" for t in yappi.get_thread_stats())

    atexit.register(dump)


for name in sorted(PATCHES):
    patch = {"asyncpg_no_reset": _asyncpg_no_reset, "fast_projection_wait": _fast_projection_wait,
             "locked_insert_function": _locked_insert_function, "yappi_cpu": _yappi_cpu}.get(name)
    if patch is None:
        print(f"bench sitecustomize: unknown patch {name!r}", file=sys.stderr)
        continue
    patch()
    print(f"bench sitecustomize: applied {name}", file=sys.stderr)
