"""The database role the services run as (the API, the jobs, the notifier): it reads and writes what they need,
but the stored events and the access log only grow (INSERT and SELECT; no UPDATE, DELETE or TRUNCATE), and it
changes no table's definition. The schema's owner migrates and grants (`kact up` for its embedded PostgreSQL,
`kact db grant` for any other).

What the services need beyond that, from the eventsourcing library and kact: events are inserted through
`kact_insert_events`, which runs as its owner because it locks the events table (PostgreSQL lets only a role with
UPDATE, DELETE or TRUNCATE rights take that lock); the tracking tables are upserted (one row per reader: UPDATE);
the course index, the notifier's tables, API keys, idempotency keys and calendar feeds are updated and purged as
their modules say. Every other table of the schema gets SELECT, INSERT, UPDATE and DELETE, so a table a later
version adds works once the owner migrated and granted again."""

from __future__ import annotations

import dataclasses
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from scheduler.application.courses import Courses, event_store_env
from scheduler.secretfile import read_or_create
from scheduler.settings import Settings
from scheduler.storage import migrate

SERVICES_ROLE = "kact_app"  # the embedded PostgreSQL's; `kact db grant --role` names another
PASSWORD_FILE = "postgres.services.password"  # in the data dir, owner-only: the embedded role's password
APPEND_ONLY = ("access_log",)  # with the event store's events table
EVENTS_TABLE = f"{Courses.name.lower()}_events"  # as the eventsourcing library names an application's table


class RoleError(Exception):
    """The role named for the services is missing, or would keep rights that defeat the point (a superuser, the
    schema's owner or a member of it)."""


def grant_statements(schema: str, role: str, events_table: str) -> list[sql.Composed]:
    """What makes `role` the services' role on `schema` (idempotent: run after every migration)."""
    s, r = sql.Identifier(schema), sql.Identifier(role)
    append_only = sql.SQL(", ").join(sql.SQL("{}.{}").format(s, sql.Identifier(t))
                                     for t in (events_table, *APPEND_ONLY))
    return [
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, r),
        sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(s, r),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(s, r),
        sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {} FROM {}").format(append_only, r),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(s, r),
        # The insert function runs as its owner: nobody else but the services' role calls it.
        sql.SQL("REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA {} FROM PUBLIC").format(s),
        sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {} TO {}").format(s, r),
    ]


def grant(conn: psycopg.Connection, schema: str, role: str, events_table: str) -> None:
    """Grant the services' rights to `role` on `schema`, as its owner, after checking the role can be held to
    them."""
    row = conn.execute(
        "SELECT r.rolsuper, pg_has_role(r.oid, n.nspowner, 'MEMBER') FROM pg_roles r, pg_namespace n "
        "WHERE r.rolname = %s AND n.nspname = %s", (role, schema)).fetchone()
    if row is None:
        raise RoleError(f"no role {role!r} (or no schema {schema!r}): create the role first (CREATE ROLE "
                        f"{role} LOGIN PASSWORD '...')")
    superuser, owner = row
    if superuser or owner:
        raise RoleError(f"role {role!r} is a superuser or owns schema {schema!r} (or is a member of its owner): it "
                        "would keep every right; the services need a role of their own")
    for statement in grant_statements(schema, role, events_table):
        conn.execute(statement)


PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN"}


def table_grants(conn: psycopg.Connection, schema: str, tables: list[str]) -> list[tuple[str, str | None, str]]:
    """(table, grantee (None: PUBLIC), privilege) of each right on `tables` given to other roles than their owner:
    tables about to be replaced (`kact projections rebuild`) keep them (`copy_grants`)."""
    return [(r[0], r[1], r[2]) for r in conn.execute(
        "SELECT c.relname, CASE WHEN a.grantee = 0 THEN NULL ELSE a.grantee::regrole::text END, a.privilege_type "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a "
        "WHERE n.nspname = %s AND c.relname = ANY(%s) AND a.grantee <> c.relowner", (schema, tables)).fetchall()]


def copy_grants(conn: psycopg.Connection, schema: str, grants: list[tuple[str, str | None, str]]) -> None:
    for table, grantee, privilege in grants:
        assert privilege in PRIVILEGES, privilege
        conn.execute(sql.SQL("GRANT {} ON {}.{} TO {}").format(
            sql.SQL(privilege), sql.Identifier(schema), sql.Identifier(table),
            sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee)))


def migrate_and_grant(settings: Settings, role: str) -> None:
    """Migrate the schema as its owner (`settings.database_url`), then grant `role` the services' rights on it."""
    assert settings.database_url
    courses, view = migrate(settings, event_store_env(settings))
    events_table = courses.recorder.events_table_name
    view.datastore.close()
    courses.close()
    with psycopg.connect(settings.database_url, autocommit=True) as conn, conn.transaction():
        grant(conn, settings.db_schema, role, events_table)


def ensure_role(owner_url: str, role: str, password: str) -> None:
    """Create `role` (a login without any other right), or set its password and attributes as they should be."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        attributes = sql.SQL("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}").format(
            sql.Literal(password))
        verb = sql.SQL("ALTER ROLE {} WITH " if exists else "CREATE ROLE {} WITH ").format(sql.Identifier(role))
        conn.execute(verb + attributes)


def as_role(url: str, role: str, password: str) -> str:
    """`url` with another user and password (the same server and database)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{quote(role, safe='')}:{quote(password, safe='')}@{host}"))


def services_settings(owner: Settings, password_file: Path, role: str = SERVICES_ROLE) -> Settings:
    """For the embedded PostgreSQL: migrate as the owner (`owner.database_url`), make `role` the services' role
    (its password created once into `password_file`, owner-only) and return the settings the services run with:
    that role's URL, and no migrations of their own."""
    assert owner.database_url
    password = read_or_create(password_file, lambda: secrets.token_urlsafe(24))
    ensure_role(owner.database_url, role, password)
    migrate_and_grant(owner, role)
    return dataclasses.replace(owner, database_url=as_role(owner.database_url, role, password), db_migrate=False)


def run_grant(role: str, print_only: bool, environ: Mapping[str, str]) -> int:
    """`kact db grant`: migrate the database as its owner and grant `role` the services' rights (or print the SQL)."""
    from kact_contracts import settings as catalogue
    from kact_contracts.environment import SettingError

    from scheduler.embedded import ServerError
    from scheduler.projections_cli import _database
    from scheduler.runtime import resolve_runtime_settings

    try:
        settings = Settings.from_values(catalogue.read(environ))
    except SettingError as error:
        for line in str(error).splitlines():
            print(f"kact: {line}", file=sys.stderr)
        return 2
    if print_only:  # for a DBA who applies it by hand, after the owner migrated
        for statement in grant_statements(settings.db_schema, role, EVENTS_TABLE):
            print(statement.as_string(None) + ";")
        return 0
    try:
        with _database(settings) as database_url:
            owner = resolve_runtime_settings(settings, database_url=database_url, nats_url="")
            migrate_and_grant(owner, role)
    except (ServerError, RoleError, psycopg.Error) as error:
        print(f"kact: {error}", file=sys.stderr)
        return 1
    print(f"migrated schema {settings.db_schema} and granted role {role} the services' rights: run the API, "
          f"the jobs and the notifier as {role} with KACT_DB_MIGRATE=0")
    return 0
