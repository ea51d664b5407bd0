"""Stored events are encrypted: the tables hold no partner reference, note or dose in clear."""

from __future__ import annotations


import httpx
import psycopg
import pytest
from psycopg import sql

from api_support import Tenant

pytestmark = pytest.mark.integration


def test_the_event_tables_hold_no_sensitive_text_in_clear(live_server) -> None:
    with httpx.Client(base_url=live_server.base_url, timeout=30) as client:
        home = Tenant.onboard(client, live_server.operator_token)
        secret_a, secret_b = "Alexandra-Quinn-7731", "Bartholomew-Reyes-9902"
        course = home.open_course(partners={"a": secret_a, "b": secret_b})
        cid = course["id"]
        start = home.assess_and_prepare(cid)
        home.dose(cid, start, ["a"], mg=137.5)
    settings = live_server.settings
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (settings.db_schema,))]
        assert "courses_events" in tables
        dump = b""
        for table in tables:
            rows = conn.execute(sql.SQL("SELECT * FROM {}.{}").format(
                sql.Identifier(settings.db_schema), sql.Identifier(table))).fetchall()
            dump += repr(rows).encode()
        stored = conn.execute(sql.SQL("SELECT state FROM {}.courses_events WHERE originator_id = %s").format(
            sql.Identifier(settings.db_schema)), (cid,)).fetchall()
    assert len(stored) > 10
    for text in (secret_a, secret_b, "screening note", "joint assessment", "calm session", "137.5", "partner-a-"):
        assert text.encode() not in dump, f"{text!r} is stored in clear"
    # and the API still reads it back, so the cipher really round-trips
    with httpx.Client(base_url=live_server.base_url, timeout=30) as client:
        state = client.get(f"/v1/courses/{cid}", headers=home.headers).json()
    assert state["partners"] == {"a": secret_a, "b": secret_b}
