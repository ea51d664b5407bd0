"""`kact audit access-log`: the reads of course data the access log holds, newest first, filtered by course,
principal, outcome and time range; as a table, or one JSON object a line (`--json`).

The database is found as `kact projections` finds it: KACT_DATABASE_URL, else the data dir's embedded PostgreSQL
(the one a running `kact up` serves, or started for the command and stopped after it)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
from kact_contracts import settings as catalogue
from kact_contracts.environment import SettingError

from scheduler import access_log
from scheduler.application.audit import AccessQuery
from scheduler.embedded import ServerError
from scheduler.projections_cli import _database
from scheduler.settings import Settings

COLUMNS = ("at", "outcome", "principal", "action", "course_id", "request_id")


def instant(text: str) -> datetime:
    """An RFC 3339 instant with its offset (`2026-03-02T09:00:00Z`), for argparse."""
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ValueError(f"not an instant with an offset: {text!r}")
    return at


def run_access_log(where: AccessQuery, limit: int, as_json: bool, environ: Mapping[str, str]) -> int:
    try:
        settings = Settings.from_values(catalogue.read(environ))
    except SettingError as error:
        for line in str(error).splitlines():
            print(f"kact: {line}", file=sys.stderr)
        return 2
    try:
        with _database(settings) as database_url:
            rows = asyncio.run(_entries(database_url, settings.db_schema, where, limit + 1))
    except (ServerError, OSError, asyncpg.PostgresError) as error:
        print(f"kact: {error}", file=sys.stderr)
        return 1
    shown = rows[:limit]
    if as_json:
        for row in shown:
            print(json.dumps({k: _text(row[k]) for k in ("id", *COLUMNS)}))
    else:
        print("  ".join(COLUMNS))
        for row in shown:
            print("  ".join(_text(row[k]) or "-" for k in COLUMNS))
    if len(rows) > limit:
        print(f"kact: more rows than --limit {limit}; narrow the range (--to {_text(shown[-1]['at'])}) or raise it",
              file=sys.stderr)
    return 0


async def _entries(database_url: str, schema: str, where: AccessQuery, limit: int) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": schema,
                                                                "application_name": "kact-audit"})
    try:
        return await access_log.entries(conn, where, None, limit)
    finally:
        await conn.close()


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value if value is None or isinstance(value, int) else str(value)
