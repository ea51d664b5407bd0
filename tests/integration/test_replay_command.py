"""`kact replay` replays the event store into every read model (the course index and the notifier's course facts),
compares them with the live tables (`--check`: exit code 1 on any difference, each table's count printed) and
moves them into place while the server and the notifier run, which go on with the new tables."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from api_support import T0, Tenant, eventually, ok
from conftest import NotifierThread, notifier_settings, serve, server_settings
from scheduler.cli import main
from scheduler.readmodels.course_index import TABLES
from scheduler.readmodels.replay import STAMPED

pytestmark = pytest.mark.integration
FACTS = "notifier_courses"


def live_rows(database_url: str, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every read model's rows, sorted, without the columns the database stamps."""
    found = {}
    with psycopg.connect(database_url) as conn:
        for table in (*TABLES, FACTS):
            names = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                "ORDER BY ordinal_position", (schema, table)).fetchall() if r[0] not in STAMPED.get(table, ())]
            rows = conn.execute(sql.SQL("SELECT {} FROM {}.{}").format(
                sql.SQL(", ").join(map(sql.Identifier, names)), sql.Identifier(schema), sql.Identifier(table)))
            found[table] = sorted(rows.fetchall(), key=repr)
    return found


def test_replay_checks_repairs_and_swaps_every_read_model_while_the_system_runs(
        database_url, nats_url, schema, monkeypatch, capsys) -> None:
    settings = server_settings(database_url, nats_url, schema)
    for name, value in {"KACT_DATABASE_URL": database_url, "KACT_DB_SCHEMA": schema,
                        "KACT_CIPHER_KEY": settings.cipher_key}.items():
        monkeypatch.setenv(name, value or "")
    with serve(settings) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        notifier = NotifierThread(notifier_settings(settings)).start()
        try:
            home = Tenant.onboard(client, server.operator_token)
            courses = [home.open_course()["id"] for _ in range(3)]
            home.screen_both(courses[0])
            home.hold(courses[0], home.book(courses[0], "assessment", T0))
            home.book(courses[1], "assessment", T0 + timedelta(days=2))
            cancelled = home.book(courses[1], "preparation", T0 + timedelta(days=4), partners=["a"])
            ok(home.post(f"/v1/courses/{courses[1]}/sessions/{cancelled['id']}/cancel", {"reason": "ill"}, at=T0),
               200)
            home.book(courses[2], "assessment", T0 + timedelta(days=5))
            ok(home.post(f"/v1/courses/{courses[2]}/discontinue", {"reason": "moved away"}), 200)
            ok(client.get("/v1/courses", headers=home.headers), 200)  # the index holds it all

            # The notifier follows the stream: once it processed every event, the live tables agree.
            def check() -> tuple[int, str]:
                code = main(["replay", "--check"])
                return code, capsys.readouterr().out

            code, out = eventually(check, lambda done: done[0] == 0)
            assert "the live read models agreed with the replay" in out
            assert "in place" not in out
            agreed = live_rows(database_url, schema)
            assert len(agreed["course_index"]) == 3 and len(agreed[FACTS]) == 3
            assert len(agreed["calendar_entries"]) == 4

            # A damaged index and notifier state: --check names each table and changes nothing.
            live = sql.Identifier(schema)
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(sql.SQL("UPDATE {}.course_index SET status = 'completed' WHERE course_id = %s")
                             .format(live), (courses[0],))
                conn.execute(sql.SQL("DELETE FROM {}.calendar_entries WHERE course_id = %s").format(live),
                             (courses[1],))
                conn.execute(sql.SQL("UPDATE {}.notifier_courses SET facts = '{{\"sessions\": {{}}, "
                                     "\"approvals\": {{}}}}' WHERE course_id = %s").format(live), (courses[0],))
            damaged = live_rows(database_url, schema)
            code, out = check()
            assert code == 1
            assert "course_index           1 rows only in the live table, 1 only in the replay" in out
            assert "calendar_entries       0 rows only in the live table, 2 only in the replay" in out
            assert "notifier_courses       1 rows only in the live table, 1 only in the replay" in out
            assert live_rows(database_url, schema) == damaged

            # Replayed and swapped: the rows are what the events say again.
            assert main(["replay"]) == 0
            out = capsys.readouterr()
            assert "the replayed read models are in place" in out.out and "0 behind the event store" in out.out
            assert "events/s" in out.err and "ETA" in out.err  # the progress bar
            assert live_rows(database_url, schema) == agreed

            # The server's indexer and the notifier go on with the new tables.
            later = home.book(courses[1], "preparation", T0 + timedelta(days=6), partners=["b"])
            body = eventually(lambda: client.get(f"/v1/clinicians/{home.therapist['id']}/calendar",
                                                 params={"view": "day", "date": "2026-01-11"},
                                                 headers=home.headers),
                              lambda r: r.status_code == 200).json()
            assert later["id"] in [e["session_id"] for e in body["entries"]]
            code, out = eventually(check, lambda done: done[0] == 0)
            with psycopg.connect(database_url) as conn:
                facts = conn.execute(sql.SQL("SELECT facts FROM {}.notifier_courses WHERE course_id = %s")
                                     .format(live), (courses[1],)).fetchone()[0]
            assert later["id"] in facts["sessions"]
        finally:
            notifier.stop()
