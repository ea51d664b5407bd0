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
from scheduler.http.access import managed_owner, manages
from scheduler.http.deps import Services
from scheduler.http.examples import body
from scheduler.http.problems import ProblemError
from scheduler.http.schemas import ApiKey, ApiKeyCreate, IssuedApiKey

TAGS = ["keys"]
ISSUED = ("The new key with its secret (`api_key`), shown only in this response. Keys issued before stay valid "
          "until revoked, so a client moves to the new key without downtime.")


def _view(row: dict[str, Any], cls: type[ApiKey] = ApiKey, **extra: Any) -> Any:
    return cls(id=row["id"], owner=f"{row['kind']}:{row['principal_id']}", label=row["label"],
               created_at=row["created_at"], created_by=row["created_by"], last_used_at=row["last_used_at"],
               revoked_at=row["revoked_at"], revoked_by=row["revoked_by"], **extra)


async def _list(services: Services, principal: Principal, kind: str, owner_id: UUID) -> list[ApiKey]:
    await managed_owner(services, principal, kind, owner_id)
    return [_view(row) for row in await services.directory.keys.owned_by(kind, owner_id)]


async def _issue(
    services: Services, principal: Principal, kind: str, owner_id: UUID, data: ApiKeyCreate
) -> IssuedApiKey:
    await managed_owner(services, principal, kind, owner_id)
    if kind == "clinic":
        clinic_id = owner_id
    else:
        clinic_id = (await services.directory.clinicians([owner_id]))[str(owner_id)]["clinic_id"]
    row, secret = await services.directory.keys.issue(kind, owner_id, clinic_id, principal, data.label)
    return _view(row, IssuedApiKey, api_key=secret)  # type: ignore[no-any-return]


@get("/v1/clinics/{clinic_id:uuid}/keys", operation_id="listClinicKeys", tags=TAGS,
     summary="The clinic's API keys, revoked ones included (never their secrets)")
async def list_clinic_keys(clinic_id: UUID, principal: Principal, services: Services) -> list[ApiKey]:
    return await _list(services, principal, "clinic", clinic_id)


@post("/v1/clinics/{clinic_id:uuid}/keys", operation_id="issueClinicKey", tags=TAGS, status_code=201,
      summary="Issue another API key for the clinic (operator or the clinic)", description=ISSUED)
async def issue_clinic_key(
    clinic_id: UUID, data: body(ApiKeyCreate), principal: Principal, services: Services
) -> IssuedApiKey:
    return await _issue(services, principal, "clinic", clinic_id, data)


@get("/v1/prescribers/{prescriber_id:uuid}/keys", operation_id="listPrescriberKeys", tags=TAGS,
     summary="The prescriber's API keys, revoked ones included (never their secrets)")
async def list_prescriber_keys(prescriber_id: UUID, principal: Principal, services: Services) -> list[ApiKey]:
    return await _list(services, principal, "prescriber", prescriber_id)


@post("/v1/prescribers/{prescriber_id:uuid}/keys", operation_id="issuePrescriberKey", tags=TAGS, status_code=201,
      summary="Issue another API key for a prescriber (operator, its clinic or the prescriber)", description=ISSUED)
async def issue_prescriber_key(
    prescriber_id: UUID, data: body(ApiKeyCreate), principal: Principal, services: Services
) -> IssuedApiKey:
    return await _issue(services, principal, "prescriber", prescriber_id, data)


@delete("/v1/keys/{key_id:uuid}", operation_id="revokeKey", tags=TAGS,
        summary="Revoke an API key: every API process refuses it (401) within a second; revoking again is a no-op",
        description="The operator revokes any key, a clinic its own and its prescribers', a prescriber its own. "
                    "The key that makes the request may revoke itself, even the owner's last one.")
async def revoke_key(key_id: UUID, principal: Principal, services: Services) -> None:
    row = await services.directory.keys.get(key_id)
    if row is None or not manages(principal, row["kind"], str(row["principal_id"]), str(row["clinic_id"])):
        raise ProblemError(404, "not-found", "Not found", f"no key {key_id}")
    await services.directory.keys.revoke(key_id, principal)


ROUTES = [list_clinic_keys, issue_clinic_key, list_prescriber_keys, issue_prescriber_key, revoke_key]
