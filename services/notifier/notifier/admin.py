"""The one door through which the scheduler reaches the notifier's tables: feeds, webhooks, deliveries, dead
letters and the notifier's heartbeat. The notifier owns those tables; whatever the scheduler reads or asks of
them is here, in plain values, so their SQL changes with the notifier alone."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID, uuid4

import asyncpg
from kact_contracts.feed import Recipient

from notifier.schema import HEARTBEAT_TABLE
from notifier.webhooks import CHANNEL_SQL, SecretBox, new_secret

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """Some rows in order, and whether more follow them."""

    items: list[T]
    has_more: bool


@dataclass(frozen=True)
class Webhook:
    """A registered webhook (its signing secret is shown once, when it is created, and never read back)."""

    id: UUID
    owner: Recipient
    url: str
    event_types: list[str]  # empty: every event type
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    """One feed item on its way to one webhook."""

    id: UUID  # also the webhook-id header the receiver saw
    webhook_id: UUID
    recipient: Recipient
    event_id: str
    event_type: str
    feed_position: int
    status: str  # pending | delivered | failed
    attempts: int  # since it was queued or last redriven
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class DeliveryAttempt:
    attempt: int  # the delivery's count of attempts when it was made (restarting at a redrive)
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True)
class DeadLetter:
    """A course event the notifier could not process."""

    id: int
    subject: str
    event_id: str | None
    error: str
    deliveries: int
    created_at: datetime
    redrive_requested_at: datetime | None
    redriven_at: datetime | None
    payload: str


WEBHOOK_COLUMNS = "id, owner_kind, owner_id, url, event_types, created_at"
DELIVERY_COLUMNS = ("d.id, d.subscription_id, d.recipient_kind, d.recipient_id, d.event_id, d.event_type, "
                    "d.feed_position, d.status, d.attempts, d.next_attempt_at, d.last_error, d.created_at, "
                    "d.delivered_at")
DEAD_LETTER_COLUMNS = "id, subject, event_id, error, deliveries, created_at, redrive_requested_at, redriven_at, payload"
# The deliveries a scope sees ($1 kinds, $2 ids of its recipients; both NULL: every delivery). Two statements,
# so that a recipient's listing gets a plan of its own, through the deliveries_recipient index.
EVERY_DELIVERY = "$1::text[] IS NULL AND $2::text[] IS NULL"
DELIVERIES_TO = "(d.recipient_kind, d.recipient_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"


class NotifierAdmin:
    """What the scheduler reads from and asks of the notifier, over the notifier's tables."""

    def __init__(self, pool: asyncpg.Pool, cipher_key: str) -> None:
        self.pool = pool
        self.secrets = SecretBox(cipher_key)  # seals the signing secrets of new webhooks

    # Feeds -------------------------------------------------------------------------------------------------

    async def feed(self, recipient: Recipient, after: int, limit: int) -> Page[dict[str, Any]]:
        """The recipient's feed items after position `after`, in order (each a FeedItem as JSON)."""
        rows = await self.pool.fetch(
            "SELECT item FROM feed WHERE recipient = $1 AND position > $2 ORDER BY position LIMIT $3",
            recipient.ref, after, limit + 1,
        )
        return Page([json.loads(row["item"]) for row in rows[:limit]], has_more=len(rows) > limit)

    # Webhooks ----------------------------------------------------------------------------------------------

    async def create_webhook(self, owner: Recipient, url: str, event_types: list[str]) -> tuple[Webhook, str]:
        """Register a webhook; returns it and its signing secret (which is shown this once)."""
        webhook_id, secret = uuid4(), new_secret()
        row = await self.pool.fetchrow(
            "INSERT INTO webhook_subscriptions (id, owner_kind, owner_id, url, event_types, secret) "
            f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {WEBHOOK_COLUMNS}",
            webhook_id, owner.kind, owner.id, url, event_types, self.secrets.seal(secret, webhook_id),
        )
        return _webhook(row), secret

    async def webhooks(self, owner: Recipient) -> list[Webhook]:
        """The owner's active webhooks, oldest first."""
        rows = await self.pool.fetch(
            f"SELECT {WEBHOOK_COLUMNS} FROM webhook_subscriptions "
            "WHERE owner_kind = $1 AND owner_id = $2 AND disabled_at IS NULL ORDER BY created_at, id",
            owner.kind, owner.id,
        )
        return [_webhook(row) for row in rows]

    async def disable_webhook(self, owner: Recipient, webhook_id: UUID) -> bool:
        """Stop a webhook; its pending deliveries fail (they stay visible). False if the owner has no such
        active webhook."""
        async with self.pool.acquire() as conn, conn.transaction():
            disabled = await conn.fetchval(
                "UPDATE webhook_subscriptions SET disabled_at = now() "
                "WHERE id = $1 AND owner_kind = $2 AND owner_id = $3 AND disabled_at IS NULL RETURNING true",
                webhook_id, owner.kind, owner.id,
            )
            if disabled:
                await conn.execute(
                    "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, last_error = 'the webhook was "
                    "disabled' WHERE subscription_id = $1 AND status = 'pending'",
                    webhook_id,
                )
        return bool(disabled)

    # Deliveries --------------------------------------------------------------------------------------------

    async def deliveries(
        self, recipients: Sequence[Recipient] | None, status: str | None, limit: int, offset: int
    ) -> Page[Delivery]:
        """Deliveries to `recipients` (None: to anyone), newest first, optionally only those in `status`."""
        condition, scope = _scope(recipients)
        rows = await self.pool.fetch(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE {condition} AND ($3::text IS NULL OR d.status = $3) "
            "ORDER BY d.created_at DESC, d.feed_position DESC, d.id LIMIT $4 OFFSET $5",
            *scope, status, limit + 1, offset,
        )
        return Page([_delivery(row) for row in rows[:limit]], has_more=len(rows) > limit)

    async def delivery(self, recipients: Sequence[Recipient] | None, delivery_id: UUID) -> Delivery | None:
        """The delivery, if it went to one of `recipients` (None: to anyone)."""
        condition, scope = _scope(recipients)
        row = await self.pool.fetchrow(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE {condition} AND d.id = $3", *scope, delivery_id
        )
        return None if row is None else _delivery(row)

    async def delivery_attempts(self, delivery_id: UUID) -> list[DeliveryAttempt]:
        """Every attempt made to send the delivery, oldest first."""
        rows = await self.pool.fetch(
            "SELECT attempt, at, status_code, error, duration_ms FROM delivery_attempts WHERE delivery_id = $1 "
            "ORDER BY id",
            delivery_id,
        )
        return [DeliveryAttempt(**row) for row in rows]

    async def redrive_delivery(self, delivery_id: UUID) -> bool:
        """Send a failed delivery again, from a fresh count of attempts; False unless it had failed and its
        webhook is still active."""
        async with self.pool.acquire() as conn, conn.transaction():
            redriven = await conn.fetchval(
                "UPDATE deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now() "
                "FROM webhook_subscriptions s WHERE d.id = $1 AND d.status = 'failed' AND s.id = d.subscription_id "
                "AND s.disabled_at IS NULL RETURNING true",
                delivery_id,
            )
            if redriven:  # the delivery workers wake when this commits
                await conn.execute(f"SELECT pg_notify({CHANNEL_SQL}, '')")
        return bool(redriven)

    # Dead letters and the heartbeat ------------------------------------------------------------------------

    async def dead_letters(self, pending: bool, limit: int, offset: int) -> list[DeadLetter]:
        """Newest first; `pending`: only those not redriven yet."""
        rows = await self.pool.fetch(
            f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE NOT $1 OR redriven_at IS NULL "
            "ORDER BY id DESC LIMIT $2 OFFSET $3",
            pending, limit, offset,
        )
        return [DeadLetter(**row) for row in rows]

    async def request_dead_letter_redrive(self, dead_letter_id: int) -> DeadLetter | None:
        """Ask the notifier to process a dead letter again (it does so within a second or so). Returns the dead
        letter with the request's time; one already redriven unchanged, nothing requested (its `redriven_at`
        says so); None if there is no such dead letter."""
        row = await self.pool.fetchrow(
            "UPDATE dead_letters SET redrive_requested_at = now() WHERE id = $1 AND redriven_at IS NULL "
            f"RETURNING {DEAD_LETTER_COLUMNS}",
            dead_letter_id,
        )
        if row is None:
            row = await self.pool.fetchrow(
                f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id = $1 AND redriven_at IS NOT NULL",
                dead_letter_id,
            )
        return None if row is None else DeadLetter(**row)

    async def seconds_since_heartbeat(self, stream: str) -> float | None:
        """Seconds since the notifier consuming `stream` last reported (None: none ever did)."""
        return await self.pool.fetchval(  # type: ignore[no-any-return]
            f"SELECT extract(epoch FROM now() - beat_at)::float8 FROM {HEARTBEAT_TABLE} WHERE stream = $1", stream
        )


def _scope(recipients: Sequence[Recipient] | None) -> tuple[str, tuple[list[str] | None, list[str] | None]]:
    """The condition on deliveries `d` and its parameters ($1, $2)."""
    if recipients is None:
        return EVERY_DELIVERY, (None, None)
    return DELIVERIES_TO, ([r.kind for r in recipients], [r.id for r in recipients])


def _webhook(row: asyncpg.Record) -> Webhook:
    return Webhook(id=row["id"], owner=Recipient(row["owner_kind"], row["owner_id"]), url=row["url"],
                   event_types=list(row["event_types"]), created_at=row["created_at"])


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        id=row["id"], webhook_id=row["subscription_id"],
        recipient=Recipient(row["recipient_kind"], row["recipient_id"]), event_id=row["event_id"],
        event_type=row["event_type"], feed_position=row["feed_position"], status=row["status"],
        attempts=row["attempts"], next_attempt_at=row["next_attempt_at"], last_error=row["last_error"],
        created_at=row["created_at"], delivered_at=row["delivered_at"],
    )
