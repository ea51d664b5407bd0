"""Webhooks of a clinic or a prescriber, and the log of their deliveries (sent by the notifier; registered, read
and redriven here through `notifier.admin`). A clinic manages its own webhooks and its prescribers'; a prescriber
its own; the operator all."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import delete, get, post
from litestar.params import Parameter
from notifier import admin

from scheduler.directory import Principal
from scheduler.http.deps import Services
from scheduler.http.examples import body
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


def _webhook(webhook: admin.Webhook, secret: str | None = None) -> Webhook:
    return Webhook(id=webhook.id, owner=webhook.owner.ref, url=webhook.url, event_types=webhook.event_types,
                   created_at=webhook.created_at, secret=secret)


CREATED = "The new webhook with its signing secret (`whsec_...`), shown only in this response"


@post("/v1/clinics/{clinic_id:uuid}/webhooks", operation_id="createClinicWebhook", tags=TAGS, status_code=201,
      summary="Register a webhook for the clinic (operator or the clinic)", description=CREATED)
async def create_clinic_webhook(
    clinic_id: UUID, data: body(WebhookCreate), principal: Principal, services: Services
) -> Webhook:
    return _webhook(*await services.notifications.create_webhook(principal, "clinic", clinic_id, data.url,
                                                                  list(data.event_types)))


@get("/v1/clinics/{clinic_id:uuid}/webhooks", operation_id="listClinicWebhooks", tags=TAGS,
     summary="The clinic's active webhooks (without secrets)")
async def list_clinic_webhooks(clinic_id: UUID, principal: Principal, services: Services) -> list[Webhook]:
    return [_webhook(w) for w in await services.notifications.webhooks(principal, "clinic", clinic_id)]


@delete("/v1/clinics/{clinic_id:uuid}/webhooks/{webhook_id:uuid}", operation_id="disableClinicWebhook", tags=TAGS,
        summary="Disable a webhook of the clinic; its pending deliveries fail")
async def disable_clinic_webhook(clinic_id: UUID, webhook_id: UUID, principal: Principal, services: Services) -> None:
    await services.notifications.disable_webhook(principal, "clinic", clinic_id, webhook_id)


@post("/v1/prescribers/{prescriber_id:uuid}/webhooks", operation_id="createPrescriberWebhook", tags=TAGS,
      status_code=201, summary="Register a webhook for a prescriber (operator, the prescriber or its clinic)",
      description=CREATED)
async def create_prescriber_webhook(
    prescriber_id: UUID, data: body(WebhookCreate), principal: Principal, services: Services
) -> Webhook:
    return _webhook(*await services.notifications.create_webhook(principal, "prescriber", prescriber_id, data.url,
                                                                  list(data.event_types)))


@get("/v1/prescribers/{prescriber_id:uuid}/webhooks", operation_id="listPrescriberWebhooks", tags=TAGS,
     summary="The prescriber's active webhooks (without secrets)")
async def list_prescriber_webhooks(prescriber_id: UUID, principal: Principal, services: Services) -> list[Webhook]:
    return [_webhook(w) for w in await services.notifications.webhooks(principal, "prescriber", prescriber_id)]


@delete("/v1/prescribers/{prescriber_id:uuid}/webhooks/{webhook_id:uuid}", operation_id="disablePrescriberWebhook",
        tags=TAGS, summary="Disable a webhook of the prescriber; its pending deliveries fail")
async def disable_prescriber_webhook(
    prescriber_id: UUID, webhook_id: UUID, principal: Principal, services: Services
) -> None:
    await services.notifications.disable_webhook(principal, "prescriber", prescriber_id, webhook_id)


# Deliveries ------------------------------------------------------------------------------------------------


def _delivery(delivery: admin.Delivery, cls: type[Delivery] = Delivery, **extra: Any) -> Any:
    return cls(**{**vars(delivery), "recipient": delivery.recipient.ref}, **extra)


@get("/v1/deliveries", operation_id="listDeliveries", tags=TAGS,
     summary="Webhook deliveries to the caller (a clinic: also to its prescribers; the operator: all), newest first")
async def list_deliveries(
    services: Services, principal: Principal, status: DeliveryStatus | None = None,
    page: Annotated[int, Parameter(ge=1, le=100000)] = 1,
) -> DeliveryPage:
    found = await services.notifications.deliveries(principal, status, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    return DeliveryPage(items=[_delivery(d) for d in found.items], page=page,
                        next_page=page + 1 if found.has_more else None)


@get("/v1/deliveries/{delivery_id:uuid}", operation_id="getDelivery", tags=TAGS,
     summary="One webhook delivery with every attempt made")
async def get_delivery(delivery_id: UUID, services: Services, principal: Principal) -> DeliveryDetail:
    delivery, attempts = await services.notifications.delivery(principal, delivery_id)
    return _delivery(delivery, DeliveryDetail, attempt_log=[DeliveryAttempt(**vars(a)) for a in attempts])


@post("/v1/deliveries/{delivery_id:uuid}/redrive", operation_id="redriveDelivery", tags=TAGS, status_code=202,
      summary="Send a failed delivery again, with a fresh count of attempts (operator or the owning clinic)")
async def redrive_delivery(delivery_id: UUID, services: Services, principal: Principal) -> Delivery:
    return _delivery(await services.notifications.redrive(principal, delivery_id))

ROUTES = [
    create_clinic_webhook, list_clinic_webhooks, disable_clinic_webhook, create_prescriber_webhook,
    list_prescriber_webhooks, disable_prescriber_webhook, list_deliveries, get_delivery, redrive_delivery,
]
