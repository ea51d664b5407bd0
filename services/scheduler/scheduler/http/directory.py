"""Clinics, their clinicians, rooms, hours and closures, and partnerships between clinics."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, delete, get, post, put

from scheduler.directory import Principal
from scheduler.http.access import managed_owner
from scheduler.http.deps import Services
from scheduler.http.examples import body
from scheduler.http.problems import ProblemError
from scheduler.http.schemas import (
    Clinic,
    ClinicCreate,
    ClinicDetail,
    Clinician,
    ClinicianCreate,
    ClinicianView,
    Closure,
    ClosureChange,
    ClosureCreate,
    Closures,
    Hours,
    HoursChange,
    HoursInterval,
    HoursSet,
    Partnership,
    PartnershipCreate,
    PartnershipEnd,
    Room,
    RoomCreate,
)


def _require_operator(principal: Principal) -> None:
    if principal.kind != "operator":
        raise ProblemError(403, "forbidden", "Forbidden", "only the operator onboards clinics")


async def _manageable(services: Services, principal: Principal, clinic_id: UUID) -> None:
    """The operator and the clinic itself manage a clinic; to other clinics it does not exist."""
    await managed_owner(services, principal, "clinic", clinic_id)


async def _clinician_of(services: Services, principal: Principal, clinician_id: UUID) -> dict[str, Any]:
    """A clinician, for the operator and the clinician's clinic; to anyone else it does not exist."""
    row = (await services.directory.clinicians([clinician_id])).get(str(clinician_id))
    if row is None or not (principal.kind == "operator" or (
            principal.kind == "clinic" and principal.clinic_id == str(row["clinic_id"]))):
        raise ProblemError(404, "not-found", "Not found", f"no clinician {clinician_id}")
    return row


def _intervals(stored: list[dict[str, str]] | None) -> list[HoursInterval] | None:
    return None if stored is None else [HoursInterval(**i) for i in stored]


def _hours(history: list[dict[str, Any]]) -> Hours:
    changes = [HoursChange(intervals=_intervals(h["intervals"]), at=h["at"], by=h["by"]) for h in history]
    return Hours(intervals=changes[-1].intervals if changes else None, history=changes)


def _closures(changes: list[dict[str, Any]]) -> Closures:
    history = [ClosureChange(id=c["closure_id"], change=c["change"], starts_on=c["starts_on"], ends_on=c["ends_on"],
                             reason=c["reason"], at=c["created_at"], by=c["created_by"]) for c in changes]
    latest = {c.id: c for c in history}  # each closure's last change says whether it is in force
    added = {c.id: c for c in history if c.change == "added"}
    current = [Closure(id=c.id, starts_on=c.starts_on, ends_on=c.ends_on, reason=c.reason, at=c.at, by=c.by)
               for c in added.values() if latest[c.id].change == "added"]
    return Closures(current=sorted(current, key=lambda c: c.starts_on), history=history)


def _partnership(view: dict[str, Any]) -> Partnership:
    return msgspec.convert({**view, "agreed": view["state"] == "agreed"}, Partnership, from_attributes=True)


def _hours_body(data: HoursSet) -> list[dict[str, str]] | None:
    return None if data.intervals is None else [msgspec.to_builtins(i) for i in data.intervals]


class ClinicController(Controller):
    path = "/v1/clinics"
    tags = ["directory"]

    @post("/", operation_id="createClinic", status_code=201,
          summary="Onboard a clinic (operator); its API key is shown only in this response")
    async def create_clinic(self, data: body(ClinicCreate), principal: Principal, services: Services) -> Clinic:
        _require_operator(principal)
        row, key = await services.directory.create_clinic(data.name, data.timezone, principal)
        return Clinic(id=row["id"], name=row["name"], timezone=row["timezone"], api_key=key)

    @get("/{clinic_id:uuid}", operation_id="getClinic",
         summary="A clinic: name, time zone, opening hours and closures in force (operator or the clinic)")
    async def get_clinic(self, clinic_id: UUID, principal: Principal, services: Services) -> ClinicDetail:
        await _manageable(services, principal, clinic_id)
        clinic = await services.directory.clinic(clinic_id)
        assert clinic is not None
        opening = _hours(await services.directory.hours_history("clinic", clinic_id))
        closures = _closures(await services.directory.closure_changes(clinic_id))
        return ClinicDetail(id=clinic["id"], name=clinic["name"], timezone=clinic["timezone"],
                            opening_hours=opening.intervals, closures=closures.current)

    @post("/{clinic_id:uuid}/clinicians", operation_id="createClinician", status_code=201,
          summary="Add a therapist or prescriber; a prescriber's API key is shown only in this response")
    async def create_clinician(
        self, clinic_id: UUID, data: body(ClinicianCreate), principal: Principal, services: Services
    ) -> Clinician:
        await _manageable(services, principal, clinic_id)
        row, key = await services.directory.create_clinician(clinic_id, data.name, data.role, principal)
        return Clinician(id=row["id"], clinic_id=row["clinic_id"], name=row["name"], role=row["role"], api_key=key)

    @get("/{clinic_id:uuid}/clinicians", operation_id="listClinicians",
         summary="The clinic's therapists and prescribers, with their working hours (never a key)")
    async def list_clinicians(self, clinic_id: UUID, principal: Principal, services: Services) -> list[ClinicianView]:
        await _manageable(services, principal, clinic_id)
        views = []
        for row in await services.directory.clinic_clinicians(clinic_id):
            hours = _hours(await services.directory.hours_history("clinician", row["id"]))
            views.append(ClinicianView(id=row["id"], clinic_id=row["clinic_id"], name=row["name"], role=row["role"],
                                       working_hours=hours.intervals))
        return views

    @post("/{clinic_id:uuid}/rooms", operation_id="createRoom", status_code=201, summary="Add a room")
    async def create_room(self, clinic_id: UUID, data: body(RoomCreate), principal: Principal, services: Services) -> Room:
        await _manageable(services, principal, clinic_id)
        row = await services.directory.create_room(clinic_id, data.name, principal)
        return Room(id=row["id"], clinic_id=row["clinic_id"], name=row["name"])

    @get("/{clinic_id:uuid}/rooms", operation_id="listRooms", summary="The clinic's rooms")
    async def list_rooms(self, clinic_id: UUID, principal: Principal, services: Services) -> list[Room]:
        await _manageable(services, principal, clinic_id)
        return [Room(id=r["id"], clinic_id=r["clinic_id"], name=r["name"])
                for r in await services.directory.clinic_rooms(clinic_id)]

    @get("/{clinic_id:uuid}/partnerships", operation_id="listPartnerships",
         summary="The clinic's partnerships: state (proposed, agreed, ended), the kinds they cover, their history")
    async def list_partnerships(self, clinic_id: UUID, principal: Principal, services: Services) -> list[Partnership]:
        await _manageable(services, principal, clinic_id)
        return [_partnership(p) for p in await services.directory.partnerships(clinic_id)]

    @get("/{clinic_id:uuid}/opening-hours", operation_id="getOpeningHours",
         summary="The clinic's opening hours in force (null: always open) and every change to them")
    async def get_opening_hours(self, clinic_id: UUID, principal: Principal, services: Services) -> Hours:
        await _manageable(services, principal, clinic_id)
        return _hours(await services.directory.hours_history("clinic", clinic_id))

    @put("/{clinic_id:uuid}/opening-hours", operation_id="setOpeningHours",
         summary="Set the clinic's weekly opening hours (local time in its zone); sessions are booked within them")
    async def set_opening_hours(self, clinic_id: UUID, data: body(HoursSet), principal: Principal,
                                services: Services) -> Hours:
        await _manageable(services, principal, clinic_id)
        return _hours(await services.directory.set_hours("clinic", clinic_id, _hours_body(data), principal))

    @get("/{clinic_id:uuid}/closures", operation_id="listClosures",
         summary="The clinic's closures in force and every closure added or lifted")
    async def list_closures(self, clinic_id: UUID, principal: Principal, services: Services) -> Closures:
        await _manageable(services, principal, clinic_id)
        return _closures(await services.directory.closure_changes(clinic_id))

    @post("/{clinic_id:uuid}/closures", operation_id="addClosure", status_code=201,
          summary="Close the clinic from one local date to another (both included), with a reason")
    async def add_closure(self, clinic_id: UUID, data: body(ClosureCreate), principal: Principal,
                          services: Services) -> Closure:
        await _manageable(services, principal, clinic_id)
        row = await services.directory.add_closure(clinic_id, data.starts_on, data.ends_on, data.reason, principal)
        return Closure(id=row["closure_id"], starts_on=row["starts_on"], ends_on=row["ends_on"], reason=row["reason"],
                       at=row["created_at"], by=row["created_by"])

    @delete("/{clinic_id:uuid}/closures/{closure_id:uuid}", operation_id="liftClosure",
            summary="Lift a closure (kept in the history); lifting it again is a no-op")
    async def lift_closure(self, clinic_id: UUID, closure_id: UUID, principal: Principal, services: Services) -> None:
        await _manageable(services, principal, clinic_id)
        if not await services.directory.lift_closure(clinic_id, closure_id, principal):
            raise ProblemError(404, "not-found", "Not found", f"no closure {closure_id}")


class ClinicianController(Controller):
    path = "/v1/clinicians"
    tags = ["directory"]

    @get("/{clinician_id:uuid}/working-hours", operation_id="getWorkingHours",
         summary="A clinician's working hours in force (null: always available) and every change to them")
    async def get_working_hours(self, clinician_id: UUID, principal: Principal, services: Services) -> Hours:
        await _clinician_of(services, principal, clinician_id)
        return _hours(await services.directory.hours_history("clinician", clinician_id))

    @put("/{clinician_id:uuid}/working-hours", operation_id="setWorkingHours",
         summary="Set a clinician's weekly working hours (local time in their clinic's zone; operator or the clinic)")
    async def set_working_hours(self, clinician_id: UUID, data: body(HoursSet), principal: Principal,
                                services: Services) -> Hours:
        await _clinician_of(services, principal, clinician_id)
        return _hours(await services.directory.set_hours("clinician", clinician_id, _hours_body(data), principal))


class PartnershipController(Controller):
    path = "/v1/partnerships"
    tags = ["directory"]

    @post("/", operation_id="consentToPartnership", status_code=201,
          summary="A clinic consents to partner with another for some kinds of session (default: medicine), or "
                  "changes its consent; the partnership holds once both consented, for the kinds both named")
    async def consent(self, data: body(PartnershipCreate), principal: Principal, services: Services) -> Partnership:
        own = _own_clinic(principal)
        if data.partner_clinic_id == own:
            raise ProblemError(422, "invalid-input", "The request is not valid", "a clinic cannot partner with itself")
        if await services.directory.clinic(data.partner_clinic_id) is None:
            raise ProblemError(422, "invalid-input", "The request is not valid", f"no clinic {data.partner_clinic_id}")
        return _partnership(await services.directory.consent_to_partnership(
            own, data.partner_clinic_id, list(data.kinds), principal))

    @post("/{partner_clinic_id:uuid}/end", operation_id="endPartnership", status_code=200,
          summary="Either clinic ends the partnership: no new session is hosted under it; booked ones stay")
    async def end(self, partner_clinic_id: UUID, data: body(PartnershipEnd), principal: Principal,
                  services: Services) -> Partnership:
        own = _own_clinic(principal)
        ended = await services.directory.end_partnership(own, partner_clinic_id, data.reason, principal)
        if ended is None:
            raise ProblemError(404, "not-found", "Not found", f"no partnership with clinic {partner_clinic_id}")
        return _partnership(ended)


def _own_clinic(principal: Principal) -> UUID:
    if principal.kind != "clinic" or principal.clinic_id is None:
        raise ProblemError(403, "forbidden", "Forbidden", "a clinic's key consents to or ends a partnership")
    return UUID(principal.clinic_id)
