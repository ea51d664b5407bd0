"""`kact audit verify`: recompute the event chain from the stored events, match it with every signed head, and say
"ok" or name the first broken link (exit code 1).

The database is found as `kact projections` finds it; the audit key is KACT_AUDIT_KEY or the data dir's
`audit.key` (never generated here: a new key would vouch for nothing), the head log the data dir's. Neither the
cipher key nor a write is needed."""

from __future__ import annotations

import base64
import sys
from collections.abc import Mapping
from pathlib import Path

import psycopg
from kact_contracts import settings as catalogue
from kact_contracts.environment import SettingError
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from scheduler.chain.audit import ChainAudit
from scheduler.chain.store import HEADS_FILE, HEADS_TABLE, HeadLog
from scheduler.embedded import ServerError
from scheduler.projections_cli import EventRate
from scheduler.projections_cli import _database as find_database  # the database `kact projections` finds
from scheduler.runtime import AUDIT_KEY_FILE
from scheduler.settings import Settings


def run_audit(action: str, environ: Mapping[str, str]) -> int:
    assert action == "verify"
    try:
        settings = Settings.from_values(catalogue.read(environ))
    except SettingError as error:
        for line in str(error).splitlines():
            print(f"kact: {line}", file=sys.stderr)
        return 2
    data_dir = Path(settings.data_dir).absolute()
    key = settings.audit_key
    if key is None and (data_dir / AUDIT_KEY_FILE).is_file():
        key = (data_dir / AUDIT_KEY_FILE).read_text(encoding="utf-8").strip()
    if not key:
        print(f"kact: no audit key (KACT_AUDIT_KEY, or {data_dir / AUDIT_KEY_FILE}): the signed heads cannot be "
              "checked", file=sys.stderr)
        return 2
    heads = HeadLog(data_dir / HEADS_FILE)
    try:
        with find_database(settings) as database_url:
            audit = ChainAudit(database_url, settings.db_schema, base64.b64decode(key), heads)
            print(f"verifying the event chain of schema {settings.db_schema} against the heads in {heads.path} and "
                  f"the {HEADS_TABLE} table")
            columns = (TextColumn("verifying"), BarColumn(bar_width=20), TaskProgressColumn(), EventRate(),
                       TextColumn("ETA"), TimeRemainingColumn())
            with Progress(*columns, console=Console(stderr=True)) as progress:
                task = progress.add_task("event chain", total=None)
                verdict = audit.verify(lambda at, end: progress.update(task, completed=at, total=max(end, 1)))
    except ServerError as error:
        print(f"kact: {error}", file=sys.stderr)
        return 1
    except psycopg.errors.UndefinedTable as error:
        print(f"kact: schema {settings.db_schema} holds no event chain ({error.diag.message_primary}): start this "
              "version's `kact up` (or its jobs) on it first", file=sys.stderr)
        return 1
    if not verdict.ok:
        print(f"broken: first broken link: {verdict.breaks[0]}")
        for later in verdict.breaks[1:]:
            print(f"  also: {later}")
        return 1
    head = f"chain head {verdict.head}" if verdict.head is not None else "no signed head yet"
    print(f"ok: {verdict.events} events, {head}")
    if verdict.unsigned:
        print(f"  {verdict.unsigned} events chained after that head (the next head anchors them)")
    if verdict.unchained:
        print(f"  {verdict.unchained} newest events not chained yet (the chain follows the store within seconds)")
    return 0
