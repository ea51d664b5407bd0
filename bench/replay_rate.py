"""Replay benchmark (issue 14 point 5): how fast `kact replay` reads the event store into fresh read models.

Runs the replay (`scheduler.readmodels.replay.replay`, as `kact replay --check` does: read, decode, write the new
course index and the notifier's course facts, compare; no swap unless `--swap`) on a schema seeded beforehand, and
prints the notification-log events covered per second (every event the store holds, calendars' included, which the
replay passes over in its reads) and the course events decoded and applied per second.

Seed the schema with the booking benchmark, which keeps it and writes its cipher key beside its results:

    KACT_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python bench/booking_scale.py --keep-schema
    python bench/replay_rate.py --schema bench_scale_<random> --cipher-key-file bench/results/<stamp>.scale.cipher.key
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

from scheduler.application.courses import event_store_env
from scheduler.readmodels.replay import replay, replay_env
from scheduler.settings import Settings
from scheduler.storage import migrate


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", default=os.environ.get("KACT_DATABASE_URL"))
    p.add_argument("--schema", required=True)
    p.add_argument("--cipher-key-file", type=Path, required=True)
    p.add_argument("--swap", action="store_true", help="also move the replayed read models into place")
    args = p.parse_args()
    if not args.database_url:
        p.error("--database-url or KACT_DATABASE_URL")
    settings = Settings(database_url=args.database_url, db_schema=args.schema,
                        cipher_key=args.cipher_key_file.read_text(encoding="utf-8").strip())
    env = replay_env(event_store_env(settings))
    courses, view = migrate(settings, env)
    view.datastore.close()
    with psycopg.connect(args.database_url) as conn:
        events, course_events = conn.execute(sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE topic LIKE 'kact.course:%%') FROM {}.courses_events").format(
            sql.Identifier(args.schema))).fetchone()
    print(f"{args.schema}: {events:,} events in the store, {course_events:,} of them courses' events", flush=True)
    last = [time.monotonic()]

    def progress(position: int, head: int, read: int) -> None:
        if time.monotonic() - last[0] >= 5:
            last[0] = time.monotonic()
            print(f"  at event {position:,} of {head:,}, {read:,} course events read", flush=True)

    try:
        done = replay(args.database_url, args.schema, env, courses, progress, swap=args.swap)
    finally:
        courses.close()
    result = {
        "store_events": events, "course_events": done.events, "position": done.position,
        "seconds": round(done.seconds, 2), "store_events_per_second": round(done.position / done.seconds),
        "course_events_per_second": round(done.rate), "rows": done.rows,
        "differences": [d.__dict__ for d in done.differences], "swapped": done.swapped,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
