"""Clinics, their clinicians and rooms, and partnerships between clinics."""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, post

from scheduler.directory import Principal
from scheduler.http.access import managed_owner
from scheduler.http.deps import Services
from scheduler.http.examples import body
from scheduler.http.problems import ProblemError
from scheduler.http.schemas import (
    Clinic,
    ClinicCreate,
    Clinician,
    ClinicianCreate,
    Partnership,
    PartnershipCreate,
    Room,
    RoomCreate,
)


def _require_operator(principal: Principal) -> None:
    if principal.kind != "operator":
        raise ProblemError(403, "forbidden", "Forbidden", "only the operator onboards clinics")


async def _manageable(services: Services, principal: Principal, clinic_id: UUID) -> None:
    """The operator and the clinic itself manage a clinic; to other clinics it does not exist."""
    await managed_owner(services, principal, "clinic", clinic_id)


class ClinicController(Controller):
    path = "/v1/clinics"
    tags = ["directory"]

    @post("/", operation_id="createClinic", status_code=201,
          summary="Onboard a clinic (operator); its API key is shown only in this response")
    async def create_clinic(self, data: body(ClinicCreate), principal: Principal, services: Services) -> Clinic:
        _require_operator(principal)
        row, key = await services.directory.create_clinic(data.name, data.timezone, principal)
        return Clinic(id=row["id"], name=row["name"], timezone=row["timezone"], api_key=key)

    @post("/{clinic_id:uuid}/clinicians", operation_id="createClinician", status_code=201,
          summary="Add a therapist or prescriber; a prescriber's API key is shown only in this response")
    async def create_clinician(
        self, clinic_id: UUID, data: body(ClinicianCreate), principal: Principal, services: Services
    ) -> Clinician:
        await _manageable(services, principal, clinic_id)
        row, key = await services.directory.create_clinician(clinic_id, data.name, data.role, principal)
        return Clinician(id=row["id"], clinic_id=row["clinic_id"], name=row["name"], role=row["role"], api_key=key)

    @post("/{clinic_id:uuid}/rooms", operation_id="createRoom", status_code=201, summary="Add a room")
    async def create_room(self, clinic_id: UUID, data: body(RoomCreate), principal: Principal, services: Services) -> Room:
        await _manageable(services, principal, clinic_id)
        row = await services.directory.create_room(clinic_id, data.name, principal)
        return Room(id=row["id"], clinic_id=row["clinic_id"], name=row["name"])


class PartnershipController(Controller):
    path = "/v1/partnerships"
    tags = ["directory"]

    @post("/", operation_id="consentToPartnership", status_code=201,
          summary="A clinic agrees to partner with another; the partnership holds once both have agreed")
    async def consent(self, data: body(PartnershipCreate), principal: Principal, services: Services) -> Partnership:
        if principal.kind != "clinic" or principal.clinic_id is None:
            raise ProblemError(403, "forbidden", "Forbidden", "a clinic's key agrees to a partnership")
        own = UUID(principal.clinic_id)
        if data.partner_clinic_id == own:
            raise ProblemError(422, "invalid-input", "The request is not valid", "a clinic cannot partner with itself")
        if await services.directory.clinic(data.partner_clinic_id) is None:
            raise ProblemError(422, "invalid-input", "The request is not valid", f"no clinic {data.partner_clinic_id}")
        agreed = await services.directory.consent_to_partnership(own, data.partner_clinic_id, principal)
        return Partnership(clinic_id=own, partner_clinic_id=data.partner_clinic_id, agreed=agreed)
