"""Which calendars a session holds, and their ids: a clinician's, its room's and each attending partner's."""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID, uuid5

from scheduler.domain.calendar import Resource
from scheduler.domain.course import Course, Hold, Kind, Session

# The namespace of the calendars of clinicians and rooms (uuid5 of "clinician:<id>" or "room:<id>"): a calendar's
# id is never a course's, and each resource has exactly one.
CALENDARS = UUID("5b0a3c3e-8f4e-4c1a-9a63-2f1c6c0f7a10")
PARTNERS_KEPT = 100_000


@dataclass(frozen=True)
class Held:
    """One calendar a session holds, and how a refusal names its resource."""

    calendar_id: UUID
    resource: Resource
    label: str


def partner_calendar_key(cipher_key: str) -> bytes:
    """The key of partners' calendar ids, derived from the service key (the same in every process)."""
    return hashlib.sha256(b"kact partner calendars\0" + cipher_key.encode()).digest()


@functools.lru_cache(maxsize=100_000)
def _named(name: str) -> UUID:
    return uuid5(CALENDARS, name)


class CalendarIds:
    """Calendar ids. A partner is known by their home clinic's reference, which is health data: their calendar's
    id is a keyed hash of it, so neither the id nor the calendar's events reveal it (the same person in two
    courses of one clinic has one calendar)."""

    def __init__(self, partner_key: bytes) -> None:
        self._partner_key = partner_key
        self._partners: dict[tuple[str, str], UUID] = {}  # each booking asks again; a hash each time adds up

    def clinician(self, clinician_id: str) -> UUID:
        return _named(f"clinician:{clinician_id}")

    def room(self, room_id: str) -> UUID:
        return _named(f"room:{room_id}")

    def partner(self, home_clinic_id: str, reference: str) -> UUID:
        known = self._partners.get((home_clinic_id, reference))
        if known is None:
            digest = hmac.new(self._partner_key, f"partner\0{home_clinic_id}\0{reference}".encode(), hashlib.sha256)
            known = UUID(bytes=digest.digest()[:16], version=4)  # random-looking, as a keyed hash is
            if len(self._partners) >= PARTNERS_KEPT:
                self._partners.clear()
            self._partners[(home_clinic_id, reference)] = known
        return known

    def host(self, clinic_id: str) -> UUID:
        return _named(f"host:{clinic_id}")

    def held_by(self, course: Course, session: Session | Hold) -> Iterator[Held]:
        """Every calendar `session` holds: its clinicians', its room's, and each attending partner's; and, hosted
        by a partner clinic, that clinic's ledger of what it hosts, if it counts there (a medicine session).

        A hold keeps the clinic's resources and its ledger (where every partner clinic's holds count), not the
        partners' calendars: the course keeps its own holds apart."""
        for clinician_id in session.clinician_ids:
            yield Held(self.clinician(clinician_id), Resource.CLINICIAN, f"clinician {clinician_id}")
        if session.room_id is not None:
            yield Held(self.room(session.room_id), Resource.ROOM, f"room {session.room_id}")
        hold = isinstance(session, Hold)
        if session.clinic_id != course.home_clinic_id and (hold or session.kind is Kind.MEDICINE):
            yield Held(self.host(session.clinic_id), Resource.HOST, f"clinic {session.clinic_id}")
        if hold:
            return
        for partner in session.partners:
            yield Held(self.partner(course.home_clinic_id, course.partners[partner]), Resource.PARTNER,
                       f"partner {partner}")
