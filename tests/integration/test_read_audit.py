"""The read audit through the API, with every service connected as the append-only role: each read of course data
is in the access log (denied ones too), the operator pages through it by course, principal, outcome and time (API
and CLI), and that role cannot change or delete stored events or access-log rows."""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from psycopg import sql

from api_support import T0, Tenant, bearer, eventually, iso, ok
from conftest import LiveServer, NotifierThread, notifier_settings, serve, server_settings
from receiver import Receiver
from scheduler import db_roles
from scheduler.cli import main

pytestmark = pytest.mark.integration
BOOKED = "kact.course.session.booked.v1"


@dataclasses.dataclass(frozen=True)
class Restricted:
    server: LiveServer
    owner_url: str  # the schema's owner: migrates and grants
    role: str
    role_url: str  # what the API, the jobs and the notifier connect with
    schema: str
    receiver: Receiver


@pytest.fixture(scope="module")
def restricted(database_url: str, nats_url: str) -> Iterator[Restricted]:
    """A server, its jobs and a notifier, all connected as a services' role made for this module."""
    schema, role, password = f"t_audit_{secrets.token_hex(4)}", f"kact_app_{secrets.token_hex(4)}", secrets.token_hex(16)
    owner = server_settings(database_url, nats_url, schema)
    db_roles.ensure_role(database_url, role, password)
    try:
        db_roles.migrate_and_grant(owner, role)
        services = dataclasses.replace(owner, database_url=db_roles.as_role(database_url, role, password),
                                       db_migrate=False)
        with Receiver() as receiver, serve(services) as server:
            notifier = NotifierThread(notifier_settings(services, db_migrate=False)).start()
            try:
                yield Restricted(server, database_url, role, services.database_url or "", schema, receiver)
            finally:
                notifier.stop()
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(sql.Identifier(role)))


@pytest.fixture
def client(restricted: Restricted) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=restricted.server.base_url, timeout=30) as client:
        yield client


def access_log(client: httpx.Client, operator: str, **params: Any) -> list[dict[str, Any]]:
    """Every row the query matches, following `next_cursor` page by page."""
    rows, cursor = [], None
    while True:
        page = ok(client.get("/v1/audit/access-log", params={**params, **({"cursor": cursor} if cursor else {})},
                             headers=bearer(operator)), 200)
        rows += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def test_every_read_is_logged_with_its_outcome_and_the_operator_queries_it(restricted: Restricted,
                                                                            client: httpx.Client) -> None:
    operator = restricted.server.operator_token
    home = Tenant.onboard(client, operator)
    stranger = Tenant.onboard(client, operator, "Another practice")
    hook = ok(client.post(f"/v1/clinics/{home.clinic['id']}/webhooks",
                          json={"url": f"{restricted.receiver.url}/home", "event_types": [BOOKED]},
                          headers=home.headers), 201)
    # Writes as the services' role: the course, a booking (course and calendars in one insert).
    course = home.open_course()
    cid = course["id"]
    home.book(cid, "assessment", T0)

    # Reads: the home clinic's, a replay, the list (its indexer runs as that role too), the feed; and refusals.
    read = client.get(f"/v1/courses/{cid}", headers=home.headers)
    ok(read, 200)
    ok(client.get(f"/v1/courses/{cid}", params={"as_of": "1"}, headers=home.headers), 200)
    ok(client.get(f"/v1/courses/{cid}/events", headers=home.headers), 200)
    listed = ok(client.get("/v1/courses", headers=home.headers), 200)
    assert [c["id"] for c in listed["items"]] == [cid]
    probe = client.get(f"/v1/courses/{cid}", headers=stranger.headers)
    assert probe.status_code == 404
    assert client.get("/v1/dose-approvals", headers=home.headers).status_code == 403
    assert client.get("/v1/audit/access-log", headers=home.headers).status_code == 404  # the operator's alone
    restricted.receiver.wait_for("/home", lambda item: item["event"]["courseid"] == cid)
    feed = eventually(lambda: ok(client.get("/v1/feed", headers=home.headers), 200)["items"], bool)
    assert {item["event"]["courseid"] for item in feed} == {cid}

    # The course's rows, newest first, one page at a time.
    def course_rows() -> list[dict[str, Any]]:
        return access_log(client, operator, course_id=cid, limit=2)

    rows = eventually(course_rows, lambda rows: any(r["action"] == "deliver_webhook" for r in rows))
    assert [(r["at"], r["id"]) for r in rows] == sorted(((r["at"], r["id"]) for r in rows), reverse=True)
    seen = {(r["principal"], r["action"], r["outcome"]) for r in rows}
    home_ref, stranger_ref = f"clinic:{home.clinic['id']}", f"clinic:{stranger.clinic['id']}"
    assert {(home_ref, "read_course", "ok"), (home_ref, "replay_course", "ok"), (home_ref, "read_history", "ok"),
            (home_ref, "list_courses", "ok"), (home_ref, "read_feed", "ok"), (stranger_ref, "read_course", "denied"),
            (f"webhook:{hook['id']}", "deliver_webhook", "ok")} <= seen
    denied = [r for r in rows if r["outcome"] == "denied"]
    assert [(r["principal"], r["request_id"]) for r in denied] == [(stranger_ref, probe.headers["x-request-id"])]
    assert next(r for r in rows if r["action"] == "read_course" and r["principal"] == home_ref)["request_id"] == \
        read.headers["x-request-id"]

    # By principal and outcome: the 403 of the approval queue, which names no course.
    refused = access_log(client, operator, principal=home_ref, outcome="denied")
    assert [(r["action"], r["course_id"]) for r in refused] == [("list_dose_approvals", None)]
    assert access_log(client, operator, principal=stranger_ref) == denied
    # By time: nothing before the rows were written, everything from a minute before.
    first = min(datetime.fromisoformat(r["at"]) for r in rows)
    assert access_log(client, operator, course_id=cid, to=(first - timedelta(minutes=1)).isoformat()) == []
    assert access_log(client, operator, course_id=cid, **{"from": (first - timedelta(minutes=1)).isoformat()}) \
        == access_log(client, operator, course_id=cid)
    for bad in ({"cursor": "bm90LWEtY3Vyc29y"}, {"outcome": "maybe"}, {"from": "2026-01-01T00:00:00"},
                {"limit": "0"}, {"principal": "no spaces"}):
        response = client.get("/v1/audit/access-log", params=bad, headers=bearer(operator))
        assert response.status_code == 422, (bad, response.text)


def test_the_cli_prints_the_same_rows(restricted: Restricted, client: httpx.Client, monkeypatch, capsys,
                                     tmp_path) -> None:
    operator = restricted.server.operator_token
    home = Tenant.onboard(client, operator)
    cid = home.open_course()["id"]
    for _ in range(3):
        ok(client.get(f"/v1/courses/{cid}", headers=home.headers), 200)
    monkeypatch.setenv("KACT_DATABASE_URL", restricted.owner_url)
    monkeypatch.setenv("KACT_DB_SCHEMA", restricted.schema)
    monkeypatch.setenv("KACT_DATA_DIR", str(tmp_path))
    assert main(["audit", "access-log", "--course", cid, "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    answered = access_log(client, operator, course_id=cid)
    fields = ("id", "outcome", "principal", "action", "course_id", "request_id")
    assert [{k: p[k] for k in fields} for p in printed] == [{k: r[k] for k in fields} for r in answered]
    assert [datetime.fromisoformat(p["at"]) for p in printed] == [datetime.fromisoformat(r["at"]) for r in answered]
    assert [p["action"] for p in printed] == ["read_course"] * 3
    assert main(["audit", "access-log", "--course", cid, "--limit", "2"]) == 0
    table = capsys.readouterr()
    assert table.out.splitlines()[0].split() == ["at", "outcome", "principal", "action", "course_id", "request_id"]
    assert len(table.out.splitlines()) == 3 and "more rows than --limit 2" in table.err
    assert main(["audit", "access-log", "--principal", f"clinic:{home.clinic['id']}",
                 "--from", (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat(), "--json"]) == 0
    assert capsys.readouterr().out == ""
    # The statements a DBA runs by hand after migrating (no database needed to print them).
    assert main(["db", "grant", "--print", "--role", "svc"]) == 0
    printed = capsys.readouterr().out
    assert f'REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON "{restricted.schema}"."courses_events", ' \
           f'"{restricted.schema}"."access_log" FROM "svc";' in printed.splitlines()


def test_the_services_role_cannot_change_or_delete_events_or_access_log_rows(restricted: Restricted,
                                                                           client: httpx.Client) -> None:
    home = Tenant.onboard(client, restricted.server.operator_token)
    cid = home.open_course()["id"]
    ok(client.get(f"/v1/courses/{cid}", headers=home.headers), 200)
    schema = sql.Identifier(restricted.schema)
    events = sql.SQL("{}.{}").format(schema, sql.Identifier(db_roles.EVENTS_TABLE))
    log = sql.SQL("{}.access_log").format(schema)
    count = sql.SQL("SELECT (SELECT count(*) FROM {}), (SELECT count(*) FROM {})").format(events, log)
    with psycopg.connect(restricted.owner_url, autocommit=True) as owner:
        before = owner.execute(count).fetchone()
    refused = [
        sql.SQL("UPDATE {} SET topic = topic").format(events),
        sql.SQL("DELETE FROM {}").format(events),
        sql.SQL("TRUNCATE {}").format(events),
        sql.SQL("UPDATE {} SET outcome = 'ok'").format(log),
        sql.SQL("DELETE FROM {}").format(log),
        sql.SQL("TRUNCATE {}").format(log),
        sql.SQL("ALTER TABLE {} DISABLE TRIGGER ALL").format(log),
        sql.SQL("CREATE TABLE {}.scratch (id int)").format(schema),
        sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(events),
    ]
    with psycopg.connect(restricted.role_url, autocommit=True) as conn:
        for statement in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement)
        # What the services need still works: reading both, adding to the log.
        assert conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE originator_id = %s").format(events),
                            (cid,)).fetchone()[0] == 1
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("INSERT INTO {} (principal, action) VALUES ('test:role', 'probe')").format(log))
    with psycopg.connect(restricted.owner_url, autocommit=True) as owner:
        assert owner.execute(count).fetchone() == before
        # A role that would keep every right is refused as the services' role.
        with pytest.raises(db_roles.RoleError):
            db_roles.grant(owner, restricted.schema, owner.info.user, db_roles.EVENTS_TABLE)
        # On either table the role holds INSERT and SELECT, nothing more.
        for table in (db_roles.EVENTS_TABLE, "access_log"):
            held = [p for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
                    if owner.execute("SELECT has_table_privilege(%s, %s, %s)",
                                     (restricted.role, f"{restricted.schema}.{table}", p)).fetchone()[0]]
            assert held == ["SELECT", "INSERT"], table


def test_a_rebuilt_index_keeps_the_services_roles_rights(restricted: Restricted, client: httpx.Client,
                                                         monkeypatch, capsys, tmp_path) -> None:
    home = Tenant.onboard(client, restricted.server.operator_token)
    course = home.open_course()
    monkeypatch.setenv("KACT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KACT_DATABASE_URL", restricted.owner_url)
    monkeypatch.setenv("KACT_DB_SCHEMA", restricted.schema)
    monkeypatch.setenv("KACT_CIPHER_KEY", restricted.server.settings.cipher_key or "")
    assert main(["replay"]) == 0
    assert "the replayed read models are in place" in capsys.readouterr().out
    # The indexer, as the services' role, writes the new tables: a booking shows in the clinician's week.
    session = home.book(course["id"], "assessment", T0 + timedelta(days=1))
    week = ok(client.get(f"/v1/clinicians/{home.therapist['id']}/calendar",
                         params={"date": session["starts_at"][:10]}, headers=home.headers), 200)
    assert [e["session_id"] for e in week["entries"]] == [session["id"]]
    # And the notifier, as that role, goes on keeping its course facts in the replayed table.
    facts = sql.SQL("SELECT facts FROM {}.notifier_courses WHERE course_id = %s").format(
        sql.Identifier(restricted.schema))

    def sessions() -> dict[str, Any]:
        with psycopg.connect(restricted.owner_url) as conn:
            row = conn.execute(facts, (course["id"],)).fetchone()
        return row[0]["sessions"] if row else {}

    assert session["id"] in eventually(sessions, lambda found: session["id"] in found)


def test_calendars_feeds_hosting_and_booking_searches_are_logged(restricted: Restricted,
                                                                 client: httpx.Client) -> None:
    operator = restricted.server.operator_token
    home = Tenant.onboard(client, operator)
    stranger = Tenant.onboard(client, operator, "Another practice")
    cid = home.open_course()["id"]
    home.book(cid, "assessment", T0)
    at = {"X-Kact-Now": iso(T0 - timedelta(days=1))}
    therapist = home.therapist["id"]

    # A calendar feed: read (the course it shows), then revoked and read again (denied, under the feed's name).
    feed = ok(client.post(f"/v1/clinicians/{therapist}/calendar-feeds", json={"label": "desk"},
                          headers=home.headers), 201)
    path = urlsplit(feed["url"]).path
    assert client.get(path, headers=at).status_code == 200
    assert client.delete(f"/v1/clinicians/{therapist}/calendar-feeds/{feed['id']}",
                         headers=home.headers).status_code == 204
    assert client.get(path, headers=at).status_code == 404
    assert [(r["action"], r["course_id"], r["outcome"]) for r in
            access_log(client, operator, principal=f"calendar-feed:{feed['id']}")] == [
        ("read_calendar_feed", None, "denied"), ("read_calendar_feed", cid, "ok")]

    # The clinician's week, the clinic's hosted sessions (none), free slots, next slots and a plan.
    ok(client.get(f"/v1/clinicians/{therapist}/calendar", params={"date": iso(T0)[:10]}, headers=home.headers), 200)
    ok(client.get(f"/v1/clinics/{home.clinic['id']}/hosted-sessions", params={"from": iso(T0)},
                  headers=home.headers), 200)
    ok(client.get(f"/v1/clinics/{home.clinic['id']}/free-slots", params={
        "kind": "integration", "from": iso(T0)[:10], "duration_minutes": 60}, headers={**home.headers, **at}), 200)
    ok(client.get(f"/v1/courses/{cid}/next-slots", params={"kind": "preparation"}, headers={**home.headers, **at}),
       200)
    ok(home.post(f"/v1/courses/{cid}/plan", {}, at=T0 - timedelta(days=1)), 200)
    assert client.get(f"/v1/clinics/{home.clinic['id']}/hosted-sessions", headers=stranger.headers).status_code == 404
    assert client.get(f"/v1/clinicians/{therapist}/calendar", headers=stranger.headers).status_code == 404
    assert [(r["action"], r["course_id"], r["outcome"]) for r in
            access_log(client, operator, principal=f"clinic:{home.clinic['id']}")] == [
        ("plan_course", cid, "ok"), ("list_next_slots", cid, "ok"), ("list_free_slots", None, "ok"),
        ("list_hosted_sessions", None, "ok"), ("read_clinician_calendar", cid, "ok")]
    assert [(r["action"], r["course_id"], r["outcome"]) for r in
            access_log(client, operator, principal=f"clinic:{stranger.clinic['id']}")] == [
        ("read_clinician_calendar", None, "denied"), ("list_hosted_sessions", None, "denied")]


def test_an_access_log_of_earlier_kact_is_migrated_in_place(database_url: str, schema: str) -> None:
    from kact_contracts.access_log import SCHEMA_SQL

    with psycopg.connect(database_url, autocommit=True, options=f"-c search_path={schema}") as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        # The table as the code before made it, with a row it wrote (it logged successful reads only).
        conn.execute("CREATE TABLE access_log (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), "
                     "principal text NOT NULL, action text NOT NULL, course_id uuid); "
                     "CREATE INDEX access_log_course ON access_log (course_id, at); "
                     "INSERT INTO access_log (principal, action) VALUES ('clinic:x', 'list_courses')")
        for _ in range(2):  # every start migrates again: nothing changes the second time
            conn.execute(SCHEMA_SQL)
        assert conn.execute("SELECT principal, action, outcome, request_id FROM access_log").fetchall() == [
            ("clinic:x", "list_courses", "ok", None)]
        assert {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,))} == {
            "access_log_pkey", "access_log_course", "access_log_principal", "access_log_at"}
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO access_log (principal, action, outcome) VALUES ('clinic:x', 'x', 'maybe')")
