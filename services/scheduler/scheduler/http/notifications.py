"""Webhooks of a clinic or a prescriber, and the log of their deliveries (sent by the notifier; registered, read
and redriven here through `notifier.admin`). A clinic manages its own webhooks and its prescribers'; a prescriber
its own; the operator all."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from kact_contracts.feed import Recipient
from litestar import delete, get, post
from litestar.params import Parameter
from notifier import admin, webhooks

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


def _webhook(webhook: admin.Webhook, secret: str | None = None) -> Webhook:
    return Webhook(id=webhook.id, owner=webhook.owner.ref, url=webhook.url, event_types=webhook.event_types,
                   created_at=webhook.created_at, secret=secret)


async def _owner(services: Services, principal: Principal, kind: str, owner_id: UUID) -> Recipient:
    return Recipient(kind, await managed_owner(services, principal, kind, owner_id))


async def _create(services: Services, principal: Principal, kind: str, owner_id: UUID, data: WebhookCreate) -> Webhook:
    owner = await _owner(services, principal, kind, owner_id)
    url, event_types = _checked(data, services.webhook_allow_private)
    return _webhook(*await services.notifier.create_webhook(owner, url, event_types))


async def _list(services: Services, principal: Principal, kind: str, owner_id: UUID) -> list[Webhook]:
    owner = await _owner(services, principal, kind, owner_id)
    return [_webhook(webhook) for webhook in await services.notifier.webhooks(owner)]


async def _disable(services: Services, principal: Principal, kind: str, owner_id: UUID, webhook_id: UUID) -> None:
    owner = await _owner(services, principal, kind, owner_id)
    if not await services.notifier.disable_webhook(owner, webhook_id):
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


async def _visible_to(services: Services, principal: Principal) -> list[Recipient] | None:
    """Whose deliveries the caller sees: the operator everyone's (None), a clinic its own and its prescribers',
    a prescriber its own."""
    if principal.kind == "operator":
        return None
    if principal.kind == "clinic":
        assert principal.clinic_id is not None, "a clinic's principal names its clinic"
        prescribers = await services.directory.prescriber_ids(UUID(principal.clinic_id))
        return [Recipient("clinic", principal.clinic_id), *(Recipient("prescriber", p) for p in prescribers)]
    return [Recipient("prescriber", principal.id)]


def _delivery(delivery: admin.Delivery, cls: type[Delivery] = Delivery, **extra: Any) -> Any:
    return cls(**{**vars(delivery), "recipient": delivery.recipient.ref}, **extra)


async def _visible_delivery(services: Services, principal: Principal, delivery_id: UUID) -> admin.Delivery:
    delivery = await services.notifier.delivery(await _visible_to(services, principal), delivery_id)
    if delivery is None:
        raise _not_found(f"delivery {delivery_id}")
    return delivery


@get("/v1/deliveries", operation_id="listDeliveries", tags=TAGS,
     summary="Webhook deliveries to the caller (a clinic: also to its prescribers; the operator: all), newest first")
async def list_deliveries(
    services: Services, principal: Principal, status: DeliveryStatus | None = None,
    page: Annotated[int, Parameter(ge=1, le=100000)] = 1,
) -> DeliveryPage:
    found = await services.notifier.deliveries(await _visible_to(services, principal), status, PAGE_SIZE,
                                               (page - 1) * PAGE_SIZE)
    return DeliveryPage(items=[_delivery(d) for d in found.items], page=page,
                        next_page=page + 1 if found.has_more else None)


@get("/v1/deliveries/{delivery_id:uuid}", operation_id="getDelivery", tags=TAGS,
     summary="One webhook delivery with every attempt made")
async def get_delivery(delivery_id: UUID, services: Services, principal: Principal) -> DeliveryDetail:
    delivery = await _visible_delivery(services, principal, delivery_id)
    attempts = await services.notifier.delivery_attempts(delivery_id)
    return _delivery(delivery, DeliveryDetail, attempt_log=[DeliveryAttempt(**vars(a)) for a in attempts])


@post("/v1/deliveries/{delivery_id:uuid}/redrive", operation_id="redriveDelivery", tags=TAGS, status_code=202,
      summary="Send a failed delivery again, with a fresh count of attempts (operator or the owning clinic)")
async def redrive_delivery(delivery_id: UUID, services: Services, principal: Principal) -> Delivery:
    delivery = await _visible_delivery(services, principal, delivery_id)
    if principal.kind not in ("operator", "clinic"):
        raise ProblemError(403, "forbidden", "Forbidden", "the operator or the clinic redrives deliveries")
    if delivery.status != "failed":
        raise ProblemError(409, "delivery-not-failed", "Only a failed delivery is redriven",
                           f"delivery {delivery_id} is {delivery.status}")
    if not await services.notifier.redrive_delivery(delivery_id):
        raise ProblemError(409, "webhook-disabled", "The webhook is disabled",
                           f"delivery {delivery_id} belongs to a disabled webhook (or was redriven meanwhile)")
    return _delivery(await _visible_delivery(services, principal, delivery_id))


ROUTES = [
    create_clinic_webhook, list_clinic_webhooks, disable_clinic_webhook, create_prescriber_webhook,
    list_prescriber_webhooks, disable_prescriber_webhook, list_deliveries, get_delivery, redrive_delivery,
]
