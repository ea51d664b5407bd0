"""The gap-free feed (a partner that was down catches up by itself) and the dead letters (poison messages
kept, visible and redrivable)."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import msgspec
import nats
import psycopg
import pytest
from api_support import Tenant, bearer, eventually, ok
from bus_support import delete_stream
from conftest import NotifierThread, notifier_settings, server_settings
from kact_contracts import events as public
from kact_contracts.bus import StreamSettings
from kact_contracts.envelope import encode, envelope
from kact_contracts.jetstream import ensure_stream
from notifier import schema as notifier_schema
from notifier import store
from notifier.flows import Policy
from psycopg import sql

pytestmark = pytest.mark.integration


def feed(client: httpx.Client, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    return ok(client.get("/v1/feed", params=params, headers=headers), 200)


def test_the_feed_replays_everything_addressed_to_a_clinic_from_any_position_and_nothing_else(
    live_server, notifier, client: httpx.Client
) -> None:
    home = Tenant.onboard(client, live_server.operator_token)
    other = Tenant.onboard(client, live_server.operator_token, "Other practice")
    cid = home.open_course()["id"]
    home.assess_and_prepare(cid)  # 13 public events, all addressed to the home clinic
    other_cid = other.open_course()["id"]
    whole = eventually(lambda: feed(client, home.headers, after=0, limit=500), lambda page: len(page["items"]) >= 13)
    items = whole["items"]
    assert [i["position"] for i in items] == list(range(1, 14)) and whole["has_more"] is False
    assert {i["event"]["courseid"] for i in items} == {cid}
    assert [i["event"]["streamversion"] for i in items] == sorted(i["event"]["streamversion"] for i in items)
    assert all(i["recipient"] == f"clinic:{home.clinic['id']}" for i in items)
    # page through from any position: the same items, no gaps, no repeats
    paged, after = [], 0
    while True:
        page = feed(client, home.headers, after=after, limit=5)
        paged += page["items"]
        after = page["next_after"]
        if not page["has_more"]:
            break
    assert paged == items
    assert feed(client, home.headers, after=10)["items"] == items[10:]
    assert feed(client, home.headers, after=13)["items"] == [] and feed(client, home.headers, after=13)["next_after"] == 13
    # tenants: the other clinic sees only its own course, and cannot name another feed
    theirs = eventually(lambda: feed(client, other.headers), lambda page: page["items"])
    assert {i["event"]["courseid"] for i in theirs["items"]} == {other_cid}
    assert client.get("/v1/feed", params={"recipient": f"clinic:{home.clinic['id']}"},
                      headers=other.headers).status_code == 404
    # the operator reads any feed by name, and must name one
    assert feed(client, bearer(live_server.operator_token), recipient=f"clinic:{home.clinic['id']}")["items"] == items
    assert client.get("/v1/feed", headers=bearer(live_server.operator_token)).status_code == 422
    assert client.get("/v1/feed", params={"after": -1}, headers=home.headers).status_code == 422


async def publish(settings: Any, subject: str, payload: bytes) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().publish(subject, payload, stream=settings.nats_stream)
    finally:
        await nc.close()


def test_a_poison_message_becomes_a_visible_dead_letter_and_a_redrive_processes_a_repaired_one(
    live_server, notifier, client: httpx.Client
) -> None:
    settings, operator = live_server.settings, bearer(live_server.operator_token)
    course_id = uuid.uuid4()
    subject = f"{settings.nats_prefix}.course.{course_id}.opened.v1"
    asyncio.run(publish(settings, subject, b'{"specversion": "1.0", "id": "broken"'))
    letters = eventually(lambda: ok(client.get("/v1/dead-letters", headers=operator), 200),
                         lambda rows: any(r["subject"] == subject for r in rows))
    (letter,) = [r for r in letters if r["subject"] == subject]
    assert letter["error"].startswith("undecodable") and letter["redriven_at"] is None
    home = Tenant.onboard(client, live_server.operator_token)
    assert client.get("/v1/dead-letters", headers=home.headers).status_code == 404  # the operator's only
    # An operator repairs a dead letter's cause (here: as if a bug had refused a valid event) and redrives it.
    good = envelope(public.CourseOpened(home_clinic_id=home.clinic["id"], model="together", first_dosed="a"),
                    course_id=course_id, version=1, time=datetime.now(UTC), clinic_id=home.clinic["id"], position=0)
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.db_schema)))
        (repaired_id,) = conn.execute(
            "INSERT INTO dead_letters (stream_seq, subject, event_id, payload, error, deliveries) "
            "VALUES (NULL, %s, %s, %s, 'RuntimeError: a bug, since fixed', 6) RETURNING id",
            (subject, good.id, encode(good).decode())).fetchone()
    redriven = client.post(f"/v1/dead-letters/{repaired_id}/redrive", headers=operator)
    assert redriven.status_code == 202 and redriven.json()["redrive_requested_at"]
    items = eventually(lambda: feed(client, home.headers)["items"], lambda got: got, timeout=15)
    assert [i["event"]["id"] for i in items] == [good.id]
    done = eventually(lambda: ok(client.get("/v1/dead-letters", params={"pending": "false"}, headers=operator), 200),
                      lambda rows: any(r["id"] == repaired_id and r["redriven_at"] for r in rows))
    assert any(r["id"] == repaired_id and r["redriven_at"] for r in done)
    again = client.post(f"/v1/dead-letters/{repaired_id}/redrive", headers=operator)
    assert again.status_code == 409
    # The poison message, redriven, stays a dead letter with the new error: nothing is lost or half-done.
    ok(client.post(f"/v1/dead-letters/{letter['id']}/redrive", headers=operator), 202)
    still = eventually(lambda: ok(client.get("/v1/dead-letters", headers=operator), 200),
                       lambda rows: any(r["id"] == letter["id"] and r["error"].startswith("redrive failed")
                                        for r in rows))
    assert any(r["id"] == letter["id"] and r["redriven_at"] is None for r in still)
    assert json.loads(redriven.text)["subject"] == subject
    assert client.post("/v1/dead-letters/999999999/redrive", headers=operator).status_code == 404


def test_a_message_that_fails_in_a_batch_delays_only_itself(
    database_url: str, nats_url: str, schema: str, live_server
) -> None:
    """The notifier processes a fetched batch in one transaction; when one message of it fails, the others
    are processed one by one and acked, and the failing one alone waits for its redelivery."""
    settings = replace(server_settings(database_url, nats_url, schema), cipher_key=live_server.settings.cipher_key)
    clinic = str(uuid.uuid4())
    good = [envelope(public.CourseOpened(home_clinic_id=clinic, model="together", first_dosed="a"),
                     course_id=uuid.uuid4(), version=1, time=datetime.now(UTC), clinic_id=clinic, position=n)
            for n in (1, 2)]
    # Valid on the wire, but its course id is no UUID: processing fails, every time.
    poison = msgspec.structs.replace(good[0], id=str(uuid.uuid4()), courseid="not-a-course")

    async def publish_all() -> None:
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            stream = StreamSettings(name=settings.nats_stream, prefix=settings.nats_prefix)
            await ensure_stream(js, stream)
            for message in (good[0], poison, good[1]):  # all waiting before the notifier's first fetch
                await js.publish(f"{stream.prefix}.course.{message.courseid}.opened.v1", encode(message),
                                 stream=stream.name)
        finally:
            await nc.close()

    asyncio.run(publish_all())
    running = NotifierThread(notifier_settings(settings)).start()
    try:
        eventually(lambda: running.notifier.processed, lambda n: n == 2, timeout=30)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            inbox = {row[0] for row in conn.execute("SELECT event_id FROM notifier_inbox")}
            feed_items = conn.execute("SELECT position, event_id FROM feed ORDER BY position").fetchall()
        assert inbox == {good[0].id, good[1].id}
        assert feed_items == [(1, good[0].id), (2, good[1].id)]  # in stream order, the poison skipped
        assert running.notifier.dead_letters == 0  # not yet: it is redelivered after a back-off first
    finally:
        running.stop()
        asyncio.run(delete_stream(nats_url, settings.nats_stream))


def test_an_event_twice_in_a_batch_or_again_in_a_later_one_is_processed_once(database_url: str, schema: str) -> None:
    clinic, course_id = str(uuid.uuid4()), uuid.uuid4()
    opened = envelope(public.CourseOpened(home_clinic_id=clinic, model="together", first_dosed="a"),
                      course_id=course_id, version=1, time=datetime.now(UTC), clinic_id=clinic, position=1)
    other = msgspec.structs.replace(opened, id=str(uuid.uuid4()), streamversion=2, position=2)

    async def run() -> tuple[list[bool], list[bool], list[tuple[str, int, str]]]:
        conn = await asyncpg.connect(database_url)
        try:
            await notifier_schema.migrate(conn, schema)
            await conn.execute(f'SET search_path TO "{schema}"')
            policy = Policy()
            first = await store.process_batch(conn, [store.Received.of(opened, 1), store.Received.of(opened, 1)],
                                              policy)
            second = await store.process_batch(conn, [store.Received.of(opened, 1), store.Received.of(other, 2)],
                                               policy)
            rows = await conn.fetch("SELECT recipient, position, event_id FROM feed ORDER BY position")
            return first, second, [tuple(row) for row in rows]
        finally:
            await conn.close()

    first, second, feed_rows = asyncio.run(run())
    assert first == [True, False]
    assert second == [False, True]
    assert feed_rows == [(f"clinic:{clinic}", 1, opened.id), (f"clinic:{clinic}", 2, other.id)]
