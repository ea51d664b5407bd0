"""Who manages a clinic's or a prescriber's own things (API keys, webhooks): the operator everything, a clinic
itself and its prescribers, a prescriber itself. To anyone else the owner does not exist (404)."""

from __future__ import annotations

from uuid import UUID

from scheduler.directory import Principal
from scheduler.http.deps import Services
from scheduler.http.problems import ProblemError


def manages(principal: Principal, kind: str, owner_id: str, owner_clinic_id: str) -> bool:
    """Whether `principal` manages the clinic or prescriber `owner_id` (of clinic `owner_clinic_id`)."""
    if principal.kind == "operator":
        return True
    if principal.kind == "clinic":
        return principal.clinic_id == owner_clinic_id
    return principal.kind == "prescriber" and kind == "prescriber" and principal.id == owner_id


async def managed_owner(services: Services, principal: Principal, kind: str, owner_id: UUID) -> str:
    """The owner's id, if it exists and the caller manages it; else a 404 problem."""
    if kind == "clinic":
        if manages(principal, kind, str(owner_id), str(owner_id)) and await services.directory.clinic(owner_id):
            return str(owner_id)
    else:
        clinician = (await services.directory.clinicians([owner_id])).get(str(owner_id))
        if clinician is not None and clinician["role"] == "prescriber" and manages(
            principal, kind, str(owner_id), str(clinician["clinic_id"])
        ):
            return str(owner_id)
    raise ProblemError(404, "not-found", "Not found", f"no {kind} {owner_id}")
