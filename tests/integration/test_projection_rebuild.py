"""`kact projections rebuild` writes the course index again from the event store: the same rows as the live
projection, moved into place while the server runs, which goes on indexing after it."""

from __future__ import annotations

from datetime import timedelta

import httpx
import psycopg
import pytest
from psycopg import sql

from api_support import T0, Tenant, eventually, ok
from conftest import serve, server_settings
from scheduler.cli import main
from scheduler.readmodels.course_index import TABLES

pytestmark = pytest.mark.integration
ORDER = {"course_index": "course_id", "calendar_entries": "course_id, session_id", "approval_queue": "approval_id",
         "integration_deadlines": "course_id, session_id", "hosted_sessions": "course_id, session_id",
         "open_holds": "course_id, hold_id"}


def snapshot(database_url: str, schema: str) -> dict[str, list[tuple]]:
    with psycopg.connect(database_url) as conn:
        return {t: conn.execute(sql.SQL("SELECT * FROM {}.{} ORDER BY " + ORDER[t]).format(
            sql.Identifier(schema), sql.Identifier(t))).fetchall() for t in TABLES}


def test_a_rebuild_gives_the_live_projections_rows(database_url, nats_url, schema, monkeypatch, capsys) -> None:
    settings = server_settings(database_url, nats_url, schema)
    with serve(settings) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        # A little of everything the index keeps: phases, sessions booked, moved, cancelled, held, a closed course.
        home = Tenant.onboard(client, server.operator_token)
        courses = [home.open_course() for _ in range(3)]
        home.screen_both(courses[0]["id"])
        home.hold(courses[0]["id"], home.book(courses[0]["id"], "assessment", T0))
        moved = home.book(courses[1]["id"], "assessment", T0 + timedelta(days=2))
        ok(home.post(f"/v1/courses/{courses[1]['id']}/sessions/{moved['id']}/reschedule",
                     {"starts_at": "2026-01-08T09:00:00Z", "ends_at": "2026-01-08T10:00:00Z"}, at=T0), 200)
        cancelled = home.book(courses[1]["id"], "preparation", T0 + timedelta(days=4), partners=["a"])
        ok(home.post(f"/v1/courses/{courses[1]['id']}/sessions/{cancelled['id']}/cancel", {"reason": "ill"},
                     at=T0), 200)
        home.book(courses[2]["id"], "assessment", T0 + timedelta(days=5))
        ok(home.post(f"/v1/courses/{courses[2]['id']}/discontinue", {"reason": "moved away"}), 200)
        ok(client.get("/v1/courses", headers=home.headers), 200)  # the read waits until the index holds it all
        live = snapshot(database_url, schema)
        assert len(live["course_index"]) == 3 and len(live["calendar_entries"]) == 4
        assert {r[1] for r in live["calendar_entries"]} >= {moved["id"], cancelled["id"]}

        for name, value in {"KACT_DATABASE_URL": database_url, "KACT_DB_SCHEMA": schema,
                            "KACT_CIPHER_KEY": settings.cipher_key}.items():
            monkeypatch.setenv(name, value or "")
        assert main(["projections", "rebuild"]) == 0
        out = capsys.readouterr()
        assert "the replayed read models are in place" in out.out and "0 behind the event store" in out.out
        assert "events/s" in out.err  # the progress bar
        assert snapshot(database_url, schema) == live

        # The server's indexer goes on with the new tables: a booking shows in the list and the calendar.
        later = home.book(courses[1]["id"], "preparation", T0 + timedelta(days=6), partners=["b"])

        def calendar() -> httpx.Response:
            return client.get(f"/v1/clinicians/{home.therapist['id']}/calendar",
                              params={"view": "day", "date": "2026-01-11"}, headers=home.headers)

        body = eventually(calendar, lambda r: r.status_code == 200).json()
        assert later["id"] in [e["session_id"] for e in body["entries"]]
        assert main(["projections", "status"]) == 0
        assert "0 behind the event store" in capsys.readouterr().out
