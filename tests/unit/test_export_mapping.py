"""The audit export of a course: NDJSON (a line per event, with its actor and chain link), the HTML timeline (escaped)
and the FHIR R4 Bundle (validated by the R4 models; the mapping of sessions, doses and readings)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from uuid import uuid4

import msgspec
import pytest
from builders import (
    BY,
    HOME,
    HOME_HOST,
    approve,
    book,
    completed_course,
    medicine_record,
    prepared_course,
    vitals,
)
from fhirclient.models.bundle import Bundle
from fhirclient.models.fhirabstractbase import FHIRValidationError

from scheduler.api_keys import OPERATOR, Principal
from scheduler.application.attribution import actor_of, event_data
from scheduler.application.errors import CourseNotFoundError
from scheduler.application.export import ACTION, FORMATS, MEDIA_TYPES, Exports, chain_links, ndjson, render
from scheduler.application.export_fhir import (
    LOINC,
    PARTNER_SYSTEM,
    fhir_bundle,
)
from scheduler.application.export_html import html_timeline
from scheduler.domain.course import Course
from scheduler.domain.model import Kind
from scheduler.http.views import actor_view

EXPORTED = datetime(2026, 12, 1, 9, tzinfo=timezone.utc)
SCRIPT = "<script>alert('exported')</script>"


def events_of(course: Course) -> list:
    """What the event store gives the export: the course's events, in order."""
    return list(course.pending_events)


def resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def by_url(bundle: dict) -> dict[str, dict]:
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


def coded(resource: dict) -> str:
    return resource["code"]["coding"][0]["code"]


def mixed_course() -> Course:
    """A prepared course with a medicine session in a room with two clinicians, recorded while monitoring continued
    and discharged later by another clinician; then integration sessions cancelled, missed and still booked."""
    course, end = prepared_course()
    start = end + timedelta(days=20)
    course.book_session(session_id="m1", kind=Kind.MEDICINE, partners=("a", "b"), starts_at=start,
                        ends_at=start + timedelta(hours=3), clinic_id=HOME, room_id="room-7",
                        clinician_ids=("rx-1", "nurse-2"), host=HOME_HOST, by=BY)
    approve(course, "m1", "a")
    record = medicine_record(course, "m1", ["a"])
    course.record_held(session_id="m1", now=start + timedelta(hours=2, minutes=30), by=BY, clinician_id="nurse-2",
                       doses=record["doses"], vitals=[v for v in record["vitals"] if v["stage"] != "discharge"],
                       monitoring_continues=True, notes=SCRIPT)
    late = start + timedelta(hours=3, minutes=30)
    course.record_discharge(session_id="m1", discharged_at=late, now=late + timedelta(minutes=5), by=BY,
                            vitals=[vitals("a", "discharge", late - timedelta(minutes=5))], clinician_id="rx-1")
    first = late + timedelta(hours=20)
    for n, sid in enumerate(("i-cancelled", "i-missed", "i-booked")):
        book(course, sid, Kind.INTEGRATION, first + timedelta(hours=2 * n))
    course.cancel_session(session_id="i-cancelled", by=BY, cancelled_by="couple", reason_code="illness",
                          note=SCRIPT)
    course.record_missed(session_id="i-missed", reason="nobody came", now=first + timedelta(hours=4), by=BY)
    return course


# ----------------------------------------------------------------------------------------------------------- FHIR


def test_a_completed_course_is_a_bundle_the_r4_models_accept_with_a_resource_per_session_dose_and_reading() -> None:
    course = completed_course()
    bundle = fhir_bundle(course.id, events_of(course), EXPORTED)

    assert Bundle(bundle, strict=True).as_json()["type"] == "collection"  # parsed and written again: valid R4
    assert bundle["identifier"]["value"] == str(course.id) and bundle["timestamp"] == EXPORTED.isoformat()
    sessions = list(course.sessions.values())
    doses = [d for s in sessions for d in (s.held or {}).get("doses", [])]
    readings = [r for s in sessions for r in (s.held or {}).get("vitals", [])]
    assert len(doses) == 2 and len(readings) == 6  # two medicine sessions, one partner dosed in each
    counts = Counter(e["resource"]["resourceType"] for e in bundle["entry"])
    assert counts["Appointment"] == len(sessions) == 15
    assert counts["Encounter"] == len(sessions)  # every session was held
    assert counts["MedicationAdministration"] == len(doses)
    observations = resources(bundle, "Observation")
    assert Counter(coded(o) for o in observations) == {"85354-9": len(readings), "8867-4": len(readings)}
    assert counts["Patient"] == 2
    assert {a["status"] for a in resources(bundle, "Appointment")} == {"fulfilled"}
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls))
    # Every reference points at an entry of the bundle.
    targets = set(urls)
    text = json.dumps(bundle)
    for url in {part.split('"')[0] for part in text.split('"reference": "')[1:]}:
        assert url in targets


def test_statuses_doses_and_readings_map_to_r4_with_their_codes_units_subjects_and_performers() -> None:
    course = mixed_course()
    bundle = fhir_bundle(course.id, events_of(course), EXPORTED)
    Bundle(bundle, strict=True)
    found = by_url(bundle)
    appointments = {a["identifier"][0]["value"]: a for a in resources(bundle, "Appointment")}

    assert {sid: appointments[sid]["status"] for sid in ("m1", "i-cancelled", "i-missed", "i-booked")} == {
        "m1": "fulfilled", "i-cancelled": "cancelled", "i-missed": "noshow", "i-booked": "booked"}
    assert appointments["i-cancelled"]["cancelationReason"]["coding"][0]["code"] == "illness"
    medicine = appointments["m1"]
    assert medicine["start"] == course.sessions["m1"].starts_at.isoformat()
    assert medicine["end"] == course.sessions["m1"].ends_at.isoformat()
    actors = {(found[p["actor"]["reference"]]["resourceType"], found[p["actor"]["reference"]]["identifier"][0]["value"])
              for p in medicine["participant"]}
    assert actors == {("Patient", "ref-a"), ("Patient", "ref-b"), ("Practitioner", "rx-1"),
                      ("Practitioner", "nurse-2"), ("Location", "room-7")}
    assert found[appointments["i-booked"]["supportingInformation"][0]["reference"]] is medicine

    [administration] = resources(bundle, "MedicationAdministration")
    dose = course.sessions["m1"].held["doses"][0]
    assert administration["status"] == "completed"
    assert administration["medicationCodeableConcept"]["text"] == "ketamine"
    assert administration["dosage"]["dose"] == {"value": dose["mg"], "unit": "mg", "system": "http://unitsofmeasure.org",
                                                "code": "mg"}
    assert administration["effectiveDateTime"] == dose["at"].isoformat()
    assert found[administration["subject"]["reference"]]["identifier"][0]["value"] == "ref-a"
    encounter = found[administration["context"]["reference"]]
    assert encounter["resourceType"] == "Encounter" and encounter["status"] == "finished"
    assert found[encounter["appointment"][0]["reference"]] is medicine
    assert encounter["period"]["end"] == course.sessions["m1"].finished_at.isoformat()  # the discharge
    assert found[administration["performer"][0]["actor"]["reference"]]["identifier"][0]["value"] == "nurse-2"
    assert administration["request"]["identifier"]["value"] == dose["approval_id"]

    observations = resources(bundle, "Observation")
    pressure = [o for o in observations if coded(o) == "85354-9"]
    assert [o["effectiveDateTime"] for o in pressure] == [
        r["at"].isoformat() for r in course.sessions["m1"].held["vitals"]]  # pre, post, and the discharge's
    for o in observations:
        assert o["code"]["coding"][0]["system"] == LOINC
        assert o["category"][0]["coding"][0]["code"] == "vital-signs"
        assert found[o["subject"]["reference"]]["identifier"][0]["value"] == "ref-a"
        assert found[o["encounter"]["reference"]] is encounter
    first = pressure[0]
    assert [(c["code"]["coding"][0]["code"], c["valueQuantity"]["value"], c["valueQuantity"]["code"])
            for c in first["component"]] == [("8480-6", 120, "mm[Hg]"), ("8462-4", 80, "mm[Hg]")]
    rates = [o for o in observations if coded(o) == "8867-4"]
    assert {(o["valueQuantity"]["value"], o["valueQuantity"]["code"]) for o in rates} == {(70, "/min")}
    # Each reading's two Observations share its identifier; the discharge reading was taken by its recorder.
    assert [o["identifier"] for o in pressure] == [o["identifier"] for o in rates]
    performers = [found[o["performer"][0]["reference"]]["identifier"][0]["value"] for o in pressure]
    assert performers == ["nurse-2", "nurse-2", "rx-1"]


def test_the_bundle_holds_the_minimum_necessary_pseudonymous_references_and_no_free_text() -> None:
    course = mixed_course()
    text = json.dumps(fhir_bundle(course.id, events_of(course), EXPORTED))
    assert "alert(" not in text  # the session's notes and the cancellation's note stay out
    assert "nobody came" not in text  # the missed session's reason
    bundle = json.loads(text)
    for patient in resources(bundle, "Patient"):
        assert set(patient) == {"resourceType", "id", "identifier"}  # no name, birth date, address or contact
        assert patient["identifier"][0]["system"] == PARTNER_SYSTEM
    for kind in ("Practitioner", "Location"):
        for resource in resources(bundle, kind):
            assert "name" not in resource


def test_the_models_refuse_a_resource_that_breaks_r4() -> None:
    course = completed_course()
    bundle = fhir_bundle(course.id, events_of(course), EXPORTED)
    appointment = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Appointment")
    del appointment["resource"]["participant"]  # 1..* in R4
    with pytest.raises(FHIRValidationError, match="participant"):
        Bundle(bundle, strict=True)


def test_an_export_is_the_same_bundle_every_time_but_for_its_timestamp() -> None:
    course = completed_course()
    events = events_of(course)
    first, later = fhir_bundle(course.id, events, EXPORTED), fhir_bundle(course.id, events, EXPORTED + timedelta(1))
    assert first["timestamp"] != later["timestamp"]
    assert first["entry"] == later["entry"]


# --------------------------------------------------------------------------------------------------------- NDJSON


def test_ndjson_is_a_line_per_event_with_its_actor_as_the_api_shows_it_and_its_chain_link() -> None:
    course = mixed_course()
    events = events_of(course)
    lines = ndjson(course.id, events, {}).decode().splitlines()
    assert len(lines) == len(events)
    parsed = [json.loads(line) for line in lines]
    assert [p["version"] for p in parsed] == list(range(1, len(events) + 1))
    for event, line in zip(events, parsed):
        data = event_data(event)
        assert line["course_id"] == str(course.id)
        assert line["topic"] == type(event).TOPIC and line["principal"] == event.by
        assert line["actor"] == msgspec.to_builtins(actor_view(event, data))
        assert line["chain"] is None
        assert set(line) == {"course_id", "version", "type", "topic", "time", "occurred_at", "principal", "actor",
                             "data", "chain"}
    discharged = next(p for p in parsed if p["type"] == "DischargeRecorded")
    assert discharged["actor"]["clinician_id"] == "rx-1"
    assert discharged["data"]["discharged_at"].endswith("Z")

    linked = ndjson(course.id, events, {2: {"hash": "ab12"}}).decode().splitlines()
    assert json.loads(linked[1])["chain"] == {"hash": "ab12"} and json.loads(linked[0])["chain"] is None


def test_no_chain_link_is_wired_yet() -> None:
    assert chain_links(uuid4()) == {}


# ----------------------------------------------------------------------------------------------------------- HTML


def test_the_timeline_escapes_what_clinics_wrote_and_names_every_event_with_its_actor() -> None:
    course = Course.open(course_id=uuid4(), home_clinic_id=HOME, model="taking_turns",
                         protocol=prepared_course()[0].protocol, partners={"a": '<b onmouseover="x()">a</b>',
                                                                          "b": "ref-b"}, by=BY)
    course.record_screening(partner="a", result="eligible", clinician_id="t-1", notes=SCRIPT, by=BY)
    course.discontinue(reason=SCRIPT, by=BY)
    page = html_timeline(course.id, events_of(course), {}, EXPORTED)
    assert "<script>" not in page and 'onmouseover="x()"' not in page
    assert "&lt;script&gt;alert(&#39;exported&#39;)&lt;/script&gt;" in page  # in the data and as the reason
    assert page.count("&lt;script&gt;") >= 2
    assert "&lt;b onmouseover=&#34;x()&#34;&gt;a&lt;/b&gt;" in page
    for name in ("Opened", "ScreeningRecorded", "Discontinued"):
        assert f"<td>{name}<br>" in page
    assert "Partner a screened eligible by clinician t-1" in page
    assert "2026-12-01 09:00:00 UTC" in page  # when it was exported
    assert "not linked in this export" in page


def test_the_timeline_shows_each_events_chain_link_when_there_is_one() -> None:
    course = completed_course()
    events = events_of(course)
    page = html_timeline(course.id, events, {1: "f00d", 2: {"hash": "beef"}}, EXPORTED)
    assert f"2 of {len(events)} events linked" in page
    assert "<pre>f00d</pre>" in page and "&#34;hash&#34;: &#34;beef&#34;" in page


# ------------------------------------------------------------------------------------------------------ use case


class FakeCourses:
    def __init__(self, events: list) -> None:
        self.events, self.reads = events, 0

    def history(self, course_id):
        self.reads += 1
        if not self.events or self.events[0].originator_id != course_id:
            raise CourseNotFoundError(course_id)
        return self.events


def run_export(principal: Principal, formats: list[str], course: Course | None = None):
    course = course or completed_course()
    store, logged = FakeCourses(events_of(course)), []

    async def log_access(who, action, course_id):
        logged.append((who.ref, action, course_id))

    async def in_thread(fn):
        return fn()

    exports = Exports(store, log_access, in_thread, lambda: EXPORTED)  # type: ignore[arg-type]
    try:
        return asyncio.run(exports.export(principal, course.id, formats)), logged, store, course
    except CourseNotFoundError:
        return None, logged, store, course


def test_the_operator_exports_every_format_and_the_access_is_logged_once() -> None:
    exported, logged, _, course = run_export(OPERATOR, list(FORMATS))
    assert [(e.format, e.media_type) for e in exported] == [(f, MEDIA_TYPES[f]) for f in FORMATS]
    assert logged == [("operator:root", ACTION, course.id)]
    assert exported == [render(f, course.id, events_of(course), {}, EXPORTED) for f in FORMATS]


@pytest.mark.parametrize("principal", [Principal("clinic", HOME, HOME), Principal("prescriber", "rx-1", HOME)])
def test_to_anyone_but_the_operator_the_course_does_not_exist_and_nothing_is_read_or_logged(principal) -> None:
    exported, logged, store, _ = run_export(principal, ["ndjson"])
    assert exported is None and logged == [] and store.reads == 0


def test_an_unknown_course_is_not_found_and_not_logged() -> None:
    other = completed_course()
    store, logged = FakeCourses(events_of(other)), []

    async def log_access(*args):
        logged.append(args)

    async def in_thread(fn):
        return fn()

    with pytest.raises(CourseNotFoundError):
        asyncio.run(Exports(store, log_access, in_thread, lambda: EXPORTED).export(  # type: ignore[arg-type]
            OPERATOR, uuid4(), ["fhir"]))
    assert logged == []


def test_the_actor_of_an_event_is_the_one_the_api_shows() -> None:
    course = mixed_course()
    for event in events_of(course):
        data = event_data(event)
        actor, view = actor_of(event, data), actor_view(event, data)
        assert (actor.role, actor.id, actor.clinic_id, actor.clinician_id, actor.reason) == (
            view.role, view.id, view.clinic_id, view.clinician_id, view.reason)
