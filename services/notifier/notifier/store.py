"""The notifier's transactional work: inbox, course facts, feeds, timers, dead letters (asyncpg).

`process_batch` does everything the messages cause in one transaction with their inbox rows, so a message
is processed exactly once however often it is delivered; the caller acks only after the commit."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from kact_contracts import events as ev
from kact_contracts.envelope import CloudEvent, envelope
from kact_contracts.feed import Recipient

from notifier import flows, webhooks

NOTICE_ID_NAMESPACE = uuid.UUID("0b6f5d0e-2a71-5c43-8f0e-9d3c1a6b7e22")


def facts_from_row(home_clinic_id: str, facts: dict[str, Any]) -> flows.CourseFacts:
    return flows.CourseFacts(
        home_clinic_id=home_clinic_id,
        sessions={sid: flows.SessionFacts(**s) for sid, s in facts.get("sessions", {}).items()},
        approvals={aid: (a[0], a[1]) for aid, a in facts.get("approvals", {}).items()},
    )


def facts_to_json(facts: flows.CourseFacts) -> str:
    # msgspec encodes the (flat, frozen) dataclasses field by field, without asdict's deep copies
    return msgspec.json.encode({"sessions": facts.sessions, "approvals": facts.approvals}).decode()


@dataclass
class Received:
    """One message as it arrived: its envelope, its typed event and its stream sequence."""

    message: CloudEvent
    event: ev.PublicEvent
    stream_seq: int

    @classmethod
    def of(cls, message: CloudEvent, stream_seq: int) -> Received:
        return cls(message, message.decode_data(), stream_seq)


async def process(conn: asyncpg.Connection, received: Received, policy: flows.Policy) -> bool:
    """Apply one course event; False if it was processed before (a redelivery or a re-publication)."""
    return (await process_batch(conn, [received], policy))[0]


async def process_batch(conn: asyncpg.Connection, batch: list[Received], policy: flows.Policy) -> list[bool]:
    """Apply several course events in order, in ONE transaction (all or none): for each, whether it was new.

    The whole batch costs one statement each for its inbox rows, its courses' facts (read and written once
    per course) and its feed items, plus one per timer planned or cancelled, and one commit."""
    facts: dict[uuid.UUID, flows.CourseFacts] = {}
    feed: list[tuple[Any, ...]] = []
    async with conn.transaction():
        fresh = await _inbox(conn, batch)
        new = [received for received, is_new in zip(batch, fresh, strict=True) if is_new]
        await _load_facts(conn, new, facts)
        for received in new:
            await _apply(conn, received, facts, policy, feed)
        if feed:  # in order: each recipient's feed positions follow the events
            await conn.executemany(DELIVER_SQL, feed)
        if facts:
            await conn.executemany(
                "INSERT INTO notifier_courses (course_id, home_clinic_id, facts) VALUES ($1, $2, $3::jsonb) "
                "ON CONFLICT (course_id) DO UPDATE SET facts = EXCLUDED.facts",
                [(course_id, f.home_clinic_id, facts_to_json(f)) for course_id, f in facts.items()],
            )
    return fresh


async def _inbox(conn: asyncpg.Connection, batch: list[Received]) -> list[bool]:
    """Record the batch's events in the inbox, in order; for each, whether it was new (not processed before,
    nor earlier in the batch)."""
    inserted = {row["event_id"] for row in await conn.fetch(
        "INSERT INTO notifier_inbox (event_id, stream_seq, type, course_id, course_version) "
        "SELECT e.id, e.seq, e.type, e.course, e.version "
        "FROM unnest($1::text[], $2::bigint[], $3::text[], $4::uuid[], $5::int[]) WITH ORDINALITY "
        "AS e(id, seq, type, course, version, n) ORDER BY e.n "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        [r.message.id for r in batch], [r.stream_seq for r in batch], [r.message.type for r in batch],
        [uuid.UUID(r.message.courseid) for r in batch], [r.message.streamversion for r in batch],
    )}
    fresh = []
    for received in batch:
        fresh.append(received.message.id in inserted)
        inserted.discard(received.message.id)  # the same event twice in a batch: only the first is new
    return fresh


async def _load_facts(
    conn: asyncpg.Connection, batch: list[Received], facts: dict[uuid.UUID, flows.CourseFacts]
) -> None:
    """What the notifier knows of the batch's courses, their rows locked until commit; a course not seen
    before starts with its home clinic."""
    ids = list(dict.fromkeys(uuid.UUID(r.message.courseid) for r in batch))
    rows = await conn.fetch(
        "SELECT course_id, home_clinic_id, facts FROM notifier_courses WHERE course_id = ANY($1::uuid[]) "
        "ORDER BY course_id FOR UPDATE", ids,
    )
    for row in rows:
        facts[row["course_id"]] = facts_from_row(row["home_clinic_id"], json.loads(row["facts"]))
    for received in batch:
        facts.setdefault(uuid.UUID(received.message.courseid), flows.CourseFacts(received.message.clinicid))


async def _apply(
    conn: asyncpg.Connection, received: Received, facts: dict[uuid.UUID, flows.CourseFacts], policy: flows.Policy,
    feed: list[tuple[Any, ...]],
) -> None:
    """Decide what a new event causes: its feed items join `feed`; its timers are planned or cancelled now."""
    message = received.message
    course_id = uuid.UUID(message.courseid)
    course = facts[course_id]
    outcome = flows.decide(received.event, message.courseid, course, policy)
    flows.remember(received.event, course)
    feed.extend(_feed_row(sent.recipient, sent.notice, message) for sent in outcome.messages)
    for timer in outcome.timers:
        notice = envelope(
            timer.notice, course_id=message.courseid, version=message.streamversion, time=timer.due_at,
            clinic_id=message.clinicid, position=message.position,
            id=str(uuid.uuid5(NOTICE_ID_NAMESPACE, timer.key)),
        )
        await conn.execute(
            "INSERT INTO notifier_timers (key, due_at, course_id, recipient, reason, message, expires_at) "
            "VALUES ($1, greatest($2, now() + $7::interval), $3, $4, $5, $6::jsonb, $8) "
            "ON CONFLICT (key) DO NOTHING",
            timer.key, timer.due_at, course_id, timer.recipient.ref, timer.reason,
            msgspec.json.encode(notice).decode(), policy.settle, timer.expires_at,
        )
    for key in outcome.cancel:
        if key.endswith(":"):
            await conn.execute(
                "UPDATE notifier_timers SET state = 'cancelled' WHERE state = 'pending' AND starts_with(key, $1)",
                key,
            )
        else:
            await conn.execute(
                "UPDATE notifier_timers SET state = 'cancelled' WHERE state = 'pending' AND key = $1", key
            )


# The recipient's next feed position (no gaps: the head row is locked until commit), the feed item with that
# position inside, and its webhooks' deliveries, in one round trip.
DELIVER_SQL = (
    "WITH head AS ("
    " INSERT INTO feed_heads (recipient, position) VALUES ($5, 1)"
    " ON CONFLICT (recipient) DO UPDATE SET position = feed_heads.position + 1 RETURNING position"
    "), item AS ("
    " INSERT INTO feed (recipient, position, event_id, event_type, notice, item)"
    " SELECT $5, position, $3, $4, $6, jsonb_build_object('position', position) || $7::jsonb FROM head"
    " RETURNING position AS feed_position, item AS payload"
    "), " + webhooks.queue_deliveries_sql("item") + ", (SELECT feed_position FROM item) AS position"
)


def _feed_row(recipient: Recipient, notice: str, message: CloudEvent) -> tuple[Any, ...]:
    """`DELIVER_SQL`'s parameters: the feed item is a FeedItem but for its position, which the statement adds."""
    item = msgspec.json.encode({"recipient": recipient.ref, "notice": notice, "event": message}).decode()
    return recipient.kind, recipient.id, message.id, message.type, recipient.ref, notice, item


async def deliver(conn: asyncpg.Connection, recipient: Recipient, notice: str, message: CloudEvent) -> int:
    """Append the message to the recipient's feed (next position, no gaps) and queue its webhooks."""
    row = await conn.fetchrow(DELIVER_SQL, *_feed_row(recipient, notice, message))
    return int(row["position"])


async def fire_due_timers(pool: asyncpg.Pool, now: datetime, limit: int = 100) -> int:
    """Send every pending timer due by `now`, each once (row locks let several notifiers share the work);
    one whose moment has passed (a window warning after the window closed) expires unsent."""
    fired = 0
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE notifier_timers SET state = 'expired' WHERE state = 'pending' AND expires_at <= $1", now
        )
        rows = await conn.fetch(
            "SELECT key, recipient, reason, message FROM notifier_timers WHERE state = 'pending' AND due_at <= $1 "
            "ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            now, limit,
        )
        for row in rows:
            message = msgspec.json.decode(row["message"].encode(), type=CloudEvent)
            await deliver(conn, Recipient.parse(row["recipient"]), row["reason"], message)
            await conn.execute(
                "UPDATE notifier_timers SET state = 'fired', fired_at = $2 WHERE key = $1", row["key"], now
            )
            fired += 1
    return fired


async def next_timer_due(pool: asyncpg.Pool) -> datetime | None:
    return await pool.fetchval("SELECT min(due_at) FROM notifier_timers WHERE state = 'pending'")


async def dead_letter(
    pool: asyncpg.Pool, *, subject: str, payload: bytes, error: str, deliveries: int, stream_seq: int | None,
    event_id: str | None,
) -> int:
    return await pool.fetchval(
        "INSERT INTO dead_letters (stream_seq, subject, event_id, payload, error, deliveries) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        stream_seq, subject, event_id, payload.decode("utf-8", "replace"), error, deliveries,
    )


async def redrive_dead_letters(pool: asyncpg.Pool, policy: flows.Policy, limit: int = 50) -> int:
    """Process again the dead letters an operator asked to redrive; a failure stays a dead letter, with
    the new error. Each is taken once (row locks), and its inbox row still prevents double processing."""
    done = 0
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT id, stream_seq, payload FROM dead_letters WHERE redrive_requested_at IS NOT NULL "
            "AND redriven_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            limit,
        )
        for row in rows:
            try:
                message = msgspec.json.decode(row["payload"].encode(), type=CloudEvent)
                async with conn.transaction():
                    await process(conn, Received.of(message, row["stream_seq"] or 0), policy)
            except Exception as exc:  # noqa: BLE001 - recorded for the operator, who may fix and redrive again
                await conn.execute(
                    "UPDATE dead_letters SET error = $2, redrive_requested_at = NULL WHERE id = $1",
                    row["id"], f"redrive failed: {type(exc).__name__}: {exc}",
                )
                continue
            await conn.execute("UPDATE dead_letters SET redriven_at = now() WHERE id = $1", row["id"])
            done += 1
    return done


async def beat(pool: asyncpg.Pool, stream: str, consumer: str) -> None:
    """The consuming notifier is alive and fetching from `stream`."""
    await pool.execute(
        "INSERT INTO notifier_heartbeats (stream, consumer, beat_at) VALUES ($1, $2, now()) "
        "ON CONFLICT (stream) DO UPDATE SET consumer = EXCLUDED.consumer, beat_at = EXCLUDED.beat_at",
        stream, consumer,
    )
