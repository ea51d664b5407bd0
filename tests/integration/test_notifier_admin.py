"""The notifier's admin module, the scheduler's one door to the notifier's tables: each method against rows the
notifier wrote itself (its own schema, its own store and webhook code), on a real PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import psycopg
import pytest
from eventsourcing.cryptography import AESCipher
from kact_contracts import events as public
from kact_contracts.envelope import CloudEvent, encode, envelope
from kact_contracts.feed import Recipient
from notifier import schema, store
from notifier.admin import NotifierAdmin
from notifier.flows import Policy
from notifier.webhooks import SecretBox
from psycopg import sql

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

CLINIC, PRESCRIBER, OTHER = (Recipient("clinic", str(uuid4())), Recipient("prescriber", str(uuid4())),
                             Recipient("clinic", str(uuid4())))
OPENED = public.CourseOpened.type_name()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    name = f"adm_{secrets.token_hex(4)}"
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4, server_settings={"search_path": name})
    async with pool.acquire() as conn:
        await schema.migrate(conn, name)
    yield pool
    await pool.close()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def cipher_key() -> str:
    return AESCipher.create_key(32)


@pytest.fixture
def admin(pool: asyncpg.Pool, cipher_key: str) -> NotifierAdmin:
    return NotifierAdmin(pool, cipher_key)


def course_opened(clinic_id: str = CLINIC.id) -> CloudEvent:
    """A fresh course's first event (each call another course, so another event id)."""
    return envelope(public.CourseOpened(home_clinic_id=clinic_id, model="together", first_dosed="a"),
                    course_id=uuid4(), version=1, time=datetime.now(UTC), clinic_id=clinic_id, position=1)


async def deliver(pool: asyncpg.Pool, recipient: Recipient, count: int = 1) -> list[CloudEvent]:
    """Append `count` events to the recipient's feed, queueing their webhooks, as the notifier does."""
    messages = [course_opened() for _ in range(count)]
    async with pool.acquire() as conn:
        for message in messages:
            await store.deliver(conn, recipient, "update", message)
    return messages


async def fail(pool: asyncpg.Pool, delivery_id: UUID, *codes: int) -> None:
    """Record failed attempts and give the delivery up, as the delivery worker does."""
    async with pool.acquire() as conn, conn.transaction():
        for code in codes:
            await conn.execute("UPDATE deliveries SET attempts = attempts + 1 WHERE id = $1", delivery_id)
            await conn.execute(
                "INSERT INTO delivery_attempts (delivery_id, attempt, at, status_code, error, duration_ms) "
                "SELECT id, attempts, now(), $2, $3, 7 FROM deliveries WHERE id = $1",
                delivery_id, code, f"HTTP {code}")
        await conn.execute("UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, last_error = 'HTTP 500' "
                           "WHERE id = $1", delivery_id)


async def test_a_feed_is_read_in_order_after_a_position_page_by_page_and_only_its_recipients(
    pool: asyncpg.Pool, admin: NotifierAdmin
) -> None:
    mine = await deliver(pool, CLINIC, 5)
    await deliver(pool, OTHER, 2)

    first = await admin.feed(CLINIC, after=0, limit=2)
    assert [i["position"] for i in first.items] == [1, 2] and first.has_more
    assert [i["event"]["id"] for i in first.items] == [m.id for m in mine[:2]]
    assert all(i["recipient"] == CLINIC.ref and i["notice"] == "update" for i in first.items)
    rest = await admin.feed(CLINIC, after=2, limit=10)
    assert [i["position"] for i in rest.items] == [3, 4, 5] and not rest.has_more
    exactly = await admin.feed(CLINIC, after=2, limit=3)
    assert len(exactly.items) == 3 and not exactly.has_more  # a full last page is not followed by an empty one
    assert (await admin.feed(CLINIC, after=5, limit=10)).items == []
    other = await admin.feed(OTHER, after=0, limit=10)
    assert [i["position"] for i in other.items] == [1, 2] and {i["recipient"] for i in other.items} == {OTHER.ref}
    assert (await admin.feed(PRESCRIBER, after=0, limit=10)).items == []


async def test_webhooks_are_created_with_a_sealed_secret_listed_per_owner_and_disabled_by_their_owner_only(
    pool: asyncpg.Pool, admin: NotifierAdmin, cipher_key: str
) -> None:
    first, secret = await admin.create_webhook(CLINIC, "https://a.example/hooks", [OPENED])
    second, _ = await admin.create_webhook(CLINIC, "https://b.example/hooks", [])
    rx, _ = await admin.create_webhook(PRESCRIBER, "https://rx.example/hooks", [])
    assert first.owner == CLINIC and first.event_types == [OPENED] and secret.startswith("whsec_")
    sealed = await pool.fetchval("SELECT secret FROM webhook_subscriptions WHERE id = $1", first.id)
    assert secret.encode() not in sealed and SecretBox(cipher_key).open(sealed, first.id) == secret

    assert await admin.webhooks(CLINIC) == [first, second]  # oldest first
    assert await admin.webhooks(PRESCRIBER) == [rx]
    assert await admin.webhooks(OTHER) == []

    await deliver(pool, CLINIC)
    assert not await admin.disable_webhook(OTHER, first.id)  # not its webhook
    assert await admin.disable_webhook(CLINIC, first.id)
    assert not await admin.disable_webhook(CLINIC, first.id)  # already disabled
    assert await admin.webhooks(CLINIC) == [second]
    # The disabled webhook's pending delivery failed; the other webhook's is still on its way.
    statuses = {d.webhook_id: (d.status, d.last_error) for d in (await admin.deliveries(None, None, 10, 0)).items}
    assert statuses == {first.id: ("failed", "the webhook was disabled"), second.id: ("pending", None)}


async def test_deliveries_are_scoped_to_their_recipients_newest_first_and_paged(
    pool: asyncpg.Pool, admin: NotifierAdmin
) -> None:
    for owner in (CLINIC, PRESCRIBER, OTHER):
        await admin.create_webhook(owner, f"https://{owner.kind}.example/hooks", [])
    clinics = await deliver(pool, CLINIC, 3)
    rx = await deliver(pool, PRESCRIBER, 1)
    others = await deliver(pool, OTHER, 2)

    everyone = await admin.deliveries(None, None, 10, 0)
    assert [d.event_id for d in everyone.items] == [m.id for m in reversed(clinics + rx + others)]
    assert not everyone.has_more
    clinic_and_rx = await admin.deliveries([CLINIC, PRESCRIBER], None, 10, 0)
    assert [d.event_id for d in clinic_and_rx.items] == [m.id for m in reversed(clinics + rx)]
    assert {d.recipient for d in clinic_and_rx.items} == {CLINIC, PRESCRIBER}
    only_rx = await admin.deliveries([PRESCRIBER], None, 10, 0)
    assert [(d.recipient, d.event_id, d.feed_position) for d in only_rx.items] == [(PRESCRIBER, rx[0].id, 1)]
    assert (await admin.deliveries([], None, 10, 0)).items == []

    first = await admin.deliveries([CLINIC], None, 2, 0)
    second = await admin.deliveries([CLINIC], None, 2, 2)
    assert [d.feed_position for d in first.items] == [3, 2] and first.has_more
    assert [d.feed_position for d in second.items] == [1] and not second.has_more

    failed = first.items[0]
    await fail(pool, failed.id, 500)
    assert [d.id for d in (await admin.deliveries([CLINIC], "failed", 10, 0)).items] == [failed.id]
    assert len((await admin.deliveries([CLINIC], "pending", 10, 0)).items) == 2
    assert await admin.delivery([CLINIC, PRESCRIBER], failed.id) == await admin.delivery(None, failed.id)
    assert (await admin.delivery(None, failed.id)).status == "failed"
    assert await admin.delivery([OTHER], failed.id) is None  # another recipient's delivery does not exist for it
    assert await admin.delivery(None, uuid4()) is None


async def test_a_failed_delivery_is_redriven_with_a_fresh_count_and_its_attempts_stay_in_order(
    pool: asyncpg.Pool, admin: NotifierAdmin
) -> None:
    webhook, _ = await admin.create_webhook(CLINIC, "https://a.example/hooks", [])
    await deliver(pool, CLINIC)
    (delivery,) = (await admin.deliveries([CLINIC], None, 10, 0)).items
    assert await admin.delivery_attempts(delivery.id) == []
    assert not await admin.redrive_delivery(delivery.id)  # pending: nothing to redrive

    await fail(pool, delivery.id, 500, 503)
    assert await admin.redrive_delivery(delivery.id)
    redriven = await admin.delivery(None, delivery.id)
    assert redriven is not None and (redriven.status, redriven.attempts) == ("pending", 0)
    assert redriven.next_attempt_at is not None
    assert not await admin.redrive_delivery(delivery.id)  # redriven already: pending again

    await fail(pool, delivery.id, 502)
    attempts = await admin.delivery_attempts(delivery.id)
    assert [(a.attempt, a.status_code, a.error) for a in attempts] == [
        (1, 500, "HTTP 500"), (2, 503, "HTTP 503"), (1, 502, "HTTP 502")]
    assert all(a.duration_ms == 7 for a in attempts)
    await admin.disable_webhook(CLINIC, webhook.id)
    assert not await admin.redrive_delivery(delivery.id)  # its webhook is disabled
    assert not await admin.redrive_delivery(uuid4())


async def test_dead_letters_are_listed_newest_first_and_a_redrive_is_requested_until_the_notifier_did_it(
    pool: asyncpg.Pool, admin: NotifierAdmin
) -> None:
    good = course_opened()
    ids = [await store.dead_letter(pool, subject=f"t.course.{n}", payload=payload, error="undecodable", deliveries=6,
                                   stream_seq=n, event_id=None)
           for n, payload in enumerate([b"{broken", encode(good), b"{also broken"], start=1)]
    listed = await admin.dead_letters(pending=True, limit=10, offset=0)
    assert [d.id for d in listed] == ids[::-1]
    assert [d.id for d in await admin.dead_letters(pending=True, limit=2, offset=1)] == ids[1::-1]
    assert listed[1].payload == encode(good).decode() and listed[1].redrive_requested_at is None

    requested = await admin.request_dead_letter_redrive(ids[1])
    assert requested is not None and requested.redrive_requested_at is not None and requested.redriven_at is None
    assert await store.redrive_dead_letters(pool, Policy()) == 1  # the notifier takes the request
    assert (await admin.feed(CLINIC, after=0, limit=10)).items[0]["event"]["id"] == good.id

    done = await admin.request_dead_letter_redrive(ids[1])
    assert done is not None and done.redriven_at is not None  # processed: nothing more is requested
    assert done.redrive_requested_at == requested.redrive_requested_at
    assert [d.id for d in await admin.dead_letters(pending=True, limit=10, offset=0)] == [ids[2], ids[0]]
    assert [d.id for d in await admin.dead_letters(pending=False, limit=10, offset=0)] == ids[::-1]
    assert await admin.request_dead_letter_redrive(10**12) is None


async def test_the_heartbeat_tells_how_long_the_notifier_of_a_stream_has_been_silent(
    pool: asyncpg.Pool, admin: NotifierAdmin
) -> None:
    assert await admin.seconds_since_heartbeat("KACT") is None  # no notifier ever consumed it
    await store.beat(pool, "KACT", "notifier-1")
    await pool.execute("UPDATE notifier_heartbeats SET beat_at = now() - interval '42 seconds' WHERE stream = 'KACT'")
    assert 42 <= await admin.seconds_since_heartbeat("KACT") < 60
    await store.beat(pool, "KACT", "notifier-2")
    assert 0 <= await admin.seconds_since_heartbeat("KACT") < 5
    assert await admin.seconds_since_heartbeat("OTHER") is None
