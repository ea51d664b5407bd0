"""The directory's use cases: clinics onboarded by the operator; their clinicians, rooms, hours and closures kept by
the operator or the clinic itself; partnerships consented to and ended by the clinics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol
from uuid import UUID

from scheduler.api_keys import Principal
from scheduler.application.access import managed_owner, manages
from scheduler.application.errors import ForbiddenError, NotFoundError, UnknownReferenceError
from scheduler.application.handlers import Directory
from scheduler.domain.errors import InvalidCommandError
from scheduler.domain.rules.booking import BookingRules

Row = dict[str, Any]
Intervals = list[dict[str, str]] | None  # weekly hours; None: always open (a clinic) or available (a clinician)


class ManagedDirectory(Directory, Protocol):
    """What the directory's use cases write and list, beside what the scheduling use cases read."""

    async def create_clinic(self, name: str, timezone: str, by: Principal) -> tuple[Row, str]: ...

    async def create_clinician(self, clinic_id: UUID, name: str, role: str,
                               by: Principal) -> tuple[Row, str | None]: ...

    async def create_room(self, clinic_id: UUID, name: str, by: Principal) -> Row: ...

    async def clinic_clinicians(self, clinic_id: UUID) -> list[Row]: ...

    async def clinic_rooms(self, clinic_id: UUID) -> list[Row]: ...

    async def partnerships(self, clinic_id: UUID) -> list[Row]: ...

    async def consent_to_partnership(self, clinic_id: UUID, partner_clinic_id: UUID, kinds: list[str],
                                     by: Principal) -> Row: ...

    async def end_partnership(self, clinic_id: UUID, partner_clinic_id: UUID, reason: str,
                              by: Principal) -> Row | None: ...

    async def set_hours(self, owner: str, owner_id: UUID, intervals: Intervals, by: Principal) -> list[Row]: ...

    async def hours_history(self, owner: str, owner_id: UUID) -> list[Row]: ...

    async def set_booking_rules(self, clinic_id: UUID, rules: BookingRules, by: Principal) -> list[Row]: ...

    async def booking_rules_history(self, clinic_id: UUID) -> list[Row]: ...

    async def add_closure(self, clinic_id: UUID, starts_on: date, ends_on: date, reason: str,
                          by: Principal) -> Row: ...

    async def lift_closure(self, clinic_id: UUID, closure_id: UUID, by: Principal) -> bool: ...

    async def closure_changes(self, clinic_id: UUID) -> list[Row]: ...

    async def prescriber_ids(self, clinic_id: UUID) -> list[str]: ...


@dataclass(frozen=True)
class ClinicRecords:
    """A clinic, every change to its opening hours and every closure added or lifted."""

    clinic: Row
    opening_hours: list[Row]
    closures: list[Row]


class Clinics:
    """Clinics, their clinicians, rooms, hours and closures, and partnerships between clinics. A clinic is managed
    by the operator and by itself; to other clinics it does not exist."""

    def __init__(self, directory: ManagedDirectory) -> None:
        self.directory = directory

    async def create_clinic(self, principal: Principal, name: str, timezone: str) -> tuple[Row, str]:
        """The new clinic and its first API key."""
        if principal.kind != "operator":
            raise ForbiddenError("only the operator onboards clinics")
        return await self.directory.create_clinic(name, timezone, principal)

    async def clinic(self, principal: Principal, clinic_id: UUID) -> ClinicRecords:
        await managed_owner(self.directory, principal, "clinic", clinic_id)
        clinic = await self.directory.clinic(clinic_id)
        assert clinic is not None, "a managed clinic exists"
        return ClinicRecords(clinic, await self.directory.hours_history("clinic", clinic_id),
                             await self.directory.closure_changes(clinic_id))

    async def add_clinician(self, principal: Principal, clinic_id: UUID, name: str,
                            role: str) -> tuple[Row, str | None]:
        """The new clinician and, for a prescriber, its first API key."""
        await managed_owner(self.directory, principal, "clinic", clinic_id)
        return await self.directory.create_clinician(clinic_id, name, role, principal)

    async def clinicians(self, principal: Principal, clinic_id: UUID) -> list[tuple[Row, list[Row]]]:
        """The clinic's clinicians, each with every change to its working hours."""
        await managed_owner(self.directory, principal, "clinic", clinic_id)
        return [(row, await self.directory.hours_history("clinician", row["id"]))
                for row in await self.directory.clinic_clinicians(clinic_id)]

    async def add_room(self, principal: Principal, clinic_id: UUID, name: str) -> Row:
        await managed_owner(self.directory, principal, "clinic", clinic_id)
        return await self.directory.create_room(clinic_id, name, principal)

    async def rooms(self, principal: Principal, clinic_id: UUID) -> list[Row]:
        await managed_owner(self.directory, principal, "clinic", clinic_id)
        return await self.directory.clinic_rooms(clinic_id)

    async def opening_hours(self, principal: Principal, clinic_id: UUID) -> list[Row]:
        """Every change to the clinic's opening hours, the one in force last."""
        await managed_owner(self.directory, principal, "clinic", clinic_id)
        return await self.directory.hours_history("clinic", clinic_id)

    async def set_opening_hours(self, principal: Principal, clinic_id: UUID, intervals: Intervals) -> list[Row]:
        await managed_owner(self.directory, principal, "clinic", clinic_id)
        return await self.directory.set_hours("clinic", clinic_id, intervals, principal)

    async def booking_rules(self, principal: Principal, clinic_id: UUID) -> list[Row]:
        """Every setting of the clinic's booking rules, the one in force last (none: the defaults)."""
        await managed_owner(self.directory, principal, "clinic", clinic_id)
        return await self.directory.booking_rules_history(clinic_id)

    async def set_booking_rules(self, principal: Principal, clinic_id: UUID, rules: BookingRules) -> list[Row]:
        await managed_owner(self.directory, principal, "clinic", clinic_id)
        if problems := rules.problems():
            raise InvalidCommandError(problems)
        return await self.directory.set_booking_rules(clinic_id, rules, principal)

    async def closures(self, principal: Principal, clinic_id: UUID) -> list[Row]:
        """Every closure of the clinic added or lifted, in order."""
        await managed_owner(self.directory, principal, "clinic", clinic_id)
        return await self.directory.closure_changes(clinic_id)

    async def add_closure(self, principal: Principal, clinic_id: UUID, starts_on: date, ends_on: date,
                          reason: str) -> Row:
        await managed_owner(self.directory, principal, "clinic", clinic_id)
        return await self.directory.add_closure(clinic_id, starts_on, ends_on, reason, principal)

    async def lift_closure(self, principal: Principal, clinic_id: UUID, closure_id: UUID) -> None:
        await managed_owner(self.directory, principal, "clinic", clinic_id)
        if not await self.directory.lift_closure(clinic_id, closure_id, principal):
            raise NotFoundError("closure", closure_id)

    async def working_hours(self, principal: Principal, clinician_id: UUID) -> list[Row]:
        """Every change to the clinician's working hours, the one in force last."""
        await self._clinician(principal, clinician_id)
        return await self.directory.hours_history("clinician", clinician_id)

    async def set_working_hours(self, principal: Principal, clinician_id: UUID, intervals: Intervals) -> list[Row]:
        await self._clinician(principal, clinician_id)
        return await self.directory.set_hours("clinician", clinician_id, intervals, principal)

    async def _clinician(self, principal: Principal, clinician_id: UUID) -> Row:
        """A clinician, for the operator and the clinician's clinic (not the clinician: its hours are the
        clinic's to plan); to anyone else it does not exist."""
        row = (await self.directory.clinicians([clinician_id])).get(str(clinician_id))
        if row is None or not manages(principal, "clinician", str(clinician_id), str(row["clinic_id"])):
            raise NotFoundError("clinician", clinician_id)
        return row

    async def partnerships(self, principal: Principal, clinic_id: UUID) -> list[Row]:
        await managed_owner(self.directory, principal, "clinic", clinic_id)
        return await self.directory.partnerships(clinic_id)

    async def consent_to_partnership(self, principal: Principal, partner_clinic_id: UUID, kinds: list[str]) -> Row:
        """The partnership once the caller's clinic consented (agreed once both have, for the kinds both named)."""
        own = _own_clinic(principal)
        if partner_clinic_id == own:
            raise InvalidCommandError(["a clinic cannot partner with itself"])
        if await self.directory.clinic(partner_clinic_id) is None:
            raise UnknownReferenceError(f"no clinic {partner_clinic_id}")
        return await self.directory.consent_to_partnership(own, partner_clinic_id, kinds, principal)

    async def end_partnership(self, principal: Principal, partner_clinic_id: UUID, reason: str) -> Row:
        ended = await self.directory.end_partnership(_own_clinic(principal), partner_clinic_id, reason, principal)
        if ended is None:
            raise NotFoundError("partnership with clinic", partner_clinic_id)
        return ended


def _own_clinic(principal: Principal) -> UUID:
    if principal.kind != "clinic" or principal.clinic_id is None:
        raise ForbiddenError("a clinic's key consents to or ends a partnership")
    return UUID(principal.clinic_id)
