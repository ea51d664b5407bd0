"""The coordination flows end to end: scheduler API -> event store -> relay -> JetStream -> notifier ->
signed webhooks at a real local HTTP server standing in for the clinic's or prescriber's system."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from api_support import EARLY, Tenant, iso, medicine_record, ok
from receiver import Received, Receiver

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


class Endpoint:
    """A webhook registered for a clinic or a prescriber, at its own path of the receiver."""

    def __init__(self, client: httpx.Client, receiver: Receiver, owner: str, headers: dict[str, str]) -> None:
        self.path = f"/{owner.replace('/', '-')}-{secrets.token_hex(3)}"
        created = ok(client.post(f"/v1/{owner}/webhooks", json={"url": f"{receiver.url}{self.path}",
                                                                 "event_types": []}, headers=headers), 201)
        self.secret, self.receiver = created["secret"], receiver

    def wait(self, notice: str, count: int = 1, timeout: float = 30.0, **event: Any) -> list[Received]:
        def matches(item: dict[str, Any]) -> bool:
            data = item["event"]["data"]
            return item["notice"] == notice and all(
                item["event"].get(k) == v or data.get(k) == v for k, v in event.items())
        found = self.receiver.wait_for(self.path, matches, count, timeout)
        for received in found:
            Webhook(self.secret).verify(received.body, received.headers)  # raises if the signature is wrong
        return found

    def items(self) -> list[dict[str, Any]]:
        return [r.item for r in self.receiver.at(self.path)]


def now() -> datetime:
    return datetime.now(UTC)


def test_dose_approval_goes_to_the_prescriber_signed_then_reminder_then_escalation_then_decision(
    live_server, notifier, client: httpx.Client, receiver: Receiver
) -> None:
    home = Tenant.onboard(client, live_server.operator_token)
    rx = Endpoint(client, receiver, f"prescribers/{home.prescriber['id']}", home.headers)
    clinic = Endpoint(client, receiver, f"clinics/{home.clinic['id']}", home.headers)
    cid = home.open_course("together")["id"]  # both partners dosed in one session: two approvals
    home.assess_and_prepare(cid)
    medicine = home.book(cid, "medicine", now() + timedelta(days=2), hours=3)
    asked = now()
    approval = ok(home.post(f"/v1/courses/{cid}/dose-approvals", {
        "session_id": medicine["id"], "partner": "a", "prescriber_id": home.prescriber["id"], "requested_mg": 100}),
        201)
    (request,) = rx.wait("dose_approval_request", approval_id=approval["id"])
    assert request.item["event"]["type"] == "kact.course.dose_approval.requested.v1"
    assert request.headers["webhook-id"] and request.headers["kact-feed-position"] == str(request.item["position"])
    tampered = request.body.replace(b'"partner":"a"', b'"partner":"b"')
    with pytest.raises(Exception):  # noqa: B017 - any verification error
        Webhook(rx.secret).verify(tampered, request.headers)
    # A second approval decided at once: its reminder is cancelled before it is due.
    quick = ok(home.post(f"/v1/courses/{cid}/dose-approvals", {
        "session_id": medicine["id"], "partner": "b", "prescriber_id": home.prescriber["id"], "requested_mg": 80}),
        201)
    ok(client.post(f"/v1/dose-approvals/{quick['id']}/decision", json={"approve": True}, headers=home.rx_headers), 200)
    # Undecided: a reminder to the prescriber after remind_after (3 s here), an escalation to the home clinic
    # after escalate_after (6 s).
    (reminder,) = rx.wait("dose_approval_reminder", approval_id=approval["id"], timeout=20)
    (escalation,) = clinic.wait("dose_approval_escalation", approval_id=approval["id"], timeout=20)
    assert reminder.item["event"]["type"] == "kact.notice.dose_approval.reminder.v1"
    assert reminder.at - asked.timestamp() >= 3 and escalation.at - asked.timestamp() >= 6
    ok(client.post(f"/v1/dose-approvals/{approval['id']}/decision", json={"approve": True}, headers=home.rx_headers),
       200)
    course = ok(client.get(f"/v1/courses/{cid}", headers=home.headers), 200)
    assert {a["id"]: a["status"] for a in course["approvals"]} == {approval["id"]: "approved", quick["id"]: "approved"}
    clinic.wait("update", type="kact.course.dose_approval.decided.v1", approval_id=approval["id"])
    time.sleep(1)
    notices = [(i["notice"], i["event"]["data"].get("approval_id")) for i in rx.items()]
    assert ("dose_approval_reminder", quick["id"]) not in notices
    assert notices.count(("dose_approval_reminder", approval["id"])) == 1
    # The prescriber's feed holds the same items, numbered without gaps.
    feed = ok(client.get("/v1/feed", params={"after": 0}, headers=home.rx_headers), 200)
    assert [i["position"] for i in feed["items"]] == list(range(1, len(feed["items"]) + 1))
    assert {i["event"]["id"] for i in feed["items"]} >= {i["event"]["id"] for i in rx.items()}


def test_a_medicine_session_at_a_partner_clinic_is_confirmed_by_that_clinic(
    live_server, notifier, client: httpx.Client, receiver: Receiver
) -> None:
    home = Tenant.onboard(client, live_server.operator_token)
    host = Tenant.onboard(client, live_server.operator_token, "Ketamine clinic")
    ok(home.post("/v1/partnerships", {"partner_clinic_id": host.clinic["id"]}), 201)
    ok(host.post("/v1/partnerships", {"partner_clinic_id": home.clinic["id"]}), 201)
    at_home = Endpoint(client, receiver, f"clinics/{home.clinic['id']}", home.headers)
    at_host = Endpoint(client, receiver, f"clinics/{host.clinic['id']}", host.headers)
    cid = home.open_course()["id"]
    start = home.assess_and_prepare(cid)
    session = home.book(cid, "medicine", start, hours=3, clinic_id=host.clinic["id"],
                        clinician_ids=[host.prescriber["id"]])
    (request,) = at_host.wait("booking_request", session_id=session["id"])
    booked = request.item["event"]["data"]
    assert booked["clinic_id"] == host.clinic["id"] and booked["needs_confirmation"] is True
    assert "partners" in booked and "partner-a-" not in request.body.decode()
    ok(host.post(f"/v1/courses/{cid}/sessions/{session['id']}/confirm", {"decision": "confirmed"}), 200)
    course = ok(client.get(f"/v1/courses/{cid}", headers=home.headers), 200)
    (shown,) = [s for s in course["sessions"] if s["id"] == session["id"]]
    assert shown["confirmation"] == "confirmed"
    at_home.wait("update", type="kact.course.session.confirmed.v1", session_id=session["id"])
    # Moved to another day: the host is asked again, and this time declines.
    later = datetime.fromisoformat(session["starts_at"]) + timedelta(days=1)
    ok(home.post(f"/v1/courses/{cid}/sessions/{session['id']}/reschedule",
                 {"starts_at": iso(later), "ends_at": iso(later + timedelta(hours=3))}, at=EARLY), 200)
    at_host.wait("booking_request", type="kact.course.session.rescheduled.v1", session_id=session["id"])
    ok(host.post(f"/v1/courses/{cid}/sessions/{session['id']}/confirm",
                 {"decision": "declined", "reason": "no room free that day"}), 200)
    course = ok(client.get(f"/v1/courses/{cid}", headers=home.headers), 200)
    assert [s["confirmation"] for s in course["sessions"] if s["id"] == session["id"]] == ["declined"]
    at_home.wait("update", type="kact.course.session.declined.v1", session_id=session["id"])
    # The host heard only about what it hosts and the milestones: nothing about the preparation sessions.
    hosted = {i["event"]["data"].get("session_id") for i in at_host.items()} - {None}
    assert hosted == {session["id"]}


def test_an_adverse_event_alerts_the_prescriber_and_the_home_clinic_at_once(
    live_server, notifier, client: httpx.Client, receiver: Receiver
) -> None:
    home = Tenant.onboard(client, live_server.operator_token)
    rx = Endpoint(client, receiver, f"prescribers/{home.prescriber['id']}", home.headers)
    clinic = Endpoint(client, receiver, f"clinics/{home.clinic['id']}", home.headers)
    cid = home.open_course()["id"]
    start = home.assess_and_prepare(cid)
    medicine = home.book(cid, "medicine", start, hours=3)
    the_day_before = start - timedelta(days=1)
    approval = ok(home.post(f"/v1/courses/{cid}/dose-approvals", {
        "session_id": medicine["id"], "partner": "a", "prescriber_id": home.prescriber["id"], "requested_mg": 100},
        at=the_day_before), 201)
    decided = ok(client.post(f"/v1/dose-approvals/{approval['id']}/decision", json={"approve": True},
                             headers={**home.rx_headers, "X-Kact-Now": iso(the_day_before)}), 200)
    record = medicine_record({"a": decided}, start + timedelta(minutes=10), 100)
    record["adverse_events"] = [{"partner": "a", "at": iso(start + timedelta(minutes=30)), "kind": "dissociation",
                                 "severity": "moderate", "note": "frightened, settled with reassurance"}]
    recorded = time.time()
    home.hold(cid, medicine, **record)
    (to_rx,) = rx.wait("adverse_event_alert", session_id=medicine["id"])
    (to_home,) = clinic.wait("adverse_event_alert", session_id=medicine["id"])
    assert to_rx.item["event"]["data"]["adverse_events"] == [
        {"partner": "a", "at": iso(start + timedelta(minutes=30)), "severity": "moderate"}]
    assert max(to_rx.at, to_home.at) - recorded < 5  # at once, not with the next reminder round
    # Milestones go to the clinics involved.
    for milestone in ("assessed", "prepared", "dosed"):
        clinic.wait("milestone", type=f"kact.course.milestone.{milestone}.v1")


def test_an_adverse_event_reported_after_the_couple_left_alerts_at_once(
    live_server, notifier, client: httpx.Client, receiver: Receiver
) -> None:
    """Reported on its own, hours after discharge, by the home clinic naming its therapist: the prescriber and
    the home clinic hear of it at once (severity only); a clinic with nothing to do with the course cannot."""
    home = Tenant.onboard(client, live_server.operator_token)
    rx = Endpoint(client, receiver, f"prescribers/{home.prescriber['id']}", home.headers)
    clinic = Endpoint(client, receiver, f"clinics/{home.clinic['id']}", home.headers)
    cid = home.open_course()["id"]
    medicine = home.dose(cid, home.assess_and_prepare(cid), ["a"])
    evening = datetime.fromisoformat(medicine["ends_at"]) + timedelta(hours=6)
    report = {"partner": "a", "at": iso(evening), "kind": "dizziness", "severity": "severe",
              "note": "fell at home", "follow_up": "seen by the GP", "clinician_id": home.therapist["id"]}
    path = f"/v1/courses/{cid}/sessions/{medicine['id']}/adverse-events"
    stranger = Tenant.onboard(client, live_server.operator_token, name="Stranger")
    assert stranger.post(path, {**report, "clinician_id": stranger.therapist["id"]},
                         at=evening + timedelta(hours=1)).status_code == 404
    recorded = time.time()
    reported = ok(home.post(path, report, at=evening + timedelta(hours=1)), 201)
    assert (reported["severity"], reported["follow_up"], reported["clinician_id"]) == (
        "severe", "seen by the GP", home.therapist["id"])
    (to_rx,) = rx.wait("adverse_event_alert", type="kact.course.adverse_event.reported.v1")
    (to_home,) = clinic.wait("adverse_event_alert", type="kact.course.adverse_event.reported.v1")
    assert to_rx.item["event"]["data"] == {"session_id": medicine["id"], "partner": "a", "at": iso(evening),
                                           "severity": "severe"}
    assert max(to_rx.at, to_home.at) - recorded < 5


def test_a_missed_integration_window_is_recorded_once_and_the_home_clinic_alerted(
    live_server, notifier, client: httpx.Client, receiver: Receiver
) -> None:
    home = Tenant.onboard(client, live_server.operator_token)
    clinic = Endpoint(client, receiver, f"clinics/{home.clinic['id']}", home.headers)
    cid = home.open_course()["id"]
    start = home.assess_and_prepare(cid)  # in January 2026: the window closed long ago
    medicine = home.dose(cid, start, ["a"])
    (alert,) = clinic.wait("integration_window_missed", session_id=medicine["id"], timeout=30)
    events = ok(client.get(f"/v1/courses/{cid}/events", headers=home.headers), 200)
    missed = [e for e in events if e["type"] == "IntegrationWindowMissed"]
    assert len(missed) == 1 and missed[0]["principal"] == "system:deadline-watcher"
    time.sleep(2)
    assert [i["notice"] for i in clinic.items()].count("integration_window_missed") == 1
    # The warning before the close makes no sense any more: it expired unsent.
    assert "integration_window_warning" not in [i["notice"] for i in clinic.items()]


def test_a_window_closing_soon_warns_the_home_clinic(
    live_server, notifier, client: httpx.Client, receiver: Receiver
) -> None:
    home = Tenant.onboard(client, live_server.operator_token)
    clinic = Endpoint(client, receiver, f"clinics/{home.clinic['id']}", home.headers)
    cid = home.open_course(protocol={"integration_window_hours": 24})["id"]
    home.assess_and_prepare(cid)
    start = now().replace(microsecond=0) - timedelta(hours=23)  # dosed ~23 h ago: the window closes in ~21 h
    medicine = home.dose(cid, start, ["a"])
    (warning,) = clinic.wait("integration_window_warning", session_id=medicine["id"], timeout=30)
    deadline = datetime.fromisoformat(warning.item["event"]["data"]["deadline"])
    assert deadline > now()
