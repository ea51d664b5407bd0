"""API keys of a clinic or a prescriber: listed (never their secrets), issued (the secret shown once) and
revoked (refused by every API process within a second). Rotating: issue a new key, move to it, revoke the old.

Revoking is idempotent: revoking a revoked key answers 204 again and keeps the first revocation's time and
principal. The last active key may be revoked too (a clinic may lock itself out); the operator, or for a
prescriber its clinic, can always issue a new one."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import delete, get, post

from scheduler.directory import Principal
from scheduler.http.deps import Services
from scheduler.http.examples import body
from scheduler.http.schemas import ApiKey, ApiKeyCreate, IssuedApiKey

TAGS = ["keys"]
ISSUED = ("The new key with its secret (`api_key`), shown only in this response. Keys issued before stay valid "
          "until revoked, so a client moves to the new key without downtime.")


def _view(row: dict[str, Any], cls: type[ApiKey] = ApiKey, **extra: Any) -> Any:
    return cls(id=row["id"], owner=f"{row['kind']}:{row['principal_id']}", label=row["label"],
               created_at=row["created_at"], created_by=row["created_by"], last_used_at=row["last_used_at"],
               revoked_at=row["revoked_at"], revoked_by=row["revoked_by"], **extra)


@get("/v1/clinics/{clinic_id:uuid}/keys", operation_id="listClinicKeys", tags=TAGS,
     summary="The clinic's API keys, revoked ones included (never their secrets)")
async def list_clinic_keys(clinic_id: UUID, principal: Principal, services: Services) -> list[ApiKey]:
    return [_view(row) for row in await services.keys.owned_by(principal, "clinic", clinic_id)]


@post("/v1/clinics/{clinic_id:uuid}/keys", operation_id="issueClinicKey", tags=TAGS, status_code=201,
      summary="Issue another API key for the clinic (operator or the clinic)", description=ISSUED)
async def issue_clinic_key(
    clinic_id: UUID, data: body(ApiKeyCreate), principal: Principal, services: Services
) -> IssuedApiKey:
    row, secret = await services.keys.issue(principal, "clinic", clinic_id, data.label)
    return _view(row, IssuedApiKey, api_key=secret)  # type: ignore[no-any-return]


@get("/v1/prescribers/{prescriber_id:uuid}/keys", operation_id="listPrescriberKeys", tags=TAGS,
     summary="The prescriber's API keys, revoked ones included (never their secrets)")
async def list_prescriber_keys(prescriber_id: UUID, principal: Principal, services: Services) -> list[ApiKey]:
    return [_view(row) for row in await services.keys.owned_by(principal, "prescriber", prescriber_id)]


@post("/v1/prescribers/{prescriber_id:uuid}/keys", operation_id="issuePrescriberKey", tags=TAGS, status_code=201,
      summary="Issue another API key for a prescriber (operator, its clinic or the prescriber)", description=ISSUED)
async def issue_prescriber_key(
    prescriber_id: UUID, data: body(ApiKeyCreate), principal: Principal, services: Services
) -> IssuedApiKey:
    row, secret = await services.keys.issue(principal, "prescriber", prescriber_id, data.label)
    return _view(row, IssuedApiKey, api_key=secret)  # type: ignore[no-any-return]


@delete("/v1/keys/{key_id:uuid}", operation_id="revokeKey", tags=TAGS,
        summary="Revoke an API key: every API process refuses it (401) within a second; revoking again is a no-op",
        description="The operator revokes any key, a clinic its own and its prescribers', a prescriber its own. "
                    "The key that makes the request may revoke itself, even the owner's last one.")
async def revoke_key(key_id: UUID, principal: Principal, services: Services) -> None:
    await services.keys.revoke(principal, key_id)


ROUTES = [list_clinic_keys, issue_clinic_key, list_prescriber_keys, issue_prescriber_key, revoke_key]
