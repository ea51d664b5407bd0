"""The audit export through the API (the operator only; anyone else gets 404) and through `kact audit export`: the
course's events from the encrypted store, as NDJSON, HTML and a FHIR R4 Bundle, each export logged."""

from __future__ import annotations

import json
import secrets
import stat
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import httpx
import psycopg
import pytest
from fhirclient.models.bundle import Bundle
from psycopg import sql

from api_support import T0, Tenant, bearer, medicine_record, ok
from conftest import LiveServer, serve, server_settings
from scheduler.cli import main

pytestmark = pytest.mark.integration
SCRIPT = "<script>alert('export')</script>"
# The server's own clock stays before the course's simulated months: its deadline watcher never records a missed
# integration window while the test reads, so the history holds only what the test did.
FROZEN = datetime(2025, 12, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def server(database_url: str, nats_url: str) -> Iterator[LiveServer]:
    schema = f"t_export_{secrets.token_hex(4)}"
    with serve(server_settings(database_url, nats_url, schema), clock=lambda: FROZEN) as live:
        yield live
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="module")
def course(server: LiveServer) -> dict[str, Any]:
    """A course through its first medicine session (in a room, a note with markup in it) and an integration session
    booked, as the home clinic drives it."""
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        home = Tenant.onboard(client, server.operator_token)
        room = ok(home.post(f"/v1/clinics/{home.clinic['id']}/rooms", {"name": "Room 2 (monitored)"}), 201)
        opened = home.open_course()
        cid = opened["id"]
        ok(home.post(f"/v1/courses/{cid}/screenings", {"partner": "a", "result": "eligible",
                                                       "clinician_id": home.therapist["id"], "notes": SCRIPT}), 200)
        ok(home.post(f"/v1/courses/{cid}/screenings", {"partner": "b", "result": "eligible",
                                                       "clinician_id": home.therapist["id"], "notes": ""}), 200)
        home.hold(cid, home.book(cid, "assessment", T0))
        for i, partners in enumerate([["a"], ["b"], ["a", "b"], ["a", "b"]]):
            home.hold(cid, home.book(cid, "preparation", T0 + timedelta(days=i + 1), partners=partners))
        start = T0 + timedelta(days=7)
        medicine = home.book(cid, "medicine", start, hours=3, room_id=room["id"])
        approval = home.approved(cid, medicine, "a")
        home.hold(cid, medicine, **medicine_record({"a": approval}, start + timedelta(minutes=10), 100))
        home.book(cid, "integration", start + timedelta(hours=20))
        events = ok(client.get(f"/v1/courses/{cid}/events", headers=bearer(server.operator_token)), 200)
        return {"id": cid, "home": home, "room": room, "events": events, "partners": opened["partners"]}


def export(server: LiveServer, course_id: str, fmt: str, key: str) -> httpx.Response:
    return httpx.get(f"{server.base_url}/v1/audit/courses/{course_id}/export", params={"format": fmt},
                     headers=bearer(key), timeout=30)


def exports_logged(server: LiveServer, course_id: str) -> list[str]:
    with psycopg.connect(server.settings.database_url or "") as conn:
        rows = conn.execute(sql.SQL("SELECT principal FROM {}.access_log WHERE action = 'export_course' "
                                    "AND course_id = %s ORDER BY id").format(sql.Identifier(server.settings.db_schema)),
                            (course_id,)).fetchall()
    return [r[0] for r in rows]


def test_the_operator_gets_the_history_as_ndjson_html_and_fhir_and_each_export_is_logged(server, course) -> None:
    cid, events, key = course["id"], course["events"], server.operator_token
    before = len(exports_logged(server, cid))

    lines = export(server, cid, "ndjson", key)
    assert lines.status_code == 200, lines.text
    assert lines.headers["content-type"] == "application/x-ndjson"
    assert lines.headers["content-disposition"] == f'inline; filename="course-{cid}-history.ndjson"'
    parsed = [json.loads(line) for line in lines.text.splitlines()]
    assert [p["version"] for p in parsed] == [e["version"] for e in events]  # one line per event, in order
    for line, event in zip(parsed, events):
        assert (line["type"], line["actor"], line["chain"]) == (event["type"], event["actor"], None)
    assert parsed[1]["data"]["notes"] == SCRIPT  # the store's data, decrypted with the service key

    page = export(server, cid, "html", key)
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<script>" not in page.text and "&lt;script&gt;alert(&#39;export&#39;)&lt;/script&gt;" in page.text
    assert f"{len(events)} (versions 1 to {len(events)})" in page.text

    fhir = export(server, cid, "fhir", key)
    assert fhir.status_code == 200 and fhir.headers["content-type"] == "application/fhir+json"
    bundle = fhir.json()
    Bundle(bundle, strict=True)  # valid FHIR R4
    counts = Counter(e["resource"]["resourceType"] for e in bundle["entry"])
    assert (counts["Appointment"], counts["Encounter"], counts["MedicationAdministration"]) == (7, 6, 1)
    assert counts["Observation"] == 6  # three readings: a blood-pressure panel and a heart rate each
    identifiers = {(e["resource"]["resourceType"], i["value"]) for e in bundle["entry"]
                   for i in e["resource"].get("identifier", [])}
    home = course["home"]
    assert {("Patient", course["partners"]["a"]), ("Patient", course["partners"]["b"]),
            ("Practitioner", home.therapist["id"]), ("Location", course["room"]["id"])} <= identifiers
    assert SCRIPT not in fhir.text

    assert exports_logged(server, cid)[before:] == ["operator:root"] * 3


def test_a_clinic_or_a_prescriber_never_sees_the_export_and_an_unknown_course_is_404(server, course) -> None:
    cid, home = course["id"], course["home"]
    before = len(exports_logged(server, cid))
    for key in (home.clinic["api_key"], home.prescriber["api_key"]):  # even the course's own home clinic
        for fmt in ("ndjson", "html", "fhir"):
            refused = export(server, cid, fmt, key)
            assert refused.status_code == 404, refused.text
            assert refused.json()["type"] == "/problems/not-found"
    assert export(server, str(uuid4()), "fhir", server.operator_token).status_code == 404
    assert export(server, cid, "pdf", server.operator_token).status_code == 422
    assert export(server, cid, "ndjson", "not-a-key").status_code == 401
    assert len(exports_logged(server, cid)) == before


def test_kact_audit_export_writes_the_three_files_owner_only_and_logs_the_export(server, course, tmp_path,
                                                                                   monkeypatch, capsys) -> None:
    cid, events = course["id"], course["events"]
    settings = server.settings
    for name, value in {"KACT_DATABASE_URL": settings.database_url, "KACT_DB_SCHEMA": settings.db_schema,
                        "KACT_CIPHER_KEY": settings.cipher_key}.items():
        monkeypatch.setenv(name, value or "")
    before = len(exports_logged(server, cid))
    out = tmp_path / "audit"

    assert main(["audit", "export", "--course", cid, "--out", str(out), "--data-dir", str(tmp_path / "data")]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"course-{cid}-{name}" for name in ("history.ndjson", "timeline.html",
                                                                  "fhir-bundle.json"))
    printed = capsys.readouterr().out
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert f"wrote {path} (" in printed
    lines = (out / f"course-{cid}-history.ndjson").read_text().splitlines()
    assert [json.loads(line)["actor"] for line in lines] == [e["actor"] for e in events]
    Bundle(json.loads((out / f"course-{cid}-fhir-bundle.json").read_text()), strict=True)
    assert "&lt;script&gt;" in (out / f"course-{cid}-timeline.html").read_text()
    logged = exports_logged(server, cid)[before:]
    assert len(logged) == 1 and logged[0].startswith("operator:cli:")

    assert main(["audit", "export", "--course", cid, "--format", "fhir", "--out", str(out / "fhir"),
                 "--data-dir", str(tmp_path / "data")]) == 0
    assert [p.name for p in (out / "fhir").iterdir()] == [f"course-{cid}-fhir-bundle.json"]
    assert f"wrote {out / 'fhir' / f'course-{cid}-fhir-bundle.json'}" in capsys.readouterr().out

    unknown = str(uuid4())
    assert main(["audit", "export", "--course", unknown, "--out", str(out), "--data-dir", str(tmp_path / "data")]) == 1
    assert f"kact: no course {unknown}" in capsys.readouterr().err
    assert exports_logged(server, unknown) == []


def test_the_course_fixture_is_what_the_export_covers(course) -> None:
    """The history the tests above compare with: every kind of record the export maps is in it."""
    kinds = Counter(e["type"] for e in course["events"])
    assert kinds["SessionBooked"] == 7 and kinds["SessionHeld"] == 6 and kinds["Dosed"] == 1
    assert datetime.fromisoformat(course["events"][-1]["occurred_at"]) < T0 + timedelta(days=8)
