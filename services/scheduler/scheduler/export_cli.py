"""`kact audit export --course ID`: a course's history written as files for an auditor (NDJSON with the chain links,
an HTML timeline, a FHIR R4 Bundle), read from the event store with the service's key.

The database is found as `kact projections` finds it (KACT_DATABASE_URL, else the data dir's embedded PostgreSQL,
the one a running `kact up` serves or started for the command). Whoever runs it holds the data dir or the database's
credentials, so acts as the operator: the export is logged in the access log as `operator:cli:<OS user>`, action
`export_course`, before any file is written. The files hold health data: they are written owner-only (0600)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from uuid import UUID

import psycopg
from psycopg import sql
from kact_contracts import settings as catalogue
from kact_contracts.environment import SettingError

from scheduler.api_keys import Principal
from scheduler.application.courses import event_store_env
from scheduler.application.errors import CourseNotFoundError
from scheduler.application.export import FORMATS, Export, Exports
from scheduler.embedded import ServerError
from scheduler.projections_cli import _database
from scheduler.chain.audit import ChainAudit
from scheduler.runtime import resolve_runtime_settings
from scheduler.settings import Settings
from scheduler.storage import migrate


def run_export(args: argparse.Namespace) -> int:
    environ = {**os.environ, **({"KACT_DATA_DIR": str(args.data_dir)} if args.data_dir else {})}
    formats = list(FORMATS) if args.format == "all" else [args.format]
    try:
        exports = export_files(args.course, formats, environ)
    except SettingError as error:
        for line in str(error).splitlines():
            print(f"kact: {line}", file=sys.stderr)
        return 2
    except CourseNotFoundError as error:
        print(f"kact: {error}", file=sys.stderr)
        return 1
    except ServerError as error:
        print(f"kact: {error}", file=sys.stderr)
        return 1
    for export in exports:
        path = write(args.out, args.course, export)
        print(f"wrote {path} ({len(export.body):,} bytes, {export.media_type})")
    return 0


def cli_principal() -> Principal:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment nor the password database
        user = "unknown"
    return Principal("operator", f"cli:{user}")


def export_files(course_id: UUID, formats: list[str], environ: Mapping[str, str]) -> list[Export]:
    settings = Settings.from_values(catalogue.read(environ))
    with _database(settings) as database_url:
        runtime = resolve_runtime_settings(settings, database_url=database_url, nats_url="")
        courses, view = migrate(runtime, event_store_env(runtime))
        view.datastore.close()
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(runtime.db_schema)))

                async def log_access(principal: Principal, action: str, course: UUID | None) -> None:
                    conn.execute("INSERT INTO access_log (principal, action, course_id) VALUES (%s, %s, %s)",
                                 (principal.ref, action, course))

                chained = {"links": ChainAudit.from_settings(runtime).links_of} if runtime.audit_key else {}
                exports = Exports(courses, log_access, asyncio.to_thread, lambda: datetime.now(timezone.utc),
                                  **chained)
                return asyncio.run(exports.export(cli_principal(), course_id, formats))
        finally:
            courses.close()


def write(directory: Path, course_id: UUID, export: Export) -> Path:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"course-{course_id}-{export.file_name}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
        file.write(export.body)
    return path
