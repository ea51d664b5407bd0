"""A course as FHIR R4 (4.0.1) resources in a collection Bundle, built as JSON and validated with SMART Health IT's
R4 models (`fhirclient.models`: every element's type and cardinality, required elements, no unknown element).

Minimum necessary: the partners are Patients known only by the home clinic's pseudonymous references, clinicians
and rooms only by their ids (no names, no notes, no free text of the clinic's). Per session an Appointment (the
booking); per session held an Encounter (when it took place, which the doses and readings refer to); per dose a
MedicationAdministration of ketamine; per vitals reading a blood-pressure panel Observation and, with the heart
rate, a heart-rate Observation (the two vital-signs profiles of FHIR R4; both carry the reading's identifier).
Resource ids are derived from the course id and what they stand for, so exporting a course twice gives the same
Bundle but for its timestamp."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.application import project_aggregate
from fhirclient.models.bundle import Bundle

from scheduler.domain.course import Course
from scheduler.domain.model import Confirmation, Session, SessionStatus

# Identifier systems of kact's own ids (URNs: no resolvable URL is promised).
COURSE_SYSTEM = "urn:kact:course"
PARTNER_SYSTEM = "urn:kact:partner-reference"  # the home clinic's pseudonymous reference of a partner
PARTNER_ROLE_SYSTEM = "urn:kact:course-partner"  # 'a' or 'b', as the course's events name them
CLINIC_SYSTEM = "urn:kact:clinic"
CLINICIAN_SYSTEM = "urn:kact:clinician"
ROOM_SYSTEM = "urn:kact:room"
SESSION_SYSTEM = "urn:kact:session"
SESSION_KIND_SYSTEM = "urn:kact:session-kind"
CANCEL_REASON_SYSTEM = "urn:kact:cancel-reason"
DOSE_SYSTEM = "urn:kact:dose"
DOSE_APPROVAL_SYSTEM = "urn:kact:dose-approval"
READING_SYSTEM = "urn:kact:vitals-reading"

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
KETAMINE = {"coding": [{"system": RXNORM, "code": "6130", "display": "ketamine"}], "text": "ketamine"}
VITAL_SIGNS = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "vital-signs", "display": "Vital Signs"}], "text": "Vital Signs"}]
AMBULATORY = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"}

APPOINTMENT_STATUS = {SessionStatus.BOOKED: "booked", SessionStatus.HELD: "fulfilled",
                      SessionStatus.MISSED: "noshow", SessionStatus.CANCELLED: "cancelled"}
# How the hosting clinic's people and room stand to a session it has to confirm (a partner-hosted medicine session).
HOST_PARTICIPATION = {Confirmation.NOT_NEEDED: "accepted", Confirmation.CONFIRMED: "accepted",
                      Confirmation.PENDING: "needs-action", Confirmation.DECLINED: "declined"}
STAGES = {"pre": "before the dose", "post": "after the dose", "discharge": "at discharge"}


@dataclass(frozen=True)
class _Given:
    """A dose or a vitals reading as a record gave it, with the session and the clinician who recorded it."""

    session_id: str
    index: int  # its place among the session's doses (or readings), from 0
    item: dict[str, Any]
    clinician_id: str | None
    recorded_at: datetime


def fhir_bundle(course_id: UUID, events: list[Any], generated_at: datetime) -> dict[str, Any]:
    """The course's events as a FHIR R4 collection Bundle (JSON), validated by the R4 models; a mapping that broke
    them raises `fhirclient.models.fhirabstractbase.FHIRValidationError`."""
    resources = _Mapping(course_id, events).resources()
    bundle = {
        "resourceType": "Bundle",
        "id": str(course_id),
        "identifier": {"system": COURSE_SYSTEM, "value": str(course_id)},
        "type": "collection",
        "timestamp": _instant(generated_at),
        "entry": [{"fullUrl": _url(r["id"]), "resource": r} for r in resources],
    }
    validated = _type_first(Bundle(bundle, strict=True).as_json())
    validated["entry"] = [{**entry, "resource": _type_first(entry["resource"])} for entry in validated["entry"]]
    return validated


class _Mapping:
    def __init__(self, course_id: UUID, events: list[Any]) -> None:
        self.course_id = course_id
        self.events = events
        course = project_aggregate(None, events)
        assert isinstance(course, Course)
        self.course = course
        self.booked_at = {e.session["id"]: e.occurred_at or e.timestamp
                          for e in events if isinstance(e, Course.SessionBooked)}
        self.doses, self.readings = self._given()

    def _given(self) -> tuple[list[_Given], list[_Given]]:
        doses: list[_Given] = []
        readings: list[_Given] = []
        for event in self.events:
            if isinstance(event, Course.SessionHeld):
                clinician = event.record.get("clinician_id")
                doses += self._each(event.session_id, event.record.get("doses", []), clinician, event.timestamp, 0)
                readings += self._each(event.session_id, event.record.get("vitals", []), clinician, event.timestamp,
                                       0)
            elif isinstance(event, Course.DischargeRecorded):  # the readings taken while monitoring continued
                before = sum(1 for r in readings if r.session_id == event.session_id)
                readings += self._each(event.session_id, event.vitals, event.clinician_id, event.timestamp, before)
        return doses, readings

    @staticmethod
    def _each(session_id: str, items: Iterable[dict[str, Any]], clinician_id: str | None, recorded_at: datetime,
              start: int) -> list[_Given]:
        return [_Given(session_id, start + n, item, clinician_id, recorded_at) for n, item in enumerate(items)]

    def id(self, kind: str, key: str) -> str:
        return str(uuid5(self.course_id, f"{kind}/{key}"))

    def ref(self, kind: str, key: str) -> dict[str, str]:
        return {"reference": _url(self.id(kind, key)), "type": kind}

    def resources(self) -> list[dict[str, Any]]:
        sessions = sorted(self.course.sessions.values(), key=lambda s: (s.starts_at, s.id))
        held = [s for s in sessions if s.status is SessionStatus.HELD]
        clinicians = sorted({c for s in sessions for c in s.clinician_ids}
                            | {g.clinician_id for g in [*self.doses, *self.readings] if g.clinician_id}
                            | {str(s.held["clinician_id"]) for s in held if s.held and s.held.get("clinician_id")})
        rooms = sorted({(s.room_id, s.clinic_id) for s in sessions if s.room_id})
        return [
            *(self.patient(p) for p in sorted(self.course.partners)),
            *(self.practitioner(c) for c in clinicians),
            *(self.location(room, clinic) for room, clinic in rooms),
            *(self.appointment(s) for s in sessions),
            *(self.encounter(s) for s in held),
            *(self.administration(d) for d in self.doses),
            *(o for r in self.readings for o in self.observations(r)),
        ]

    def patient(self, partner: str) -> dict[str, Any]:
        return {"resourceType": "Patient", "id": self.id("Patient", partner), "identifier": [
            {"use": "secondary", "system": PARTNER_SYSTEM, "value": self.course.partners[partner],
             "assigner": _clinic(self.course.home_clinic_id)},
            {"use": "secondary", "system": f"{PARTNER_ROLE_SYSTEM}:{self.course_id}", "value": partner}]}

    def practitioner(self, clinician_id: str) -> dict[str, Any]:
        return {"resourceType": "Practitioner", "id": self.id("Practitioner", clinician_id),
                "identifier": [{"system": CLINICIAN_SYSTEM, "value": clinician_id}]}

    def location(self, room_id: str, clinic_id: str) -> dict[str, Any]:
        return {"resourceType": "Location", "id": self.id("Location", room_id),
                "identifier": [{"system": ROOM_SYSTEM, "value": room_id}], "managingOrganization": _clinic(clinic_id)}

    def appointment(self, session: Session) -> dict[str, Any]:
        host = HOST_PARTICIPATION[session.confirmation]
        participants = [{"actor": self.ref("Patient", p), "required": "required", "status": "accepted"}
                        for p in session.partners]
        participants += [{"actor": self.ref("Practitioner", c), "required": "required", "status": host}
                         for c in session.clinician_ids]
        if session.room_id:
            participants.append({"actor": self.ref("Location", session.room_id), "required": "required",
                                 "status": host})
        appointment: dict[str, Any] = {
            "resourceType": "Appointment", "id": self.id("Appointment", session.id),
            "identifier": [{"system": SESSION_SYSTEM, "value": session.id}],
            "status": APPOINTMENT_STATUS[session.status],
            "serviceType": [_kind(session)],
            "start": _instant(session.starts_at), "end": _instant(session.ends_at),
            "participant": participants,
        }
        if session.id in self.booked_at:
            appointment["created"] = _instant(self.booked_at[session.id])
        if session.cancellation is not None:
            code = session.cancellation.reason_code.value  # the class only: the note is the clinic's free text
            appointment["cancelationReason"] = {"coding": [{"system": CANCEL_REASON_SYSTEM, "code": code}],
                                                "text": code.replace("_", " ")}
        if session.follows:  # an integration session integrates this medicine session
            appointment["supportingInformation"] = [self.ref("Appointment", session.follows)]
        return appointment

    def encounter(self, session: Session) -> dict[str, Any]:
        held = session.held or {}
        recorder = held.get("clinician_id")
        people = [*session.clinician_ids, *([recorder] if recorder and recorder not in session.clinician_ids else [])]
        period = {"start": _instant(session.starts_at)}
        if not session.awaiting_discharge:
            period["end"] = _instant(session.finished_at)
        encounter: dict[str, Any] = {
            "resourceType": "Encounter", "id": self.id("Encounter", session.id),
            "identifier": [{"system": SESSION_SYSTEM, "value": session.id}],
            "status": "in-progress" if session.awaiting_discharge else "finished",
            "class": AMBULATORY, "type": [_kind(session)],
            "participant": [{"individual": self.ref("Practitioner", c)} for c in people],
            "appointment": [self.ref("Appointment", session.id)],
            "period": period,
            "serviceProvider": _clinic(session.clinic_id),
        }
        if len(session.partners) == 1:  # a joint session's two patients are the Appointment's participants
            encounter["subject"] = self.ref("Patient", session.partners[0])
        if session.room_id:
            encounter["location"] = [{"location": self.ref("Location", session.room_id)}]
        return encounter

    def administration(self, dose: _Given) -> dict[str, Any]:
        given = dose.item
        administration: dict[str, Any] = {
            "resourceType": "MedicationAdministration", "id": self.id("MedicationAdministration",
                                                                      f"{dose.session_id}/{dose.index}"),
            "identifier": [{"system": DOSE_SYSTEM, "value": f"{dose.session_id}/{dose.index}"}],
            "status": "completed",
            "medicationCodeableConcept": KETAMINE,
            "subject": self.ref("Patient", given["partner"]),
            "context": self.ref("Encounter", dose.session_id),
            "effectiveDateTime": _instant(given["at"]),
            "dosage": {"dose": {"value": given["mg"], "unit": "mg", "system": UCUM, "code": "mg"}},
        }
        if dose.clinician_id:
            administration["performer"] = [{"actor": self.ref("Practitioner", dose.clinician_id)}]
        if given.get("approval_id"):  # the prescriber's approval of this dose (I6)
            administration["request"] = {"type": "MedicationRequest", "identifier": {
                "system": DOSE_APPROVAL_SYSTEM, "value": str(given["approval_id"])}}
        return administration

    def observations(self, reading: _Given) -> list[dict[str, Any]]:
        taken = reading.item
        key = f"{reading.session_id}/{reading.index}"
        common: dict[str, Any] = {
            "identifier": [{"system": READING_SYSTEM, "value": key}],
            "status": "final", "category": VITAL_SIGNS,
            "subject": self.ref("Patient", taken["partner"]),
            "encounter": self.ref("Encounter", reading.session_id),
            "effectiveDateTime": _instant(taken["at"]),
            "issued": _instant(reading.recorded_at),
            "note": [{"text": f"Taken {STAGES.get(taken.get('stage', ''), str(taken.get('stage')))}; "
                              f"{'marked acceptable' if taken.get('acceptable') else 'not marked acceptable'} "
                              "by the clinician."}],
        }
        if reading.clinician_id:
            common["performer"] = [self.ref("Practitioner", reading.clinician_id)]
        found = [{
            "resourceType": "Observation", "id": self.id("Observation", f"{key}/blood-pressure"), **common,
            "code": _loinc("85354-9", "Blood pressure panel with all children optional", "Blood pressure"),
            "component": [
                {"code": _loinc("8480-6", "Systolic blood pressure"), "valueQuantity": _mmhg(taken["systolic"])},
                {"code": _loinc("8462-4", "Diastolic blood pressure"), "valueQuantity": _mmhg(taken["diastolic"])},
            ],
        }]
        if taken.get("heart_rate") is not None:
            found.append({
                "resourceType": "Observation", "id": self.id("Observation", f"{key}/heart-rate"), **common,
                "code": _loinc("8867-4", "Heart rate"),
                "valueQuantity": {"value": taken["heart_rate"], "unit": "beats/minute", "system": UCUM,
                                  "code": "/min"},
            })
        return found


def _type_first(resource: dict[str, Any]) -> dict[str, Any]:
    """`resourceType` leading, as people write FHIR JSON (the models put it last)."""
    return {"resourceType": resource["resourceType"], **resource}


def _url(resource_id: str) -> str:
    return f"urn:uuid:{resource_id}"


def _instant(at: datetime) -> str:
    return at.isoformat()


def _clinic(clinic_id: str) -> dict[str, Any]:
    """A clinic, known by its id only (no Organization resource of its own)."""
    return {"type": "Organization", "identifier": {"system": CLINIC_SYSTEM, "value": clinic_id}}


def _kind(session: Session) -> dict[str, Any]:
    return {"coding": [{"system": SESSION_KIND_SYSTEM, "code": session.kind.value}],
            "text": f"{session.kind.value} session"}


def _loinc(code: str, display: str, text: str | None = None) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code, "display": display}], "text": text or display}


def _mmhg(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}
