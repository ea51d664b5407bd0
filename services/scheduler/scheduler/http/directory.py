"""Clinics, their clinicians, rooms, hours and closures, and partnerships between clinics: parse, one use case,
present."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, delete, get, post, put

from scheduler.directory import Principal
from scheduler.domain.rules.booking import BookingRules
from scheduler.http.deps import Services
from scheduler.http.examples import body
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
    BookingRulesChange,
    BookingRulesSet,
    BookingRulesView,
    Partnership,
    PartnershipCreate,
    PartnershipEnd,
    Room,
    RoomCreate,
)


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


def _booking_rules(history: list[dict[str, Any]]) -> BookingRulesView:
    changes = [BookingRulesChange(rules=r["rules"].to_dict(), at=r["at"], by=r["by"]) for r in history]
    return BookingRulesView(rules=changes[-1].rules if changes else BookingRules().to_dict(), history=changes)


def _hours_body(data: HoursSet) -> list[dict[str, str]] | None:
    return None if data.intervals is None else [msgspec.to_builtins(i) for i in data.intervals]


class ClinicController(Controller):
    path = "/v1/clinics"
    tags = ["directory"]

    @post("/", operation_id="createClinic", status_code=201,
          summary="Onboard a clinic (operator); its API key is shown only in this response")
    async def create_clinic(self, data: body(ClinicCreate), principal: Principal, services: Services) -> Clinic:
        row, key = await services.clinics.create_clinic(principal, data.name, data.timezone)
        return Clinic(id=row["id"], name=row["name"], timezone=row["timezone"], api_key=key)

    @get("/{clinic_id:uuid}", operation_id="getClinic",
         summary="A clinic: name, time zone, opening hours and closures in force (operator or the clinic)")
    async def get_clinic(self, clinic_id: UUID, principal: Principal, services: Services) -> ClinicDetail:
        found = await services.clinics.clinic(principal, clinic_id)
        clinic, opening, closures = found.clinic, _hours(found.opening_hours), _closures(found.closures)
        return ClinicDetail(id=clinic["id"], name=clinic["name"], timezone=clinic["timezone"],
                            opening_hours=opening.intervals, closures=closures.current)

    @post("/{clinic_id:uuid}/clinicians", operation_id="createClinician", status_code=201,
          summary="Add a therapist or prescriber; a prescriber's API key is shown only in this response")
    async def create_clinician(
        self, clinic_id: UUID, data: body(ClinicianCreate), principal: Principal, services: Services
    ) -> Clinician:
        row, key = await services.clinics.add_clinician(principal, clinic_id, data.name, data.role)
        return Clinician(id=row["id"], clinic_id=row["clinic_id"], name=row["name"], role=row["role"], api_key=key)

    @get("/{clinic_id:uuid}/clinicians", operation_id="listClinicians",
         summary="The clinic's therapists and prescribers, with their working hours (never a key)")
    async def list_clinicians(self, clinic_id: UUID, principal: Principal, services: Services) -> list[ClinicianView]:
        return [ClinicianView(id=row["id"], clinic_id=row["clinic_id"], name=row["name"], role=row["role"],
                              working_hours=_hours(history).intervals)
                for row, history in await services.clinics.clinicians(principal, clinic_id)]

    @post("/{clinic_id:uuid}/rooms", operation_id="createRoom", status_code=201, summary="Add a room")
    async def create_room(self, clinic_id: UUID, data: body(RoomCreate), principal: Principal, services: Services) -> Room:
        row = await services.clinics.add_room(principal, clinic_id, data.name)
        return Room(id=row["id"], clinic_id=row["clinic_id"], name=row["name"])

    @get("/{clinic_id:uuid}/rooms", operation_id="listRooms", summary="The clinic's rooms")
    async def list_rooms(self, clinic_id: UUID, principal: Principal, services: Services) -> list[Room]:
        return [Room(id=r["id"], clinic_id=r["clinic_id"], name=r["name"])
                for r in await services.clinics.rooms(principal, clinic_id)]

    @get("/{clinic_id:uuid}/partnerships", operation_id="listPartnerships",
         summary="The clinic's partnerships: state (proposed, agreed, ended), the kinds they cover, their history")
    async def list_partnerships(self, clinic_id: UUID, principal: Principal, services: Services) -> list[Partnership]:
        return [_partnership(p) for p in await services.clinics.partnerships(principal, clinic_id)]

    @get("/{clinic_id:uuid}/opening-hours", operation_id="getOpeningHours",
         summary="The clinic's opening hours in force (null: always open) and every change to them")
    async def get_opening_hours(self, clinic_id: UUID, principal: Principal, services: Services) -> Hours:
        return _hours(await services.clinics.opening_hours(principal, clinic_id))

    @put("/{clinic_id:uuid}/opening-hours", operation_id="setOpeningHours",
         summary="Set the clinic's weekly opening hours (local time in its zone); sessions are booked within them")
    async def set_opening_hours(self, clinic_id: UUID, data: body(HoursSet), principal: Principal,
                                services: Services) -> Hours:
        return _hours(await services.clinics.set_opening_hours(principal, clinic_id, _hours_body(data)))

    @get("/{clinic_id:uuid}/booking-rules", operation_id="getBookingRules",
         summary="The clinic's booking rules in force (buffers, notice, horizon, limits, holds) and every change")
    async def get_booking_rules(self, clinic_id: UUID, principal: Principal, services: Services) -> BookingRulesView:
        return _booking_rules(await services.clinics.booking_rules(principal, clinic_id))

    @put("/{clinic_id:uuid}/booking-rules", operation_id="setBookingRules",
         summary="Set the clinic's booking rules: they judge every session booked, moved or held at the clinic")
    async def set_booking_rules(self, clinic_id: UUID, data: body(BookingRulesSet), principal: Principal,
                                services: Services) -> BookingRulesView:
        rules = BookingRules.from_dict(msgspec.to_builtins(data))
        return _booking_rules(await services.clinics.set_booking_rules(principal, clinic_id, rules))

    @get("/{clinic_id:uuid}/closures", operation_id="listClosures",
         summary="The clinic's closures in force and every closure added or lifted")
    async def list_closures(self, clinic_id: UUID, principal: Principal, services: Services) -> Closures:
        return _closures(await services.clinics.closures(principal, clinic_id))

    @post("/{clinic_id:uuid}/closures", operation_id="addClosure", status_code=201,
          summary="Close the clinic from one local date to another (both included), with a reason")
    async def add_closure(self, clinic_id: UUID, data: body(ClosureCreate), principal: Principal,
                          services: Services) -> Closure:
        row = await services.clinics.add_closure(principal, clinic_id, data.starts_on, data.ends_on, data.reason)
        return Closure(id=row["closure_id"], starts_on=row["starts_on"], ends_on=row["ends_on"], reason=row["reason"],
                       at=row["created_at"], by=row["created_by"])

    @delete("/{clinic_id:uuid}/closures/{closure_id:uuid}", operation_id="liftClosure",
            summary="Lift a closure (kept in the history); lifting it again is a no-op")
    async def lift_closure(self, clinic_id: UUID, closure_id: UUID, principal: Principal, services: Services) -> None:
        await services.clinics.lift_closure(principal, clinic_id, closure_id)


class ClinicianController(Controller):
    path = "/v1/clinicians"
    tags = ["directory"]

    @get("/{clinician_id:uuid}/working-hours", operation_id="getWorkingHours",
         summary="A clinician's working hours in force (null: always available) and every change to them")
    async def get_working_hours(self, clinician_id: UUID, principal: Principal, services: Services) -> Hours:
        return _hours(await services.clinics.working_hours(principal, clinician_id))

    @put("/{clinician_id:uuid}/working-hours", operation_id="setWorkingHours",
         summary="Set a clinician's weekly working hours (local time in their clinic's zone; operator or the clinic)")
    async def set_working_hours(self, clinician_id: UUID, data: body(HoursSet), principal: Principal,
                                services: Services) -> Hours:
        return _hours(await services.clinics.set_working_hours(principal, clinician_id, _hours_body(data)))


class PartnershipController(Controller):
    path = "/v1/partnerships"
    tags = ["directory"]

    @post("/", operation_id="consentToPartnership", status_code=201,
          summary="A clinic consents to partner with another for some kinds of session (default: medicine), or "
                  "changes its consent; the partnership holds once both consented, for the kinds both named")
    async def consent(self, data: body(PartnershipCreate), principal: Principal, services: Services) -> Partnership:
        return _partnership(await services.clinics.consent_to_partnership(
            principal, data.partner_clinic_id, list(data.kinds)))

    @post("/{partner_clinic_id:uuid}/end", operation_id="endPartnership", status_code=200,
          summary="Either clinic ends the partnership: no new session is hosted under it; booked ones stay")
    async def end(self, partner_clinic_id: UUID, data: body(PartnershipEnd), principal: Principal,
                  services: Services) -> Partnership:
        return _partnership(await services.clinics.end_partnership(principal, partner_clinic_id, data.reason))

