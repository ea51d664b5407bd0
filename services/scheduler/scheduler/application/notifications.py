"""Webhooks of clinics and prescribers and the log of their deliveries, kept by the notifier (through
`notifier.admin`): whose the caller manages or sees, and which URLs may receive."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from kact_contracts.feed import Recipient
from notifier import webhooks
from notifier.admin import DeadLetter, Delivery, DeliveryAttempt, NotifierAdmin, Page, Webhook

from scheduler.api_keys import Principal
from scheduler.application.access import managed_owner
from scheduler.application.audit import reading
from scheduler.application.directory import ManagedDirectory
from scheduler.application.errors import (
    AlreadyRedrivenError,
    DeliveryNotFailedError,
    ForbiddenError,
    NotFoundError,
    WebhookDisabledError,
)
from scheduler.domain.errors import InvalidCommandError


class Notifications:
    """A clinic manages its own webhooks and its prescribers', a prescriber its own, the operator all; each sees
    the deliveries to the webhooks it manages."""

    def __init__(self, directory: ManagedDirectory, notifier: NotifierAdmin, allow_private: bool,
                 relay_dead_letters: Callable[[int, int], Awaitable[list[Any]]] | None = None) -> None:
        self.directory, self.notifier = directory, notifier
        self.allow_private = allow_private  # KACT_WEBHOOK_ALLOW_PRIVATE: loopback or private webhook URLs
        self._relay_dead_letters = relay_dead_letters  # (limit, offset) -> the relay's, newest first

    async def create_webhook(self, principal: Principal, kind: str, owner_id: UUID, url: str,
                             event_types: list[str]) -> tuple[Webhook, str]:
        """The new webhook and its signing secret (shown only now)."""
        owner = await self._owner(principal, kind, owner_id)
        self._check(url)
        return await self.notifier.create_webhook(owner, url, list(dict.fromkeys(event_types)))

    async def webhooks(self, principal: Principal, kind: str, owner_id: UUID) -> list[Webhook]:
        return await self.notifier.webhooks(await self._owner(principal, kind, owner_id))

    async def disable_webhook(self, principal: Principal, kind: str, owner_id: UUID, webhook_id: UUID) -> None:
        if not await self.notifier.disable_webhook(await self._owner(principal, kind, owner_id), webhook_id):
            raise NotFoundError("webhook", webhook_id)

    async def feed(self, principal: Principal, recipient: str | None, after: int,
                   limit: int) -> tuple[Recipient, Page[dict[str, Any]]]:
        """The caller's feed after a position (the operator names whose feed); reading it is logged, a row per
        course its items name."""
        async with reading(self.directory, principal, "read_feed") as read:
            if principal.kind == "operator":
                if not recipient:
                    raise InvalidCommandError(["the operator names a feed: ?recipient=clinic:<id> or prescriber:<id>"])
                feed = Recipient.parse(recipient)
            else:
                feed = Recipient(principal.kind,
                                 principal.id if principal.kind == "prescriber" else str(principal.clinic_id))
                if recipient not in (None, feed.ref):
                    raise NotFoundError("feed", recipient)
            page = await self.notifier.feed(feed, after, limit)
            read.show(_course_ids(item.get("event") for item in page.items))
            return feed, page

    async def dead_letters(self, principal: Principal, pending: bool, limit: int, offset: int) -> list[DeadLetter]:
        """Course events the notifier could not process (the operator's); a read of each course they name."""
        async with reading(self.directory, principal, "list_dead_letters") as read:
            _operator(principal)
            found = await self.notifier.dead_letters(pending, limit, offset)
            read.show(_course_ids(_json(d.payload) for d in found))
            return found

    async def redrive_dead_letter(self, principal: Principal, dead_letter_id: int) -> DeadLetter:
        """Ask the notifier to process a dead letter again (once)."""
        _operator(principal)
        dead_letter = await self.notifier.request_dead_letter_redrive(dead_letter_id)
        if dead_letter is None:
            raise NotFoundError("dead letter", dead_letter_id)
        if dead_letter.redriven_at is not None:
            raise AlreadyRedrivenError(dead_letter_id)
        return dead_letter

    async def relay_dead_letters(self, principal: Principal, limit: int, offset: int) -> list[Any]:
        """Stored events the relay could not publish (the operator's)."""
        async with reading(self.directory, principal, "list_relay_dead_letters") as read:
            _operator(principal)
            assert self._relay_dead_letters is not None, "composed without the relay's dead letters"
            found = await self._relay_dead_letters(limit, offset)
            read.show(row["course_id"] for row in found)
            return found

    async def deliveries(self, principal: Principal, status: str | None, limit: int,
                         offset: int) -> Page[Delivery]:
        """The deliveries the caller sees, newest first."""
        return await self.notifier.deliveries(await self._visible_to(principal), status, limit, offset)

    async def delivery(self, principal: Principal, delivery_id: UUID) -> tuple[Delivery, list[DeliveryAttempt]]:
        """A delivery the caller sees, with every attempt made."""
        return await self._visible(principal, delivery_id), await self.notifier.delivery_attempts(delivery_id)

    async def redrive(self, principal: Principal, delivery_id: UUID) -> Delivery:
        """Send a failed delivery again, with a fresh count of attempts (the operator or the owning clinic)."""
        delivery = await self._visible(principal, delivery_id)
        if principal.kind not in ("operator", "clinic"):
            raise ForbiddenError("the operator or the clinic redrives deliveries")
        if delivery.status != "failed":
            raise DeliveryNotFailedError(delivery_id, delivery.status)
        if not await self.notifier.redrive_delivery(delivery_id):
            raise WebhookDisabledError(delivery_id)
        return await self._visible(principal, delivery_id)

    async def _owner(self, principal: Principal, kind: str, owner_id: UUID) -> Recipient:
        return Recipient(kind, await managed_owner(self.directory, principal, kind, owner_id))

    async def _visible_to(self, principal: Principal) -> list[Recipient] | None:
        """Whose deliveries the caller sees: the operator everyone's (None), a clinic its own and its
        prescribers', a prescriber its own."""
        if principal.kind == "operator":
            return None
        if principal.kind == "clinic":
            assert principal.clinic_id is not None, "a clinic's principal names its clinic"
            prescribers = await self.directory.prescriber_ids(UUID(principal.clinic_id))
            return [Recipient("clinic", principal.clinic_id), *(Recipient("prescriber", p) for p in prescribers)]
        return [Recipient("prescriber", principal.id)]

    async def _visible(self, principal: Principal, delivery_id: UUID) -> Delivery:
        delivery = await self.notifier.delivery(await self._visible_to(principal), delivery_id)
        if delivery is None:
            raise NotFoundError("delivery", delivery_id)
        return delivery

    def _check(self, url: str) -> None:
        """An absolute http(s) URL of a public host, unless private ones are allowed."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        except ValueError as exc:
            raise InvalidCommandError([f"url: {exc}"]) from None
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
            raise InvalidCommandError(["url must be an absolute http or https URL"])
        if not self.allow_private and (parts.hostname == "localhost" or webhooks.not_public(parts.hostname)):
            # A host name is checked again at every delivery, against what it resolves to then.
            raise InvalidCommandError(
                [f"url: {parts.hostname} is not a public address (KACT_WEBHOOK_ALLOW_PRIVATE=1 allows it)"])


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _course_ids(events: Iterable[Any]) -> list[UUID]:
    """The courses some CloudEvents name (`courseid`; a notice or an unreadable message names none)."""
    found = []
    for event in events:
        course = event.get("courseid") if isinstance(event, dict) else None
        try:
            found.append(UUID(course))
        except (TypeError, ValueError):
            continue
    return found


def _operator(principal: Principal) -> None:
    """Dead letters are the operator's: to anyone else they do not exist."""
    if principal.kind != "operator":
        raise NotFoundError("dead letters for", principal.ref)
