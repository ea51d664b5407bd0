"""Tamper evidence in PostgreSQL: a store built through the API, chained and signed by the jobs, then edited,
deleted from, inserted into and reordered by hand; each change is caught and named by its first broken link, and
the store put back verifies again."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import psycopg
import pytest
from psycopg import sql

from api_support import T0, Tenant, eventually
from conftest import serve, server_settings
from pages_support import sign_in
from scheduler.application.courses import Courses, event_store_env
from scheduler.chain import links
from scheduler.chain.audit import ChainAudit
from scheduler.chain.keeper import ChainKeeper, HeadSigner
from scheduler.chain.store import EVENTS_TABLE, HEADS_FILE, ChainTables, HeadLog
from scheduler.cli import main
from scheduler.domain.course import Course
from scheduler.domain.protocol import Protocol
from scheduler.runtime import AUDIT_KEY_FILE
from scheduler.settings import Settings
from scheduler.storage import migrate

pytestmark = pytest.mark.integration
TABLES = (EVENTS_TABLE, "event_chain", "chain_heads")


@dataclass(frozen=True)
class Built:
    settings: Settings
    courses: list[UUID]
    gap: int  # a notification id no event took (a rolled-back insert)

    @property
    def audit(self) -> ChainAudit:
        return ChainAudit.from_settings(self.settings)

    @property
    def heads_file(self) -> Path:
        return self.settings.data_dir / HEADS_FILE

    def sql(self, statement: str, *params: object) -> list[tuple]:
        """`statement` run in the store's schema ({events}, {chain}, {heads} name its tables)."""
        schema = self.settings.db_schema
        composed = sql.SQL(statement).format(
            events=sql.Identifier(schema, EVENTS_TABLE), chain=sql.Identifier(schema, "event_chain"),
            heads=sql.Identifier(schema, "chain_heads"))
        with psycopg.connect(self.settings.database_url or "", autocommit=True) as conn:
            cursor = conn.execute(composed, params)
            return cursor.fetchall() if cursor.description else []

    def ids(self) -> list[int]:
        return [row[0] for row in self.sql("SELECT notification_id FROM {events} ORDER BY notification_id")]

    def course_of(self, nid: int) -> UUID:
        return self.sql("SELECT originator_id FROM {events} WHERE notification_id = %s", nid)[0][0]


@pytest.fixture(scope="module")
def built(database_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    schema = f"t_chain_{secrets.token_hex(5)}"
    data_dir = tmp_path_factory.mktemp("chain")
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    (data_dir / AUDIT_KEY_FILE).write_text(key + "\n")  # as `kact up` keeps it
    settings = dataclasses.replace(server_settings(database_url, nats_url, schema), data_dir=data_dir, audit_key=key,
                                   audit_sign_seconds=0.2)
    try:
        with serve(settings) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
            home = Tenant.onboard(client, server.operator_token)
            courses, gap = [], 0
            for i in range(3):
                course = home.open_course()["id"]
                home.screen_both(course)
                home.hold(course, home.book(course, "assessment", T0 + timedelta(days=i)))
                courses.append(UUID(course))
                built = Built(settings, courses, gap)
                # the chain job follows the store, and signs its head within a moment: one head per course
                last = built.ids()[-1]
                signed = eventually(lambda: HeadLog(built.heads_file).read(schema)[0],
                                    lambda heads: bool(heads) and heads[-1].position == last)
                assert signed[-1].position == last and len(signed) > i  # (more if the job signed mid-course)
                if i == 0:  # a rolled-back insert takes a notification id and leaves it unused
                    with psycopg.connect(database_url) as conn:
                        gap = conn.execute(sql.SQL(
                            "INSERT INTO {} (originator_id, originator_version, topic, state) VALUES "
                            "(%s, 1, 'x', 'x') RETURNING notification_id").format(
                                sql.Identifier(schema, EVENTS_TABLE)), (uuid4(),)).fetchone()[0]
                        conn.rollback()
        built = Built(settings, courses, gap)
        with psycopg.connect(database_url, autocommit=True) as conn:  # kept, to put the store back after each test
            for table in TABLES:
                conn.execute(sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(
                    sql.Identifier(schema, f"kept_{table}"), sql.Identifier(schema, table)))
        (data_dir / "kept-heads.log").write_bytes(built.heads_file.read_bytes())
        yield built
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def store(built: Built) -> Iterator[Built]:
    """The built store, put back as it was after the test (and checked to verify again)."""
    yield built
    schema = built.settings.db_schema
    with psycopg.connect(built.settings.database_url or "") as conn:
        for table in TABLES:
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(schema, table)))
            conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
                sql.Identifier(schema, table), sql.Identifier(schema, f"kept_{table}")))
    built.heads_file.write_bytes((built.settings.data_dir / "kept-heads.log").read_bytes())
    assert built.audit.verify().ok


def broken(verdict: links.Verdict) -> tuple[int | None, str]:
    assert not verdict.ok and verdict.first_broken is not None
    return verdict.first_broken.notification_id, verdict.first_broken.kind


def middle(store: Built) -> int:
    """A course's event in the middle of the log (after the gap)."""
    return next(nid for nid in store.ids()[len(store.ids()) // 2:] if store.course_of(nid) in store.courses)


def test_an_untouched_store_verifies_and_so_does_each_course(store: Built) -> None:
    assert Courses.name + "_events" == EVENTS_TABLE
    ids = store.ids()
    verdict = store.audit.verify()
    assert verdict.ok and verdict.events == len(ids)
    assert verdict.head is not None and verdict.head.position == ids[-1]
    assert (verdict.unchained, verdict.unsigned) == (0, 0)
    for course in store.courses:
        own = store.sql("SELECT count(*) FROM {events} WHERE originator_id = %s", course)[0][0]
        mine = store.audit.verify_course(course)
        assert mine.ok and mine.status == "ok" and mine.events == own > 3 and mine.head == verdict.head


def test_an_edited_event_is_caught_and_named(store: Built) -> None:
    nid = middle(store)
    store.sql("UPDATE {events} SET state = set_byte(state, 20, (get_byte(state, 20) + 1) %% 256) "
              "WHERE notification_id = %s", nid)
    assert broken(store.audit.verify()) == (nid, links.EDITED)
    assert broken(store.audit.verify_course(store.course_of(nid))) == (nid, links.EDITED)
    others = [c for c in store.courses if c != store.course_of(nid)]
    assert all(store.audit.verify_course(c).ok for c in others)  # their own events are intact


def test_a_deleted_event_is_caught_and_named(store: Built) -> None:
    nid = middle(store)
    course = store.course_of(nid)
    store.sql("DELETE FROM {events} WHERE notification_id = %s", nid)
    assert broken(store.audit.verify()) == (nid, links.MISSING)
    assert broken(store.audit.verify_course(course)) == (nid, links.MISSING)


def test_an_event_deleted_with_its_chain_row_breaks_the_next_link(store: Built) -> None:
    nid = middle(store)
    following = store.ids()[store.ids().index(nid) + 1]
    store.sql("DELETE FROM {events} WHERE notification_id = %s", nid)
    store.sql("DELETE FROM {chain} WHERE notification_id = %s", nid)
    assert broken(store.audit.verify()) == (following, links.CHAIN_ALTERED)


def test_the_newest_events_deleted_after_a_signed_head_are_caught(store: Built) -> None:
    ids = store.ids()
    store.sql("DELETE FROM {events} WHERE notification_id >= %s", ids[-3])
    assert broken(store.audit.verify()) == (ids[-3], links.MISSING)
    # their chain rows and the table's heads gone too: the head log still has the head that covered them
    store.sql("DELETE FROM {chain} WHERE notification_id >= %s", ids[-3])
    store.sql("DELETE FROM {heads}")
    covering = min(h.position for h in HeadLog(store.heads_file).read(store.settings.db_schema)[0]
                   if h.position >= ids[-3])
    verdict = store.audit.verify()
    assert broken(verdict) == (covering, links.MISSING)
    assert f"the last event before it is {ids[-4]}" in str(verdict.first_broken)


def test_a_forged_event_inserted_between_chained_ones_is_caught(store: Built) -> None:
    course = store.courses[0]
    version, topic, state = store.sql("SELECT originator_version, topic, state FROM {events} WHERE originator_id "
                                      "= %s ORDER BY originator_version DESC LIMIT 1", course)[0]
    store.sql("INSERT INTO {events} (notification_id, originator_id, originator_version, topic, state) "
              "VALUES (%s, %s, %s, %s, %s)", store.gap, course, version + 1, topic, state)
    assert broken(store.audit.verify()) == (store.gap, links.INSERTED)
    assert broken(store.audit.verify_course(course)) == (store.gap, links.INSERTED)


def test_two_events_swapped_are_caught_as_out_of_order(store: Built) -> None:
    ids = store.ids()
    a, b = ids[3], ids[-2]
    store.sql("UPDATE {events} SET notification_id = -1 WHERE notification_id = %s", a)
    store.sql("UPDATE {events} SET notification_id = %s WHERE notification_id = %s", a, b)
    store.sql("UPDATE {events} SET notification_id = %s WHERE notification_id = -1", b)
    verdict = store.audit.verify()
    assert broken(verdict) == (a, links.OUT_OF_ORDER)
    assert f"chained at event {b}" in str(verdict.first_broken)
    assert broken(store.audit.verify_course(store.course_of(b))) == (a, links.OUT_OF_ORDER)


def test_an_edit_with_its_chain_rewritten_to_match_is_caught_by_the_signed_head(store: Built) -> None:
    nid = middle(store)
    store.sql("UPDATE {events} SET state = set_byte(state, 20, (get_byte(state, 20) + 1) %% 256) "
              "WHERE notification_id = %s", nid)
    # whoever can write the database recomputes the chain from there on and drops the heads it holds
    before = store.sql("SELECT link FROM {chain} WHERE notification_id < %s ORDER BY notification_id DESC LIMIT 1",
                       nid)[0][0]
    events = [links.StoredRow(r[0], r[1], r[2], r[3], bytes(r[4])) for r in store.sql(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM {events} "
        "WHERE notification_id >= %s ORDER BY notification_id", nid)]
    for row in links.extend(bytes(before), events):
        store.sql("UPDATE {chain} SET digest = %s, link = %s WHERE notification_id = %s", row.digest, row.link,
                  row.notification_id)
    store.sql("DELETE FROM {heads}")
    first_head = min(h.position for h in HeadLog(store.heads_file).read(store.settings.db_schema)[0]
                     if h.position >= nid)
    assert broken(store.audit.verify()) == (first_head, links.HEAD_MISMATCH)
    assert broken(store.audit.verify_course(store.course_of(nid)))[1] == links.HEAD_MISMATCH


def test_a_head_not_signed_with_the_audit_key_is_caught(store: Built) -> None:
    last, link = store.sql("SELECT notification_id, link FROM {chain} ORDER BY notification_id DESC LIMIT 1")[0]
    forged = links.Head.sign(b"not the key" * 3, store.settings.db_schema, last + 10, bytes(link), T0)
    store.sql("INSERT INTO {heads} (position, link, signed_at, mac) VALUES (%s, %s, %s, %s)",
              forged.position, forged.link, forged.signed_at, forged.mac)
    assert broken(store.audit.verify()) == (last + 10, links.HEAD_FORGED)


def test_kact_audit_verify_says_ok_or_names_the_first_broken_link(store: Built, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in {"KACT_DATABASE_URL": store.settings.database_url, "KACT_DB_SCHEMA": store.settings.db_schema,
                        "KACT_DATA_DIR": str(store.settings.data_dir)}.items():
        monkeypatch.setenv(name, value or "")
    monkeypatch.delenv("KACT_AUDIT_KEY", raising=False)  # read from the data dir's audit.key
    ids = store.ids()
    assert main(["audit", "verify"]) == 0
    out = capsys.readouterr()
    assert f"ok: {len(ids)} events, chain head {ids[-1]} (" in out.out and "verifying" in out.err

    nid = middle(store)
    store.sql("UPDATE {events} SET topic = topic || '.forged' WHERE notification_id = %s", nid)
    assert main(["audit", "verify", "--data-dir", str(store.settings.data_dir)]) == 1
    assert f"broken: first broken link: event {nid}: edited: " in capsys.readouterr().out

    monkeypatch.setenv("KACT_DATA_DIR", str(store.settings.data_dir / "elsewhere"))
    assert main(["audit", "verify"]) == 2  # no audit key: the heads cannot be checked
    assert "no audit key" in capsys.readouterr().err


# The keeper alone, on the application: it resumes where it stopped and signs its head when it stops.

def test_the_keeper_chains_every_event_resumes_after_a_stop_and_signs_its_head_on_stopping(
    database_url: str, schema: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=database_url, db_schema=schema, cipher_key=base64.b64encode(b"c" * 32).decode())
    courses, view = migrate(settings, event_store_env(settings))
    view.datastore.close()
    key, heads = secrets.token_bytes(32), HeadLog(tmp_path / HEADS_FILE)
    tables = ChainTables(schema, courses.recorder.events_table_name)
    audit = ChainAudit(database_url, schema, key, heads)

    def opened(count: int) -> None:
        for _ in range(count):
            courses.open_course(lambda: Course.open(course_id=uuid4(), home_clinic_id="home", model="together",
                                                    protocol=Protocol(), partners={"a": "x", "b": "y"},
                                                    by="clinic:home"))

    def stored() -> int:
        with psycopg.connect(database_url) as conn:
            return conn.execute(sql.SQL("SELECT max(notification_id) FROM {}").format(
                sql.Identifier(schema, EVENTS_TABLE))).fetchone()[0]

    try:
        opened(5)
        keeper = ChainKeeper(database_url, tables, HeadSigner(key, heads), sign_seconds=3600).start()
        opened(5)  # while it runs; no head is due for an hour: stopping signs one
        keeper.stop()
        assert keeper.error is None and keeper.position == stored()
        signed, _ = heads.read(schema)
        assert [h.position for h in signed] == [stored()]
        assert audit.verify().ok and audit.verify().head == signed[0]

        opened(3)  # while none runs: the next one starts from the chain's last row
        keeper = ChainKeeper(database_url, tables, HeadSigner(key, heads), sign_seconds=3600).start()
        keeper.stop()
        verdict = audit.verify()
        assert verdict.ok and verdict.events == 13 and verdict.head is not None
        assert verdict.head.position == stored() and len(heads.read(schema)[0]) == 2
    finally:
        courses.close()


def test_the_operator_sees_the_chain_on_the_audit_page_and_in_the_export(
        database_url: str, nats_url: str, tmp_path: Path) -> None:
    schema = f"t_chain_page_{secrets.token_hex(5)}"
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    settings = dataclasses.replace(server_settings(database_url, nats_url, schema), data_dir=tmp_path, audit_key=key,
                                   audit_sign_seconds=0.2)
    try:
        with serve(settings) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
            home = Tenant.onboard(client, server.operator_token)
            course = home.open_course()["id"]
            home.screen_both(course)
            operator = {"Authorization": f"Bearer {server.operator_token}"}

            def export() -> list[dict[str, object]]:
                text = client.get(f"/v1/audit/courses/{course}/export", params={"format": "ndjson"},
                                  headers=operator).text
                return [json.loads(line) for line in text.splitlines()]

            # every event of the export carries its link, once the chain job has reached it
            lines = eventually(export, lambda found: bool(found) and all(line["chain"] for line in found))
            assert all(re.fullmatch(r"[0-9a-f]{64}", str(line["chain"])) for line in lines) and len(lines) == 3
            # the operator's page verifies the course's chain
            with httpx.Client(base_url=server.base_url, timeout=30) as browser:
                sign_in(browser, server.operator_token)
                page = eventually(lambda: browser.get(f"/pages/audit/courses/{course}").text,
                                  lambda text: "up to the head signed at" in text)
                assert "Not verified." not in page and "3 events link to the chain" in page
                # a link of the course's chain changed in the database: the page names the broken link
                with psycopg.connect(database_url, autocommit=True) as conn:
                    (nid,) = conn.execute(sql.SQL("UPDATE {} SET link = sha256(link) WHERE originator_id = %s AND "
                                                  "originator_version = 2 RETURNING notification_id").format(
                        sql.Identifier(schema, "event_chain")), (UUID(course),)).fetchone()
                page = browser.get(f"/pages/audit/courses/{course}").text
                assert "up to the head signed at" not in page and f"event {nid}:" in page
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
