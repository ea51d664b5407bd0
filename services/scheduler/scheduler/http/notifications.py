"""Webhooks of a clinic or a prescriber, and the log of their deliveries (read and redriven here, sent by the
notifier). A clinic manages its own webhooks and its prescribers'; a prescriber its own; the operator all."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from litestar import delete, get, post
from litestar.params import Parameter
from notifier import webhooks

from scheduler.directory import Principal
from scheduler.http.access import managed_owner
from scheduler.http.deps import Services
from scheduler.http.examples import body
from scheduler.http.problems import ProblemError
from scheduler.http.schemas import (
    Delivery,
    DeliveryAttempt,
    DeliveryDetail,
    DeliveryPage,
    Webhook,
    WebhookCreate,
)

PAGE_SIZE = 50
TAGS = ["notifications"]
DeliveryStatus = Literal["pending", "delivered", "failed"]


def _not_found(what: str) -> ProblemError:
    return ProblemError(404, "not-found", "Not found", f"no {what}")


def _invalid(detail: str) -> ProblemError:
    return ProblemError(422, "invalid-input", "The request is not valid", detail)


def _checked(data: WebhookCreate, allow_private: bool) -> tuple[str, list[str]]:
    try:
        parts = urlsplit(data.url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise _invalid(f"url: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in data.url):
        raise _invalid("url must be an absolute http or https URL")
    if not allow_private and (parts.hostname == "localhost" or webhooks.not_public(parts.hostname)):
        # A host name is checked again at every delivery, against what it resolves to then.
        raise _invalid(f"url: {parts.hostname} is not a public address (KACT_WEBHOOK_ALLOW_PRIVATE=1 allows it)")
    return data.url, list(dict.fromkeys(data.event_types))


def _webhook(row: dict[str, Any], secret: str | None = None) -> Webhook:
    return Webhook(id=row["id"], owner=f"{row['owner_kind']}:{row['owner_id']}", url=row["url"],
                   event_types=list(row["event_types"]), created_at=row["created_at"], secret=secret)


async def _create(services: Services, principal: Principal, kind: str, owner_id: UUID, data: WebhookCreate) -> Webhook:
    owner = await managed_owner(services, principal, kind, owner_id)
    url, event_types = _checked(data, services.webhook_allow_private)
    assert services.webhook_secrets is not None, "the app's lifespan provides the secret box"
    row, secret = await webhooks.subscribe(services.directory.pool, services.webhook_secrets, owner_kind=kind,
                                           owner_id=owner, url=url, event_types=event_types)
    return _webhook(row, secret)


async def _list(services: Services, principal: Principal, kind: str, owner_id: UUID) -> list[Webhook]:
    owner = await managed_owner(services, principal, kind, owner_id)
    return [_webhook(row) for row in await webhooks.subscriptions(services.directory.pool, kind, owner)]


async def _disable(services: Services, principal: Principal, kind: str, owner_id: UUID, webhook_id: UUID) -> None:
    owner = await managed_owner(services, principal, kind, owner_id)
    if not await webhooks.disable(services.directory.pool, kind, owner, webhook_id):
        raise _not_found(f"webhook {webhook_id}")


CREATED = "The new webhook with its signing secret (`whsec_...`), shown only in this response"


@post("/v1/clinics/{clinic_id:uuid}/webhooks", operation_id="createClinicWebhook", tags=TAGS, status_code=201,
      summary="Register a webhook for the clinic (operator or the clinic)", description=CREATED)
async def create_clinic_webhook(
    clinic_id: UUID, data: body(WebhookCreate), principal: Principal, services: Services
) -> Webhook:
    return await _create(services, principal, "clinic", clinic_id, data)


@get("/v1/clinics/{clinic_id:uuid}/webhooks", operation_id="listClinicWebhooks", tags=TAGS,
     summary="The clinic's active webhooks (without secrets)")
async def list_clinic_webhooks(clinic_id: UUID, principal: Principal, services: Services) -> list[Webhook]:
    return await _list(services, principal, "clinic", clinic_id)


@delete("/v1/clinics/{clinic_id:uuid}/webhooks/{webhook_id:uuid}", operation_id="disableClinicWebhook", tags=TAGS,
        summary="Disable a webhook of the clinic; its pending deliveries fail")
async def disable_clinic_webhook(clinic_id: UUID, webhook_id: UUID, principal: Principal, services: Services) -> None:
    await _disable(services, principal, "clinic", clinic_id, webhook_id)


@post("/v1/prescribers/{prescriber_id:uuid}/webhooks", operation_id="createPrescriberWebhook", tags=TAGS,
      status_code=201, summary="Register a webhook for a prescriber (operator, the prescriber or its clinic)",
      description=CREATED)
async def create_prescriber_webhook(
    prescriber_id: UUID, data: body(WebhookCreate), principal: Principal, services: Services
) -> Webhook:
    return await _create(services, principal, "prescriber", prescriber_id, data)


@get("/v1/prescribers/{prescriber_id:uuid}/webhooks", operation_id="listPrescriberWebhooks", tags=TAGS,
     summary="The prescriber's active webhooks (without secrets)")
async def list_prescriber_webhooks(prescriber_id: UUID, principal: Principal, services: Services) -> list[Webhook]:
    return await _list(services, principal, "prescriber", prescriber_id)


@delete("/v1/prescribers/{prescriber_id:uuid}/webhooks/{webhook_id:uuid}", operation_id="disablePrescriberWebhook",
        tags=TAGS, summary="Disable a webhook of the prescriber; its pending deliveries fail")
async def disable_prescriber_webhook(
    prescriber_id: UUID, webhook_id: UUID, principal: Principal, services: Services
) -> None:
    await _disable(services, principal, "prescriber", prescriber_id, webhook_id)


# Deliveries ------------------------------------------------------------------------------------------------


def _scope(principal: Principal) -> tuple[str, str | None]:
    """The condition on deliveries `d` for what the caller sees, with its parameter ($1): the operator all, a
    clinic those to itself and to its prescribers, a prescriber its own."""
    if principal.kind == "operator":
        return "$1::text IS NULL", None
    if principal.kind == "clinic":
        return ("(d.recipient_kind = 'clinic' AND d.recipient_id = $1::text OR d.recipient_kind = 'prescriber' "
                "AND d.recipient_id IN (SELECT id::text FROM clinicians WHERE clinic_id = ($1::text)::uuid "
                "AND role = 'prescriber'))"), principal.clinic_id
    return "d.recipient_kind = 'prescriber' AND d.recipient_id = $1::text", principal.id


DELIVERY_COLUMNS = ("d.id, d.subscription_id, d.recipient_kind, d.recipient_id, d.event_id, d.event_type, "
                    "d.feed_position, d.status, d.attempts, d.next_attempt_at, d.last_error, d.created_at, "
                    "d.delivered_at")


def _delivery(row: Any, cls: type[Delivery] = Delivery, **extra: Any) -> Any:
    return cls(
        id=row["id"], webhook_id=row["subscription_id"], recipient=f"{row['recipient_kind']}:{row['recipient_id']}",
        event_id=row["event_id"], event_type=row["event_type"], feed_position=row["feed_position"],
        status=row["status"], attempts=row["attempts"], next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"], created_at=row["created_at"], delivered_at=row["delivered_at"], **extra,
    )


async def _visible_delivery(services: Services, principal: Principal, delivery_id: UUID) -> Any:
    condition, param = _scope(principal)
    row = await services.directory.pool.fetchrow(
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE {condition} AND d.id = $2", param, delivery_id
    )
    if row is None:
        raise _not_found(f"delivery {delivery_id}")
    return row


@get("/v1/deliveries", operation_id="listDeliveries", tags=TAGS,
     summary="Webhook deliveries to the caller (a clinic: also to its prescribers; the operator: all), newest first")
async def list_deliveries(
    services: Services, principal: Principal, status: DeliveryStatus | None = None,
    page: Annotated[int, Parameter(ge=1, le=100000)] = 1,
) -> DeliveryPage:
    condition, param = _scope(principal)
    rows = await services.directory.pool.fetch(
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE {condition} AND ($2::text IS NULL OR d.status = $2) "
        "ORDER BY d.created_at DESC, d.feed_position DESC, d.id LIMIT $3 OFFSET $4",
        param, status, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE,
    )
    return DeliveryPage(items=[_delivery(r) for r in rows[:PAGE_SIZE]], page=page,
                        next_page=page + 1 if len(rows) > PAGE_SIZE else None)


@get("/v1/deliveries/{delivery_id:uuid}", operation_id="getDelivery", tags=TAGS,
     summary="One webhook delivery with every attempt made")
async def get_delivery(delivery_id: UUID, services: Services, principal: Principal) -> DeliveryDetail:
    row = await _visible_delivery(services, principal, delivery_id)
    attempts = await services.directory.pool.fetch(
        "SELECT attempt, at, status_code, error, duration_ms FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id",
        delivery_id,
    )
    return _delivery(row, DeliveryDetail, attempt_log=[DeliveryAttempt(**dict(a)) for a in attempts])


@post("/v1/deliveries/{delivery_id:uuid}/redrive", operation_id="redriveDelivery", tags=TAGS, status_code=202,
      summary="Send a failed delivery again, with a fresh count of attempts (operator or the owning clinic)")
async def redrive_delivery(delivery_id: UUID, services: Services, principal: Principal) -> Delivery:
    row = await _visible_delivery(services, principal, delivery_id)
    if principal.kind not in ("operator", "clinic"):
        raise ProblemError(403, "forbidden", "Forbidden", "the operator or the clinic redrives deliveries")
    if row["status"] != "failed":
        raise ProblemError(409, "delivery-not-failed", "Only a failed delivery is redriven",
                           f"delivery {delivery_id} is {row['status']}")
    if not await webhooks.redrive(services.directory.pool, delivery_id):
        raise ProblemError(409, "webhook-disabled", "The webhook is disabled",
                           f"delivery {delivery_id} belongs to a disabled webhook (or was redriven meanwhile)")
    return _delivery(await _visible_delivery(services, principal, delivery_id))


ROUTES = [
    create_clinic_webhook, list_clinic_webhooks, disable_clinic_webhook, create_prescriber_webhook,
    list_prescriber_webhooks, disable_prescriber_webhook, list_deliveries, get_delivery, redrive_delivery,
]
