"""A course's next slots and its planner through the API: what is offered is what the course's rules allow (book
any offered slot), and a whole-course plan, held in one call and booked in one call, completes the course when
its sessions are recorded held in order."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from api_support import EARLY, Tenant, iso, medicine_record, ok

pytestmark = pytest.mark.integration


@pytest.fixture
def home(client: httpx.Client, live_server) -> Tenant:
    return Tenant.onboard(client, live_server.operator_token)


def next_slots(tenant: Tenant, cid: str, at: datetime, **params: Any) -> httpx.Response:
    return tenant.client.get(f"/v1/courses/{cid}/next-slots", params=params,
                             headers={**tenant.headers, "X-Kact-Now": iso(at)})


def book_offered(tenant: Tenant, cid: str, kind: str, slot: dict[str, Any], at: datetime) -> httpx.Response:
    return tenant.post(f"/v1/courses/{cid}/sessions", {
        "kind": kind, "partners": ["a", "b"], "starts_at": slot["starts_at"], "ends_at": slot["ends_at"],
        "clinician_ids": slot["clinician_ids"], "room_id": slot["room_id"]}, at=at)


def test_next_integration_slots_lie_in_the_window_and_any_offered_one_is_booked(home: Tenant, live_server) -> None:
    cid = home.open_course()["id"]
    start = home.assess_and_prepare(cid)
    medicine = home.dose(cid, start, ["a"])
    ended = datetime.fromisoformat(medicine["ends_at"])
    at = ended + timedelta(hours=2)
    answer = ok(next_slots(home, cid, at, kind="integration", step_minutes=60, limit=500), 200)
    assert "I4" in answer["slots"][0]["checked"] and "buffers" in answer["slots"][0]["checked"]
    starts = [datetime.fromisoformat(s["starts_at"]) for s in answer["slots"]]
    # not before now, and (by default) not after the window: 48 hours after the discharge
    assert min(starts) >= at and max(starts) <= ended + timedelta(hours=48)
    assert len(starts) > 24
    # any offered one is accepted
    pick = random.Random(7).choice(answer["slots"])
    ok(book_offered(home, cid, "integration", pick, at), 201)
    # a next medicine session is offered only after the interval (I5), whatever `from` says
    answer = ok(next_slots(home, cid, at, kind="medicine", step_minutes=240, **{"from": iso(at)[:10]}), 200)
    assert answer["slots"] and all(datetime.fromisoformat(s["starts_at"]) >= start + timedelta(days=7)
                                   for s in answer["slots"])
    # to another clinic the course does not exist
    other = Tenant.onboard(home.client, live_server.operator_token, "Other")
    assert next_slots(other, cid, at, kind="integration").status_code == 404
    assert other.post(f"/v1/courses/{cid}/plan", {}, at=at).status_code == 404


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_book_any_offered_slot_of_any_kind_at_any_stage(home: Tenant, seed: int) -> None:
    rng = random.Random(seed)
    cid = home.open_course()["id"]
    home.screen_both(cid)
    at = EARLY
    for kind in ["assessment", "preparation", "preparation", "medicine", "integration", "integration"]:
        answer = ok(next_slots(home, cid, at, kind=kind, step_minutes=rng.choice([30, 60, 90]), limit=200), 200)
        assert answer["slots"], (kind, answer)
        pick = rng.choice(answer["slots"])
        response = book_offered(home, cid, kind, pick, at)
        assert response.status_code == 201, (kind, pick, response.text)


def test_a_plan_held_and_booked_in_one_call_each_completes_the_course(home: Tenant, client: httpx.Client) -> None:
    cid = home.open_course(protocol={"min_integration_sessions": 2, "max_medicine_sessions": 2})["id"]
    home.screen_both(cid)
    plan = ok(home.post(f"/v1/courses/{cid}/plan", {
        "medicine_sessions": 1, "weekdays": ["monday", "tuesday", "wednesday", "thursday", "friday"],
        "starts_between": ["09:00", "16:00"]}, at=EARLY), 200)
    items = plan["items"]
    assert [i["kind"] for i in items] == ["assessment", "preparation", "preparation", "preparation", "preparation",
                                          "medicine", "integration", "integration"]
    assert [i["partners"] for i in items[1:5]] == [["a"], ["b"], ["a", "b"], ["a", "b"]]
    local = [datetime.fromisoformat(i["starts_at"]) for i in items]
    assert all(t.weekday() < 5 and 9 <= t.hour < 16 for t in local)  # the preferences, in the clinic's zone
    assert len({t.date() for t in local}) == len(local)  # one a day
    assert items[6]["follows_item"] == 5 and items[7]["follows_item"] == 5
    # hold it all in one call, then book the holds in one call
    body = [{k: i[k] for k in ("kind", "partners", "starts_at", "ends_at", "clinician_ids", "room_id")}
            for i in items]
    holds = ok(home.post(f"/v1/courses/{cid}/plan/hold", {"items": body}, at=EARLY), 201)
    assert len(holds) == len(items)
    sessions = ok(home.post(f"/v1/courses/{cid}/plan/book", {"hold_ids": [h["id"] for h in holds]},
                            at=EARLY + timedelta(minutes=2)), 201)
    assert [s["kind"] for s in sessions] == [i["kind"] for i in items]
    course = ok(client.get(f"/v1/courses/{cid}", headers=home.headers), 200)
    assert course["holds"] == [] and len(course["sessions"]) == len(items)
    # the plan cannot be booked again: the holds are gone, and all or none
    again = home.post(f"/v1/courses/{cid}/plan/book", {"hold_ids": [holds[0]["id"]]}, at=EARLY)
    assert again.status_code == 404
    # recorded held in order, the course completes
    for session in sessions:
        if session["kind"] == "medicine":
            approval = home.approved(cid, session, "a")
            dosed_at = datetime.fromisoformat(session["starts_at"]) + timedelta(minutes=10)
            home.hold(cid, session, **medicine_record({"a": approval}, dosed_at, 100))
        else:
            home.hold(cid, session)
    done = ok(home.post(f"/v1/courses/{cid}/complete", at=datetime.fromisoformat(sessions[-1]["ends_at"])
                        + timedelta(hours=2)), 200)
    assert done["status"] == "completed"


def test_a_plan_is_all_or_none(home: Tenant) -> None:
    cid = home.open_course(protocol={"min_integration_sessions": 1, "max_medicine_sessions": 1})["id"]
    other = home.open_course()["id"]
    items = ok(home.post(f"/v1/courses/{cid}/plan", {}, at=EARLY), 200)["items"]
    body = [{k: i[k] for k in ("kind", "partners", "starts_at", "ends_at", "clinician_ids", "room_id")}
            for i in items]
    # another course takes the therapist at the plan's last session: booking the plan books nothing
    last = body[-1]
    ok(home.post(f"/v1/courses/{other}/sessions", {**last, "kind": "assessment"}, at=EARLY), 201)
    refused = home.post(f"/v1/courses/{cid}/plan/book", {"items": body}, at=EARLY)
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/double-booking", refused.text
    assert refused.json()["violations"][0]["detail"].startswith(f"plan item {len(body) - 1}: "), refused.text
    course = ok(home.client.get(f"/v1/courses/{cid}", headers=home.headers), 200)
    assert course["sessions"] == []
    # a plan that fits nowhere names its first session: open on Mondays only, asked for Sundays
    ok(home.client.put(f"/v1/clinics/{home.clinic['id']}/opening-hours", headers=home.headers,
                       json={"intervals": [{"weekday": "monday", "opens": "09:00", "closes": "17:00"}]}), 200)
    nowhere = home.post(f"/v1/courses/{cid}/plan", {"weekdays": ["sunday"]}, at=EARLY)
    assert nowhere.status_code == 409 and nowhere.json()["type"] == "/problems/no-plan", nowhere.text
    assert nowhere.json()["item"] == 0 and nowhere.json()["kind"] == "assessment"
